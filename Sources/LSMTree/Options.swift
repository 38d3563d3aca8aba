/// When a write returns, how durable it is.
public enum SyncMode: String, Sendable, CaseIterable {
    /// The write's WAL record is on disk (fdatasync) before `write` returns.
    /// Concurrent writers share one fdatasync (group commit).
    case always
    /// The write is in the operating system's page cache: it survives a crash
    /// of the process but not of the machine.
    case none
}

/// Lets a higher layer drop entries it knows are dead while the engine
/// compacts (the MVCC layer drops revisions older than its compaction point).
/// Called on background threads for the newest version of each key, when no
/// open snapshot can see that version; returning true removes the key.
/// Snapshots keep reading what they saw: the filter skips what they can see.
public protocol CompactionFilter: Sendable {
    func shouldDrop(key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) -> Bool
}

/// Tunables of an `LSMTree`. The defaults suit a server with memory to spare;
/// tests shrink them to exercise flushes and compactions with little data.
public struct LSMOptions: Sendable {
    /// Create the directory and an empty store when absent.
    public var createIfMissing = true
    /// Refuse to open a store that already exists.
    public var errorIfExists = false
    public var syncMode: SyncMode = .always
    /// Memtable size before it is frozen and flushed to level 0.
    public var writeBufferSize = 64 << 20
    /// Frozen memtables waiting for flush before writers stall.
    public var maxImmutableMemtables = 2
    /// Uncompressed size of a data block.
    public var blockSize = 16 << 10
    public var blockRestartInterval = 16
    public var bloomBitsPerKey = 10
    /// LZ4-compress blocks that shrink by at least 1/8.
    public var compression = true
    /// Bytes of decompressed blocks kept in memory.
    public var blockCacheCapacity = 32 << 20
    /// Open table files kept in memory.
    public var maxOpenTables = 500
    /// Level-0 table count that starts a compaction, slows writers (1 ms per
    /// write group) and stops them. RocksDB's values for 64 MiB memtables:
    /// LevelDB's 8/12 suit its 4 MiB memtables and stalled writers for up to
    /// a second here while one compaction of several level-0 tables ran.
    public var level0CompactionTrigger = 4
    public var level0SlowdownTrigger = 20
    public var level0StopTrigger = 36
    /// Target size of level 1; each deeper level is `levelMultiplier` times larger.
    public var levelBaseBytes = 256 << 20
    public var levelMultiplier = 10
    /// Size at which compaction output is split into a new table.
    public var targetFileSize = 32 << 20
    public var maxLevels = 7
    /// Largest number of bytes coalesced into one group commit.
    public var maxWriteGroupBytes = 1 << 20
    public var compactionFilter: (any CompactionFilter)?

    public init() {}

    func validate() throws {
        func check(_ ok: Bool, _ what: String) throws {
            if !ok { throw LSMError(.invalidArgument, "invalid LSMOptions: \(what)") }
        }
        try check(writeBufferSize >= 4096, "writeBufferSize \(writeBufferSize) must be at least 4096 bytes")
        try check(maxImmutableMemtables >= 1, "maxImmutableMemtables must be at least 1")
        try check(blockSize >= 256, "blockSize \(blockSize) must be at least 256 bytes")
        try check(blockRestartInterval >= 1, "blockRestartInterval must be at least 1")
        try check(bloomBitsPerKey >= 0 && bloomBitsPerKey <= 64, "bloomBitsPerKey must be within 0...64")
        try check(level0CompactionTrigger >= 1 && level0SlowdownTrigger >= level0CompactionTrigger
                  && level0StopTrigger >= level0SlowdownTrigger, "level-0 triggers must satisfy 1 <= compaction <= slowdown <= stop")
        try check(maxLevels >= 2 && maxLevels <= 12, "maxLevels must be within 2...12")
        try check(levelMultiplier >= 2, "levelMultiplier must be at least 2")
        try check(targetFileSize >= 4096, "targetFileSize must be at least 4096 bytes")
        try check(maxOpenTables >= 8, "maxOpenTables must be at least 8")
    }
}

/// Counters and gauges of one open store.
public struct LSMStatistics: Sendable, CustomStringConvertible {
    public struct Level: Sendable {
        public var level: Int
        public var files: Int
        public var bytes: UInt64
    }

    /// Key and value bytes handed to `write`.
    public var userBytesWritten: UInt64 = 0
    public var writes: UInt64 = 0
    public var writeGroups: UInt64 = 0
    public var walSyncs: UInt64 = 0
    /// Time spent in those syncs (the disk's part of a durable write), and the longest one.
    public var walSyncNanoseconds: UInt64 = 0
    public var walSyncMaxNanoseconds: UInt64 = 0
    public var walBytesWritten: UInt64 = 0
    public var flushBytesWritten: UInt64 = 0
    public var flushes: UInt64 = 0
    public var compactionBytesRead: UInt64 = 0
    public var compactionBytesWritten: UInt64 = 0
    public var compactions: UInt64 = 0
    /// Times writers waited for a flush or for level 0 to drain, and for how long.
    public var stallCount: UInt64 = 0
    public var stallMicros: UInt64 = 0
    /// Times writers were delayed 1 ms because level 0 was deep.
    public var slowdownCount: UInt64 = 0
    public var levels: [Level] = []
    public var memtableBytes: Int = 0
    public var immutableMemtables: Int = 0
    public var blockCacheBytes: Int = 0
    public var blockCacheHits: UInt64 = 0
    public var blockCacheMisses: UInt64 = 0
    /// Raw and stored bytes of the live tables' data blocks.
    public var rawDataBytes: UInt64 = 0
    public var storedDataBytes: UInt64 = 0
    /// Key and value bytes of the live tables' entries (all versions).
    public var liveEntryBytes: UInt64 = 0
    /// Bytes of live table files plus WAL and manifest.
    public var diskBytes: UInt64 = 0
    public var sequence: UInt64 = 0

    /// (WAL + flush + compaction bytes written) / user bytes written.
    public var writeAmplification: Double {
        userBytesWritten == 0 ? 0 : Double(walBytesWritten + flushBytesWritten + compactionBytesWritten) / Double(userBytesWritten)
    }

    /// Table bytes / bytes of the last non-empty level (RocksDB's estimate:
    /// the last level holds about the live data).
    public var spaceAmplification: Double {
        guard let last = levels.last(where: { $0.bytes > 0 }) else { return 0 }
        return Double(levels.reduce(0) { $0 + $1.bytes }) / Double(last.bytes)
    }

    /// Uncompressed / stored bytes of data blocks.
    public var compressionRatio: Double {
        storedDataBytes == 0 ? 1 : Double(rawDataBytes) / Double(storedDataBytes)
    }

    /// The WAL's syncs in the Prometheus text format: their count, the time spent in them and
    /// the longest (`store serve`'s and the API server's `/metrics`).
    public var walSyncMetrics: String {
        """
        # HELP ballast_lsm_wal_syncs_total WAL fdatasync calls (group commits that synced).
        # TYPE ballast_lsm_wal_syncs_total counter
        ballast_lsm_wal_syncs_total \(walSyncs)
        # HELP ballast_lsm_wal_sync_seconds_total Time spent in WAL fdatasync calls.
        # TYPE ballast_lsm_wal_sync_seconds_total counter
        ballast_lsm_wal_sync_seconds_total \(Double(walSyncNanoseconds) / 1e9)
        # HELP ballast_lsm_wal_sync_max_seconds The longest WAL fdatasync since the store opened.
        # TYPE ballast_lsm_wal_sync_max_seconds gauge
        ballast_lsm_wal_sync_max_seconds \(Double(walSyncMaxNanoseconds) / 1e9)

        """
    }

    public var description: String {
        var s = "writes \(writes) in \(writeGroups) groups (\(walSyncs) syncs), user \(userBytesWritten) B, WAL \(walBytesWritten) B, "
        s += "flushed \(flushBytesWritten) B in \(flushes), compacted \(compactionBytesRead) B -> \(compactionBytesWritten) B in \(compactions), "
        s += "write-amp \(String(format2: writeAmplification)), space-amp \(String(format2: spaceAmplification)), "
        s += "compression \(String(format2: compressionRatio)), stalls \(stallCount) (\(stallMicros) us), slowdowns \(slowdownCount); levels:"
        for l in levels where l.files > 0 { s += " L\(l.level)=\(l.files)/\(l.bytes)B" }
        return s
    }
}

extension String {
    init(format2 v: Double) {
        let r = (v * 100).rounded() / 100
        self = String(r)
    }
}
