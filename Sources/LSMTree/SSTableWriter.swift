#if canImport(Glibc)
import Glibc
#endif
import Primitives

// SSTable file format (version 1). See docs/sstable-format.md.
//
//   +-------------------+---------+-------------------+---------+-----+
//   | data block 0      | trailer | data block 1      | trailer | ... |
//   +-------------------+---------+-------------------+---------+-----+
//   | filter block      | trailer | properties block  | trailer |
//   +-------------------+---------+-------------------+---------+
//   | index block       | trailer | footer (64 bytes)           |
//   +-------------------+---------+-----------------------------+
//
//   block trailer (5 bytes): | kind u8: 0 raw, 1 LZ4 | CRC-32C of (stored bytes ‖ kind) u32 |
//   stored bytes of an LZ4 block: | uncompressed size u32 | LZ4 block data |
//   A block is stored raw when LZ4 saves less than 1/8 of its size.
//
//   data block:   sorted entries, format in Block.swift (prefix-compressed, restarts)
//   index block:  one entry per data block: key = the block's last internal
//                 key, value = varint offset ‖ varint stored size
//   filter block: a bloom filter over every user key (BloomFilter.swift)
//   properties:   (tag varint, value varint) pairs: entries, deletions, raw
//                 key and value bytes, data-block bytes before and after
//                 compression, smallest and largest sequence number
//
//   footer: | filter off u64 | filter size u64 | properties off u64 | properties size u64 |
//           | index off u64 | index size u64 | format version u32 | CRC-32C of the 52 bytes before u32 |
//           | magic u64 = 0x42414c4c41535401 ("BALLAST\x01") |

let sstableMagic: UInt64 = 0x4241_4C4C_4153_5401
let sstableFormatVersion: UInt32 = 1
let footerSize = 64
let blockTrailerSize = 5

enum BlockKind: UInt8 {
    case raw = 0
    case lz4 = 1
}

struct BlockHandle: Equatable {
    var offset: UInt64
    var size: UInt64
}

/// Counters a table records about itself, summed across tables for statistics.
struct TableProperties: Equatable {
    var entries: UInt64 = 0
    var deletions: UInt64 = 0
    var rawKeyBytes: UInt64 = 0
    var rawValueBytes: UInt64 = 0
    var rawDataBytes: UInt64 = 0
    var storedDataBytes: UInt64 = 0
    var smallestSequence: UInt64 = .max
    var largestSequence: UInt64 = 0

    func encode() -> [UInt8] {
        var out: [UInt8] = []
        for (tag, v) in [(1, entries), (2, deletions), (3, rawKeyBytes), (4, rawValueBytes),
                         (5, rawDataBytes), (6, storedDataBytes), (7, smallestSequence), (8, largestSequence)] {
            out.appendVarint(UInt64(tag))
            out.appendVarint(v)
        }
        return out
    }

    static func decode(_ bytes: [UInt8]) -> TableProperties? {
        var p = TableProperties()
        return bytes.withUnsafeBytes { raw -> TableProperties? in
            var r = ByteReader(raw)
            while !r.isAtEnd {
                guard let tag = r.varint(), let v = r.varint() else { return nil }
                switch tag {
                case 1: p.entries = v
                case 2: p.deletions = v
                case 3: p.rawKeyBytes = v
                case 4: p.rawValueBytes = v
                case 5: p.rawDataBytes = v
                case 6: p.storedDataBytes = v
                case 7: p.smallestSequence = v
                case 8: p.largestSequence = v
                default: break  // newer tags are ignored: properties are advisory
                }
            }
            return p
        }
    }
}

struct TableBuildOptions {
    var blockSize: Int
    var restartInterval: Int
    var bloomBitsPerKey: Int
    var compression: Bool
}

/// Builds one SSTable from internal keys added in sorted order.
final class TableBuilder {
    let path: String
    private let file: AppendFile
    private let options: TableBuildOptions
    private var dataBlock: BlockBuilder
    private var indexBlock = BlockBuilder(restartInterval: 1)
    private var bloom: BloomFilterBuilder
    private var lastKey: [UInt8] = []
    private var lastUserKeyForBloom: [UInt8] = []
    private(set) var smallestKey: [UInt8] = []
    private(set) var properties = TableProperties()
    private var finished = false

    init(path: String, options: TableBuildOptions) throws {
        self.path = path
        self.options = options
        self.file = try AppendFile(path: path, truncate: true, bufferLimit: 1 << 20)
        self.dataBlock = BlockBuilder(restartInterval: options.restartInterval)
        self.bloom = BloomFilterBuilder(bitsPerKey: options.bloomBitsPerKey)
    }

    var entryCount: UInt64 { properties.entries }
    var largestKey: [UInt8] { lastKey }

    /// Bytes written so far plus the block being built.
    var estimatedFileSize: Int { file.size + dataBlock.estimatedSize }

    func add(userKey: UnsafeRawBufferPointer, trailer: UInt64, value: UnsafeRawBufferPointer) throws {
        if properties.entries == 0 {
            smallestKey = makeInternalKey(userKey, trailerSequence(trailer), trailerKind(trailer))
        }
        dataBlock.add(userKey: userKey, trailer: trailer, value: value)
        let sameUserKey = lastUserKeyForBloom.withUnsafeBytes { compareBytes($0, userKey) == 0 } && properties.entries > 0
        if !sameUserKey {
            bloom.add(userKey)
            lastUserKeyForBloom.removeAll(keepingCapacity: true)
            lastUserKeyForBloom.append(contentsOf: userKey)
        }
        lastKey.removeAll(keepingCapacity: true)
        lastKey.append(contentsOf: userKey)
        lastKey.appendFixed64(trailer)
        properties.entries += 1
        if trailerKind(trailer) == EntryKind.deletion.rawValue { properties.deletions += 1 }
        properties.rawKeyBytes += UInt64(userKey.count)
        properties.rawValueBytes += UInt64(value.count)
        let seq = trailerSequence(trailer)
        properties.smallestSequence = min(properties.smallestSequence, seq)
        properties.largestSequence = max(properties.largestSequence, seq)
        if dataBlock.estimatedSize >= options.blockSize { try flushDataBlock() }
    }

    func add(internalKey: [UInt8], value: [UInt8]) throws {
        try internalKey.withUnsafeBytes { k in
            try value.withUnsafeBytes { v in
                try add(userKey: UnsafeRawBufferPointer(rebasing: k[0..<(k.count - 8)]),
                        trailer: loadFixed64(k.baseAddress! + k.count - 8), value: v)
            }
        }
    }

    private func flushDataBlock() throws {
        guard !dataBlock.isEmpty else { return }
        let raw = dataBlock.finish()
        let handle = try writeBlock(raw, compress: options.compression, isData: true)
        var v: [UInt8] = []
        v.appendVarint(handle.offset)
        v.appendVarint(handle.size)
        indexBlock.add(internalKey: lastKey, value: v)
    }

    private func writeBlock(_ raw: [UInt8], compress: Bool, isData: Bool = false) throws -> BlockHandle {
        var stored = raw
        var kind = BlockKind.raw
        if compress, raw.count >= 64, let c = LZ4.compress(raw), c.count + 4 <= raw.count - raw.count / 8 {
            stored = []
            stored.reserveCapacity(c.count + 4 + blockTrailerSize)
            stored.appendFixed32(UInt32(raw.count))
            stored.append(contentsOf: c)
            kind = .lz4
        }
        let handle = BlockHandle(offset: UInt64(file.size), size: UInt64(stored.count))
        if isData {
            properties.rawDataBytes += UInt64(raw.count)
            properties.storedDataBytes += UInt64(stored.count)
        }
        stored.append(kind.rawValue)
        let crc = CRC32C.checksum(stored)
        stored.appendFixed32(crc)
        try file.append(stored)
        return handle
    }

    /// Writes the filter, properties, index and footer, then fsyncs the file.
    /// Returns the file size.
    func finish() throws -> Int {
        precondition(!finished)
        finished = true
        try flushDataBlock()
        let filter = try writeBlock(bloom.finish(), compress: false)
        let props = try writeBlock(properties.encode(), compress: false)
        let index = try writeBlock(indexBlock.finish(), compress: true)
        var footer: [UInt8] = []
        for h in [filter, props, index] {
            footer.appendFixed64(h.offset)
            footer.appendFixed64(h.size)
        }
        footer.appendFixed32(sstableFormatVersion)
        footer.appendFixed32(CRC32C.checksum(footer))
        footer.appendFixed64(sstableMagic)
        try file.append(footer)
        try file.sync(dataOnly: false)
        return file.size
    }

    /// Deletes the partial file (after an error or an empty output).
    func abandon() {
        finished = true
        FileIO.unlinkIfPresent(path)
    }
}
