import Foundation
import Synchronization
import LSMTree
import Atomics

/// Options of an MVCC store.
public struct MVCCOptions: Sendable {
    /// Engine options; `syncMode` .always makes every acknowledged write durable.
    public var engine = LSMOptions()
    /// Size of the store at which writes fail with "database space exceeded"
    /// and a NOSPACE alarm is raised (etcd's --quota-backend-bytes).
    public var quotaBytes: UInt64 = 2 << 30
    /// etcd's --max-txn-ops.
    public var maxTxnOps = 128
    /// Leases granted with a shorter TTL get this one (etcd: 1.5 × election timeout).
    public var minLeaseTTL: Int64 = 2
    /// How often expired leases are looked for.
    public var leaseCheckInterval: Duration = .milliseconds(500)
    /// Longest a group commit waits for more concurrent writes to share its
    /// fdatasync (only when the previous group had several; 0: never waits).
    public var groupCommitLinger: Duration = .microseconds(500)
    /// Events (and their bytes) buffered for a watcher before it falls back to reading history from the store.
    public var watcherBufferEvents = 1024
    public var watcherBufferBytes = 4 << 20
    /// Events (and bytes) buffered for all watchers together: past it, each
    /// watcher that gets more falls back to history too (memory stays bounded
    /// however many watchers are slow).
    public var watcherBufferEventsTotal = 256 << 10
    public var watcherBufferBytesTotal = 128 << 20
    /// Watchers open at once; more are refused with `tooManyWatchers`.
    public var maxWatchers = 100_000
    /// Whether writes are applied by the store's own writer thread. Off, nothing applies them
    /// until the caller runs `runQueuedWrites()` on its own thread: a synchronous, single-threaded
    /// driver (the fuzz targets) gets each answer without waiting for another thread.
    public var writerThread = true
    /// Threads that run reads for async callers and the wire server, hashes and snapshots.
    public var readerThreads = max(2, ProcessInfo.processInfo.activeProcessorCount)
    /// Seconds since an arbitrary start; leases expire by this clock (tests replace it).
    public var clock: @Sendable () -> Double = { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    public init() {
        engine.compression = true
    }
}

/// Alarms, as etcd's AlarmType.
public enum Alarm: Sendable, Equatable {
    case noSpace
    case corrupt
}

/// etcd's data model on the LSM engine: a store-wide revision, key history by
/// revision, range at a revision, transactions, compaction, watch and leases.
/// See docs/store.md for the key layout and the write pipeline.
///
/// Writes go through one writer thread that takes every queued request,
/// applies them in order (each write transaction gets the next revision),
/// commits them as ONE engine batch with one fdatasync, then publishes the
/// new revision to readers and watchers and answers the callers — group
/// commit at the MVCC level. Reads run concurrently at the published revision.
public final class MVCCStore: @unchecked Sendable {
    let db: LSMTree
    let options: MVCCOptions
    /// What readers see of the writer's progress; written by the writer thread only.
    struct Published {
        /// Revision readers and watchers see.
        var revision: Int64 = 1
        var compactRevision: Int64 = 0
        var alarms: [Alarm] = []
    }
    // Lock order: `published` is a leaf. Nothing is taken while it is held — not `hub.lock`, not
    // the lessor's lock, no engine lock (no engine call), not the write queue's condition — and no
    // callback runs under it. It may therefore be taken with any lock held; in Sources/ it is taken
    // with none: by the writer thread in `setPublished`, `setCompacted` and `setAlarms`, each
    // before or after, never inside, its uses of the hub and the lessor; by readers in `revision`,
    // `compactedRevision`, `activeAlarms`, `range` and `cursor(at:)`. The engine never waits on it:
    // the compaction filter, on the engine's threads, reads `compactRevisionForFilter` (an atomic)
    // instead.
    let published = Mutex(Published())
    /// Last revision applied by the writer (may not be published yet). Writer only.
    var currentRevision: Int64 = 1
    private let compactRevisionForFilter: ManagedAtomic<Int64>
    let queue = WriteQueue()
    let hub: WatchHub
    let lessor: Lessor
    /// Blocking reads off the cooperative pool (see `BlockingPool`).
    let readers: BlockingPool
    /// Full compactions (Defragment), one at a time, on one thread of their own.
    let maintenance: BlockingPool
    private let writerDone = DispatchGroup()
    private var leaseTask: Task<Void, Never>?
    /// Identity reported in response headers (stable per data directory).
    public let clusterID: UInt64
    public let memberID: UInt64

    /// Opens or creates a store in `path`.
    public static func open(path: String, options: MVCCOptions = MVCCOptions()) throws -> MVCCStore {
        try MVCCStore(path: path, options: options)
    }

    private init(path: String, options: MVCCOptions) throws {
        self.options = options
        let compactAtomic = ManagedAtomic<Int64>(0)
        self.compactRevisionForFilter = compactAtomic
        var engine = options.engine
        engine.compactionFilter = MVCCCompactionFilter(compactRevision: compactAtomic)
        let db = try LSMTree.open(path: path, options: engine)
        // Read (and, for a new store, written) before anything else starts: a failure here closes
        // the engine again — its threads would keep it, and its directory lock, for good.
        let recovery: Recovery
        do {
            recovery = try Self.recover(db)
        } catch {
            try? db.close()
            throw error
        }
        self.db = db
        hub = WatchHub(bufferLimit: options.watcherBufferEvents, bufferBytesLimit: options.watcherBufferBytes,
                       totalBufferLimit: options.watcherBufferEventsTotal, totalBufferBytesLimit: options.watcherBufferBytesTotal,
                       maxWatchers: options.maxWatchers)
        lessor = Lessor(clock: options.clock, minTTL: options.minLeaseTTL)
        readers = BlockingPool(name: "mvcc-reader", threads: max(1, options.readerThreads))
        maintenance = BlockingPool(name: "mvcc-maintenance", threads: 1)
        currentRevision = recovery.published.revision
        clusterID = recovery.clusterID
        memberID = recovery.memberID
        compactAtomic.store(recovery.published.compactRevision, ordering: .relaxed)
        published.withLock { $0 = recovery.published }
        hub.publishedRevision = currentRevision
        for (id, ttl) in recovery.leases { lessor.restore(id: id, ttl: ttl) }
        for (lease, key) in recovery.attachments { _ = lessor.attach(lease, key: key) }
        if options.writerThread {
            writerDone.enter()
            let writer = Thread { [self] in
                writerLoop()
                writerDone.leave()
            }
            writer.name = "mvcc-writer"
            writer.start()
        }
        leaseTask = Task.detached { [self] in await leaseLoop() }
    }

    /// What a store's engine holds about it: counters, identity, leases and the keys attached to them.
    private struct Recovery {
        var published = Published()
        var clusterID: UInt64 = 0
        var memberID: UInt64 = 0
        var leases: [(id: Int64, ttl: Int64)] = []
        var attachments: [(lease: Int64, key: [UInt8])] = []
    }

    /// Reads the counters, the identity (made and stored for a new store) and the leases.
    private static func recover(_ db: LSMTree) throws -> Recovery {
        var recovery = Recovery()
        if let r = try db.get(Layout.metaKey("rev")), r.count == 8 { recovery.published.revision = Int64(bitPattern: r.readBE64(at: 0)) }
        if let c = try db.get(Layout.metaKey("compact")), c.count == 8 { recovery.published.compactRevision = Int64(bitPattern: c.readBE64(at: 0)) }
        if let a = try db.get(Layout.metaKey("alarm")), a.first == 1 { recovery.published.alarms = [.noSpace] }
        if let id = try db.get(Layout.metaKey("id")), id.count == 16 {
            recovery.clusterID = id.readBE64(at: 0)
            recovery.memberID = id.readBE64(at: 8)
        } else {
            recovery.clusterID = UInt64.random(in: 1...UInt64.max >> 1)
            recovery.memberID = UInt64.random(in: 1...UInt64.max >> 1)
            var v: [UInt8] = []
            v.appendBE64(recovery.clusterID)
            v.appendBE64(recovery.memberID)
            try db.put(Layout.metaKey("id"), v, sync: true)
        }
        let leaseRows = try db.makeIterator(from: [Layout.lease], to: [Layout.lease + 1])
        while let (k, v) = try leaseRows.next() {
            guard k.count == 9 else { continue }
            recovery.leases.append((Int64(bitPattern: k.readBE64(at: 1)), Int64(bitPattern: v.count == 8 ? v.readBE64(at: 0) : 0)))
        }
        let currentRows = try db.makeIterator(from: [Layout.current], to: [Layout.current + 1])
        while let (k, v) = try currentRows.next() {
            if let (r, _) = Record.decode(v, withSuccessor: false), !r.isTombstone, r.lease != 0 {
                recovery.attachments.append((r.lease, Array(k.dropFirst())))
            }
        }
        return recovery
    }

    /// Stops the writer and the lease clock, fails queued requests and closes the engine.
    public func close() async throws {
        queue.close()
        await withCheckedContinuation { c in writerDone.notify(queue: .global()) { c.resume() } }
        // Without a writer thread, what the caller queued and did not run is refused.
        for item in queue.takeQueued() { item.done(.failure(MVCCError.closed)) }
        leaseTask?.cancel()
        await leaseTask?.value
        hub.closeAll()
        await readers.stop()
        await maintenance.stop()
        try db.close()
    }

    /// The current (published) revision.
    public var revision: Int64 { published.withLock { $0.revision } }

    /// The revision below which history was compacted away.
    public var compactedRevision: Int64 { published.withLock { $0.compactRevision } }

    public var activeAlarms: [Alarm] { published.withLock { $0.alarms } }

    /// Unhealthy when closed, when a storage failure (a full disk, an I/O
    /// error) made the engine read-only — it stays so until the store is
    /// reopened once the cause is fixed — or when an alarm is active (etcd's
    /// /health words it "ALARM NOSPACE"). Reads work in all but the first case.
    public var currentHealth: StoreHealth {
        if db.isClosed { return .unhealthy(reason: "the store is closed") }
        if let failure = db.failure {
            return .unhealthy(reason: "the store is read-only after a storage failure (\(failure)); free space or fix the disk, then restart the store to recover")
        }
        if let alarm = activeAlarms.first {
            return .unhealthy(reason: alarm == .noSpace ? "ALARM NOSPACE" : "ALARM CORRUPT")
        }
        return .healthy
    }

    /// `currentHealth`, for `KeyValueStore` users.
    public func health() async -> StoreHealth { currentHealth }

    /// The configured quota (etcd's --quota-backend-bytes).
    public var quotaBytes: UInt64 { options.quotaBytes }

    /// Bytes the store occupies on disk.
    public var sizeBytes: UInt64 { db.statistics.diskBytes }

    public var engineStatistics: LSMStatistics { db.statistics }

    // MARK: Reads

    /// A range read, at `request.revision` or the current revision.
    public func range(_ request: RangeRequest) throws -> RangeResponse {
        let (current, compacted) = published.withLock { ($0.revision, $0.compactRevision) }
        let rev = request.revision > 0 ? request.revision : current
        if rev > current { throw MVCCError.futureRevision }
        if rev < compacted { throw MVCCError.compacted }
        let snapshot = db.snapshot()
        let (found, total) = try readRange(KeyRange(key: request.key, rangeEnd: request.rangeEnd), at: rev, snapshot: snapshot,
                                           keep: Self.keysToKeep(request))
        // A compaction past `rev` that began after the check can drop history rows while the
        // engine's own compaction runs under the snapshot (its filter reads the compact revision
        // live): such a read may have missed keys, so it fails as etcd's would have.
        if rev < compactedRevision { throw MVCCError.compacted }
        return try shape(found, request, header: current, total: total)
    }

    /// How many of a range's live keys a request needs in full: the rest are
    /// only counted. All of them when the result is filtered or sorted by
    /// anything but ascending key; none for count-only.
    static func keysToKeep(_ r: RangeRequest) -> Int {
        if r.countOnly { return 0 }
        let keyOrder = r.sortTarget == .key && r.sortOrder != .descend
        let filtered = r.minModRevision > 0 || r.maxModRevision > 0 || r.minCreateRevision > 0 || r.maxCreateRevision > 0
        guard keyOrder && !filtered, let limit = r.positiveLimit else { return .max }
        // One more than the limit, to know whether the limit cut the result ("more").
        return limit == .max ? .max : limit + 1
    }

    /// The live versions in `range` at revision `rev`, in key order: the
    /// first `keep` of them in full, and how many there are in all.
    func readRange(_ range: KeyRange, at rev: Int64, snapshot: Snapshot?, keep: Int = .max) throws -> (kvs: [KeyValue], total: Int) {
        do {
            if range.isSingleKey {
                guard let raw = try db.get(Layout.currentKey(range.start), snapshot: snapshot),
                      let r = try resolve(range.start, current: raw, at: rev, snapshot: snapshot)
                else { return ([], 0) }
                return (keep > 0 ? [r.keyValue(range.start)] : [], 1)
            }
            var out: [KeyValue] = []
            var total = 0
            let it = try db.makeIterator(from: Layout.currentKey(range.start),
                                         to: range.end.map(Layout.currentKey) ?? [Layout.current + 1],
                                         snapshot: snapshot)
            while let (k, v) = try it.next() {
                if out.count < keep {
                    let key = Array(k.dropFirst())
                    guard let r = try resolve(key, current: v, at: rev, snapshot: snapshot) else { continue }
                    out.append(r.keyValue(key))
                    total += 1
                } else if try isLive(k, current: v, at: rev, snapshot: snapshot) {
                    total += 1
                }
            }
            return (out, total)
        } catch let e as MVCCError {
            throw e
        } catch {
            throw MVCCError.storage(error)
        }
    }

    /// Whether the key of current row `currentKey` is live at `rev`, without decoding values.
    private func isLive(_ currentKey: [UInt8], current raw: [UInt8], at rev: Int64, snapshot: Snapshot?) throws -> Bool {
        guard let c = raw.withUnsafeBytes({ Record.peek($0, withSuccessor: false) }) else {
            throw MVCCError.storage(LSMError(.corruption, "undecodable record for key \(currentKey.dropFirst())"))
        }
        if c.modRevision <= rev { return !c.isTombstone }
        guard let v = try historyRow(Array(currentKey.dropFirst()), at: rev, snapshot: snapshot),
              let h = v.withUnsafeBytes({ Record.peek($0, withSuccessor: true) })
        else { return false }
        return !h.isTombstone
    }

    /// The live version of `key` at `rev`, given its current row.
    func resolve(_ key: [UInt8], current raw: [UInt8], at rev: Int64, snapshot: Snapshot?) throws -> Record? {
        guard let (r, _) = Record.decode(raw, withSuccessor: false) else {
            throw MVCCError.storage(LSMError(.corruption, "undecodable record for key \(key)"))
        }
        if r.modRevision <= rev { return r.isTombstone ? nil : r }
        return try historical(key, at: rev, snapshot: snapshot)
    }

    /// The newest superseded version of `key` at or below `rev`, if live.
    func historical(_ key: [UInt8], at rev: Int64, snapshot: Snapshot?) throws -> Record? {
        guard let v = try historyRow(key, at: rev, snapshot: snapshot), let (r, _) = Record.decode(v, withSuccessor: true) else { return nil }
        return r.isTombstone ? nil : r
    }

    /// The raw `h` row of the newest superseded version of `key` at or below `rev`.
    private func historyRow(_ key: [UInt8], at rev: Int64, snapshot: Snapshot?) throws -> [UInt8]? {
        let it = try db.makeIterator(from: Layout.historyKey(key, rev), to: prefixRangeEnd(Layout.historyPrefix(key)),
                                     snapshot: snapshot)
        return try it.next()?.value
    }

    /// The version of `key` written exactly at `rev` (for watch history), if still stored.
    func version(_ key: [UInt8], at rev: Int64) throws -> Record? {
        if let raw = try db.get(Layout.currentKey(key)), let (r, _) = Record.decode(raw, withSuccessor: false),
           r.modRevision == rev {
            return r.isTombstone ? nil : r
        }
        guard let v = try db.get(Layout.historyKey(key, rev)), let (r, _) = Record.decode(v, withSuccessor: true),
              r.modRevision == rev
        else { return nil }
        return r.isTombstone ? nil : r
    }

    /// Applies etcd's filters, sort, limit, keys-only and count-only to a range result.
    /// `total` is the number of live keys when `all` holds only the first of them (see `keysToKeep`).
    func shape(_ all: [KeyValue], _ req: RangeRequest, header: Int64, total: Int? = nil) throws -> RangeResponse {
        var kvs = all
        let count = Int64(total ?? kvs.count)
        if req.minModRevision > 0 { kvs.removeAll { $0.modRevision < req.minModRevision } }
        if req.maxModRevision > 0 { kvs.removeAll { $0.modRevision > req.maxModRevision } }
        if req.minCreateRevision > 0 { kvs.removeAll { $0.createRevision < req.minCreateRevision } }
        if req.maxCreateRevision > 0 { kvs.removeAll { $0.createRevision > req.maxCreateRevision } }
        var order = req.sortOrder
        if order == .none && req.sortTarget != .key { order = .ascend }
        if order != .none {
            func less(_ a: KeyValue, _ b: KeyValue) -> Bool {
                switch req.sortTarget {
                case .key: return a.key.lexicographicallyPrecedes(b.key)
                case .version: return a.version < b.version
                case .create: return a.createRevision < b.createRevision
                case .mod: return a.modRevision < b.modRevision
                case .value: return a.value.lexicographicallyPrecedes(b.value)
                }
            }
            // Stable, so that ties keep key order as etcd's sort.SliceStable does.
            let indexed = kvs.enumerated().sorted { x, y in
                if less(x.element, y.element) { return order == .ascend }
                if less(y.element, x.element) { return order == .descend }
                return x.offset < y.offset
            }
            kvs = indexed.map(\.element)
        }
        var more = false
        if let limit = req.positiveLimit, kvs.count > limit {
            kvs.removeSubrange(limit...)
            more = true
        }
        if req.countOnly { kvs = [] }
        if req.keysOnly { for i in kvs.indices { kvs[i].value = [] } }
        return RangeResponse(revision: header, kvs: kvs, more: more, count: count)
    }

    // MARK: Writes

    public func put(_ request: PutRequest) async throws -> PutResponse {
        let r = try await txn(TxnRequest(success: [.put(request)]))
        guard case .put(let p)? = r.responses.first else { preconditionFailure("put answered with \(r)") }
        return p
    }

    public func deleteRange(_ request: DeleteRangeRequest) async throws -> DeleteRangeResponse {
        let r = try await txn(TxnRequest(success: [.deleteRange(request)]))
        guard case .deleteRange(let d)? = r.responses.first else { preconditionFailure("delete answered with \(r)") }
        return d
    }

    public func txn(_ request: TxnRequest) async throws -> TxnResponse {
        guard case .txn(let r) = try await queue.submit(.txn(request)) else { preconditionFailure() }
        return r
    }

    /// `txn` for callers that cannot wait in a task (a server's event loop):
    /// `done` runs on the store's writer once the transaction is durable, or
    /// has failed. It must not block: the whole group waits for it.
    public func txn(_ request: TxnRequest, done: @escaping @Sendable (Result<TxnResponse, any Error>) -> Void) {
        queue.submit(.txn(request)) { result in
            done(result.map { r in
                guard case .txn(let t) = r else { preconditionFailure("txn answered with \(r)") }
                return t
            })
        }
    }

    /// Makes history below `revision` unreadable; the engine drops it as it
    /// compacts. With `physical`, waits until it is gone from disk.
    public func compact(_ revision: Int64, physical: Bool = false) async throws -> Int64 {
        guard case .compacted(let header) = try await queue.submit(.compact(revision)) else { preconditionFailure() }
        if physical { try await compactStorage() }
        return header
    }

    /// Rewrites every table so that compacted history leaves the disk now
    /// (what etcd's Defragment achieves, without blocking reads or writes).
    /// Runs on the store's maintenance thread, one at a time: concurrent
    /// calls queue (none starts a thread of its own).
    public func compactStorage() async throws {
        let db = self.db
        try await maintenance.run {
            do {
                try db.compactRange()
            } catch {
                throw MVCCError.storage(error)
            }
        }
    }

    /// Deactivates an alarm (etcd's Alarm DEACTIVATE).
    public func disarm(_ alarm: Alarm) async throws {
        _ = try await queue.submit(.disarm(alarm))
    }

    func setPublished(_ rev: Int64) {
        published.withLock { $0.revision = rev }
    }

    func setCompacted(_ rev: Int64) {
        published.withLock { $0.compactRevision = rev }
        compactRevisionForFilter.store(rev, ordering: .relaxed)
    }

    func setAlarms(_ a: [Alarm]) {
        published.withLock { $0.alarms = a }
    }
}

/// Drops the rows that Compact(C) made dead (see the layout in KeyValue.swift).
struct MVCCCompactionFilter: CompactionFilter {
    let compactRevision: ManagedAtomic<Int64>

    func shouldDrop(key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) -> Bool {
        let c = compactRevision.load(ordering: .relaxed)
        guard c > 0, let kind = key.first else { return false }
        switch kind {
        case Layout.history:
            guard let (_, _, successor) = Record.peek(value, withSuccessor: true) else { return false }
            return successor <= c
        case Layout.current:
            guard let (mod, tomb, _) = Record.peek(value, withSuccessor: false) else { return false }
            return tomb && mod <= c
        case Layout.log:
            guard key.count >= 9 else { return false }
            var rev: UInt64 = 0
            for i in 1...8 { rev = rev << 8 | UInt64(key[i]) }
            // A revision above Int64.max is not one this store wrote: keep the row.
            return rev < UInt64(c)
        default:
            return false
        }
    }
}
