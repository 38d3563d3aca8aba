import Foundation

/// Leases: a TTL, an expiry on a monotonic clock, and the keys attached.
/// Granted TTLs are persisted (rows "l" + id); after a restart a lease gets
/// its full TTL again, as etcd does without checkpoints.
final class Lessor: @unchecked Sendable {
    struct Lease {
        var ttl: Int64
        var expiry: Double
        var keys: Set<[UInt8]> = []
    }

    /// etcd's MaxLeaseTTL.
    static let maxTTL: Int64 = 9_000_000_000
    private let lock = NSLock()
    private var leases: [Int64: Lease] = [:]
    private let clock: @Sendable () -> Double
    private let minTTL: Int64

    init(clock: @escaping @Sendable () -> Double, minTTL: Int64) {
        self.clock = clock
        self.minTTL = minTTL
    }

    func restore(id: Int64, ttl: Int64) {
        lock.withLock { leases[id] = Lease(ttl: ttl, expiry: clock() + Double(ttl)) }
    }

    func grant(id: Int64, ttl: Int64) throws -> (Int64, Int64) {
        if ttl > Lessor.maxTTL { throw MVCCError.leaseTTLTooLarge }
        let ttl = max(ttl, minTTL)
        return try lock.withLock {
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

    func exists(_ id: Int64) -> Bool { lock.withLock { leases[id] != nil } }

    func keys(of id: Int64) -> Set<[UInt8]>? { lock.withLock { leases[id]?.keys } }

    func revoke(_ id: Int64) { lock.withLock { _ = leases.removeValue(forKey: id) } }

    func attach(_ id: Int64, key: [UInt8]) { lock.withLock { _ = leases[id]?.keys.insert(key) } }

    func detach(_ id: Int64, key: [UInt8]) { lock.withLock { _ = leases[id]?.keys.remove(key) } }

    func keepAlive(_ id: Int64) -> Int64 {
        lock.withLock {
            guard var l = leases[id] else { return 0 }
            l.expiry = clock() + Double(l.ttl)
            leases[id] = l
            return l.ttl
        }
    }

    func timeToLive(_ id: Int64) -> (ttl: Int64, granted: Int64, keys: [[UInt8]])? {
        lock.withLock {
            guard let l = leases[id] else { return nil }
            let remaining = max(0, Int64((l.expiry - clock()).rounded(.up)))
            return (remaining, l.ttl, l.keys.sorted { $0.lexicographicallyPrecedes($1) })
        }
    }

    func ids() -> [Int64] { lock.withLock { leases.keys.sorted() } }

    func expired() -> [Int64] {
        let now = clock()
        return lock.withLock { leases.filter { $0.value.expiry <= now }.map(\.key).sorted() }
    }
}
