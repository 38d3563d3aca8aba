import Foundation
import LSMTree

// The write pipeline. Callers queue requests; one writer task drains the
// queue, applies each request in order against the latest state (the engine
// plus an overlay of what this group already wrote), commits the whole group
// as one engine batch (one fdatasync), then publishes and answers.

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

/// Changes of one transaction before it is known to succeed.
struct TxnContext {
    let revision: Int64
    var overlay: [ByteKey: Record] = [:]
    var writes: [([UInt8], [UInt8])] = []
    var events: [Event] = []
    var attach: [(lease: Int64, key: [UInt8])] = []
    var detach: [(lease: Int64, key: [UInt8])] = []
    var sub = 0
    var hasChanges: Bool { !events.isEmpty }
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
                // Blocking on purpose: the writer task owns this step, and an async hand-off to the
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
            if rev > group.revision { throw MVCCError.futureRevision }
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

    // MARK: Latest state (write path)

    /// The latest record of `key` (live or tombstone) as this transaction sees it.
    private func latest(_ key: [UInt8], _ t: TxnContext, _ group: GroupContext) throws -> Record? {
        if let r = t.overlay[ByteKey(key)] { return r }
        if let r = group.overlay[ByteKey(key)] { return r }
        guard let raw = try db.get(Layout.currentKey(key)) else { return nil }
        guard let (r, _) = Record.decode(raw, withSuccessor: false) else {
            throw MVCCError.storage(LSMError(.corruption, "undecodable record for key \(key)"))
        }
        return r
    }

    /// Live keys in `range` as this transaction sees them, in key order.
    private func latestRange(_ range: KeyRange, _ t: TxnContext, _ group: GroupContext) throws -> [KeyValue] {
        try latestRecords(range, t, group).map { $0.record.keyValue($0.key) }
    }

    /// The live records in `range` as this transaction sees them, in key order.
    private func latestRecords(_ range: KeyRange, _ t: TxnContext, _ group: GroupContext) throws -> [(key: [UInt8], record: Record)] {
        if range.isSingleKey {
            guard let r = try latest(range.start, t, group), !r.isTombstone else { return [] }
            return [(range.start, r)]
        }
        let it = try db.makeIterator(from: Layout.currentKey(range.start),
                                     to: range.end.map(Layout.currentKey) ?? [Layout.current + 1])
        let overlaid = group.overlay.keys.contains { range.contains($0.bytes) } || t.overlay.keys.contains { range.contains($0.bytes) }
        guard overlaid else {
            // Nothing this group wrote is in the range: the engine's order is the answer.
            var out: [(key: [UInt8], record: Record)] = []
            while let (k, v) = try it.next() {
                if let (r, _) = Record.decode(v, withSuccessor: false), !r.isTombstone { out.append((Array(k.dropFirst()), r)) }
            }
            return out
        }
        var merged: [ByteKey: Record] = [:]
        while let (k, v) = try it.next() {
            if let (r, _) = Record.decode(v, withSuccessor: false) { merged[ByteKey(Array(k.dropFirst()))] = r }
        }
        for (k, r) in group.overlay where range.contains(k.bytes) { merged[k] = r }
        for (k, r) in t.overlay where range.contains(k.bytes) { merged[k] = r }
        return merged.filter { !$0.value.isTombstone }
            .sorted { $0.key.bytes.lexicographicallyPrecedes($1.key.bytes) }
            .map { ($0.key.bytes, $0.value) }
    }

    // MARK: Transactions

    private func execute(_ req: TxnRequest, _ t: inout TxnContext, _ group: GroupContext) throws -> (succeeded: Bool, responses: [ResponseOp]) {
        let succeeded = try req.compare.allSatisfy { try evaluate($0, t, group) }
        var responses: [ResponseOp] = []
        for op in succeeded ? req.success : req.failure {
            switch op {
            case .range(let r):
                let header = t.revision - (t.hasChanges ? 0 : 1)
                if r.revision > 0 && r.revision < header {
                    let compacted = compactedRevision
                    if r.revision < compacted { throw MVCCError.compacted }
                    let (found, total) = try readRange(KeyRange(key: r.key, rangeEnd: r.rangeEnd), at: r.revision, snapshot: nil,
                                                       keep: Self.keysToKeep(r))
                    responses.append(.range(try shape(found, r, header: header, total: total)))
                } else {
                    if r.revision > header { throw MVCCError.futureRevision }
                    responses.append(.range(try shape(latestRange(KeyRange(key: r.key, rangeEnd: r.rangeEnd), t, group), r, header: header)))
                }
            case .put(let p):
                responses.append(.put(try put(p, &t, group)))
            case .deleteRange(let d):
                responses.append(.deleteRange(try deleteKeys(KeyRange(key: d.key, rangeEnd: d.rangeEnd), prevKV: d.prevKV, &t, group)))
            case .txn(let nested):
                let r = try execute(nested, &t, group)
                responses.append(.txn(TxnResponse(revision: 0, succeeded: r.succeeded, responses: r.responses)))
            }
        }
        // Headers of responses inside a txn carry the txn's revision.
        let header = t.hasChanges ? t.revision : t.revision - 1
        return (succeeded, responses.map { $0.withHeader(header) })
    }

    private func evaluate(_ c: Compare, _ t: TxnContext, _ group: GroupContext) throws -> Bool {
        let range = KeyRange(key: c.key, rangeEnd: c.rangeEnd)
        let kvs: [KeyValue?]
        if range.isSingleKey {
            let r = try latest(c.key, t, group)
            kvs = [r.flatMap { $0.isTombstone ? nil : $0.keyValue(c.key) }]
        } else {
            kvs = try latestRange(range, t, group)
        }
        for kv in kvs {
            let ordering: Int
            switch c.target {
            case .value(let v):
                // A value compare on a missing key is false (etcd applyCompare).
                guard let kv else { return false }
                ordering = kv.value.lexicographicallyPrecedes(v) ? -1 : (kv.value == v ? 0 : 1)
            case .version(let v): ordering = cmp(kv?.version ?? 0, v)
            case .createRevision(let v): ordering = cmp(kv?.createRevision ?? 0, v)
            case .modRevision(let v): ordering = cmp(kv?.modRevision ?? 0, v)
            case .lease(let v): ordering = cmp(kv?.lease ?? 0, v)
            }
            let ok: Bool
            switch c.result {
            case .equal: ok = ordering == 0
            case .notEqual: ok = ordering != 0
            case .less: ok = ordering < 0
            case .greater: ok = ordering > 0
            }
            if !ok { return false }
        }
        return true
    }

    private func cmp(_ a: Int64, _ b: Int64) -> Int { a < b ? -1 : (a == b ? 0 : 1) }

    private func put(_ p: PutRequest, _ t: inout TxnContext, _ group: GroupContext) throws -> PutResponse {
        let prev = try latest(p.key, t, group)
        let live = prev.flatMap { $0.isTombstone ? nil : $0 }
        if (p.ignoreValue || p.ignoreLease) && live == nil { throw MVCCError.keyNotFound }
        let value = p.ignoreValue ? live!.value : p.value
        let lease = p.ignoreLease ? live!.lease : p.lease
        if lease != 0 && !lessor.exists(lease) { throw MVCCError.leaseNotFound }
        let rev = t.revision
        let record = Record(createRevision: live?.createRevision ?? rev, modRevision: rev,
                            version: try Self.next(live?.version ?? 0), lease: lease, value: value, isTombstone: false)
        stage(p.key, record, prev: prev, type: .put, &t)
        if let old = live?.lease, old != 0, old != lease { t.detach.append((old, p.key)) }
        if lease != 0 { t.attach.append((lease, p.key)) }
        return PutResponse(revision: rev, prevKV: p.prevKV ? live?.keyValue(p.key) : nil)
    }

    private func deleteKeys(_ range: KeyRange, prevKV: Bool, _ t: inout TxnContext, _ group: GroupContext) throws -> DeleteRangeResponse {
        let victims = try latestRecords(range, t, group)
        for (key, record) in victims {
            stage(key, .tombstone(at: t.revision), prev: record, type: .delete, &t)
            if record.lease != 0 { t.detach.append((record.lease, key)) }
        }
        return DeleteRangeResponse(revision: t.revision, deleted: Int64(victims.count),
                                   prevKVs: prevKV ? victims.map { $0.record.keyValue($0.key) } : [])
    }

    /// Stages the rows and the event of one change.
    private func stage(_ key: [UInt8], _ record: Record, prev: Record?, type: EventType, _ t: inout TxnContext) {
        t.overlay[ByteKey(key)] = record
        t.writes.append((Layout.currentKey(key), record.encode()))
        if let prev, prev.modRevision != record.modRevision {
            t.writes.append((Layout.historyKey(key, prev.modRevision), prev.encode(successor: record.modRevision)))
        }
        let live = prev.flatMap { $0.isTombstone ? nil : $0 }
        t.writes.append((Layout.logKey(t.revision, t.sub), LogEntry(type: type, key: key, prevModRevision: live?.modRevision ?? 0).encode()))
        t.sub += 1
        let kv = type == .put ? record.keyValue(key)
            : KeyValue(key: key, createRevision: 0, modRevision: record.modRevision, version: 0, value: [], lease: 0)
        t.events.append(Event(type: type, kv: kv, prevKV: live?.keyValue(key)))
    }

    // MARK: Leases

    public func leaseGrant(id: Int64 = 0, ttl: Int64) async throws -> (id: Int64, ttl: Int64) {
        guard case .leaseGranted(let gid, let gttl, _) = try await queue.submit(.leaseGrant(id: id, ttl: ttl)) else {
            preconditionFailure()
        }
        return (gid, gttl)
    }

    /// Revokes a lease and deletes its keys in one revision.
    public func leaseRevoke(_ id: Int64) async throws -> Int64 {
        guard case .leaseRevoked(let header) = try await queue.submit(.leaseRevoke(id)) else { preconditionFailure() }
        return header
    }

    /// Refreshes a lease; returns its TTL, or 0 when it does not exist (etcd's keep-alive answer).
    public func leaseKeepAlive(_ id: Int64) -> Int64 { lessor.keepAlive(id) }

    /// Remaining and granted TTL and the attached keys; nil when the lease does not exist.
    public func leaseTimeToLive(_ id: Int64) -> (ttl: Int64, granted: Int64, keys: [[UInt8]])? { lessor.timeToLive(id) }

    public func leases() -> [Int64] { lessor.ids() }

    /// Revokes every expired lease now (the lease loop calls this periodically).
    public func expireLeases() async {
        for id in lessor.expired() {
            _ = try? await leaseRevoke(id)
        }
    }

    func leaseLoop() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: options.leaseCheckInterval)
            if Task.isCancelled { return }
            await expireLeases()
        }
    }
}

extension ResponseOp {
    func withHeader(_ rev: Int64) -> ResponseOp {
        switch self {
        case .range(var r): r.revision = rev; return .range(r)
        case .put(var p): p.revision = rev; return .put(p)
        case .deleteRange(var d): d.revision = rev; return .deleteRange(d)
        case .txn(var t): t.revision = rev; t.responses = t.responses.map { $0.withHeader(rev) }; return .txn(t)
        }
    }
}
