import Foundation
import MVCCStore
import SwiftProtobuf

// Conversions between etcd's wire messages and the MVCC store's value types.

extension Mvccpb_KeyValue {
    init(_ kv: KeyValue) {
        self.init()
        key = Data(kv.key)
        createRevision = kv.createRevision
        modRevision = kv.modRevision
        version = kv.version
        value = Data(kv.value)
        lease = kv.lease
    }

    var model: KeyValue {
        KeyValue(key: [UInt8](key), createRevision: createRevision, modRevision: modRevision, version: version,
                 value: [UInt8](value), lease: lease)
    }
}

extension Mvccpb_Event {
    init(_ e: Event) {
        self.init()
        type = e.type == .put ? .put : .delete
        kv = Mvccpb_KeyValue(e.kv)
        if let p = e.prevKV { prevKv = Mvccpb_KeyValue(p) }
    }

    var model: Event {
        Event(type: type == .delete ? .delete : .put, kv: kv.model, prevKV: hasPrevKv ? prevKv.model : nil)
    }
}

extension Etcdserverpb_RangeRequest {
    var model: RangeRequest {
        var r = RangeRequest(key: [UInt8](key), rangeEnd: [UInt8](rangeEnd), limit: limit, revision: revision)
        switch sortOrder {
        case .ascend: r.sortOrder = .ascend
        case .descend: r.sortOrder = .descend
        default: r.sortOrder = .none
        }
        switch sortTarget {
        case .version: r.sortTarget = .version
        case .create: r.sortTarget = .create
        case .mod: r.sortTarget = .mod
        case .value: r.sortTarget = .value
        default: r.sortTarget = .key
        }
        r.keysOnly = keysOnly
        r.countOnly = countOnly
        r.minModRevision = minModRevision
        r.maxModRevision = maxModRevision
        r.minCreateRevision = minCreateRevision
        r.maxCreateRevision = maxCreateRevision
        return r
    }

    init(_ r: RangeRequest) {
        self.init()
        key = Data(r.key)
        rangeEnd = Data(r.rangeEnd)
        limit = r.limit
        revision = r.revision
        keysOnly = r.keysOnly
        countOnly = r.countOnly
    }
}

extension Etcdserverpb_PutRequest {
    var model: PutRequest {
        var p = PutRequest(key: [UInt8](key), value: [UInt8](value), lease: lease)
        p.prevKV = prevKv
        p.ignoreValue = ignoreValue
        p.ignoreLease = ignoreLease
        return p
    }

    init(_ p: PutRequest) {
        self.init()
        key = Data(p.key)
        value = Data(p.value)
        lease = p.lease
        prevKv = p.prevKV
    }
}

extension Etcdserverpb_DeleteRangeRequest {
    var model: DeleteRangeRequest {
        DeleteRangeRequest(key: [UInt8](key), rangeEnd: [UInt8](rangeEnd), prevKV: prevKv)
    }

    init(_ d: DeleteRangeRequest) {
        self.init()
        key = Data(d.key)
        rangeEnd = Data(d.rangeEnd)
        prevKv = d.prevKV
    }
}

extension Etcdserverpb_Compare {
    var model: Compare {
        let t: Compare.Target
        switch target {
        case .version: t = .version(version)
        case .create: t = .createRevision(createRevision)
        case .mod: t = .modRevision(modRevision)
        case .value: t = .value([UInt8](value))
        case .lease: t = .lease(lease)
        default: t = .version(version)
        }
        let r: Compare.Result
        switch result {
        case .greater: r = .greater
        case .less: r = .less
        case .notEqual: r = .notEqual
        default: r = .equal
        }
        return Compare(key: [UInt8](key), rangeEnd: [UInt8](rangeEnd), t, r)
    }

    init(_ c: Compare) {
        self.init()
        key = Data(c.key)
        rangeEnd = Data(c.rangeEnd)
        switch c.target {
        case .version(let v): target = .version; version = v
        case .createRevision(let v): target = .create; createRevision = v
        case .modRevision(let v): target = .mod; modRevision = v
        case .value(let v): target = .value; value = Data(v)
        case .lease(let v): target = .lease; lease = v
        }
        switch c.result {
        case .equal: result = .equal
        case .greater: result = .greater
        case .less: result = .less
        case .notEqual: result = .notEqual
        }
    }
}

extension Etcdserverpb_RequestOp {
    var model: RequestOp? {
        switch request {
        case .requestRange(let r): return .range(r.model)
        case .requestPut(let p): return .put(p.model)
        case .requestDeleteRange(let d): return .deleteRange(d.model)
        case .requestTxn(let t): return .txn(t.model)
        case nil: return nil
        }
    }

    init(_ op: RequestOp) {
        self.init()
        switch op {
        case .range(let r): request = .requestRange(Etcdserverpb_RangeRequest(r))
        case .put(let p): request = .requestPut(Etcdserverpb_PutRequest(p))
        case .deleteRange(let d): request = .requestDeleteRange(Etcdserverpb_DeleteRangeRequest(d))
        case .txn(let t): request = .requestTxn(Etcdserverpb_TxnRequest(t))
        }
    }
}

extension Etcdserverpb_TxnRequest {
    var model: TxnRequest {
        TxnRequest(compare: compare.map(\.model), success: success.compactMap(\.model), failure: failure.compactMap(\.model))
    }

    init(_ t: TxnRequest) {
        self.init()
        compare = t.compare.map(Etcdserverpb_Compare.init)
        success = t.success.map(Etcdserverpb_RequestOp.init)
        failure = t.failure.map(Etcdserverpb_RequestOp.init)
    }
}

/// Builds wire responses with the store's identity in every header.
struct HeaderFactory: Sendable {
    let clusterID: UInt64
    let memberID: UInt64

    func header(_ revision: Int64) -> Etcdserverpb_ResponseHeader {
        var h = Etcdserverpb_ResponseHeader()
        h.clusterID = clusterID
        h.memberID = memberID
        h.revision = revision
        h.raftTerm = 1
        return h
    }

    func range(_ r: RangeResponse) -> Etcdserverpb_RangeResponse {
        var out = Etcdserverpb_RangeResponse()
        out.header = header(r.revision)
        out.kvs = r.kvs.map(Mvccpb_KeyValue.init)
        out.more = r.more
        out.count = r.count
        return out
    }

    func put(_ p: PutResponse) -> Etcdserverpb_PutResponse {
        var out = Etcdserverpb_PutResponse()
        out.header = header(p.revision)
        if let prev = p.prevKV { out.prevKv = Mvccpb_KeyValue(prev) }
        return out
    }

    func delete(_ d: DeleteRangeResponse) -> Etcdserverpb_DeleteRangeResponse {
        var out = Etcdserverpb_DeleteRangeResponse()
        out.header = header(d.revision)
        out.deleted = d.deleted
        out.prevKvs = d.prevKVs.map(Mvccpb_KeyValue.init)
        return out
    }

    func txn(_ t: TxnResponse) -> Etcdserverpb_TxnResponse {
        var out = Etcdserverpb_TxnResponse()
        out.header = header(t.revision)
        out.succeeded = t.succeeded
        out.responses = t.responses.map { op in
            var r = Etcdserverpb_ResponseOp()
            switch op {
            case .range(let x): r.response = .responseRange(range(x))
            case .put(let x): r.response = .responsePut(put(x))
            case .deleteRange(let x): r.response = .responseDeleteRange(delete(x))
            case .txn(let x): r.response = .responseTxn(txn(x))
            }
            return r
        }
        return out
    }
}

extension Etcdserverpb_RangeResponse {
    var model: RangeResponse {
        RangeResponse(revision: header.revision, kvs: kvs.map(\.model), more: more, count: count)
    }
}

extension Etcdserverpb_TxnResponse {
    var model: TxnResponse {
        TxnResponse(revision: header.revision, succeeded: succeeded, responses: responses.compactMap { r in
            switch r.response {
            case .responseRange(let x): return .range(x.model)
            case .responsePut(let x): return .put(PutResponse(revision: x.header.revision, prevKV: x.hasPrevKv ? x.prevKv.model : nil))
            case .responseDeleteRange(let x):
                return .deleteRange(DeleteRangeResponse(revision: x.header.revision, deleted: x.deleted, prevKVs: x.prevKvs.map(\.model)))
            case .responseTxn(let x): return .txn(x.model)
            case nil: return nil
            }
        })
    }
}
