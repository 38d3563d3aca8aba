#if canImport(Glibc)
import Glibc
#endif

/// An open SSTable: its file descriptor, index block, bloom filter and
/// properties, read once at open. Data blocks are read with pread and shared
/// through the block cache. Every block's checksum is verified before use.
final class TableReader: @unchecked Sendable {
    let fileNumber: UInt64
    let path: String
    let fileSize: Int
    private let fd: Int32
    private(set) var index: Block!
    private(set) var filter: BloomFilter?
    private(set) var properties = TableProperties()
    private let blockCache: LRUCache<BlockCacheKey, Block>?

    init(path: String, fileNumber: UInt64, blockCache: LRUCache<BlockCacheKey, Block>?) throws {
        self.path = path
        self.fileNumber = fileNumber
        self.blockCache = blockCache
        let fd = try FileIO.open(path, O_RDONLY)
        let size: Int
        do {
            size = try FileIO.size(fd, path: path)
        } catch {
            FileIO.close(fd)
            throw error
        }
        self.fd = fd
        fileSize = size
        // Every stored property is set: from here on a throw runs deinit, which closes fd. A
        // close here as well would close whatever another thread opened under that number in
        // between (a make test run once saw a MANIFEST write fail with EBADF for it).
        try readMeta()
    }

    deinit { FileIO.close(fd) }

    private func readMeta() throws {
        guard fileSize >= footerSize else {
            throw LSMError.corruption(path, "file is \(fileSize) bytes, shorter than a table footer")
        }
        let footer = try FileIO.read(fd, count: footerSize, at: fileSize - footerSize, path: path)
        guard footer.count == footerSize else { throw LSMError.corruption(path, "short read of the footer") }
        let magic = decodeFixed64(footer, at: 56)
        guard magic == sstableMagic else {
            throw LSMError.corruption(path, offset: fileSize - 8, "bad table magic \(String(magic, radix: 16)): not a Ballast table")
        }
        let crc = decodeFixed32(footer, at: 52)
        guard footer.withUnsafeBytes({ CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<52])) }) == crc else {
            throw LSMError.corruption(path, offset: fileSize - footerSize, "footer checksum mismatch")
        }
        let version = decodeFixed32(footer, at: 48)
        guard version <= sstableFormatVersion else {
            throw LSMError(.newerFormat, "\(path) is table format \(version); this build reads up to \(sstableFormatVersion): upgrade Ballast")
        }
        func handle(_ i: Int) throws -> BlockHandle {
            let h = BlockHandle(offset: decodeFixed64(footer, at: 16 * i), size: decodeFixed64(footer, at: 16 * i + 8))
            let limit = UInt64(fileSize - footerSize)
            // Checked so that a crafted footer cannot overflow: offset + size + trailer <= limit.
            guard h.offset <= limit, h.size <= limit - h.offset, UInt64(blockTrailerSize) <= limit - h.offset - h.size else {
                throw LSMError.corruption(path, offset: fileSize - footerSize, "footer points past the end of the file")
            }
            return h
        }
        let filterHandle = try handle(0)
        let propsHandle = try handle(1)
        let indexHandle = try handle(2)
        index = try Block(readBlockBytes(indexHandle), name: "\(path)@\(indexHandle.offset)")
        filter = BloomFilter(data: try readBlockBytes(filterHandle))
        guard let props = TableProperties.decode(try readBlockBytes(propsHandle)) else {
            throw LSMError.corruption(path, offset: Int(propsHandle.offset), "unreadable properties block")
        }
        properties = props
    }

    /// Reads, verifies and (when compressed) decompresses one block.
    func readBlockBytes(_ h: BlockHandle) throws -> [UInt8] {
        guard h.offset <= UInt64(fileSize), h.size <= UInt64(fileSize) - h.offset else {
            throw LSMError.corruption(path, offset: Int(clamping: h.offset), "block handle points past the end of the file")
        }
        let n = Int(h.size) + blockTrailerSize
        let raw = try FileIO.read(fd, count: n, at: Int(h.offset), path: path)
        guard raw.count == n else {
            throw LSMError.corruption(path, offset: Int(h.offset), "block extends past the end of the file")
        }
        return try raw.withUnsafeBytes { p -> [UInt8] in
            let stored = Int(h.size)
            let kind = p[stored]
            let expected = loadFixed32(p.baseAddress! + stored + 1)
            guard CRC32C.checksum(UnsafeRawBufferPointer(rebasing: p[0...stored])) == expected else {
                throw LSMError.corruption(path, offset: Int(h.offset), "block checksum mismatch")
            }
            switch BlockKind(rawValue: kind) {
            case .raw:
                return Array(p[0..<stored])
            case .lz4:
                guard stored >= 4 else { throw LSMError.corruption(path, offset: Int(h.offset), "LZ4 block too short") }
                let rawSize = Int(loadFixed32(p.baseAddress!))
                guard rawSize <= 1 << 30,
                      let out = LZ4.decompress(UnsafeRawBufferPointer(rebasing: p[4..<stored]), rawSize: rawSize)
                else { throw LSMError.corruption(path, offset: Int(h.offset), "LZ4 block does not decompress") }
                return out
            case nil:
                throw LSMError.corruption(path, offset: Int(h.offset), "unknown block kind \(kind)")
            }
        }
    }

    /// A data block, from the block cache when present.
    func dataBlock(_ h: BlockHandle) throws -> Block {
        let key = BlockCacheKey(file: fileNumber, offset: h.offset)
        if let b = blockCache?.get(key) { return b }
        let b = try Block(readBlockBytes(h), name: "\(path)@\(h.offset)")
        blockCache?.insert(key, b, charge: b.data.count + 64)
        return b
    }

    static func decodeHandle(_ v: ArraySlice<UInt8>, path: String) throws -> BlockHandle {
        try v.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            guard let off = r.varint(), let size = r.varint() else {
                throw LSMError.corruption(path, "bad block handle in the index")
            }
            return BlockHandle(offset: off, size: size)
        }
    }

    func mayContain(_ userKey: UnsafeRawBufferPointer) -> Bool {
        filter?.mayContain(userKey) ?? true
    }

    /// The newest version of `userKey` visible at `seq` in this table.
    func get(_ target: [UInt8], userKey: UnsafeRawBufferPointer) throws -> LookupResult {
        let idx = index.makeIterator()
        try idx.seek(target)
        guard idx.isValid else { return .notFound }
        let block = try dataBlock(try TableReader.decodeHandle(idx.valueSlice, path: path))
        let it = block.makeIterator()
        try it.seek(target)
        guard it.isValid, it.currentUserKeyEquals(userKey) else { return .notFound }
        if trailerKind(it.trailer) == EntryKind.value.rawValue { return .found(it.value) }
        return .deleted
    }

    func makeIterator() -> TableIterator { TableIterator(self) }
}

/// Two-level iteration: the index block picks data blocks, a block iterator walks each.
final class TableIterator: InternalIterator {
    private let table: TableReader
    private let indexIter: BlockIterator
    private var data: BlockIterator?

    init(_ table: TableReader) {
        self.table = table
        self.indexIter = table.index.makeIterator()
    }

    var isValid: Bool { data?.isValid ?? false }
    var key: [UInt8] { data!.key }
    var value: [UInt8] { data!.value }

    private func loadBlock() throws {
        guard indexIter.isValid else { data = nil; return }
        data = try table.dataBlock(TableReader.decodeHandle(indexIter.valueSlice, path: table.path)).makeIterator()
    }

    private func skipEmptyForward() throws {
        while let d = data, !d.isValid {
            try indexIter.next()
            try loadBlock()
            try data?.seekToFirst()
        }
    }

    private func skipEmptyBackward() throws {
        while let d = data, !d.isValid {
            try indexIter.prev()
            try loadBlock()
            try data?.seekToLast()
        }
    }

    func seekToFirst() throws {
        try indexIter.seekToFirst()
        try loadBlock()
        try data?.seekToFirst()
        try skipEmptyForward()
    }

    func seekToLast() throws {
        try indexIter.seekToLast()
        try loadBlock()
        try data?.seekToLast()
        try skipEmptyBackward()
    }

    func seek(_ target: [UInt8]) throws {
        try indexIter.seek(target)
        try loadBlock()
        try data?.seek(target)
        try skipEmptyForward()
    }

    func seekForPrev(_ target: [UInt8]) throws {
        try indexIter.seek(target)
        if !indexIter.isValid {
            try seekToLast()
            return
        }
        try loadBlock()
        try data?.seekForPrev(target)
        try skipEmptyBackward()
    }

    func next() throws {
        try data!.next()
        try skipEmptyForward()
    }

    func prev() throws {
        try data!.prev()
        try skipEmptyBackward()
    }
}

/// Open tables by file number, bounded in count.
final class TableCache: @unchecked Sendable {
    private let directory: String
    private let cache: LRUCache<UInt64, TableReader>
    let blockCache: LRUCache<BlockCacheKey, Block>?

    init(directory: String, capacity: Int, blockCache: LRUCache<BlockCacheKey, Block>?) {
        self.directory = directory
        self.cache = LRUCache(capacity: capacity, shardCount: 4)
        self.blockCache = blockCache
    }

    func table(_ number: UInt64) throws -> TableReader {
        if let t = cache.get(number) { return t }
        let t = try TableReader(path: tableFileName(directory, number), fileNumber: number, blockCache: blockCache)
        cache.insert(number, t, charge: 1)
        return t
    }

    func evict(_ number: UInt64) {
        cache.remove(number)
        blockCache?.removeAll { $0.file == number }
    }

    /// Drops every open table and cached block (the store is closing): a table's file closes
    /// once no reader holds it.
    func removeAll() {
        cache.removeAll { _ in true }
        blockCache?.removeAll { _ in true }
    }
}

func tableFileName(_ dir: String, _ number: UInt64) -> String {
    dir + "/" + pad6(number) + ".sst"
}

func logFileName(_ dir: String, _ number: UInt64) -> String {
    dir + "/" + pad6(number) + ".log"
}

func manifestFileName(_ dir: String, _ number: UInt64) -> String {
    dir + "/MANIFEST-" + pad6(number)
}

func pad6(_ n: UInt64) -> String {
    let s = String(n)
    return s.count >= 6 ? s : String(repeating: "0", count: 6 - s.count) + s
}
