/// A storage engine under test. The harness drives every engine through these protocols, so
/// both see the same keys, values, batches, threads and clock.
///
/// Life of an engine in one run: `makeWriter` once per writer thread, the fill phase, each
/// writer's `close`, `settle` (untimed), `makeReader`, the read and scan phases,
/// `ownStatistics`, the reader's `close`, `close`.
protocol BenchEngine: AnyObject {
    /// "lsm" or "sqlite": the name in the tables and the JSON lines.
    var name: String { get }
    /// What `settle` does, for the report ("flush + compactions").
    var settleDescription: String { get }

    /// A writer for one thread. Called on the main thread before the writer threads start.
    func makeWriter() throws -> any BenchWriter
    /// Makes what the fill phase wrote durable and compact on disk: not timed as part of the fill.
    func settle() throws
    /// A reader for the read and scan phases, which run on one thread.
    func makeReader() throws -> any BenchReader
    /// Figures the engine measures itself; nil fields are measured by the harness instead.
    func ownStatistics() -> EngineStatistics
    func close() throws
}

/// Figures an engine reports about itself.
struct EngineStatistics: Sendable {
    var compressionRatio: Double?
    var writeAmplification: Double?
    var stallCount: UInt64?
    var stallMicros: UInt64?
}

/// Writes batches for one thread. A writer is used by one thread at a time; it is handed from
/// the main thread to its writer thread, hence Sendable.
protocol BenchWriter: AnyObject, Sendable {
    /// Writes every key and value of `batch` as one atomic batch; durable per the run's sync
    /// mode when it returns. One call is one timed operation of the fill phase.
    func write(_ batch: BenchBatch) throws
    func close() throws
}

/// Point reads and a full scan, on one thread at a time.
protocol BenchReader: AnyObject, Sendable {
    /// The length of the value stored under `key`, or nil if there is none.
    func get(_ key: UnsafeRawBufferPointer) throws -> Int?
    /// A cursor over every entry in key order.
    func makeScan() throws -> any BenchScan
    func close() throws
}

/// A forward scan; one `next` is one timed operation of the scan phase.
protocol BenchScan: AnyObject {
    /// The bytes of the next entry (key + value), or nil at the end.
    func next() throws -> Int?
}
