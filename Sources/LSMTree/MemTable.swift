#if canImport(Glibc)
import Glibc
#endif
import Atomics

// The memtable: a skiplist whose nodes live in an arena of large blocks, so
// that its memory is bounded, accounted and freed at once.
//
// One writer (the group-commit leader) inserts; any number of readers search
// and iterate concurrently without locks. A node is fully written before it
// is linked, and links are published with release stores that readers load
// with acquire, bottom level first — the scheme of LevelDB's skiplist.
//
// Node layout in the arena (8-byte aligned):
//
//   +-------------+------------+--------------+-----------+----------------+-----------+-------+
//   | trailer u64 | keyLen u32 | valueLen u32 | height u32| pad u32        | next[h]   | key | value |
//   +-------------+------------+--------------+-----------+----------------+-----------+-------+
//   0             8            12             16          20               24          24+8h

/// A region allocator handing out 8-byte aligned memory from large blocks.
final class Arena {
    /// 1 MiB, or less for small memtables so that usage tracks content.
    let blockSize: Int
    private var blocks: [UnsafeMutableRawPointer] = []
    private var current: UnsafeMutableRawPointer?
    private var remaining = 0
    private let usage = ManagedAtomic<Int>(0)

    init(blockSize: Int) {
        self.blockSize = blockSize
    }

    /// Bytes reserved from the system so far.
    var memoryUsage: Int { usage.load(ordering: .relaxed) }

    func allocate(_ size: Int) -> UnsafeMutableRawPointer {
        let size = (size + 7) & ~7
        if size > remaining {
            if size > blockSize / 4 {
                // Large entries get a block of their own; the current block keeps serving small ones.
                let p = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
                blocks.append(p)
                usage.wrappingIncrement(by: size, ordering: .relaxed)
                return p
            }
            let p = UnsafeMutableRawPointer.allocate(byteCount: blockSize, alignment: 8)
            blocks.append(p)
            usage.wrappingIncrement(by: blockSize, ordering: .relaxed)
            current = p
            remaining = blockSize
        }
        let p = current!
        current = p + size
        remaining -= size
        return p
    }

    deinit {
        for b in blocks { b.deallocate() }
    }
}

/// What a memtable or table knows about a key at a sequence number.
enum LookupResult {
    case found([UInt8])
    case deleted
    case notFound
}

final class MemTable: @unchecked Sendable {
    static let maxHeight = 12
    private let arena: Arena
    private let head: UnsafeMutableRawPointer
    private let maxHeightInUse = ManagedAtomic<Int>(1)
    private var rng: UInt64 = 0x2545_F491_4F6C_DD1D
    /// Number of entries inserted (written by the writer, read for statistics).
    private let entryCount = ManagedAtomic<Int>(0)
    /// The WAL segment that holds this memtable's writes.
    let logNumber: UInt64
    /// The writer's search path, reused by every insert.
    private let prevScratch = UnsafeMutablePointer<UnsafeMutableRawPointer>.allocate(capacity: MemTable.maxHeight)

    deinit { prevScratch.deallocate() }

    init(logNumber: UInt64, capacityHint: Int = 64 << 20) {
        self.logNumber = logNumber
        arena = Arena(blockSize: min(1 << 20, max(4096, capacityHint / 16)))
        head = arena.allocate(24 + 8 * MemTable.maxHeight)
        head.initializeMemory(as: UInt8.self, repeating: 0, count: 24 + 8 * MemTable.maxHeight)
        head.storeBytes(of: UInt32(MemTable.maxHeight), toByteOffset: 16, as: UInt32.self)
    }

    var memoryUsage: Int { arena.memoryUsage }
    var count: Int { entryCount.load(ordering: .relaxed) }
    var isEmpty: Bool { count == 0 }

    // MARK: Node access

    @inline(__always)
    private func nextPointer(_ node: UnsafeMutableRawPointer, _ level: Int) -> UnsafeAtomic<Int> {
        UnsafeAtomic<Int>(at: (node + 24 + 8 * level).assumingMemoryBound(to: Int.AtomicRepresentation.self))
    }

    @inline(__always)
    private func next(_ node: UnsafeMutableRawPointer, _ level: Int) -> UnsafeMutableRawPointer? {
        UnsafeMutableRawPointer(bitPattern: nextPointer(node, level).load(ordering: .acquiring))
    }

    @inline(__always)
    static func trailer(_ node: UnsafeRawPointer) -> UInt64 { node.load(as: UInt64.self) }

    @inline(__always)
    static func userKey(_ node: UnsafeRawPointer) -> UnsafeRawBufferPointer {
        let kl = Int(node.load(fromByteOffset: 8, as: UInt32.self))
        let h = Int(node.load(fromByteOffset: 16, as: UInt32.self))
        return UnsafeRawBufferPointer(start: node + 24 + 8 * h, count: kl)
    }

    @inline(__always)
    static func value(_ node: UnsafeRawPointer) -> UnsafeRawBufferPointer {
        let kl = Int(node.load(fromByteOffset: 8, as: UInt32.self))
        let vl = Int(node.load(fromByteOffset: 12, as: UInt32.self))
        let h = Int(node.load(fromByteOffset: 16, as: UInt32.self))
        return UnsafeRawBufferPointer(start: node + 24 + 8 * h + kl, count: vl)
    }

    static func internalKey(_ node: UnsafeRawPointer) -> [UInt8] {
        var k = [UInt8](userKey(node))
        k.appendFixed64(trailer(node))
        return k
    }

    /// Compares a node with the target (userKey, trailer) in internal-key order.
    @inline(__always)
    private func compare(_ node: UnsafeRawPointer, _ key: UnsafeRawBufferPointer, _ trailer: UInt64) -> Int {
        let c = compareBytes(MemTable.userKey(node), key)
        if c != 0 { return c }
        let t = MemTable.trailer(node)
        return t > trailer ? -1 : (t < trailer ? 1 : 0)
    }

    private func randomHeight() -> Int {
        var h = 1
        while h < MemTable.maxHeight {
            rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17
            if rng & 3 != 0 { break }
            h += 1
        }
        return h
    }

    /// The first node at or after (key, trailer); fills `prev` with the last
    /// node before it on every level when given.
    @inline(__always)
    private func findGreaterOrEqual(
        _ key: UnsafeRawBufferPointer, _ trailer: UInt64,
        prev: UnsafeMutablePointer<UnsafeMutableRawPointer>?
    ) -> UnsafeMutableRawPointer? {
        var x = head
        var level = maxHeightInUse.load(ordering: .relaxed) - 1
        while true {
            let n = next(x, level)
            if let n, compare(n, key, trailer) < 0 {
                x = n
            } else {
                prev?[level] = x
                if level == 0 { return n }
                level -= 1
            }
        }
    }

    /// The last node strictly before (key, trailer), or nil.
    private func findLessThan(_ key: UnsafeRawBufferPointer, _ trailer: UInt64) -> UnsafeMutableRawPointer? {
        var x = head
        var level = maxHeightInUse.load(ordering: .relaxed) - 1
        while true {
            if let n = next(x, level), compare(n, key, trailer) < 0 {
                x = n
            } else {
                if level == 0 { return x == head ? nil : x }
                level -= 1
            }
        }
    }

    private func findLast() -> UnsafeMutableRawPointer? {
        var x = head
        var level = maxHeightInUse.load(ordering: .relaxed) - 1
        while true {
            if let n = next(x, level) {
                x = n
            } else {
                if level == 0 { return x == head ? nil : x }
                level -= 1
            }
        }
    }

    // MARK: Writer

    /// Inserts one entry. Only the single writer may call this.
    func add(_ seq: SequenceNumber, _ kind: UInt8, _ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) {
        let trailer = packTrailer(seq, kind)
        let prev = prevScratch
        _ = findGreaterOrEqual(key, trailer, prev: prev)
        let height = randomHeight()
        let current = maxHeightInUse.load(ordering: .relaxed)
        if height > current {
            for i in current..<height { prev[i] = head }
            maxHeightInUse.store(height, ordering: .relaxed)
        }
        let node = arena.allocate(24 + 8 * height + key.count + value.count)
        node.storeBytes(of: trailer, as: UInt64.self)
        node.storeBytes(of: UInt32(key.count), toByteOffset: 8, as: UInt32.self)
        node.storeBytes(of: UInt32(value.count), toByteOffset: 12, as: UInt32.self)
        node.storeBytes(of: UInt32(height), toByteOffset: 16, as: UInt32.self)
        let data = node + 24 + 8 * height
        if key.count > 0 { data.copyMemory(from: key.baseAddress!, byteCount: key.count) }
        if value.count > 0 { (data + key.count).copyMemory(from: value.baseAddress!, byteCount: value.count) }
        for i in 0..<height {
            nextPointer(node, i).store(nextPointer(prev[i], i).load(ordering: .relaxed), ordering: .relaxed)
            nextPointer(prev[i], i).store(Int(bitPattern: node), ordering: .releasing)
        }
        entryCount.wrappingIncrement(ordering: .relaxed)
    }

    // MARK: Readers

    /// The newest version of `key` visible at `seq`.
    func get(_ key: UnsafeRawBufferPointer, seq: SequenceNumber) -> LookupResult {
        guard let n = findGreaterOrEqual(key, packTrailer(seq, EntryKind.seek), prev: nil),
              compareBytes(MemTable.userKey(n), key) == 0
        else { return .notFound }
        if trailerKind(MemTable.trailer(n)) == EntryKind.value.rawValue {
            return .found([UInt8](MemTable.value(n)))
        }
        return .deleted
    }

    func makeIterator() -> MemTableIterator { MemTableIterator(self) }

    final class MemTableIterator: InternalIterator {
        private let table: MemTable
        private var node: UnsafeMutableRawPointer?

        init(_ table: MemTable) { self.table = table }

        var isValid: Bool { node != nil }
        var key: [UInt8] { MemTable.internalKey(node!) }
        var value: [UInt8] { [UInt8](MemTable.value(node!)) }
        var userKeyBytes: UnsafeRawBufferPointer { MemTable.userKey(node!) }
        var currentTrailer: UInt64 { MemTable.trailer(node!) }
        var valueBytes: UnsafeRawBufferPointer { MemTable.value(node!) }

        func seekToFirst() { node = table.next(table.head, 0) }
        func seekToLast() { node = table.findLast() }

        func seek(_ target: [UInt8]) {
            node = target.withUnsafeBytes { t in
                table.findGreaterOrEqual(UnsafeRawBufferPointer(rebasing: t[0..<(t.count - 8)]),
                                         loadFixed64(t.baseAddress! + t.count - 8), prev: nil)
            }
        }

        func seekForPrev(_ target: [UInt8]) {
            seek(target)
            if let n = node, target.withUnsafeBytes({ t in
                table.compare(n, UnsafeRawBufferPointer(rebasing: t[0..<(t.count - 8)]),
                              loadFixed64(t.baseAddress! + t.count - 8)) == 0
            }) { return }
            node = target.withUnsafeBytes { t in
                table.findLessThan(UnsafeRawBufferPointer(rebasing: t[0..<(t.count - 8)]),
                                   loadFixed64(t.baseAddress! + t.count - 8))
            }
        }

        func next() { node = table.next(node!, 0) }

        func prev() {
            let n = node!
            node = table.findLessThan(MemTable.userKey(n), MemTable.trailer(n))
        }
    }
}
