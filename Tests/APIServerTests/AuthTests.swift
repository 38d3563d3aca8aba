import ClusterAPI
import Testing
@testable import APIServer

private func attrs(_ method: String, _ path: String, query: [String: String] = [:]) -> RequestAttributes {
    let segments = path.split(separator: "/").map(String.init)
    return RequestAttributes.parse(method: method, segments: segments, path: path, query: query)
}

@Suite struct RequestAttributesTests {
    @Test func parsesResourcePaths() {
        var a = attrs("GET", "/api/v1/namespaces/default/pods/web/log")
        #expect(a.isResourceRequest && a.verb == "get" && a.namespace == "default" && a.resource == "pods" && a.name == "web" && a.subresource == "log")
        a = attrs("GET", "/api/v1/namespaces/kube-system")
        #expect(a.resource == "namespaces" && a.name == "kube-system" && a.namespace == nil && a.verb == "get")
        a = attrs("PUT", "/api/v1/namespaces/ns1/status")
        #expect(a.resource == "namespaces" && a.name == "ns1" && a.subresource == "status" && a.verb == "update")
        a = attrs("GET", "/apis/storage.k8s.io/v1/storageclasses", query: ["watch": "true"])
        #expect(a.group == "storage.k8s.io" && a.resource == "storageclasses" && a.verb == "watch")
        a = attrs("DELETE", "/api/v1/namespaces/default/pods")
        #expect(a.verb == "deletecollection")
        a = attrs("GET", "/api/v1")
        #expect(!a.isResourceRequest)
        #expect(parseFormQuery("labelSelector=app+in+%28a%2Cb%29&limit=500") == ["labelSelector": "app in (a,b)", "limit": "500"])
    }
}

@Suite struct AuthTests {
    let admin = UserInfo(name: "admin", groups: ["system:masters"])
    let nodeA = UserInfo(name: "system:node:node-a", groups: ["system:nodes"])
    let someone = UserInfo(name: "alice", groups: ["devs"])
    let authorizer = Authorizer()

    @Test func adminMayDoAnything() {
        #expect(authorizer.authorize(admin, attrs("DELETE", "/api/v1/nodes/node-b")) == .allow)
        #expect(authorizer.authorize(admin, attrs("GET", "/metrics")) == .allow)
    }

    @Test(arguments: [
        ("GET", "/api/v1/pods", true),
        ("GET", "/api/v1/namespaces/default/persistentvolumeclaims", false),
        ("GET", "/api/v1/persistentvolumes", false),
        ("GET", "/apis/storage.k8s.io/v1/volumeattachments", false),
        ("GET", "/api/v1/namespaces/default/events", false),
        ("GET", "/apis/storage.k8s.io/v1/storageclasses", false),
        ("PATCH", "/api/v1/nodes/node-a/status", true),
        ("PUT", "/api/v1/nodes/node-a", true),
        ("PATCH", "/api/v1/nodes/node-b/status", false),
        ("DELETE", "/api/v1/nodes/node-b", false),
        ("PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-a", true),
        ("PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-b", false),
        ("PUT", "/apis/coordination.k8s.io/v1/namespaces/default/leases/node-a", false),
        ("PATCH", "/api/v1/namespaces/default/pods/web/status", true),
        ("PATCH", "/api/v1/namespaces/default/pods/web", false),
        ("POST", "/api/v1/namespaces/default/pods", false),
        ("POST", "/api/v1/namespaces/default/events", true),
        ("DELETE", "/apis/storage.k8s.io/v1/storageclasses/fast", false),
        ("POST", "/api/v1/namespaces", false),
        ("GET", "/api/v1/namespaces/default/pods/web/log", false),
    ])
    func nodeRules(method: String, path: String, allowed: Bool) {
        let decision = authorizer.authorize(nodeA, attrs(method, path))
        #expect((decision == .allow) == allowed, "\(method) \(path): \(decision)")
    }

    @Test func nodeReadsOfVolumesDependOnTheirPods() {
        #expect(authorizer.authorize(nodeA, attrs("GET", "/api/v1/namespaces/default/persistentvolumeclaims/data"))
            == .allowIfRelated(node: "node-a", .claim(namespace: "default", name: "data")))
        #expect(authorizer.authorize(nodeA, attrs("GET", "/api/v1/persistentvolumes/pv-1")) == .allowIfRelated(node: "node-a", .volume(name: "pv-1")))
        #expect(authorizer.authorize(nodeA, attrs("GET", "/apis/storage.k8s.io/v1/volumeattachments/va-1"))
            == .allowIfRelated(node: "node-a", .attachment(name: "va-1")))
        #expect(authorizer.authorize(nodeA, attrs("PATCH", "/api/v1/namespaces/default/persistentvolumeclaims/data/status"))
            == .allowIfRelated(node: "node-a", .claim(namespace: "default", name: "data")))
        #expect(authorizer.authorize(nodeA, attrs("GET", "/api/v1/namespaces/default/persistentvolumeclaims"))
            == .deny("can only get individual resources of this type"))
    }

    @Test func otherUsersReadOnlyDiscovery() {
        #expect(authorizer.authorize(someone, attrs("GET", "/api/v1")) == .allow)
        #expect(authorizer.authorize(someone, attrs("GET", "/version")) == .allow)
        #expect(authorizer.authorize(someone, attrs("GET", "/api/v1/pods")) != .allow)
        #expect(authorizer.authorize(someone, attrs("GET", "/metrics")) != .allow)
    }

    @Test func nodeRestrictionChecksTheObjects() throws {
        let pods = ResourceRegistry.standard.lookup(group: "", version: "v1", resource: "pods")!
        let nodes = ResourceRegistry.standard.lookup(group: "", version: "v1", resource: "nodes")!
        let bound: JSONValue = ["metadata": ["name": "web"], "spec": ["nodeName": "node-a"], "status": ["phase": "Pending"]]
        var running = bound
        running["status"]?["phase"] = "Running"
        let a = attrs("PUT", "/api/v1/namespaces/default/pods/web/status")
        try NodeRestriction.admit(user: nodeA, attributes: a, resource: pods, old: bound, new: running)
        var elsewhere = bound
        elsewhere["spec"]?["nodeName"] = "node-b"
        #expect(throws: APIError.self) { try NodeRestriction.admit(user: nodeA, attributes: a, resource: pods, old: elsewhere, new: elsewhere) }
        let create = attrs("POST", "/api/v1/nodes")
        try NodeRestriction.admit(user: nodeA, attributes: create, resource: nodes, old: nil, new: ["metadata": ["name": "node-a"]])
        #expect { try NodeRestriction.admit(user: nodeA, attributes: create, resource: nodes, old: nil, new: ["metadata": ["name": "node-b"]]) }
            throws: { ($0 as? APIError)?.code == .forbidden && ($0 as? APIError)?.message.contains("cannot modify node 'node-b'") == true }
    }

    @Test func tokenFileParsing() throws {
        let auth = try TokenAuthenticator.parse("""
            # comment
            secret1,admin,uid1,"system:masters,devs"
            secret2,system:node:node-a,uid2,system:nodes

            secret3,bob,uid3
            """)
        #expect(auth.authenticate("secret1") == UserInfo(name: "admin", uid: "uid1", groups: ["system:masters", "devs"]))
        #expect(auth.authenticate("secret2")?.groups == ["system:nodes"])
        #expect(auth.authenticate("secret3")?.groups == [])
        #expect(auth.authenticate("nope") == nil)
        #expect(auth.adminToken == "secret1")
        #expect(throws: TokenAuthenticator.LoadError.self) { try TokenAuthenticator.parse("onlytoken,user") }
        #expect(throws: TokenAuthenticator.LoadError.self) { try TokenAuthenticator.parse("a,u,1\na,v,2") }
    }
}
