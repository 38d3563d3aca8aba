import ClusterAPI
import Foundation

/// A bitmap of the items of one range (Service IPs or NodePorts) kept in the store as one
/// object, as kube-apiserver keeps `RangeAllocation` objects at `/registry/ranges/serviceips`
/// and `/registry/ranges/servicenodeports`: `{"kind":"RangeAllocation","range":"198.19.0.0/16",
/// "data":"<base64 bitmap>"}`. Every change is a compare-and-swap on the key's mod revision,
/// so API servers sharing one store (and two creates racing in one) never hand out the same
/// item twice; the losers read again and retry.
struct RangeAllocation: Sendable {
    /// The store key (`/registry/ranges/serviceips`).
    let key: String
    /// The range as configured (`198.19.0.0/16`, `30000-32767`), kept in the object: a
    /// bitmap of another range is rebuilt by the repair loop.
    let range: String
    /// Number of items; offsets are 0..<size.
    let size: Int
    /// Offsets below this are the "static" band, tried last by dynamic allocation (the
    /// ServiceIPStaticSubrange / ServiceNodePortStaticSubrange rule), so that users who pick
    /// an item themselves pick from a band that random allocation avoids.
    let staticBand: Int

    /// The bitmap and the mod revision it was read at (0: absent).
    struct Snapshot: Sendable {
        var bits: [UInt8]
        var modRevision: Int64
        /// The stored range differs from the configured one (a flag changed).
        var rangeChanged: Bool

        func isSet(_ offset: Int) -> Bool { bits[offset >> 3] & (1 << UInt8(offset & 7)) != 0 }
        mutating func set(_ offset: Int) { bits[offset >> 3] |= 1 << UInt8(offset & 7) }
        mutating func clear(_ offset: Int) { bits[offset >> 3] &= ~(1 << UInt8(offset & 7)) }

        var count: Int { bits.reduce(0) { $0 + $1.nonzeroBitCount } }
    }

    init(key: String, range: String, size: Int) {
        self.key = key
        self.range = range
        self.size = size
        self.staticBand = min(max(16, size / 16), 256, size)
    }

    var emptyBits: [UInt8] { [UInt8](repeating: 0, count: (size + 7) / 8) }

    func read(_ store: ObjectStore) async throws(APIError) -> Snapshot {
        guard let stored = try await store.get(key) else { return Snapshot(bits: emptyBits, modRevision: 0, rangeChanged: false) }
        let storedRange = stored.object["range"]?.stringValue ?? ""
        guard storedRange == range, let data = Data(base64Encoded: stored.object["data"]?.stringValue ?? ""),
              data.count == (size + 7) / 8 else {
            return Snapshot(bits: emptyBits, modRevision: stored.modRevision, rangeChanged: true)
        }
        return Snapshot(bits: Array(data), modRevision: stored.modRevision, rangeChanged: false)
    }

    /// Writes `snapshot` if the key is still at its revision; false on conflict.
    func write(_ snapshot: Snapshot, _ store: ObjectStore) async throws(APIError) -> Bool {
        let object: JSONValue = ["apiVersion": "v1", "kind": "RangeAllocation", "metadata": ["name": ""],
                                 "range": .string(range), "data": .string(Data(snapshot.bits).base64EncodedString())]
        if snapshot.modRevision == 0 {
            do {
                _ = try await store.create(key, object, alreadyExists: APIError(.conflict, "\(key) exists"))
                return true
            } catch {
                if error.code == .conflict { return false }
                throw error
            }
        }
        return try await store.update(key, object, expected: snapshot.modRevision) != nil
    }

    /// Applies `change` to the stored bitmap until the compare-and-swap sticks (bounded).
    /// `change` returns the result to hand back, or throws to give up without writing;
    /// returning nil writes nothing (the bitmap is already as wanted).
    /// `persist: false` (dry run) checks and picks without writing.
    func modify<T>(_ store: ObjectStore, persist: Bool = true,
                   _ change: (inout Snapshot) throws(AllocationError) -> T?) async throws(AllocationError) -> T? {
        for _ in 0..<64 {
            var snapshot: Snapshot
            do { snapshot = try await read(store) } catch { throw .storage(error) }
            if snapshot.rangeChanged {
                // The range changed: start from empty; the repair loop marks what Services hold.
                snapshot.rangeChanged = false
            }
            let before = snapshot.bits
            let result = try change(&snapshot)
            if !persist || (snapshot.bits == before && snapshot.modRevision != 0) { return result }
            do {
                if try await write(snapshot, store) { return result }
            } catch { throw .storage(error) }
        }
        throw .storage(APIError(.conflict, "too many concurrent allocations in \(key); retry"))
    }

    /// Allocates `offset`: `.allocated` when taken.
    func allocate(_ offset: Int, _ store: ObjectStore, persist: Bool = true) async throws(AllocationError) {
        _ = try await modify(store, persist: persist) { snapshot throws(AllocationError) -> Bool? in
            if snapshot.isSet(offset) { throw .allocated }
            snapshot.set(offset)
            return true
        }
    }

    /// Allocates a free offset: the dynamic band first from a random point, then the static
    /// band; `.full` when none is free.
    func allocateNext(_ store: ObjectStore, persist: Bool = true) async throws(AllocationError) -> Int {
        let start = Int.random(in: 0..<max(1, size))
        let found = try await modify(store, persist: persist) { snapshot throws(AllocationError) -> Int? in
            guard let free = Self.firstFree(snapshot, size: size, staticBand: staticBand, start: start) else { throw .full }
            snapshot.set(free)
            return free
        }
        guard let found else { throw .full }
        return found
    }

    static func firstFree(_ snapshot: Snapshot, size: Int, staticBand: Int, start: Int) -> Int? {
        let dynamic = size - staticBand
        if dynamic > 0 {
            let origin = staticBand + start % dynamic
            for step in 0..<dynamic {
                let offset = staticBand + (origin - staticBand + step) % dynamic
                if !snapshot.isSet(offset) { return offset }
            }
        }
        for offset in 0..<staticBand where !snapshot.isSet(offset) { return offset }
        return nil
    }

    /// Frees `offsets` (those already free are ignored).
    func release(_ offsets: [Int], _ store: ObjectStore) async throws(AllocationError) {
        guard !offsets.isEmpty else { return }
        _ = try await modify(store) { snapshot throws(AllocationError) -> Bool? in
            for offset in offsets where snapshot.isSet(offset) { snapshot.clear(offset) }
            return true
        }
    }
}

/// Why an allocation failed (the ipallocator and portallocator errors).
enum AllocationError: Error, Sendable {
    /// Outside the range (`ErrNotInRange`).
    case notInRange
    /// Taken (`ErrAllocated`).
    case allocated
    /// Nothing left (`ErrFull`).
    case full
    /// The store failed or kept conflicting.
    case storage(APIError)
}
