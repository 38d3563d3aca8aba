import GRPCCore
import MVCCStore

/// etcdserverpb.KV over the MVCC store.
struct KVService: Etcdserverpb_KV.SimpleServiceProtocol {
    let store: MVCCStore
    let headers: HeaderFactory
    let limits: ServerLimits

    func range(request: Etcdserverpb_RangeRequest, context: ServerContext) async throws -> Etcdserverpb_RangeResponse {
        try await ErrorMapping.mapping {
            if request.key.isEmpty { throw MVCCError.emptyKey }
            return headers.range(try store.range(request.model))
        }
    }

    func put(request: Etcdserverpb_PutRequest, context: ServerContext) async throws -> Etcdserverpb_PutResponse {
        try await ErrorMapping.mapping {
            try limits.check(request.key.count + request.value.count)
            return headers.put(try await store.put(request.model))
        }
    }

    func deleteRange(request: Etcdserverpb_DeleteRangeRequest, context: ServerContext) async throws -> Etcdserverpb_DeleteRangeResponse {
        try await ErrorMapping.mapping {
            headers.delete(try await store.deleteRange(request.model))
        }
    }

    func txn(request: Etcdserverpb_TxnRequest, context: ServerContext) async throws -> Etcdserverpb_TxnResponse {
        try await ErrorMapping.mapping {
            try limits.check(KVService.payloadBytes(request))
            return headers.txn(try await store.txn(request.model))
        }
    }

    func compact(request: Etcdserverpb_CompactionRequest, context: ServerContext) async throws -> Etcdserverpb_CompactionResponse {
        try await ErrorMapping.mapping {
            let header = try await store.compact(request.revision, physical: request.physical)
            var r = Etcdserverpb_CompactionResponse()
            r.header = headers.header(header)
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
