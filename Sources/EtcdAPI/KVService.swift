import GRPCWire
import MVCCStore

/// etcdserverpb.KV over the MVCC store. Writes take the store's callback
/// path: a put is decoded on the event loop, queued to the writer and
/// answered from the writer's group commit without a task of its own.
struct KVService {
    let store: MVCCStore
    let headers: HeaderFactory
    let limits: ServerLimits

    func register(in router: inout GRPCRouter) {
        let (store, headers, limits) = (self.store, self.headers, self.limits)
        router.read("/etcdserverpb.KV/Range") { (request: Etcdserverpb_RangeRequest, isCancelled, done) in
            if request.key.isEmpty { throw MVCCError.emptyKey }
            store.range(request.model, isCancelled: isCancelled) { done($0.map(headers.range)) }
        }
        router.write("/etcdserverpb.KV/Put") { (request: Etcdserverpb_PutRequest, done) in
            try limits.check(request.key.count + request.value.count)
            store.txn(TxnRequest(success: [.put(request.model)])) { result in
                done(result.map { r in
                    guard case .put(let p)? = r.responses.first else { preconditionFailure("put answered with \(r)") }
                    return headers.put(p)
                })
            }
        }
        router.write("/etcdserverpb.KV/DeleteRange") { (request: Etcdserverpb_DeleteRangeRequest, done) in
            store.txn(TxnRequest(success: [.deleteRange(request.model)])) { result in
                done(result.map { r in
                    guard case .deleteRange(let d)? = r.responses.first else { preconditionFailure("delete answered with \(r)") }
                    return headers.delete(d)
                })
            }
        }
        router.write("/etcdserverpb.KV/Txn") { (request: Etcdserverpb_TxnRequest, done) in
            try limits.check(KVService.payloadBytes(request))
            store.txn(request.model) { done($0.map(headers.txn)) }
        }
        router.unary("/etcdserverpb.KV/Compact") { (request: Etcdserverpb_CompactionRequest) in
            var r = Etcdserverpb_CompactionResponse()
            r.header = headers.header(try await store.compact(request.revision, physical: request.physical))
            return r
        }
    }
}

extension KVService {
    /// Key, value and range bytes a txn carries (what the request-size limit is
    /// about), summed without serialising the request again.
    static func payloadBytes(_ t: Etcdserverpb_TxnRequest) -> Int {
        var n = t.compare.reduce(0) { $0 + $1.key.count + $1.rangeEnd.count + $1.value.count }
        for op in t.success + t.failure {
            switch op.request {
            case .requestPut(let p): n += p.key.count + p.value.count
            case .requestRange(let r): n += r.key.count + r.rangeEnd.count
            case .requestDeleteRange(let d): n += d.key.count + d.rangeEnd.count
            case .requestTxn(let inner): n += payloadBytes(inner)
            case nil: break
            }
        }
        return n
    }
}

/// Request size limits (etcd's --max-request-bytes).
struct ServerLimits: Sendable {
    var maxRequestBytes = 1_572_864  // 1.5 MiB

    func check(_ bytes: Int) throws {
        if bytes > maxRequestBytes { throw MVCCError.requestTooLarge }
    }
}
