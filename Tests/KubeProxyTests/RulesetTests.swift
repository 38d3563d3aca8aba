import ClusterAPI
import Foundation
import HostSystem
@testable import KubeProxy
import Testing

@Suite struct RulesetTests {
    static let base = Ruleset.Base(table: "ballast-t999-node-1", bridge: "ballastt999n0", podCIDR: "198.18.0.0/24", bridgePrefix: "ballastt999n",
                                   nodeAddresses: ["127.0.1.1", "198.18.0.1"])

    static func service(_ name: String, clusterIP: String, ports: [(String, Int, Int?)] = [("http", 80, nil)], affinity: Int? = nil,
                        type: String = "ClusterIP", externalTrafficPolicy: String? = nil) -> Service {
        var spec: [String: JSONValue] = [
            "clusterIP": .string(clusterIP), "type": .string(type),
            "ports": .array(ports.map { name, port, nodePort in
                var value: [String: JSONValue] = ["name": .string(name), "port": .integer(Int64(port)), "protocol": .string("TCP")]
                if let nodePort { value["nodePort"] = .integer(Int64(nodePort)) }
                return .object(value)
            }),
        ]
        if let externalTrafficPolicy { spec["externalTrafficPolicy"] = .string(externalTrafficPolicy) }
        if let affinity {
            spec["sessionAffinity"] = .string("ClientIP")
            spec["sessionAffinityConfig"] = .object(["clientIP": .object(["timeoutSeconds": .integer(Int64(affinity))])])
        }
        return Service(metadata: ObjectMeta(name: name, namespace: "ns"), spec: .object(spec))
    }

    static func slice(_ service: String, _ endpoints: [(String, Bool)], port: Int = 8080, name: String? = nil) -> EndpointSlice {
        EndpointSlice(metadata: ObjectMeta(name: name ?? service + "-abc", namespace: "ns", labels: [EndpointSlice.serviceNameLabel: service]),
                      addressType: "IPv4",
                      endpoints: endpoints.map { Endpoint(addresses: [$0.0], conditions: EndpointConditions(ready: $0.1)) },
                      ports: [EndpointPort(name: "http", protocol: "TCP", port: Int32(port))])
    }

    /// A slice whose endpoints name their nodes: (address, ready, node).
    static func slice(_ service: String, onNodes endpoints: [(String, Bool, String)], port: Int = 8080) -> EndpointSlice {
        var slice = Self.slice(service, endpoints.map { ($0.0, $0.1) }, port: port)
        for index in endpoints.indices { slice.endpoints[index].nodeName = endpoints[index].2 }
        return slice
    }

    @Test func externalTrafficPolicyLocalSendsNodePortsToThisNodesEndpointsOnly() {
        let services = [Self.service("web", clusterIP: "198.19.0.10", ports: [("http", 80, 30080)], type: "NodePort", externalTrafficPolicy: "Local"),
                        Self.service("none", clusterIP: "198.19.0.11", ports: [("http", 80, 30081)], type: "NodePort", externalTrafficPolicy: "Local"),
                        Self.service("cluster", clusterIP: "198.19.0.12", ports: [("http", 80, 30082)], type: "NodePort")]
        let slices = [Self.slice("web", onNodes: [("198.18.0.5", true, "node-1"), ("198.18.1.5", true, "node-2"), ("198.18.0.6", false, "node-1")]),
                      Self.slice("cluster", onNodes: [("198.18.1.7", true, "node-2")])]
        // node-1: its ready endpoint only behind the NodePort; the ClusterIP keeps both nodes'.
        let one = Ruleset(base: Self.base, ports: ServicePorts.from(services: services, slices: slices, nodeName: "node-1"))
        #expect(one.maps["service-nodeports"] == ["tcp . 30080": "goto ext-ns/web/tcp/http", "tcp . 30082": "goto svc-ns/cluster/tcp/http"])
        #expect(one.chains["ext-ns/web/tcp/http"] == ["numgen random mod 1 vmap { 0 : goto ep-ns/web/tcp/http__198.18.0.5/8080 }"])
        #expect(one.chains["svc-ns/web/tcp/http"]?.last?.hasPrefix("numgen random mod 2 ") == true)
        #expect(one.maps["service-ips"]?["198.19.0.10 . tcp . 80"] == "goto svc-ns/web/tcp/http")
        // No endpoints at all: refused, as any Service without endpoints.
        #expect(one.maps["no-endpoint-nodeports"] == ["tcp . 30081": "goto reject-chain"])
        // node-3 has none of web's endpoints: its NodePort drops (upstream: "has no local endpoints").
        let three = Ruleset(base: Self.base, ports: ServicePorts.from(services: services, slices: slices, nodeName: "node-3"))
        #expect(three.maps["no-endpoint-nodeports"]?["tcp . 30080"] == "drop")
        #expect(three.maps["service-nodeports"] == ["tcp . 30082": "goto svc-ns/cluster/tcp/http"])
        #expect(three.chains["ext-ns/web/tcp/http"] == nil && three.maps["service-ips"]?["198.19.0.10 . tcp . 80"] == "goto svc-ns/web/tcp/http")
        // A local endpoint that is only serving (terminating) is used when no local one is ready.
        var terminating = Self.slice("web", onNodes: [("198.18.0.5", false, "node-1"), ("198.18.1.5", true, "node-2")])
        terminating.endpoints[0].conditions.serving = true
        terminating.endpoints[0].conditions.terminating = true
        let draining = ServicePorts.from(services: [services[0]], slices: [terminating], nodeName: "node-1")
        #expect(draining[0].localEndpoints == [EndpointAddress(ip: "198.18.0.5", port: 8080)])
        #expect(draining[0].endpoints == [EndpointAddress(ip: "198.18.1.5", port: 8080)])
        let rules = Ruleset(base: Self.base, ports: draining)
        #expect(rules.chains["ep-ns/web/tcp/http__198.18.0.5/8080"] == ["meta l4proto tcp dnat to 198.18.0.5:8080"])
        // A ClusterIP Service has no NodePort: the policy changes nothing.
        let plain = ServicePorts.from(services: [Self.service("p", clusterIP: "198.19.0.13", externalTrafficPolicy: "Local")], slices: [], nodeName: "node-1")
        #expect(plain[0].localEndpoints == nil)
    }

    @Test func portsFromServicesAndSlices() {
        let services = [Self.service("web", clusterIP: "198.19.0.10"), Self.service("headless", clusterIP: "None"),
                        Self.service("dns", clusterIP: "198.19.0.53"), Self.service("empty", clusterIP: "198.19.0.11")]
        let slices = [Self.slice("web", [("198.18.0.5", true), ("198.18.1.5", true), ("198.18.2.5", false)]),
                      Self.slice("web", [("198.18.0.5", true)], name: "web-dup")]
        let ports = ServicePorts.from(services: services, slices: slices, skipAddresses: ["198.19.0.53"])
        #expect(ports.map(\.name) == ["empty", "web"])
        #expect(ports[1].endpoints == [EndpointAddress(ip: "198.18.0.5", port: 8080), EndpointAddress(ip: "198.18.1.5", port: 8080)])
        #expect(ports[0].endpoints.isEmpty)
    }

    @Test func terminatingServingEndpointsWhenNoneIsReady() {
        var slice = Self.slice("web", [("198.18.0.5", false), ("198.18.0.6", false)])
        slice.endpoints[0].conditions.serving = true
        slice.endpoints[0].conditions.terminating = true
        let ports = ServicePorts.from(services: [Self.service("web", clusterIP: "198.19.0.10")], slices: [slice])
        #expect(ports[0].endpoints == [EndpointAddress(ip: "198.18.0.5", port: 8080)])
    }

    @Test func rulesOfAServiceWithEndpointsAndOneWithout() {
        let ports = ServicePorts.from(services: [Self.service("web", clusterIP: "198.19.0.10", ports: [("http", 80, 30080)]),
                                                 Self.service("empty", clusterIP: "198.19.0.11", ports: [("http", 80, 30081)])],
                                      slices: [Self.slice("web", [("198.18.0.5", true), ("198.18.1.5", true)])])
        let rules = Ruleset(base: Self.base, ports: ports)
        #expect(rules.maps["service-ips"] == ["198.19.0.10 . tcp . 80": "goto svc-ns/web/tcp/http"])
        #expect(rules.maps["service-nodeports"] == ["tcp . 30080": "goto svc-ns/web/tcp/http"])
        #expect(rules.maps["no-endpoint-services"] == ["198.19.0.11 . tcp . 80": "goto reject-chain"])
        #expect(rules.maps["no-endpoint-nodeports"] == ["tcp . 30081": "goto reject-chain"])
        #expect(rules.chains["svc-ns/web/tcp/http"] == [
            "numgen random mod 2 vmap { 0 : goto ep-ns/web/tcp/http__198.18.0.5/8080, 1 : goto ep-ns/web/tcp/http__198.18.1.5/8080 }"])
        #expect(rules.chains["ep-ns/web/tcp/http__198.18.1.5/8080"] == ["meta l4proto tcp dnat to 198.18.1.5:8080"])
        #expect(rules.affinitySets.isEmpty)
    }

    @Test func sessionAffinityClientIP() {
        let ports = ServicePorts.from(services: [Self.service("web", clusterIP: "198.19.0.10", affinity: 60)],
                                      slices: [Self.slice("web", [("198.18.0.5", true)])])
        let rules = Ruleset(base: Self.base, ports: ports)
        let set = "affinity-60-ns/web/tcp/http__198.18.0.5/8080"
        #expect(rules.affinitySets == [set: 60])
        #expect(rules.chains["svc-ns/web/tcp/http"]?.first == "ip saddr @\(set) goto ep-ns/web/tcp/http__198.18.0.5/8080")
        #expect(rules.chains["ep-ns/web/tcp/http__198.18.0.5/8080"]?.first == "update @\(set) { ip saddr }")
    }

    @Test func changesTouchOnlyWhatChanged() {
        let services = (0..<20).map { Self.service("s\($0)", clusterIP: "198.19.1.\($0 + 1)") }
        let before = Ruleset(base: Self.base, ports: ServicePorts.from(services: services, slices: [Self.slice("s3", [("198.18.0.5", true)])]))
        let after = Ruleset(base: Self.base, ports: ServicePorts.from(services: services, slices: [Self.slice("s3", [("198.18.0.6", true)])]))
        let steps = before.changes(to: after).flatMap { $0 }
        #expect(steps == [
            "add chain ip ballast-t999-node-1 ep-ns/s3/tcp/http__198.18.0.6/8080",
            "add rule ip ballast-t999-node-1 ep-ns/s3/tcp/http__198.18.0.6/8080 meta l4proto tcp dnat to 198.18.0.6:8080",
            "flush chain ip ballast-t999-node-1 svc-ns/s3/tcp/http",
            "add rule ip ballast-t999-node-1 svc-ns/s3/tcp/http numgen random mod 1 vmap { 0 : goto ep-ns/s3/tcp/http__198.18.0.6/8080 }",
            "flush chain ip ballast-t999-node-1 ep-ns/s3/tcp/http__198.18.0.5/8080",
            "delete chain ip ballast-t999-node-1 ep-ns/s3/tcp/http__198.18.0.5/8080",
        ])
        #expect(before.changes(to: before).isEmpty)
    }

    @Test func batchesKeepStepsWhole() {
        let steps: [Ruleset.Step] = [["a", "b"], ["c"], ["d", "e", "f"], ["g"]]
        #expect(Ruleset.batches(steps, maxLines: 3) == ["a\nb\nc\n", "d\ne\nf\n", "g\n"])
        #expect(Ruleset.batches([["a", "b", "c", "d"]], maxLines: 2) == ["a\nb\nc\nd\n"])
    }

    @Test func bridgeFromPodCIDR() {
        let configuration = KubeProxyConfiguration(nodeName: "node-2", tag: "t999", clusterCIDR: IPv4CIDR("198.18.128.0/22")!)
        #expect(configuration.bridge(podCIDR: "198.18.129.0/24")! == ("ballastt999n1", "198.18.129.1"))
        #expect(configuration.bridge(podCIDR: "10.0.0.0/24") == nil)
        #expect(configuration.tableName == "ballast-t999-node-2")
    }
}

/// The scripts as the kernel's nftables sees them (`nft -c`: parsed and validated, not applied).
@Suite(.serialized) struct RulesetKernelTests {
    @Test func fullAndIncrementalScriptsAreValid() async throws {
        guard NFTables.isInstalled, getuid() == 0 else {
            print("skipped: needs nft and root")
            return
        }
        // Documentation addresses (TEST-NET-1): the table is really applied for a moment, and its
        // hooks must not catch anyone's traffic.
        let services = [RulesetTests.service("web", clusterIP: "192.0.2.10", ports: [("http", 80, 30080)], affinity: 30),
                        RulesetTests.service("empty", clusterIP: "192.0.2.11", ports: [("http", 80, 30081)])]
        let first = Ruleset(base: RulesetTests.base, ports: ServicePorts.from(services: services,
                                                                              slices: [RulesetTests.slice("web", [("198.18.0.5", true), ("198.18.1.5", true)])]))
        try await NFTables.apply(first.fullScript(), table: first.base.table, check: true)
        // Incremental changes need the table: apply for real, under a name of this test's own.
        var base = RulesetTests.base
        base.table = "ballast-test-kp-\(getpid())"
        base.nodeAddresses = ["192.0.2.1"]
        let applied = Ruleset(base: base, ports: ServicePorts.from(services: services,
                                                                   slices: [RulesetTests.slice("web", [("198.18.0.5", true), ("198.18.1.5", true)])]))
        let next = Ruleset(base: base, ports: ServicePorts.from(services: services, slices: [RulesetTests.slice("web", [("198.18.2.5", true)]),
                                                                                             RulesetTests.slice("empty", [("198.18.0.9", true)])]))
        do {
            try await NFTables.apply(applied.fullScript(), table: base.table)
            for script in Ruleset.batches(applied.changes(to: next), maxLines: 3) {
                try await NFTables.apply(script, table: base.table)
            }
            let listed = try await SystemCommand.check(["nft", "list", "table", "ip", base.table])
            #expect(listed.contains("dnat to 198.18.2.5:8080"))
            #expect(!listed.contains("198.18.1.5"))
            #expect(listed.contains("192.0.2.11 . tcp . 80 : goto svc-ns/empty/tcp/http"), "\(listed)")
            // And back, with a Service gone.
            let last = Ruleset(base: base, ports: ServicePorts.from(services: [services[1]], slices: []))
            for script in Ruleset.batches(next.changes(to: last), maxLines: 100) {
                try await NFTables.apply(script, table: base.table)
            }
            let final = try await SystemCommand.check(["nft", "list", "table", "ip", base.table])
            #expect(!final.contains("svc-ns/web"))
            #expect(!final.contains("affinity-"))
        } catch {
            await NFTables.deleteTable(base.table)
            throw error
        }
        await NFTables.deleteTable(base.table)
    }

    @Test func externalTrafficPolicyLocalScriptIsValid() async throws {
        guard NFTables.isInstalled, getuid() == 0 else {
            print("skipped: needs nft and root")
            return
        }
        let services = [RulesetTests.service("web", clusterIP: "192.0.2.10", ports: [("http", 80, 30080)], affinity: 30, type: "NodePort",
                                             externalTrafficPolicy: "Local"),
                        RulesetTests.service("far", clusterIP: "192.0.2.11", ports: [("http", 80, 30081)], type: "NodePort", externalTrafficPolicy: "Local")]
        let slices = [RulesetTests.slice("web", onNodes: [("198.18.0.5", true, "node-1"), ("198.18.1.5", true, "node-2")]),
                      RulesetTests.slice("far", onNodes: [("198.18.1.6", true, "node-2")])]
        let rules = Ruleset(base: RulesetTests.base, ports: ServicePorts.from(services: services, slices: slices, nodeName: "node-1"))
        #expect(rules.maps["no-endpoint-nodeports"] == ["tcp . 30081": "drop"])
        try await NFTables.apply(rules.fullScript(), table: rules.base.table, check: true)
    }

    @Test func aRefusedScriptNamesTheTable() async {
        guard NFTables.isInstalled, getuid() == 0 else { return }
        await #expect(throws: KubeProxyError.self) {
            try await NFTables.apply("add rule ip ballast-missing-kp nope accept\n", table: "ballast-missing-kp", check: true)
        }
    }
}
