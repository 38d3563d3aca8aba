// Ballast's own engine (the LSMTree module) as a benchmark engine.
import LSMTree

/// The LSM-tree in the engine's directory, opened with the run's sync mode and otherwise the
/// engine's default options.
final class LSMBenchEngine: BenchEngine {
    let name = "lsm"
    let settleDescription = "flush + compactions"
    private let tree: LSMTree

    init(directory: String, sync: BenchSyncMode) throws {
        var options = LSMOptions()
        options.createIfMissing = true
        options.syncMode = sync == .always ? .always : .none
        tree = try LSMTree.open(path: directory, options: options)
    }

    /// Writers share the tree: `LSMTree.write` is thread-safe and commits concurrent batches
    /// as a group.
    func makeWriter() throws -> any BenchWriter {
        LSMBenchWriter(tree: tree)
    }

    /// Flushes the memtable to L0 and waits for background compaction to go idle, so the disk
    /// and compression figures describe SSTables rather than the WAL.
    func settle() throws {
        try tree.flush()
        try tree.waitForCompactions()
    }

    func makeReader() throws -> any BenchReader {
        LSMBenchReader(tree: tree)
    }

    func ownStatistics() -> EngineStatistics {
        let stats = tree.statistics
        return EngineStatistics(
            compressionRatio: Self.meaningful(stats.compressionRatio),
            writeAmplification: Self.meaningful(stats.writeAmplification),
            stallCount: stats.stallCount,
            stallMicros: stats.stallMicros
        )
    }

    func close() throws {
        try tree.close()
    }

    /// A ratio the engine could not compute (0, NaN, infinity) is reported as unknown.
    private static func meaningful(_ ratio: Double) -> Double? {
        ratio.isFinite && ratio > 0 ? ratio : nil
    }
}

final class LSMBenchWriter: BenchWriter, @unchecked Sendable {
    // @unchecked: `batch` is scratch space used by the one thread that owns this writer;
    // the tree itself is thread-safe.
    private let tree: LSMTree
    private var batch = WriteBatch()

    init(tree: LSMTree) { self.tree = tree }

    func write(_ input: BenchBatch) throws {
        batch.removeAll()
        for i in 0..<input.count {
            batch.put(input.key(i), input.value(i))
        }
        try tree.write(batch)
    }

    func close() throws {}
}

final class LSMBenchReader: BenchReader, @unchecked Sendable {
    // @unchecked: used by one thread at a time; the tree itself is thread-safe.
    private let tree: LSMTree

    init(tree: LSMTree) { self.tree = tree }

    func get(_ key: UnsafeRawBufferPointer) throws -> Int? {
        try tree.get([UInt8](key))?.count
    }

    func makeScan() throws -> any BenchScan {
        LSMBenchScan(try tree.makeIterator())
    }

    func close() throws {}
}

final class LSMBenchScan: BenchScan {
    private let iterator: LSMIterator

    init(_ iterator: LSMIterator) { self.iterator = iterator }

    func next() throws -> Int? {
        guard let entry = try iterator.next() else { return nil }
        return entry.key.count + entry.value.count
    }
}
