import GRPCWire
import MVCCStore

/// etcdserverpb.Cluster: a one-member cluster. Member changes answer UNIMPLEMENTED.
struct ClusterService {
    let store: MVCCStore
    let headers: HeaderFactory
    let name: String
    let clientURLs: [String]

    func register(in router: inout GRPCRouter) {
        router.unary("/etcdserverpb.Cluster/MemberList", memberList)
    }

    @Sendable func memberList(request: Etcdserverpb_MemberListRequest) async throws -> Etcdserverpb_MemberListResponse {
        var m = Etcdserverpb_Member()
        m.id = headers.memberID
        m.name = name
        m.clientUrls = clientURLs
        m.peerUrls = clientURLs
        var r = Etcdserverpb_MemberListResponse()
        r.header = headers.header(store.revision)
        r.members = [m]
        return r
    }
}
