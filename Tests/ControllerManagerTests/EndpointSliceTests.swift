import APIClient
import ClusterAPI
import Foundation
import Testing
@testable import ControllerManager

/// The EndpointSlice controller against a real API server: endpoints from the selected pods,
/// their conditions, hostnames and named ports; slices of at most --max-endpoints-per-slice;
/// little churn; clean-up when the selector goes.
@Suite struct EndpointSliceTests {
    static func service(_ name: String, selector: [String: String]?, ports: JSONValue = [["name": "http", "port": 80, "targetPort": "web"]],
                        headless: Bool = false, publishNotReady: Bool = false) -> Service {
        var spec: JSONValue = ["ports": ports]
        if let selector { spec["selector"] = .object(selector.mapValues { .string($0) }) }
        if headless { spec["clusterIP"] = "None" }
        if publishNotReady { spec["publishNotReadyAddresses"] = true }
        return Service(metadata: ObjectMeta(name: name, namespace: "default", labels: ["team": "a"]), spec: spec)
    }

    static func pod(_ name: String, labels: [String: String] = ["app": "web"], node: String? = "node-a", hostname: String? = nil,
                    subdomain: String? = nil, port: Int32 = 8080) -> Pod {
        var pod = Pod(metadata: ObjectMeta(name: name, namespace: "default", labels: labels))
        pod.spec.containers = [Container(name: "app", image: "busybox", ports: [ContainerPort(name: "web", containerPort: port)])]
        pod.spec.nodeName = node
        pod.spec.hostname = hostname
        pod.spec.subdomain = subdomain
        return pod
    }

    /// Creates `pod` and gives it an address and (optionally) the Ready condition, as its kubelet would.
    @discardableResult
    static func run(_ client: KubeClient, _ pod: Pod, ip: String?, ready: Bool) async throws -> Pod {
        var created = try await client.create(pod)
        created.status.phase = "Running"
        if let ip {
            created.status.podIP = ip
            created.status.podIPs = [["ip": .string(ip)]]
        }
        created.status.conditions = [PodCondition(type: "Ready", status: ready ? "True" : "False", lastTransitionTime: Time.now())]
        return try await client.updateStatus(created)
    }

    static func slices(_ client: KubeClient, _ service: String) async throws -> [EndpointSlice] {
        try await client.list(EndpointSlice.self, namespace: "default", labelSelector: "kubernetes.io/service-name=\(service)").items
    }

    static func endpoints(_ slices: [EndpointSlice]) -> [String: Endpoint] {
        var byPod: [String: Endpoint] = [:]
        for slice in slices { for endpoint in slice.endpoints { byPod[endpoint.targetRef?.name ?? ""] = endpoint } }
        return byPod
    }

    @Test func endpointsFollowPodsConditionsHostnamesAndPorts() async throws {
        try await withWorkloads([.endpointSlice]) { h in
            _ = try await h.client.create(makeNode("node-a", zone: "zone-1"))
            let service = try await h.client.create(Self.service("web", selector: ["app": "web"], headless: true))
            try await Self.run(h.client, Self.pod("web-0", hostname: "web-0", subdomain: "web"), ip: "10.1.0.1", ready: true)
            // Unscheduled, so that its deletion waits for no grace period (no kubelet runs here).
            try await Self.run(h.client, Self.pod("web-1", node: nil, port: 9090), ip: "10.1.0.2", ready: false)
            try await Self.run(h.client, Self.pod("web-2"), ip: nil, ready: false)
            try await Self.run(h.client, Self.pod("db-0", labels: ["app": "db"]), ip: "10.1.0.9", ready: true)

            await h.eventually("web-0 and web-1 listed") {
                let slices = try await Self.slices(h.client, "web")
                return Set(Self.endpoints(slices).keys) == ["web-0", "web-1"]
            }
            var slices = try await Self.slices(h.client, "web")
            // web-1's named port resolves to 9090: a slice per port set.
            #expect(slices.count == 2)
            for slice in slices {
                #expect(slice.addressType == "IPv4")
                #expect(slice.metadata.labels?["endpointslice.kubernetes.io/managed-by"] == "endpointslice-controller.k8s.io")
                #expect(slice.metadata.labels?["service.kubernetes.io/headless"] == "")
                #expect(slice.metadata.labels?["team"] == "a")
                #expect(slice.metadata.ownerReferences?.first?.uid == service.metadata.uid)
                #expect(slice.metadata.ownerReferences?.first?.controller == true)
                #expect(slice.metadata.name?.hasPrefix("web-") == true)
            }
            let byPod = Self.endpoints(slices)
            let web0 = byPod["web-0"]
            #expect(web0?.addresses == ["10.1.0.1"])
            #expect(web0?.conditions == EndpointConditions(ready: true, serving: true, terminating: false))
            #expect(web0?.hostname == "web-0")
            #expect(web0?.nodeName == "node-a" && web0?.zone == "zone-1")
            #expect(web0?.targetRef?.kind == "Pod")
            #expect(byPod["web-1"]?.conditions == EndpointConditions(ready: false, serving: false, terminating: false))
            #expect(byPod["web-1"]?.hostname == nil)
            let portOf = { (pod: String) in slices.first { $0.endpoints.contains { $0.targetRef?.name == pod } }?.ports?.first }
            #expect(portOf("web-0") == EndpointPort(name: "http", protocol: "TCP", port: 8080))
            #expect(portOf("web-1")?.port == 9090)

            // web-2 gets its address; web-1 becomes ready.
            var web2 = try await h.client.get(Pod.self, name: "web-2", namespace: "default")
            web2.status.podIP = "10.1.0.3"
            web2.status.podIPs = [["ip": "10.1.0.3"]]
            _ = try await h.client.updateStatus(web2)
            var web1 = try await h.client.get(Pod.self, name: "web-1", namespace: "default")
            web1.status.conditions = [PodCondition(type: "Ready", status: "True", lastTransitionTime: Time.now())]
            _ = try await h.client.updateStatus(web1)
            await h.eventually("web-2 listed, web-1 ready") {
                let byPod = Self.endpoints(try await Self.slices(h.client, "web"))
                return byPod["web-2"]?.addresses == ["10.1.0.3"] && byPod["web-1"]?.conditions.ready == true
            }

            // A terminating pod: serving, not ready.
            var held = try await h.client.get(Pod.self, name: "web-1", namespace: "default")
            held.metadata.finalizers = ["test.ballast.dev/hold"]
            _ = try await h.client.update(held)
            try await h.client.delete(Pod.self, name: "web-1", namespace: "default")
            await h.eventually("web-1 terminating") {
                Self.endpoints(try await Self.slices(h.client, "web"))["web-1"]?.conditions
                    == EndpointConditions(ready: false, serving: true, terminating: true)
            }
            // publishNotReadyAddresses: ready whatever the pod says.
            var published = try await h.client.get(Service.self, name: "web", namespace: "default")
            published.spec?["publishNotReadyAddresses"] = true
            _ = try await h.client.update(published)
            await h.eventually("web-1 published as ready") {
                Self.endpoints(try await Self.slices(h.client, "web"))["web-1"]?.conditions.ready == true
            }
            held = try await h.client.get(Pod.self, name: "web-1", namespace: "default")
            held.metadata.finalizers = nil
            _ = try await h.client.update(held)
            await h.eventually("web-1 gone") { Self.endpoints(try await Self.slices(h.client, "web"))["web-1"] == nil }

            // Someone else's edit to a managed slice is undone.
            slices = try await Self.slices(h.client, "web")
            var edited = slices[0]
            edited.endpoints = []
            _ = try await h.client.update(edited)
            await h.eventually("the edit undone") { Set(Self.endpoints(try await Self.slices(h.client, "web")).keys) == ["web-0", "web-2"] }

            // Without a selector the Service keeps no managed slices.
            var bare = try await h.client.get(Service.self, name: "web", namespace: "default")
            bare.spec?["selector"] = nil
            _ = try await h.client.update(bare)
            await h.eventually("slices deleted") { try await Self.slices(h.client, "web").isEmpty }
        }
    }

    @Test func slicesHoldAtMostTheLimitAndChangeLittle() async throws {
        try await withWorkloads([.endpointSlice], configure: { $0.maxEndpointsPerSlice = 2 }) { h in
            _ = try await h.client.create(Self.service("many", selector: ["app": "web"]))
            // A Service whose pods have not come yet has one empty placeholder slice.
            await h.eventually("the placeholder") {
                let slices = try await Self.slices(h.client, "many")
                return slices.count == 1 && slices[0].endpoints.isEmpty
            }
            for index in 0..<5 {
                try await Self.run(h.client, Self.pod("p\(index)", node: nil), ip: "10.2.0.\(index + 1)", ready: true)
            }
            await h.eventually("five endpoints in three slices") {
                let slices = try await Self.slices(h.client, "many")
                return Self.endpoints(slices).count == 5 && slices.count == 3 && slices.allSatisfy { $0.endpoints.count <= 2 }
            }
            let before = try await Self.slices(h.client, "many")
            let victim = before.first { $0.endpoints.count == 2 }!
            let gone = victim.endpoints[0].targetRef?.name ?? ""
            try await h.client.delete(Pod.self, name: gone, namespace: "default")
            await h.eventually("\(gone) removed") { Self.endpoints(try await Self.slices(h.client, "many"))[gone] == nil }
            let after = try await Self.slices(h.client, "many")
            let unchanged = after.filter { slice in before.contains { $0.metadata.name == slice.metadata.name && $0.metadata.resourceVersion == slice.metadata.resourceVersion } }
            #expect(after.count == 3 && unchanged.count == 2, "only the slice that held \(gone) was written")
        }
    }

    @Test func legacyEndpointsListReadyAndNotReadyAddresses() async throws {
        try await withWorkloads([.endpoints]) { h in
            _ = try await h.client.create(Self.service("web", selector: ["app": "web"], headless: true))
            try await Self.run(h.client, Self.pod("web-0", node: nil, hostname: "web-0", subdomain: "web"), ip: "10.3.0.1", ready: true)
            try await Self.run(h.client, Self.pod("web-1", node: nil), ip: "10.3.0.2", ready: false)
            try await Self.run(h.client, Self.pod("web-2", node: nil, port: 9090), ip: "10.3.0.3", ready: true)
            // A Service without a selector keeps the Endpoints its user writes.
            _ = try await h.client.create(Self.service("manual", selector: nil, ports: [["port": 80]]))
            let manual = Endpoints(metadata: ObjectMeta(name: "manual", namespace: "default"),
                                   subsets: [["addresses": [["ip": "192.0.2.1"]], "ports": [["port": 80]]]])
            _ = try await h.client.create(manual)

            await h.eventually("two subsets") {
                (try await h.client.get(Endpoints.self, name: "web", namespace: "default")).subsets?.count == 2
            }
            let endpoints = try await h.client.get(Endpoints.self, name: "web", namespace: "default")
            let first = try #require(endpoints.subsets?.first { $0["ports"]?[0]?["port"] == 8080 })
            #expect(first["addresses"]?[0]?["ip"] == "10.3.0.1" && first["addresses"]?[0]?["hostname"] == "web-0")
            #expect(first["notReadyAddresses"]?[0]?["ip"] == "10.3.0.2")
            #expect(first["ports"]?[0]?["name"] == "http")
            let second = try #require(endpoints.subsets?.first { $0["ports"]?[0]?["port"] == 9090 })
            #expect(second["addresses"]?[0]?["ip"] == "10.3.0.3")
            #expect(endpoints.metadata.labels?["service.kubernetes.io/headless"] == "")

            try await h.client.delete(Service.self, name: "web", namespace: "default")
            await h.eventually("the Endpoints go with the Service") {
                (try? await h.client.get(Endpoints.self, name: "web", namespace: "default")) == nil
            }
            #expect(try await h.client.get(Endpoints.self, name: "manual", namespace: "default").subsets == manual.subsets)
        }
    }

    @Test func planPlacesNewEndpointsInSlicesWithRoom() {
        func endpoint(_ n: Int) -> Endpoint {
            Endpoint(addresses: ["10.0.0.\(n)"], conditions: EndpointConditions(ready: true, serving: true, terminating: false),
                     targetRef: ObjectReference(kind: "Pod", name: "p\(n)", uid: "u\(n)"))
        }
        let ports = [EndpointPort(name: "", protocol: "TCP", port: 80)]
        func slice(_ name: String, _ members: [Int]) -> EndpointSlice {
            EndpointSlice(metadata: ObjectMeta(name: name), addressType: "IPv4", endpoints: members.map(endpoint), ports: ports)
        }
        var desired = DesiredEndpoints()
        desired.groups[ports] = [1, 2, 3, 5, 6].map(endpoint)
        let plan = SliceReconciler.plan(desired: desired, existing: [slice("a", [1, 2]), slice("b", [3, 4])], maxEndpointsPerSlice: 2,
                                        template: { ports in EndpointSlice(metadata: ObjectMeta(generateName: "x-"), addressType: "IPv4", endpoints: [], ports: ports) },
                                        labelsAndOwner: { _ in })
        // a is untouched; b drops 4 and takes 5; 6 needs a new slice.
        #expect(plan.update.map(\.metadata.name) == ["b"])
        #expect(plan.update.first?.endpoints.map(\.identity) == ["u3", "u5"])
        #expect(plan.create.count == 1 && plan.create[0].endpoints.map(\.identity) == ["u6"])
        #expect(plan.delete.isEmpty)

        let other = [EndpointPort(name: "", protocol: "TCP", port: 81)]
        let stale = SliceReconciler.plan(desired: desired, existing: [EndpointSlice(metadata: ObjectMeta(name: "c"), addressType: "IPv4", endpoints: [], ports: other)],
                                         maxEndpointsPerSlice: 100, template: { EndpointSlice(metadata: ObjectMeta(generateName: "x-"), addressType: "IPv4", endpoints: [], ports: $0) },
                                         labelsAndOwner: { _ in })
        #expect(stale.delete.map(\.metadata.name) == ["c"] && stale.create.count == 1 && stale.create[0].endpoints.count == 5)
    }
}
