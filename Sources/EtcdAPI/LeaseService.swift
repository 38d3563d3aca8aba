import Foundation
import GRPCCore
import MVCCStore

/// etcdserverpb.Lease over the MVCC store's lessor.
struct LeaseService: Etcdserverpb_Lease.SimpleServiceProtocol {
    let store: MVCCStore
    let headers: HeaderFactory

    func leaseGrant(request: Etcdserverpb_LeaseGrantRequest, context: ServerContext) async throws -> Etcdserverpb_LeaseGrantResponse {
        try await ErrorMapping.mapping {
            let (id, ttl) = try await store.leaseGrant(id: request.id, ttl: request.ttl)
            var r = Etcdserverpb_LeaseGrantResponse()
            r.header = headers.header(store.revision)
            r.id = id
            r.ttl = ttl
            return r
        }
    }

    func leaseRevoke(request: Etcdserverpb_LeaseRevokeRequest, context: ServerContext) async throws -> Etcdserverpb_LeaseRevokeResponse {
        try await ErrorMapping.mapping {
            var r = Etcdserverpb_LeaseRevokeResponse()
            r.header = headers.header(try await store.leaseRevoke(request.id))
            return r
        }
    }

    func leaseKeepAlive(
        request: RPCAsyncSequence<Etcdserverpb_LeaseKeepAliveRequest, any Error>,
        response: RPCWriter<Etcdserverpb_LeaseKeepAliveResponse>,
        context: ServerContext
    ) async throws {
        for try await keepAlive in request {
            var r = Etcdserverpb_LeaseKeepAliveResponse()
            r.header = headers.header(store.revision)
            r.id = keepAlive.id
            r.ttl = store.leaseKeepAlive(keepAlive.id)  // 0: no such lease (not an error, as etcd)
            try await response.write(r)
        }
    }

    func leaseTimeToLive(request: Etcdserverpb_LeaseTimeToLiveRequest, context: ServerContext) async throws -> Etcdserverpb_LeaseTimeToLiveResponse {
        var r = Etcdserverpb_LeaseTimeToLiveResponse()
        r.header = headers.header(store.revision)
        r.id = request.id
        if let t = store.leaseTimeToLive(request.id) {
            r.ttl = t.ttl
            r.grantedTtl = t.granted
            if request.keys { r.keys = t.keys.map { Data($0) } }
        } else {
            r.ttl = -1
        }
        return r
    }

    func leaseLeases(request: Etcdserverpb_LeaseLeasesRequest, context: ServerContext) async throws -> Etcdserverpb_LeaseLeasesResponse {
        var r = Etcdserverpb_LeaseLeasesResponse()
        r.header = headers.header(store.revision)
        r.leases = store.leases().map { id in
            var s = Etcdserverpb_LeaseStatus()
            s.id = id
            return s
        }
        return r
    }
}
