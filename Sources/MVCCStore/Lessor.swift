import Foundation
import Synchronization

/// Leases: a TTL, an expiry on a monotonic clock, and the keys attached.
/// Granted TTLs are persisted (rows "l" + id); after a restart a lease gets
/// its full TTL again, as etcd does without checkpoints.
final class Lessor: @unchecked Sendable {
    struct Lease {
        var ttl: Int64
        var expiry: Double
        var keys: Set<[UInt8]> = []
    }

    /// A change the writer made for a group not yet durable, and how to take
    /// it back if the group's commit fails: the lessor then matches the
    /// disk again (no lease granted, revoked, attached or detached by writes
    /// the client was told failed).
    enum Change {
        case granted(Int64)
        case revoked(Int64, Lease)
        case attached(Int64, [UInt8])
        case detached(Int64, [UInt8])
    }

    /// etcd's MaxLeaseTTL.
    static let maxTTL: Int64 = 9_000_000_000
    // Lock order: `lock` (which holds the leases), then whatever the clock takes. `clock()` (`MVCCOptions.clock`) is called
    // under it — the tests' `TestClock` takes a lock of its own there — so a clock must not call
    // into the store. Nothing else is taken while it is held: not the store's `published` nor
    // `hub.lock`, no engine lock. It is taken with no other lock held: by the writer thread
    // (`grant`, `revoke`, `keys`, `exists`, `attach`, `detach`, `undo`, between, never inside, its
    // uses of the store's `published` and the hub's lock), by callers (`keepAlive`, `timeToLive`, `ids`,
    // `expired`) and by the store's open (`restore`, `attach`).
    private let lock = Mutex<[Int64: Lease]>([:])
    private let clock: @Sendable () -> Double
    private let minTTL: Int64

    init(clock: @escaping @Sendable () -> Double, minTTL: Int64) {
        self.clock = clock
        self.minTTL = minTTL
    }

    func restore(id: Int64, ttl: Int64) {
        lock.withLock { leases in leases[id] = Lease(ttl: ttl, expiry: clock() + Double(ttl)) }
    }

    func grant(id: Int64, ttl: Int64) throws -> (Int64, Int64) {
        if ttl > Lessor.maxTTL { throw MVCCError.leaseTTLTooLarge }
        let ttl = max(ttl, minTTL)
        return try lock.withLock { leases in
            var id = id
            if id == 0 {
                repeat { id = Int64.random(in: 1...Int64.max) } while leases[id] != nil
            } else if leases[id] != nil {
                throw MVCCError.leaseExists
            }
            leases[id] = Lease(ttl: ttl, expiry: clock() + Double(ttl))
            return (id, ttl)
        }
    }

    func exists(_ id: Int64) -> Bool { lock.withLock { leases in leases[id] != nil } }

    func keys(of id: Int64) -> Set<[UInt8]>? { lock.withLock { leases in leases[id]?.keys } }

    func revoke(_ id: Int64) -> Change? {
        lock.withLock { leases in leases.removeValue(forKey: id).map { .revoked(id, $0) } }
    }

    /// Attaches `key`; the change, if it made one.
    func attach(_ id: Int64, key: [UInt8]) -> Change? {
        lock.withLock { leases in leases[id]?.keys.insert(key).inserted == true ? .attached(id, key) : nil }
    }

    func detach(_ id: Int64, key: [UInt8]) -> Change? {
        lock.withLock { leases in leases[id]?.keys.remove(key) != nil ? .detached(id, key) : nil }
    }

    /// Takes back `changes` (made in this order), newest first.
    func undo(_ changes: [Change]) {
        lock.withLock { leases in
            for change in changes.reversed() {
                switch change {
                case .granted(let id): leases[id] = nil
                case .revoked(let id, let lease): leases[id] = lease
                case .attached(let id, let key): leases[id]?.keys.remove(key)
                case .detached(let id, let key): leases[id]?.keys.insert(key)
                }
            }
        }
    }

    func keepAlive(_ id: Int64) -> Int64 {
        lock.withLock { leases in
            guard var l = leases[id] else { return 0 }
            l.expiry = clock() + Double(l.ttl)
            leases[id] = l
            return l.ttl
        }
    }

    func timeToLive(_ id: Int64) -> (ttl: Int64, granted: Int64, keys: [[UInt8]])? {
        lock.withLock { leases in
            guard let l = leases[id] else { return nil }
            let remaining = max(0, Int64((l.expiry - clock()).rounded(.up)))
            return (remaining, l.ttl, l.keys.sorted { $0.lexicographicallyPrecedes($1) })
        }
    }

    func ids() -> [Int64] { lock.withLock { leases in leases.keys.sorted() } }

    func expired() -> [Int64] {
        let now = clock()
        return lock.withLock { leases in leases.filter { $0.value.expiry <= now }.map(\.key).sorted() }
    }
}
