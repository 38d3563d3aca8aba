/// A sharded LRU cache bounded by a total charge (bytes for blocks, a count for
/// open tables). Values are reference types shared with readers; eviction
/// only drops the cache's reference.
final class LRUCache<Key: Hashable & Sendable, Value>: @unchecked Sendable {
    private final class Node {
        let key: Key
        var value: Value
        var charge: Int
        /// Weak: with both links strong, the list would be a chain of retain
        /// cycles and a dropped cache would leak every entry (and open file).
        weak var prev: Node?
        var next: Node?
        init(key: Key, value: Value, charge: Int) { self.key = key; self.value = value; self.charge = charge }
    }

    private final class Shard {
        let lock = Lock()
        var map: [Key: Node] = [:]
        var head: Node?   // most recently used
        var tail: Node?   // least recently used
        var usage = 0
        let capacity: Int
        var hits: UInt64 = 0
        var misses: UInt64 = 0
        init(capacity: Int) { self.capacity = capacity }

        func unlink(_ n: Node) {
            n.prev?.next = n.next
            n.next?.prev = n.prev
            if head === n { head = n.next }
            if tail === n { tail = n.prev }
            n.prev = nil
            n.next = nil
        }

        func pushFront(_ n: Node) {
            n.next = head
            head?.prev = n
            head = n
            if tail == nil { tail = n }
        }
    }

    private let shards: [Shard]

    init(capacity: Int, shardCount: Int = 16) {
        let per = max(1, capacity / shardCount)
        shards = (0..<shardCount).map { _ in Shard(capacity: per) }
    }

    @inline(__always)
    private func shard(_ key: Key) -> Shard {
        var h = key.hashValue
        h ^= h >> 17
        return shards[Int(UInt(bitPattern: h) % UInt(shards.count))]
    }

    func get(_ key: Key) -> Value? {
        let s = shard(key)
        return s.lock.withLock {
            guard let n = s.map[key] else { s.misses += 1; return nil }
            s.hits += 1
            if s.head !== n {
                s.unlink(n)
                s.pushFront(n)
            }
            return n.value
        }
    }

    func insert(_ key: Key, _ value: Value, charge: Int) {
        let s = shard(key)
        s.lock.withLock {
            if let old = s.map[key] {
                s.unlink(old)
                s.usage -= old.charge
            }
            let n = Node(key: key, value: value, charge: charge)
            s.map[key] = n
            s.pushFront(n)
            s.usage += charge
            while s.usage > s.capacity, let victim = s.tail, victim !== n {
                s.unlink(victim)
                s.map[victim.key] = nil
                s.usage -= victim.charge
            }
        }
    }

    func remove(_ key: Key) {
        let s = shard(key)
        s.lock.withLock {
            if let n = s.map.removeValue(forKey: key) {
                s.unlink(n)
                s.usage -= n.charge
            }
        }
    }

    /// Removes every entry whose key matches.
    func removeAll(where predicate: (Key) -> Bool) {
        for s in shards {
            s.lock.withLock {
                for (k, n) in s.map where predicate(k) {
                    s.unlink(n)
                    s.map[k] = nil
                    s.usage -= n.charge
                }
            }
        }
    }

    var usage: Int { shards.reduce(0) { acc, s in acc + s.lock.withLock { s.usage } } }
    var hitsAndMisses: (UInt64, UInt64) {
        shards.reduce((0, 0)) { acc, s in s.lock.withLock { (acc.0 + s.hits, acc.1 + s.misses) } }
    }
}

struct BlockCacheKey: Hashable, Sendable {
    let file: UInt64
    let offset: UInt64
}
