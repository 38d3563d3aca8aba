#if canImport(Glibc)
import Glibc
#endif

/// A durable, ordered key-value store: a log-structured merge tree with a
/// write-ahead log, LZ4-compressed tables and leveled compaction. Keys and
/// values are bytes; keys sort bytewise. See docs/lsm.md.
///
/// All methods are thread-safe. `write` blocks the calling thread until the
/// batch is durable per `LSMOptions.syncMode`; the `async` overload suspends
/// instead, for callers on Swift's cooperative pool.
public final class LSMTree: @unchecked Sendable {
    public let path: String
    let options: LSMOptions

    // Lock order: manifestLock, then lock. Neither is held across a user callback.
    /// The database lock: guards the memtables, WAL, writer queue, version
    /// set counters, background state and statistics.
    let lock = Lock()
    /// Serialises MANIFEST writes (flush and compaction installs).
    let manifestLock = Lock()
    /// Signalled when background work finishes a step (stalled writers, flush() and close() wait on it).
    let backgroundDone = Condition()
    let flushWanted = Condition()
    let compactionWanted = Condition()
    /// Wakes the commit thread, which leads write groups for `async` writers.
    let commitWanted = Condition()

    var mem: MemTable
    /// Frozen memtables, oldest first.
    var imm: [MemTable] = []
    var wal: LogWriter
    let versions: VersionSet
    let tableCache: TableCache
    let snapshots = SnapshotList()
    var writers: [PendingWrite] = []
    /// The WAL record buffer, lent to the group-commit leader.
    var groupBuffer: [UInt8] = []
    /// The current WAL's size as of the last group written to it (lock held): the leader writes
    /// the WAL without the lock, so the file's own counter is not read from other threads.
    var walBytes = 0
    var backgroundError: LSMError?
    var closed = false
    var shuttingDown = false
    var runningThreads = 0
    var compactionRunning = false
    var manualCompaction: ManualCompaction?
    var stats = LSMStatistics()
    private let directoryLock: DirectoryLock

    /// Opens (or creates) the store in `path`.
    ///
    /// Fails without modifying anything when the directory is not a Ballast
    /// store, was written by a newer format, is locked by another process, or
    /// holds damaged data (a corruption error names the file and offset).
    public static func open(path: String, options: LSMOptions = LSMOptions()) throws -> LSMTree {
        try options.validate()
        var isNew = false
        if !FileIO.exists(path) {
            guard options.createIfMissing else {
                throw LSMError(.invalidArgument, "no store at \(path): the directory does not exist (set createIfMissing to create one)")
            }
            try FileIO.makeDirectory(path)
        }
        var entries = try FileIO.listDirectory(path)
        var heldLock: DirectoryLock?
        if !entries.contains("CURRENT"), options.createIfMissing, isInterruptedCreation(entries) {
            // A creation interrupted before CURRENT was in place leaves a MANIFEST and maybe
            // CURRENT.tmp, and nothing else: no write was ever acknowledged there. Under the lock
            // (another process may be creating it right now), start it again.
            let lock = try DirectoryLock(path: path + "/LOCK")
            entries = try FileIO.listDirectory(path)
            if !entries.contains("CURRENT"), isInterruptedCreation(entries) {
                for name in entries where name != "LOCK" { FileIO.unlinkIfPresent(path + "/" + name) }
                entries = try FileIO.listDirectory(path)
            }
            heldLock = lock
        }
        if !entries.contains("CURRENT") {
            let foreign = entries.filter { $0 != "LOCK" }
            guard foreign.isEmpty else {
                heldLock?.release()
                let sample = foreign.sorted().prefix(3).joined(separator: ", ")
                throw LSMError(.notAStore, "\(path) is not a Ballast store: it holds \(foreign.count) file(s) (\(sample)) but no CURRENT file; point Ballast at an empty directory or an existing store")
            }
            guard options.createIfMissing else {
                throw LSMError(.invalidArgument, "no store at \(path) (set createIfMissing to create one)")
            }
            isNew = true
        } else if options.errorIfExists {
            heldLock?.release()
            throw LSMError(.invalidArgument, "a store already exists at \(path) and errorIfExists is set")
        }
        let dirLock = try heldLock ?? DirectoryLock(path: path + "/LOCK")
        do {
            return try LSMTree(path: path, options: options, isNew: isNew, directoryLock: dirLock)
        } catch {
            dirLock.release()
            throw error
        }
    }

    /// Only what creating a store writes before CURRENT exists: MANIFEST-NNNNNN, CURRENT.tmp (and LOCK).
    private static func isInterruptedCreation(_ entries: [String]) -> Bool {
        let rest = entries.filter { $0 != "LOCK" }
        return !rest.isEmpty && rest.allSatisfy { $0 == "CURRENT.tmp" || ($0.hasPrefix("MANIFEST-") && UInt64($0.dropFirst(9)) != nil) }
    }

    private init(path: String, options: LSMOptions, isNew: Bool, directoryLock: DirectoryLock) throws {
        self.path = path
        self.options = options
        self.directoryLock = directoryLock
        let blockCache = options.blockCacheCapacity > 0
            ? LRUCache<BlockCacheKey, Block>(capacity: options.blockCacheCapacity) : nil
        tableCache = TableCache(directory: path, capacity: options.maxOpenTables, blockCache: blockCache)
        let versions = VersionSet(directory: path, maxLevels: options.maxLevels)
        self.versions = versions
        let recovered: [(UInt64, LogReader.Result)]
        if isNew {
            try versions.create(dbLock: lock)
            recovered = []
        } else {
            // Reading only: a damaged or foreign store fails here, unmodified.
            try versions.recover()
            recovered = try LSMTree.readLogs(path: path, from: versions.logNumber)
        }
        // The manifest records the next file number only at its next edit: a WAL made since (a
        // memtable switch whose flush had not finished) can carry the number it would give out.
        // The new WAL must not be it — that file holds acknowledged writes until the replay
        // below has put them in a table — so every number found is marked used first.
        if let highest = recovered.map(\.0).max() { versions.markFileNumberUsed(highest) }
        let logNumber = versions.newFileNumber()
        wal = try LogWriter(directory: path, path: logFileName(path, logNumber), number: logNumber,
                            preallocationStep: LSMTree.walPreallocationStep(options), exclusive: true)
        mem = MemTable(logNumber: logNumber, capacityHint: options.writeBufferSize)
        versions.obsoleteHandler = { [path, tableCache] number in
            tableCache.evict(number)
            FileIO.unlinkIfPresent(tableFileName(path, number))
        }
        try replay(recovered, newLogNumber: logNumber)
        deleteObsoleteFiles()
        startBackgroundThreads()
    }

    /// Reads every WAL segment numbered `from` or later. Modifies nothing.
    private static func readLogs(path: String, from: UInt64) throws -> [(UInt64, LogReader.Result)] {
        let numbers = try FileIO.listDirectory(path).compactMap { name -> UInt64? in
            guard name.hasSuffix(".log") else { return nil }
            return UInt64(name.dropLast(4))
        }.filter { $0 >= from }.sorted()
        return try numbers.map { ($0, try LogReader.read(path: logFileName(path, $0), number: $0)) }
    }

    /// Applies recovered WAL records, writes them to level 0 and retires the old segments.
    private func replay(_ logs: [(UInt64, LogReader.Result)], newLogNumber: UInt64) throws {
        var edit = VersionEdit()
        var table = MemTable(logNumber: 0, capacityHint: options.writeBufferSize)
        var maxSeq = versions.lastSequence
        for (number, result) in logs {
            if result.tornTail {
                let p = logFileName(path, number)
                let fd = try FileIO.open(p, O_WRONLY)
                defer { FileIO.close(fd) }
                try FileIO.truncate(fd, to: result.validEnd, path: p)
                try FileIO.fsync(fd, path: p)
            }
            for record in result.records {
                try record.withUnsafeBytes { raw in
                    guard raw.count >= WriteBatch.headerSize else {
                        throw LSMError.corruption(logFileName(path, number), "a WAL record is shorter than a batch header")
                    }
                    var seq = loadFixed64(raw.baseAddress!)
                    try WriteBatch.forEach(raw) { kind, key, value in
                        table.add(seq, kind, key, value)
                        maxSeq = max(maxSeq, seq)
                        seq += 1
                    }
                }
                if table.memoryUsage >= options.writeBufferSize {
                    if let f = try writeLevel0Table(table, smallestSnapshot: maxSequenceNumber) { edit.newFiles.append((0, f)) }
                    table = MemTable(logNumber: 0, capacityHint: options.writeBufferSize)
                }
            }
        }
        if !table.isEmpty, let f = try writeLevel0Table(table, smallestSnapshot: maxSequenceNumber) {
            edit.newFiles.append((0, f))
        }
        versions.lastSequence = maxSeq
        edit.logNumber = newLogNumber
        edit.lastSequence = maxSeq
        try manifestLock.withLock { try versions.logAndApply(edit, dbLock: lock) }
    }

    /// Removes files no version refers to: flushed WAL segments, tables left
    /// by an interrupted flush or compaction, stale manifests and temporary files.
    func deleteObsoleteFiles() {
        let (live, logNumber, manifest): (Set<UInt64>, UInt64, UInt64) = lock.withLock {
            (Set(versions.current.levels.joined().map(\.number)), versions.logNumber, versions.manifestNumber)
        }
        guard let names = try? FileIO.listDirectory(path) else { return }
        for name in names {
            if name.hasSuffix(".sst"), let n = UInt64(name.dropLast(4)), !live.contains(n) {
                // Tables being written right now are numbered above every live file and newer than the check;
                // this runs only at open, before background work starts.
                FileIO.unlinkIfPresent(path + "/" + name)
            } else if name.hasSuffix(".log"), let n = UInt64(name.dropLast(4)), n < logNumber {
                FileIO.unlinkIfPresent(logFileName(path, n))
            } else if name.hasPrefix("MANIFEST-"), let n = UInt64(name.dropFirst(9)), n != manifest {
                FileIO.unlinkIfPresent(path + "/" + name)
            } else if name.hasSuffix(".tmp") {
                FileIO.unlinkIfPresent(path + "/" + name)
            }
        }
    }

    /// Disk reserved ahead of WAL appends.
    static func walPreallocationStep(_ options: LSMOptions) -> Int {
        min(4 << 20, max(64 << 10, options.writeBufferSize / 16))
    }

    /// Stops background work and releases the directory. Unflushed writes stay
    /// in the WAL and are replayed by the next open. Idempotent.
    public func close() throws {
        lock.lock()
        if closed {
            lock.unlock()
            return
        }
        closed = true
        while !writers.isEmpty { backgroundDone.wait(lock) }
        shuttingDown = true
        flushWanted.broadcast()
        compactionWanted.broadcast()
        commitWanted.broadcast()
        while runningThreads > 0 { backgroundDone.wait(lock) }
        let err = backgroundError
        lock.unlock()
        try? wal.file.trimPreallocation()
        // Close the files now rather than whenever the last reference goes (a background
        // thread may drop its reference only after close returns).
        wal.close()
        versions.close()
        tableCache.removeAll()
        directoryLock.release()
        if let err, err.code != .closed { throw err }
    }

    deinit {
        try? close()
    }

    /// A snapshot of the engine's counters.
    public var statistics: LSMStatistics {
        let (s, v, memBytes, immCount, walSize) = lock.withLock {
            (stats, versions.current, mem.memoryUsage, imm.count, walBytes)
        }
        var out = s
        out.sequence = lock.withLock { versions.lastSequence }
        out.memtableBytes = memBytes
        out.immutableMemtables = immCount
        out.levels = v.levels.enumerated().map { LSMStatistics.Level(level: $0.offset, files: $0.element.count, bytes: v.levelBytes($0.offset)) }
        for f in v.levels.joined() {
            out.rawDataBytes += f.properties.rawDataBytes
            out.storedDataBytes += f.properties.storedDataBytes
            out.liveEntryBytes += f.properties.rawKeyBytes + f.properties.rawValueBytes
        }
        out.diskBytes = v.totalBytes + UInt64(walSize)
        if let c = tableCache.blockCache {
            out.blockCacheBytes = c.usage
            (out.blockCacheHits, out.blockCacheMisses) = c.hitsAndMisses
        }
        return out
    }

    /// The failure that made the store read-only (a write, flush or
    /// compaction that hit a full disk or an I/O error); nil while it is
    /// writable. Reads keep working; writes fail until the store is reopened
    /// once the cause is fixed (recovery replays the WAL up to its last intact
    /// record). Also nil once closed.
    public var failure: LSMError? {
        lock.withLock { closed ? nil : backgroundError }
    }

    /// Whether `close()` was called.
    public var isClosed: Bool { lock.withLock { closed } }

    func checkWritable() throws {
        if closed { throw LSMError(.closed, "the store at \(path) is closed") }
        if let e = backgroundError {
            throw LSMError(.readOnly, "the store at \(path) is read-only after a background error; fix the cause and reopen it", cause: e)
        }
    }
}

/// The sequence numbers of open snapshots (a multiset), so that compaction
/// keeps every version a snapshot can still read.
final class SnapshotList: @unchecked Sendable {
    private let lock = Lock()
    private var counts: [UInt64: Int] = [:]

    func acquire(_ seq: UInt64) {
        lock.withLock { counts[seq, default: 0] += 1 }
    }

    func release(_ seq: UInt64) {
        lock.withLock {
            if let c = counts[seq] { counts[seq] = c > 1 ? c - 1 : nil }
        }
    }

    /// The oldest open snapshot, or `otherwise` when none is open.
    func oldest(otherwise: UInt64) -> UInt64 {
        lock.withLock { counts.keys.min() ?? otherwise }
    }

    /// The newest open snapshot, or 0 when none is open.
    func newest() -> UInt64 {
        lock.withLock { counts.keys.max() ?? 0 }
    }
}

/// A consistent read view: reads through it see the store as it was when the
/// snapshot was taken, whatever is written or compacted afterwards.
public final class Snapshot: @unchecked Sendable {
    public let sequence: UInt64
    private let list: SnapshotList

    init(sequence: UInt64, list: SnapshotList) {
        self.sequence = sequence
        self.list = list
        list.acquire(sequence)
    }

    deinit { list.release(sequence) }
}
