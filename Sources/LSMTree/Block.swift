#if canImport(Glibc)
import Glibc
import Primitives
#endif

// A block is a run of sorted entries with prefix-compressed keys and restart
// points, as in LevelDB, except that the trailer of each internal key is a
// varint instead of 8 fixed bytes (sequence numbers are small; this saves
// 4–5 bytes per entry before compression):
//
//   entry:   | shared varint | unshared varint | valueLen varint |
//            | user-key bytes after the shared prefix | trailer varint64 | value |
//   block:   | entry ... | restart offsets (u32 LE each) | restart count u32 LE |
//
// Every `restartInterval`-th entry stores its whole user key (shared = 0) and
// its offset in the restart array, so a seek is a binary search over restart
// points and then a short linear scan.

struct BlockBuilder {
    private(set) var buffer: [UInt8] = []
    private var restarts: [UInt32] = [0]
    private var counter = 0
    private var lastUserKey: [UInt8] = []
    private let restartInterval: Int
    private(set) var entryCount = 0

    init(restartInterval: Int) {
        self.restartInterval = restartInterval
    }

    var isEmpty: Bool { entryCount == 0 }

    /// Size of the block if finished now.
    var estimatedSize: Int { buffer.count + 4 * restarts.count + 4 }

    /// Appends an entry; internal keys must arrive in sorted order.
    mutating func add(userKey: UnsafeRawBufferPointer, trailer: UInt64, value: UnsafeRawBufferPointer) {
        var shared = 0
        if counter < restartInterval {
            let n = min(lastUserKey.count, userKey.count)
            lastUserKey.withUnsafeBytes { last in
                while shared < n && last[shared] == userKey[shared] { shared += 1 }
            }
        } else {
            restarts.append(UInt32(buffer.count))
            counter = 0
        }
        buffer.appendVarint(UInt64(shared))
        buffer.appendVarint(UInt64(userKey.count - shared))
        buffer.appendVarint(UInt64(value.count))
        buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: userKey[shared...]))
        buffer.appendVarint(trailer)
        buffer.append(contentsOf: value)
        lastUserKey.removeSubrange(shared...)
        lastUserKey.append(contentsOf: UnsafeRawBufferPointer(rebasing: userKey[shared...]))
        counter += 1
        entryCount += 1
    }

    mutating func add(internalKey: [UInt8], value: [UInt8]) {
        internalKey.withUnsafeBytes { k in
            value.withUnsafeBytes { v in
                add(userKey: UnsafeRawBufferPointer(rebasing: k[0..<(k.count - 8)]),
                    trailer: loadFixed64(k.baseAddress! + k.count - 8), value: v)
            }
        }
    }

    /// Returns the finished block bytes and resets the builder.
    mutating func finish() -> [UInt8] {
        for r in restarts { buffer.appendFixed32(r) }
        buffer.appendFixed32(UInt32(restarts.count))
        let out = buffer
        buffer.removeAll(keepingCapacity: true)
        restarts = [0]
        counter = 0
        lastUserKey.removeAll(keepingCapacity: true)
        entryCount = 0
        return out
    }
}

/// The decoded (uncompressed) bytes of one block, shared by iterators and the block cache.
final class Block: @unchecked Sendable {
    let data: [UInt8]
    let restartsOffset: Int
    let restartCount: Int
    let name: String

    /// Parses the restart array; `name` (file and offset) is used in corruption errors.
    init(_ data: [UInt8], name: String) throws {
        self.data = data
        self.name = name
        guard data.count >= 4 else { throw LSMError(.corruption, "block \(name) is too short (\(data.count) bytes)") }
        let n = Int(decodeFixed32(data, at: data.count - 4))
        let maxRestarts = (data.count - 4) / 4
        guard n >= 1, n <= maxRestarts else {
            throw LSMError(.corruption, "block \(name) has a bad restart count \(n)")
        }
        restartCount = n
        restartsOffset = data.count - 4 - 4 * n
    }

    func makeIterator() -> BlockIterator { BlockIterator(self) }
}

final class BlockIterator: InternalIterator {
    private let block: Block
    private var userKey: [UInt8] = []
    private(set) var trailer: UInt64 = 0
    private var valueStart = 0
    private var valueCount = 0
    /// Offset of the current entry, and of the one after it.
    private var current: Int
    private var nextOffset: Int
    private var restartIndex = 0
    private var corrupt: LSMError?

    init(_ block: Block) {
        self.block = block
        current = block.restartsOffset
        nextOffset = block.restartsOffset
    }

    var isValid: Bool { current < block.restartsOffset }

    var key: [UInt8] {
        var k = userKey
        k.appendFixed64(trailer)
        return k
    }

    var value: [UInt8] {
        Array(block.data[valueStart..<(valueStart + valueCount)])
    }

    var valueSlice: ArraySlice<UInt8> { block.data[valueStart..<(valueStart + valueCount)] }

    /// Compares the current entry with an internal key target.
    @inline(__always)
    func compareCurrent(to target: UnsafeRawBufferPointer) -> Int {
        let c = userKey.withUnsafeBytes { compareBytes($0, UnsafeRawBufferPointer(rebasing: target[0..<(target.count - 8)])) }
        if c != 0 { return c }
        let t = loadFixed64(target.baseAddress! + target.count - 8)
        return trailer > t ? -1 : (trailer < t ? 1 : 0)
    }

    func currentUserKeyEquals(_ key: UnsafeRawBufferPointer) -> Bool {
        userKey.withUnsafeBytes { compareBytes($0, key) == 0 }
    }

    private func restartPoint(_ i: Int) -> Int {
        Int(decodeFixed32(block.data, at: block.restartsOffset + 4 * i))
    }

    private func fail(_ what: String) throws -> Never {
        current = block.restartsOffset
        nextOffset = block.restartsOffset
        throw LSMError(.corruption, "block \(block.name): \(what)")
    }

    /// Decodes the entry at `nextOffset` into the current position.
    private func parseNext() throws -> Bool {
        current = nextOffset
        if current >= block.restartsOffset {
            current = block.restartsOffset
            return false
        }
        try block.data.withUnsafeBytes { raw in
            var r = ByteReader(UnsafeRawBufferPointer(rebasing: raw[0..<block.restartsOffset]), offset: current)
            guard let shared = r.varint32(), let unshared = r.varint32(), let vlen = r.varint32(),
                  shared <= userKey.count, let delta = r.bytes(unshared), let trailer = r.varint(),
                  r.remaining >= vlen
            else { try fail("bad entry at offset \(current)") }
            userKey.removeSubrange(shared...)
            userKey.append(contentsOf: delta)
            self.trailer = trailer
            valueStart = r.offset
            valueCount = vlen
            nextOffset = r.offset + vlen
        }
        while restartIndex + 1 < block.restartCount && restartPoint(restartIndex + 1) <= current {
            restartIndex += 1
        }
        return true
    }

    private func seekToRestart(_ i: Int) {
        restartIndex = i
        userKey.removeAll(keepingCapacity: true)
        nextOffset = restartPoint(i)
    }

    func seekToFirst() throws {
        seekToRestart(0)
        _ = try parseNext()
    }

    func seekToLast() throws {
        seekToRestart(block.restartCount - 1)
        guard try parseNext() else { return }
        while nextOffset < block.restartsOffset {
            _ = try parseNext()
        }
    }

    func seek(_ target: [UInt8]) throws {
        try target.withUnsafeBytes { try seek($0) }
    }

    func seek(_ target: UnsafeRawBufferPointer) throws {
        // Binary search for the last restart point whose key is < target.
        var lo = 0
        var hi = block.restartCount - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            seekToRestart(mid)
            guard try parseNext() else { try fail("restart point \(mid) is empty") }
            if compareCurrent(to: target) < 0 { lo = mid } else { hi = mid - 1 }
        }
        seekToRestart(lo)
        while try parseNext() {
            if compareCurrent(to: target) >= 0 { return }
        }
    }

    func seekForPrev(_ target: [UInt8]) throws {
        try seek(target)
        if isValid {
            let c = target.withUnsafeBytes { compareCurrent(to: $0) }
            if c == 0 { return }
            try prev()
        } else {
            try seekToLast()
        }
    }

    func next() throws {
        _ = try parseNext()
    }

    func prev() throws {
        let original = current
        // Find the last restart point strictly before the current entry.
        while restartPoint(restartIndex) >= original {
            if restartIndex == 0 {
                current = block.restartsOffset
                nextOffset = block.restartsOffset
                return
            }
            restartIndex -= 1
        }
        seekToRestart(restartIndex)
        while try parseNext() && nextOffset < original {}
    }
}
