import ClusterAPI
import Foundation
import HTTPKit
import NIOHTTP1
import Logging
import MVCCStore
import Testing
@testable import APIServer

/// ClusterIP and NodePort allocation through the real handler on a real store: requested and
/// random items, Kubernetes' messages, release on delete and type change, concurrency,
/// restart (a second handler on the same store) and the repair loop.
@Suite struct ServiceAllocationTests {
    static func service(_ name: String, _ spec: String) -> String {
        #"{"apiVersion":"v1","kind":"Service","metadata":{"name":"\#(name)"},"spec":\#(spec)}"#
    }
    static let path = "/api/v1/namespaces/default/services"

    @Test func clusterIPsAllocatedHonouredRefusedAndReleased() async throws {
        try await withFixture { f in
            let a = await f.request(.POST, Self.path, body: Self.service("a", #"{"selector":{"app":"a"},"ports":[{"port":80}]}"#))
            #expect(a.code == 201)
            let ip = a.body["spec"]?["clusterIP"]?.stringValue ?? ""
            let network = ServiceNetwork.standard
            #expect(network.ipOffset(ip) != nil, "allocated \(ip) from 198.19.0.0/16")
            #expect((network.ipOffset(ip) ?? 0) >= 256, "dynamic allocation avoids the static band")
            #expect(a.body["spec"]?["clusterIPs"] == [.string(ip)])
            #expect(a.body["spec"]?["ipFamilies"] == ["IPv4"])
            #expect(a.body["spec"]?["ipFamilyPolicy"] == "SingleStack")

            let b = await f.request(.POST, Self.path, body: Self.service("b", #"{"clusterIP":"198.19.5.5","ports":[{"port":80}]}"#))
            #expect(b.code == 201)
            #expect(b.body["spec"]?["clusterIP"] == "198.19.5.5")

            let taken = await f.request(.POST, Self.path, body: Self.service("c", #"{"clusterIP":"198.19.5.5","ports":[{"port":80}]}"#))
            #expect(taken.code == 422)
            #expect(taken.body["message"]?.stringValue
                    == #"Service "c" is invalid: spec.clusterIPs: Invalid value: []string{"198.19.5.5"}: failed to allocate IP 198.19.5.5: provided IP is already allocated"#)

            let outside = await f.request(.POST, Self.path, body: Self.service("c", #"{"clusterIP":"10.0.0.1","ports":[{"port":80}]}"#))
            #expect(outside.code == 422)
            #expect(outside.body["message"]?.stringValue
                    == #"Service "c" is invalid: spec.clusterIPs: Invalid value: []string{"10.0.0.1"}: failed to allocate IP 10.0.0.1: the provided IP (10.0.0.1) is not in the valid range. The range of valid IPs is 198.19.0.0/16"#)

            let headless = await f.request(.POST, Self.path, body: Self.service("h", #"{"clusterIP":"None","selector":{"app":"h"},"ports":[{"port":80}]}"#))
            #expect(headless.code == 201)
            #expect(headless.body["spec"]?["clusterIPs"] == ["None"])
            #expect(headless.body["spec"]?["ipFamilyPolicy"] == "SingleStack")
            let bare = await f.request(.POST, Self.path, body: Self.service("bare", #"{"clusterIP":"None"}"#))
            #expect(bare.body["spec"]?["ipFamilyPolicy"] == "RequireDualStack")
            #expect(bare.body["spec"]?["ipFamilies"] == ["IPv4", "IPv6"], "as kube-apiserver gives a headless Service without selector")

            let v6 = await f.request(.POST, Self.path, body: Self.service("v6", #"{"ipFamilies":["IPv6"],"ports":[{"port":80}]}"#))
            #expect(v6.body["message"]?.stringValue == #"Service "v6" is invalid: spec.ipFamilies[0]: Invalid value: "IPv6": not configured on this cluster"#)

            // Immutable once set.
            let moved = await f.request(.PATCH, Self.path + "/b", body: #"{"spec":{"clusterIP":"198.19.6.6"}}"#,
                                        contentType: "application/merge-patch+json")
            #expect(moved.code == 422)
            #expect(moved.body["message"]?.stringValue == #"Service "b" is invalid: spec.clusterIPs[0]: Invalid value: "198.19.6.6": may not change once set"#)

            // A replace without the address keeps it.
            var replaced = b.body
            replaced["spec"]?["clusterIP"] = nil
            replaced["spec"]?["clusterIPs"] = nil
            replaced["metadata"]?["labels"] = ["x": "y"]
            let put = await f.request(.PUT, Self.path + "/b", body: String(decoding: APIHandler.encode(replaced), as: UTF8.self))
            #expect(put.code == 200)
            #expect(put.body["spec"]?["clusterIP"] == "198.19.5.5")

            // Dry run allocates nothing.
            let dry = await f.request(.POST, Self.path + "?dryRun=All", body: Self.service("d", #"{"clusterIP":"198.19.7.7","ports":[{"port":80}]}"#))
            #expect(dry.code == 201)
            let real = await f.request(.POST, Self.path, body: Self.service("d", #"{"clusterIP":"198.19.7.7","ports":[{"port":80}]}"#))
            #expect(real.code == 201)

            // Delete releases.
            #expect(await f.request(.DELETE, Self.path + "/b").code == 200)
            let again = await f.request(.POST, Self.path, body: Self.service("c", #"{"clusterIP":"198.19.5.5","ports":[{"port":80}]}"#))
            #expect(again.code == 201)
        }
    }

    @Test func nodePortsAllocatedHonouredAndReleasedOnTypeChange() async throws {
        try await withFixture { f in
            let a = await f.request(.POST, Self.path, body: Self.service("a", #"{"type":"NodePort","ports":[{"name":"a","port":80,"nodePort":30080},{"name":"b","port":81}]}"#))
            #expect(a.code == 201)
            #expect(a.body["spec"]?["ports"]?[0]?["nodePort"] == 30080)
            let second = a.body["spec"]?["ports"]?[1]?["nodePort"]?.int64Value ?? 0
            #expect((30000...32767).contains(second))
            #expect(a.body["spec"]?["externalTrafficPolicy"] == "Cluster")

            let taken = await f.request(.POST, Self.path, body: Self.service("b", #"{"type":"NodePort","ports":[{"port":80,"nodePort":30080}]}"#))
            #expect(taken.code == 422)
            #expect(taken.body["message"]?.stringValue == #"Service "b" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"#)
            let outside = await f.request(.POST, Self.path, body: Self.service("b", #"{"type":"NodePort","ports":[{"port":80,"nodePort":20000}]}"#))
            #expect(outside.body["message"]?.stringValue == #"Service "b" is invalid: spec.ports[0].nodePort: Invalid value: 20000: provided port is not in the valid range. The range of valid ports is 30000-32767"#)
            let clusterIPWithPort = await f.request(.POST, Self.path, body: Self.service("b", #"{"ports":[{"port":80,"nodePort":30099}]}"#))
            #expect(clusterIPWithPort.body["message"]?.stringValue == #"Service "b" is invalid: spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"#)
            // The failed create released the IP it took first: the bitmap holds a's IP alone.
            let ips = try await RangeAllocation(key: ServiceAllocator.ipKey, range: "198.19.0.0/16", size: 65534).read(ObjectStore(f.store))
            #expect(ips.count == 1)

            // NodePort → ClusterIP releases both; ClusterIP → NodePort allocates.
            let down = await f.request(.PATCH, Self.path + "/a", body: #"{"spec":{"type":"ClusterIP"}}"#, contentType: "application/merge-patch+json")
            #expect(down.code == 200)
            #expect(down.body["spec"]?["ports"]?[0]?["nodePort"] == nil)
            let reuse = await f.request(.POST, Self.path, body: Self.service("b", #"{"type":"NodePort","ports":[{"port":80,"nodePort":30080}]}"#))
            #expect(reuse.code == 201)
            let up = await f.request(.PATCH, Self.path + "/a", body: #"{"spec":{"type":"NodePort"}}"#, contentType: "application/merge-patch+json")
            #expect(up.code == 200)
            let port = up.body["spec"]?["ports"]?[0]?["nodePort"]?.int64Value ?? 0
            #expect((30000...32767).contains(port) && port != 30080)

            // A failed update releases what it took.
            let clash = await f.request(.PATCH, Self.path + "/a", body: #"{"spec":{"ports":[{"name":"a","port":80,"nodePort":30080},{"name":"b","port":81,"nodePort":31999}]}}"#,
                                        contentType: "application/merge-patch+json")
            #expect(clash.code == 422)
            let ports = try await RangeAllocation(key: ServiceAllocator.portKey, range: "30000-32767", size: 2768).read(ObjectStore(f.store))
            #expect(ports.count == 3, "a's two ports and b's")

            // A LoadBalancer without NodePort allocation gets none, but keeps one it asks for (one
            // that a's random port is not: it took 31500 in one run).
            let asked: Int64 = port == 31500 ? 31501 : 31500
            let lb = await f.request(.POST, Self.path, body: Self.service("lb", #"{"type":"LoadBalancer","allocateLoadBalancerNodePorts":false,"ports":[{"name":"a","port":80},{"name":"b","port":81,"nodePort":\#(asked)}]}"#))
            #expect(lb.code == 201)
            #expect(lb.body["spec"]?["ports"]?[0]?["nodePort"] == nil && lb.body["spec"]?["ports"]?[1]?["nodePort"]?.int64Value == asked, "\(lb)")
            // externalTrafficPolicy: Local gets a health check port; a taken one is refused in upstream's words.
            let local = await f.request(.POST, Self.path, body: Self.service("local", #"{"type":"LoadBalancer","externalTrafficPolicy":"Local","healthCheckNodePort":\#(asked),"ports":[{"port":80}]}"#))
            #expect(local.code == 500)
            #expect(local.body["message"]?.stringValue == "Internal error occurred: failed to allocate requested HealthCheck NodePort \(asked): provided port is already allocated")
            #expect(await f.request(.DELETE, Self.path + "/lb").code == 200)

            // ExternalName drops the ClusterIP and releases everything.
            let external = await f.request(.PATCH, Self.path + "/a", body: #"{"spec":{"type":"ExternalName","externalName":"example.com"}}"#,
                                           contentType: "application/merge-patch+json")
            #expect(external.code == 200)
            #expect(external.body["spec"]?["clusterIP"] == nil)
            let after = try await RangeAllocation(key: ServiceAllocator.portKey, range: "30000-32767", size: 2768).read(ObjectStore(f.store))
            #expect(after.count == 1)
        }
    }

    @Test func concurrentCreatesOnTwoServersGetDistinctItems() async throws {
        try await withFixture { f in
            // A second API server on the same store, as two kube-apiservers share etcd.
            var auth = TokenAuthenticator()
            auth.add(token: HandlerFixture.adminToken, user: UserInfo(name: "admin", groups: ["system:masters"]))
            let other = APIHandler(store: ObjectStore(f.store), serverAddress: "127.0.0.1:0", authenticator: auth, logger: Logger(label: "test"))
            let second = HandlerFixtureView(handler: other)
            let results = await withTaskGroup(of: (UInt, JSONValue).self) { group in
                for index in 0..<24 {
                    group.addTask {
                        let body = Self.service("s\(index)", #"{"type":"NodePort","ports":[{"port":80}]}"#)
                        let r = index % 2 == 0 ? await f.request(.POST, Self.path, body: body) : await second.request(.POST, Self.path, body: body)
                        return (r.code, r.body)
                    }
                }
                var all: [(UInt, JSONValue)] = []
                for await r in group { all.append(r) }
                return all
            }
            #expect(results.allSatisfy { $0.0 == 201 })
            let ips = Set(results.compactMap { $0.1["spec"]?["clusterIP"]?.stringValue })
            let ports = Set(results.compactMap { $0.1["spec"]?["ports"]?[0]?["nodePort"]?.int64Value })
            #expect(ips.count == 24 && ports.count == 24)
            // The same requested IP from both at once: exactly one wins.
            async let one = f.request(.POST, Self.path, body: Self.service("x", #"{"clusterIP":"198.19.9.9","ports":[{"port":80}]}"#))
            async let two = second.request(.POST, Self.path, body: Self.service("y", #"{"clusterIP":"198.19.9.9","ports":[{"port":80}]}"#))
            let codes = [await one.code, await two.code].sorted()
            #expect(codes == [201, 422])
        }
    }

    @Test func allocationsSurviveARestartAndRepairFreesLeaks() async throws {
        try await withFixture { f in
            #expect(await f.request(.POST, Self.path, body: Self.service("a", #"{"clusterIP":"198.19.1.1","type":"NodePort","ports":[{"port":80,"nodePort":30001}]}"#)).code == 201)
            #expect(await f.request(.POST, Self.path, body: Self.service("b", #"{"clusterIP":"198.19.1.2","ports":[{"port":80}]}"#)).code == 201)
            // A new API server on the same store sees them taken.
            var auth = TokenAuthenticator()
            auth.add(token: HandlerFixture.adminToken, user: UserInfo(name: "admin", groups: ["system:masters"]))
            let restarted = HandlerFixtureView(handler: APIHandler(store: ObjectStore(f.store), serverAddress: "127.0.0.1:0",
                                                                   authenticator: auth, logger: Logger(label: "test")))
            let taken = await restarted.request(.POST, Self.path, body: Self.service("c", #"{"clusterIP":"198.19.1.1","ports":[{"port":80}]}"#))
            #expect(taken.body["message"]?.stringValue?.hasSuffix("provided IP is already allocated") == true)

            // b vanishes behind the API server's back (its release never ran): a leak.
            _ = try await f.store.delete(Array("/registry/services/default/b".utf8), expectedModRevision: nil)
            // And a's port goes missing from the bitmap (a crash between writes).
            let objects = ObjectStore(f.store)
            let ports = RangeAllocation(key: ServiceAllocator.portKey, range: "30000-32767", size: 2768)
            var snapshot = try await ports.read(objects)
            snapshot.clear(1)
            #expect(try await ports.write(snapshot, objects))

            let repair = ServiceRepair(allocator: f.handler.services, logger: Logger(label: "test"), leakRuns: 2)
            let first = try await repair.runOnce()
            #expect(first.marked == 1 && first.freed == 0 && first.leaksPending == 1)
            let stillTaken = await f.request(.POST, Self.path, body: Self.service("c", #"{"clusterIP":"198.19.1.2","ports":[{"port":80}]}"#))
            #expect(stillTaken.code == 422, "a leak is kept until it has been seen in leakRuns runs")
            let second = try await repair.runOnce()
            #expect(second.freed == 1)
            #expect(await f.request(.POST, Self.path, body: Self.service("c", #"{"clusterIP":"198.19.1.2","ports":[{"port":80}]}"#)).code == 201)
            let portTaken = await f.request(.POST, Self.path, body: Self.service("d", #"{"type":"NodePort","ports":[{"port":80,"nodePort":30001}]}"#))
            #expect(portTaken.body["message"]?.stringValue?.hasSuffix("provided port is already allocated") == true, "the repair marked a's port again")
        }
    }

    @Test func rangeFlagsAreChecked() throws {
        #expect(throws: ServiceNetworkError.self) { try ServiceNetwork.parse(clusterIPRange: "10.0.0.0/8", nodePortRange: "30000-32767") }
        #expect(throws: ServiceNetworkError.self) { try ServiceNetwork.parse(clusterIPRange: "fd00::/108", nodePortRange: "30000-32767") }
        #expect(throws: ServiceNetworkError.self) { try ServiceNetwork.parse(clusterIPRange: "10.96.0.0/12", nodePortRange: "32767-30000") }
        let kind = try ServiceNetwork.parse(clusterIPRange: "10.96.0.0/12", nodePortRange: "30000-32767")
        #expect(kind.kubernetesServiceIP == "10.96.0.1")
        #expect(kind.ipOffset("10.96.0.0") == nil && kind.ipOffset("10.111.255.255") == nil && kind.ipOffset("10.111.255.254") != nil)
    }
}

/// Requests to a handler other than a fixture's own (a second API server on its store).
struct HandlerFixtureView: Sendable {
    let handler: APIHandler
    func request(_ method: HTTPMethod, _ uri: String, body: String? = nil) async -> (code: UInt, body: JSONValue) {
        var headers: HTTPHeaders = ["Authorization": "Bearer \(HandlerFixture.adminToken)", "Accept": "application/json"]
        if body != nil { headers.add(name: "Content-Type", value: "application/json") }
        let response = await handler.handle(HTTPRequest(method: method, uri: uri, headers: headers, body: Data((body ?? "").utf8)))
        return (response.status.code, (try? JSONDecoder().decode(JSONValue.self, from: response.body)) ?? .null)
    }
}
