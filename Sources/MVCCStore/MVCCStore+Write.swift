import Foundation
import LSMTree

// The write pipeline. Callers queue requests; one writer thread of its own
// ("mvcc-writer", started by `MVCCStore.init`, not a task on Swift's pool)
// drains the queue, applies each request in order against the latest state (the
// engine plus an overlay of what this group already wrote), commits the whole
// group as one engine batch (one fdatasync), then publishes and answers.
//
// This file holds the queue, the writer's loop and how a group's requests are
// applied and committed; running one transaction against the latest state is in
// MVCCStore+Txn.swift, the lease calls in MVCCStore+Leases.swift.

enum WriteOp: Sendable {
    case txn(TxnRequest)
    case compact(Int64)
    case leaseGrant(id: Int64, ttl: Int64)
    case leaseRevoke(Int64)
    case disarm(Alarm)
}

enum WriteResult: Sendable {
    case txn(TxnResponse)
    case compacted(header: Int64)
    case leaseGranted(id: Int64, ttl: Int64, header: Int64)
    case leaseRevoked(header: Int64)
    case disarmed
}

/// The queue between callers and the writer thread.
///
/// Group commit with a short linger, kept only while requests keep coming:
/// when the previous group showed concurrent writers, the writer waits
/// until about as many requests as that group had are queued, so that one
/// fdatasync covers them all, at most `linger` (500 µs) in all, and stops
/// waiting as soon as a slice of `linger / slices` (25 µs) brings fewer than
/// `minArrivals` new requests. Closed-loop clients answer a group in a
/// burst that fills the next one; rate-limited clients (etcdctl check perf)
/// arrive one by one, and waiting for them would only add latency. A lone
/// writer (groups of one) never waits.
final class WriteQueue: @unchecked Sendable {
    typealias Completion = @Sendable (Result<WriteResult, any Error>) -> Void
    typealias Item = (op: WriteOp, done: Completion)
    private let condition = NSCondition()
    private var pending: [Item] = []
    private var closed = false
    /// The writer is blocked and wants a signal once `pending` reaches this.
    private var wakeAt = Int.max
    /// Requests the next group expects (decays by one per group).
    private var expected = 1
    /// The linger is watched in this many slices; one that brings fewer
    /// than `minArrivals` new requests ends it.
    static let slices = 20.0
    static let minArrivals = 2

    func submit(_ op: WriteOp) async throws -> WriteResult {
        try await withCheckedThrowingContinuation { c in
            submit(op) { c.resume(with: $0) }
        }
    }

    /// Queues `op`; `done` runs on the writer once its group is durable (or failed).
    func submit(_ op: WriteOp, done: @escaping Completion) {
        condition.lock()
        if closed {
            condition.unlock()
            done(.failure(MVCCError.closed))
            return
        }
        pending.append((op, done))
        if pending.count >= wakeAt {
            wakeAt = Int.max
            condition.signal()
        }
        condition.unlock()
    }

    /// The next group: blocks until a request is queued, lingers as described
    /// above, then takes everything queued. Empty once closed and drained.
    func next(linger: Double) -> [Item] {
        condition.lock()
        defer { condition.unlock() }
        while pending.isEmpty && !closed {
            wakeAt = 1
            condition.wait()
        }
        if linger > 0 && expected > 1 && pending.count < expected && !closed {
            let deadline = Date(timeIntervalSinceNow: linger)
            var seen = pending.count
            while pending.count < expected && !closed {
                wakeAt = expected
                let slice = Date(timeIntervalSinceNow: linger / Self.slices)
                if !condition.wait(until: min(slice, deadline)) {
                    if pending.count - seen < Self.minArrivals || Date() >= deadline { break }
                    seen = pending.count
                }
            }
            wakeAt = Int.max
        }
        let items = pending
        pending.removeAll(keepingCapacity: true)
        expected = max(items.count, expected - 1)
        return items
    }

    /// Everything queued, at once (never waits).
    func takeQueued() -> [Item] {
        condition.lock()
        defer { condition.unlock() }
        let items = pending
        pending.removeAll(keepingCapacity: true)
        return items
    }

    func close() {
        condition.lock()
        closed = true
        condition.signal()
        condition.unlock()
    }
}

/// A key as a dictionary key, hashed as one block of bytes (an array's own
/// `Hashable` feeds the hasher one element at a time: 3% of a put's CPU).
struct ByteKey: Hashable {
    let bytes: [UInt8]
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    func hash(into hasher: inout Hasher) { bytes.withUnsafeBytes { hasher.combine(bytes: $0) } }
}

/// What one group has written so far.
struct GroupContext {
    var revision: Int64
    /// The store's size when the group started (read once per group: it takes the engine's locks).
    var diskBytes: UInt64
    /// Latest records this group wrote (tombstones included), by key.
    var overlay: [ByteKey: Record] = [:]
    var batch = WriteBatch()
    /// Events by revision, in order.
    var events: [(Int64, [Event])] = []
    var leaseRows: [(Int64, Int64?)] = []
    /// What the group changed in the lessor, undone if its commit fails.
    var lessorChanges: [Lessor.Change] = []
}

extension MVCCStore {
    /// The writer thread's body: one group at a time until the queue closes.
    func writerLoop() {
        let (seconds, attoseconds) = options.groupCommitLinger.components
        let linger = Double(seconds) + Double(attoseconds) / 1e18
        while true {
            let items = queue.next(linger: linger)
            if items.isEmpty { return }
            process(items)
        }
    }

    /// With `MVCCOptions.writerThread` off: applies, commits and answers what is queued, as one
    /// group, on the calling thread (each `done` has run when this returns).
    public func runQueuedWrites() {
        precondition(!options.writerThread, "runQueuedWrites() is for a store opened without its writer thread")
        let items = queue.takeQueued()
        if !items.isEmpty { process(items) }
    }

    private func process(_ items: [WriteQueue.Item]) {
        var group = GroupContext(revision: currentRevision, diskBytes: db.statistics.diskBytes)
        var results: [Result<WriteResult, any Error>] = []
        var alarmsNow = activeAlarms
        for item in items {
            do {
                results.append(.success(try apply(item.op, &group, alarms: &alarmsNow)))
            } catch {
                results.append(.failure(error))
            }
        }
        let changed = group.revision != currentRevision || !group.leaseRows.isEmpty || alarmsNow != activeAlarms
        if changed {
            var revBytes: [UInt8] = []
            revBytes.appendBE64(UInt64(group.revision))
            group.batch.put(Layout.metaKey("rev"), revBytes)
            group.batch.put(Layout.metaKey("alarm"), [alarmsNow.contains(.noSpace) ? 1 : 0])
            for (id, ttl) in group.leaseRows {
                if let ttl {
                    var v: [UInt8] = []
                    v.appendBE64(UInt64(bitPattern: ttl))
                    group.batch.put(Layout.leaseKey(id), v)
                } else {
                    group.batch.delete(Layout.leaseKey(id))
                }
            }
            do {
                // Blocking on purpose: the writer thread owns this step, and an async hand-off to the
                // engine's commit thread costs two thread switches per group (measured).
                try commitBlocking(group.batch)
            } catch {
                // Nothing of this group is acknowledged, and nothing of it may stay in memory:
                // the lessor goes back to what the disk holds. The engine is now read-only
                // (`health()` says why) until the store is reopened.
                lessor.undo(group.lessorChanges)
                let e = MVCCError.storage(error)
                for item in items { item.done(.failure(e)) }
                return
            }
            currentRevision = group.revision
            setAlarms(alarmsNow)
            setPublished(group.revision)
            hub.publish(group.events, through: group.revision)
        }
        for (item, result) in zip(items, results) { item.done(result) }
    }

    /// The engine's blocking write (a synchronous context picks it over the async overload).
    private func commitBlocking(_ batch: WriteBatch) throws {
        try db.write(batch)
    }

    private func apply(_ op: WriteOp, _ group: inout GroupContext, alarms: inout [Alarm]) throws -> WriteResult {
        switch op {
        case .txn(let req):
            if alarms.contains(.noSpace) && MVCCStore.containsPut(req) { throw MVCCError.noSpace }
            try validate(req, depth: 0)
            var t = TxnContext(revision: try Self.next(group.revision))
            let resp = try execute(req, &t, group)
            if t.hasChanges {
                if MVCCStore.containsPut(req) && group.diskBytes > options.quotaBytes {
                    alarms = [.noSpace]
                    throw MVCCError.noSpace
                }
                commit(t, into: &group)
                return .txn(TxnResponse(revision: group.revision, succeeded: resp.succeeded, responses: resp.responses))
            }
            return .txn(TxnResponse(revision: group.revision, succeeded: resp.succeeded, responses: resp.responses))
        case .compact(let rev):
            // Against the committed revision, not the group's: the compaction is made durable at
            // once, before the group's writes are, and must never name a revision a crash (or a
            // failed commit) could take back.
            if rev > currentRevision { throw MVCCError.futureRevision }
            if rev <= compactedRevision { throw MVCCError.compacted }
            var v: [UInt8] = []
            v.appendBE64(UInt64(rev))
            // Durable before it takes effect: the filter must never drop history a restart would still serve.
            try db.put(Layout.metaKey("compact"), v, sync: true)
            setCompacted(rev)
            hub.compacted(rev)
            return .compacted(header: group.revision)
        case .leaseGrant(let id, let ttl):
            let (gid, gttl) = try lessor.grant(id: id, ttl: ttl)
            group.lessorChanges.append(.granted(gid))
            group.leaseRows.append((gid, gttl))
            return .leaseGranted(id: gid, ttl: gttl, header: group.revision)
        case .leaseRevoke(let id):
            guard let keys = lessor.keys(of: id) else { throw MVCCError.leaseNotFound }
            var t = TxnContext(revision: try Self.next(group.revision))
            for key in keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
                _ = try deleteKeys(KeyRange(key: key, rangeEnd: []), prevKV: false, &t, group)
            }
            if let change = lessor.revoke(id) { group.lessorChanges.append(change) }
            group.leaseRows.append((id, nil))
            if t.hasChanges { commit(t, into: &group) }
            return .leaseRevoked(header: group.revision)
        case .disarm(let a):
            alarms.removeAll { $0 == a }
            return .disarmed
        }
    }

    /// `n + 1` for revisions and versions, which are read back from disk: a
    /// damaged counter at Int64.max fails the write instead of trapping.
    static func next(_ n: Int64) throws -> Int64 {
        guard n < .max else {
            throw MVCCError(.storage, "etcdserver: storage error: a revision or version counter is at Int64.max (damaged store?); no further writes are possible")
        }
        return n + 1
    }

    private static func containsPut(_ req: TxnRequest) -> Bool {
        (req.success + req.failure).contains { op in
            switch op {
            case .put: return true
            case .txn(let t): return containsPut(t)
            default: return false
            }
        }
    }

    /// etcd's checks before a txn runs: keys present, op count, no key written twice in a branch.
    private func validate(_ req: TxnRequest, depth: Int) throws {
        if req.compare.count > options.maxTxnOps || req.success.count > options.maxTxnOps || req.failure.count > options.maxTxnOps {
            throw MVCCError.tooManyOps
        }
        for c in req.compare where c.key.isEmpty { throw MVCCError.emptyKey }
        for branch in [req.success, req.failure] {
            var puts: [[UInt8]] = []
            var deletes: [KeyRange] = []
            for op in branch {
                switch op {
                case .range(let r): if r.key.isEmpty { throw MVCCError.emptyKey }
                case .put(let p):
                    if p.key.isEmpty { throw MVCCError.emptyKey }
                    if puts.contains(p.key) { throw MVCCError.duplicateKey }
                    puts.append(p.key)
                case .deleteRange(let d):
                    if d.key.isEmpty { throw MVCCError.emptyKey }
                    deletes.append(KeyRange(key: d.key, rangeEnd: d.rangeEnd))
                case .txn(let t): try validate(t, depth: depth + 1)
                }
            }
            for p in puts where deletes.contains(where: { $0.contains(p) }) { throw MVCCError.duplicateKey }
        }
    }

    private func commit(_ t: TxnContext, into group: inout GroupContext) {
        group.revision = t.revision
        for (k, v) in t.writes { group.batch.put(k, v) }
        for (k, r) in t.overlay { group.overlay[k] = r }
        group.events.append((t.revision, t.events))
        for (lease, key) in t.detach { if let c = lessor.detach(lease, key: key) { group.lessorChanges.append(c) } }
        for (lease, key) in t.attach { if let c = lessor.attach(lease, key: key) { group.lessorChanges.append(c) } }
    }
}
