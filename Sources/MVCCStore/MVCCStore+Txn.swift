import Foundation
import LSMTree

// One transaction on the writer thread: its compares, reads, puts and deletes
// run against the latest state (the engine's current rows overlaid with what this
// group and this transaction already wrote); each change is staged in a
// `TxnContext` as its rows (current, history, revision log) and its watch event,
// which the group takes on (MVCCStore+Write.swift) only when the transaction has
// changes and nothing failed.

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

    func execute(_ req: TxnRequest, _ t: inout TxnContext, _ group: GroupContext) throws -> (succeeded: Bool, responses: [ResponseOp]) {
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

    func deleteKeys(_ range: KeyRange, prevKV: Bool, _ t: inout TxnContext, _ group: GroupContext) throws -> DeleteRangeResponse {
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
