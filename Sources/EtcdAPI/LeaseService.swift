import Foundation
import GRPCWire
import MVCCStore

/// etcdserverpb.Lease over the MVCC store's lessor.
struct LeaseService {
    let store: MVCCStore
    let headers: HeaderFactory

    func register(in router: inout GRPCRouter) {
        router.unary("/etcdserverpb.Lease/LeaseGrant", leaseGrant)
        router.unary("/etcdserverpb.Lease/LeaseRevoke", leaseRevoke)
        router.streaming("/etcdserverpb.Lease/LeaseKeepAlive", leaseKeepAlive)
        router.unary("/etcdserverpb.Lease/LeaseTimeToLive", leaseTimeToLive)
        router.unary("/etcdserverpb.Lease/LeaseLeases", leaseLeases)
    }

    @Sendable func leaseGrant(request: Etcdserverpb_LeaseGrantRequest) async throws -> Etcdserverpb_LeaseGrantResponse {
        let (id, ttl) = try await store.leaseGrant(id: request.id, ttl: request.ttl)
        var r = Etcdserverpb_LeaseGrantResponse()
        r.header = headers.header(store.revision)
        r.id = id
        r.ttl = ttl
        return r
    }

    @Sendable func leaseRevoke(request: Etcdserverpb_LeaseRevokeRequest) async throws -> Etcdserverpb_LeaseRevokeResponse {
        var r = Etcdserverpb_LeaseRevokeResponse()
        r.header = headers.header(try await store.leaseRevoke(request.id))
        return r
    }

    @Sendable func leaseKeepAlive(
        requests: AsyncThrowingMapSequence<RequestStream, Etcdserverpb_LeaseKeepAliveRequest>,
        send: @Sendable (Etcdserverpb_LeaseKeepAliveResponse) async throws -> Void
    ) async throws {
        for try await keepAlive in requests {
            var r = Etcdserverpb_LeaseKeepAliveResponse()
            r.header = headers.header(store.revision)
            r.id = keepAlive.id
            r.ttl = store.leaseKeepAlive(keepAlive.id)  // 0: no such lease (not an error, as etcd)
            try await send(r)
        }
    }

    @Sendable func leaseTimeToLive(request: Etcdserverpb_LeaseTimeToLiveRequest) async throws -> Etcdserverpb_LeaseTimeToLiveResponse {
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

    @Sendable func leaseLeases(request: Etcdserverpb_LeaseLeasesRequest) async throws -> Etcdserverpb_LeaseLeasesResponse {
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
