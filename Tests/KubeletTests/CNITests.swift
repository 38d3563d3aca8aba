// The CNI invoker against Debian's real plugins (bridge, host-local, loopback) in real network
// namespaces, and the host side of the pod network (bridges, unreachable route, Service
// device, nftables table): what they make, what `ip route get` says of every range, and that
// nothing is left. The parsing and DNS rules alone, without the kernel, are in the first suite.
import ClusterAPI
import ClusterTesting
import Foundation
import HostSystem
import Kubelet
import Logging
import Testing
import TestSupport

@Suite("Pod network: parsing and rules")
struct PodNetworkRuleTests {
    @Test("IPv4 ranges: parsing, subnets, containment")
    func cidr() throws {
        let range = try #require(IPv4CIDR("198.18.0.0/16"))
        #expect(range.subnetCount(bits: 24) == 256)
        #expect(range.subnet(2, bits: 24)?.description == "198.18.2.0/24")
        #expect(range.subnet(256, bits: 24) == nil)
        #expect(range.contains("198.18.255.7") && !range.contains("198.19.0.1"))
        #expect(range.subnet(3, bits: 24)?.address(1) == "198.18.3.1")
        #expect(IPv4CIDR("198.18.0.1/16")?.description == "198.18.0.0/16", "host bits cleared, as Go's net.ParseCIDR does")
        for bad in ["198.18.0.0", "198.18.0.0/33", "198.018.0.0/16", "1.2.3/8", "a.b.c.d/8", "198.18.0.0/+8"] {
            #expect(IPv4CIDR(bad) == nil, "\(bad)")
        }
    }

    @Test("cluster networks: names within 15 characters, owned names, bad tags and ranges refused")
    func names() throws {
        let network = try ClusterNetwork(tag: "ab12")
        let last = try #require(network.podSubnet(255))
        #expect(network.bridgeName(for: last) == "ballastab12n255")
        #expect((network.bridgeName(for: last) ?? "").count <= 15 && network.serviceDevice.count <= 15)
        #expect(network.owns("ballastab12n3") && network.owns("ballastab12svc"))
        #expect(!network.owns("ballastab12x") && !network.owns("ballastab123n1") && !network.owns("eth0"))
        #expect(network.bridgeName(for: IPv4CIDR("10.0.0.0/24")!) == nil)
        #expect(throws: KubeletError.self) { try ClusterNetwork(tag: "AB12") }
        #expect(throws: KubeletError.self) { try ClusterNetwork(tag: "abc") }
        #expect(throws: KubeletError.self) {
            try ClusterNetwork(tag: "ab12", clusterCIDR: IPv4CIDR("198.18.0.0/16")!, serviceCIDR: IPv4CIDR("198.18.4.0/24")!)
        }
        #expect(ClusterNetwork.isTag(ClusterNetwork.tag(for: "/some/data/dir")))
        #expect(ClusterNetwork.tag(for: "/a") != ClusterNetwork.tag(for: "/b"))
    }

    @Test("CNI results are read defensively: bad addresses refused, wrong types dropped, the pod's address found")
    func results() throws {
        let good = try JSONValue(parsing: Data("""
            {"cniVersion":"1.0.0","interfaces":[{"name":"br0"},{"name":"veth1"},{"name":"eth0","sandbox":"/x/net"}, 7],
             "ips":[{"address":"198.18.0.9/24","gateway":"198.18.0.1","interface":2}],
             "routes":[{"dst":"198.18.0.0/16","gw":"198.18.0.1"},{"dst":5}], "dns":{}}
            """.utf8))
        let result = try CNIResult(good)
        #expect(result.podIPv4 == "198.18.0.9")
        #expect(result.interfaces.count == 3 && result.routes.count == 1)
        for bad in [#"[]"#, #"{"ips":[{"address":"198.18.0.9"}]}"#, #"{"ips":[{"address":"x/24"}]}"#, #"{"ips":[{"gateway":"1.1.1.1"}]}"#] {
            #expect(throws: CNIResultError.self) { try CNIResult(try JSONValue(parsing: Data(bad.utf8))) }
        }
        #expect(throws: CNIResultError.self) { try CNINetworkList(try JSONValue(parsing: Data(#"{"name":"x","cniVersion":"1.0.0","plugins":[{}]}"#.utf8))) }
    }

    @Test("hostPorts become portmap's portMappings in the pod's own copy of the node's list")
    func portMappings() throws {
        let network = try ClusterNetwork(tag: "ab12")
        let subnet = network.podSubnet(1)!
        let base = try CNINetworkList(PodNetwork.configuration(name: "ballast-ab12", bridge: network.bridgeName(for: subnet)!, podCIDR: subnet,
                                                               network: network, ipamDirectory: "/x"))
        var pod = pod()
        #expect(try PodNetwork.list(base, for: pod) == base, "no hostPort: the node's list as is")
        pod.spec.containers = [Container(name: "c", ports: [ContainerPort(hostPort: 8080, containerPort: 80),
                                                            ContainerPort(hostPort: 5353, containerPort: 53, protocol: "UDP", hostIP: "127.0.1.1"),
                                                            ContainerPort(containerPort: 9000)])]
        let list = try PodNetwork.list(base, for: pod)
        #expect(list.plugins.map { $0["type"]?.stringValue } == ["bridge", "portmap"])
        let mappings = list.plugins[1]["runtimeConfig"]?["portMappings"]?.arrayValue ?? []
        #expect(mappings == [["hostPort": 8080, "containerPort": 80, "protocol": "tcp"],
                             ["hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.1.1"]])
        #expect(list.plugins[1]["capabilities"]?["portMappings"]?.boolValue == true)
    }

    func pod(namespace: String = "shop", dnsPolicy: String? = nil, hostNetwork: Bool = false, dnsConfig: JSONValue? = nil) -> Pod {
        var pod = Pod(metadata: ObjectMeta(name: "web", namespace: namespace))
        pod.metadata.uid = "u1"
        pod.spec.dnsPolicy = dnsPolicy
        pod.spec.hostNetwork = hostNetwork
        if let dnsConfig { pod.spec.unknownFields["dnsConfig"] = dnsConfig }
        return pod
    }

    @Test("resolv.conf per dnsPolicy, as the kubelet writes it")
    func dns() throws {
        let directory = "/tmp/bkl-dns-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try "# host\nnameserver 10.0.0.2\nsearch corp.example\noptions edns0\n".write(toFile: directory + "/resolv.conf", atomically: true, encoding: .utf8)
        let cluster = DNSSettings(clusterDNS: ["198.19.0.10"], clusterDomain: "cluster.local", resolvConf: directory + "/resolv.conf")

        let (first, firstEvents) = PodDNS.config(for: pod(), settings: cluster)
        #expect(first.text == "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\nnameserver 198.19.0.10\noptions ndots:5\n")
        #expect(firstEvents.isEmpty)
        // ClusterFirst on the host network, and Default: the node's resolver.
        #expect(PodDNS.config(for: pod(hostNetwork: true), settings: cluster).0.text == "search corp.example\nnameserver 10.0.0.2\noptions edns0\n")
        #expect(PodDNS.config(for: pod(dnsPolicy: "Default"), settings: cluster).0.nameservers == ["10.0.0.2"])
        #expect(PodDNS.config(for: pod(dnsPolicy: "ClusterFirstWithHostNet", hostNetwork: true), settings: cluster).0.nameservers == ["198.19.0.10"])
        // No cluster DNS: ClusterFirst falls back to Default, with the kubelet's event.
        let (fallback, events) = PodDNS.config(for: pod(), settings: DNSSettings(resolvConf: directory + "/resolv.conf"))
        #expect(fallback.nameservers == ["10.0.0.2"])
        #expect(events.first?.0 == "MissingClusterDNS" && events.first?.1.contains("Falling back to \"Default\" policy") == true)
        // None: only dnsConfig; dnsConfig is appended and merged otherwise.
        let config: JSONValue = ["nameservers": ["1.2.3.4", "198.19.0.10"], "searches": ["extra.example"],
                                 "options": [["name": "ndots", "value": "2"], ["name": "single-request"]]]
        let none = PodDNS.config(for: pod(dnsPolicy: "None", dnsConfig: config), settings: cluster).0
        #expect(none.text == "search extra.example\nnameserver 1.2.3.4\nnameserver 198.19.0.10\noptions ndots:2 single-request\n")
        let merged = PodDNS.config(for: pod(dnsConfig: config), settings: cluster).0
        #expect(merged.nameservers == ["198.19.0.10", "1.2.3.4"])
        #expect(merged.searches.last == "extra.example" && merged.options == ["ndots:2", "single-request"])
        // Limits: three nameservers.
        let many: JSONValue = ["nameservers": ["1.1.1.1", "2.2.2.2", "3.3.3.3"]]
        let (limited, limitEvents) = PodDNS.config(for: pod(dnsConfig: many), settings: cluster)
        #expect(limited.nameservers.count == 3 && limitEvents.contains { $0.0 == "DNSConfigForming" })
    }
}

@Suite("Pod network: CNI plugins and host routes", .enabled(if: TestNetwork.available), .serialized)
struct CNIPluginTests {
    /// A pinned network namespace in `directory`, removed by `remove`.
    static func makeNamespace(_ path: String) async throws {
        FileManager.default.createFile(atPath: path, contents: nil)
        let result = try await SystemCommand.run(["unshare", "--net=" + path, "true"], timeout: .seconds(30))
        guard result.status == 0 else { throw TestFailure("unshare --net: \(result.stderr)") }
    }

    static func removeNamespace(_ path: String) async {
        _ = try? await SystemCommand.run(["umount", path], timeout: .seconds(30))
        try? FileManager.default.removeItem(atPath: path)
    }

    static func inNamespace(_ path: String, _ command: [String]) async throws -> CommandResult {
        try await SystemCommand.run(["nsenter", "--net=" + path] + command, timeout: .seconds(30))
    }

    @Test("ADD, CHECK and DEL through bridge + host-local: an address of the node's range, routes to the cluster's ranges only, released on DEL")
    func addCheckDelete() async throws {
        let test = try await TestNetwork.claim()
        let directory = "/tmp/bkl-cni-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let netns = directory + "/net"
        try await withCleanup {
            let subnet = test.podCIDR(1)
            try await HostNetwork.install(test.network, podSubnets: [subnet])
            try await Self.makeNamespace(netns)
            let bridge = try #require(test.network.bridgeName(for: subnet))
            let list = try CNINetworkList(PodNetwork.configuration(name: test.network.tableName, bridge: bridge, podCIDR: subnet,
                                                                   network: test.network, ipamDirectory: directory + "/ipam"))
            let invoker = CNIInvoker(pluginDirectories: PodNetworkSettings.defaultPluginDirectories, cacheDirectory: directory + "/cache")
            let args = CNIRuntimeArgs(containerID: "pod-a", netns: netns, args: [("K8S_POD_NAME", "a")])
            let forwardingBefore = try String(contentsOfFile: "/proc/sys/net/ipv4/ip_forward", encoding: .utf8)

            let result = try await invoker.add(list, args)
            let ip = try #require(result.podIPv4)
            #expect(subnet.contains(ip) && ip != subnet.address(1), "\(ip) is a host of \(subnet), not its gateway")
            #expect(invoker.cached(network: list.name, containerID: "pod-a", ifName: "eth0")?.result == result)
            #expect(FileManager.default.fileExists(atPath: directory + "/ipam/\(list.name)/\(ip)"))
            let routes = try await Self.inNamespace(netns, ["ip", "-4", "route", "show"]).stdout
            #expect(!routes.contains("default"), "\(routes)")
            #expect(routes.contains("\(test.network.clusterCIDR) via \(subnet.address(1))") && routes.contains("\(test.network.serviceCIDR) via \(subnet.address(1))"), "\(routes)")
            // The plugin was not allowed to switch on forwarding for the whole machine; the bridge has it.
            #expect(try String(contentsOfFile: "/proc/sys/net/ipv4/ip_forward", encoding: .utf8) == forwardingBefore)
            #expect(try String(contentsOfFile: "/proc/sys/net/ipv4/conf/\(bridge)/forwarding", encoding: .utf8) == "1\n")
            // The bridge's address is its own (set), not its lowest port's, which changes with the pods.
            #expect(try String(contentsOfFile: "/sys/class/net/\(bridge)/addr_assign_type", encoding: .utf8) == "3\n")
            // The host reaches the pod's address through the bridge (the namespace's eth0 answers ping).
            let ping = try await SystemCommand.run(["busybox", "ping", "-c", "1", "-W", "2", ip], timeout: .seconds(10))
            #expect(ping.status == 0, "\(ping.stdout)\(ping.stderr)")

            // Defence in depth: a pod that routes elsewhere through its gateway (as one with
            // NET_ADMIN could) reaches nothing — the host forwards it nowhere but to the
            // cluster's devices: the table drops it.
            let outside = "192.0.2.1"
            _ = try await Self.inNamespace(netns, ["ip", "route", "add", "\(outside)/32", "via", subnet.address(1)])
            let escaped = try await Self.inNamespace(netns, ["busybox", "ping", "-c", "1", "-W", "1", outside])
            #expect(escaped.status != 0, "\(escaped.stdout)")
            let counters = try await SystemCommand.run(["nft", "list", "chain", "inet", test.network.tableName, "forward"], timeout: .seconds(10)).stdout
            let dropped = counters.split(separator: "\n").first { $0.contains("drop") } ?? ""
            #expect(dropped.contains("counter packets") && !dropped.contains("counter packets 0 "), "the drop rule counted the packet: \(counters)")
            _ = try await Self.inNamespace(netns, ["ip", "route", "del", "\(outside)/32"])

            try await invoker.check(list, args)
            try await invoker.delete(list, args)
            #expect(invoker.cached(network: list.name, containerID: "pod-a", ifName: "eth0") == nil)
            #expect(!FileManager.default.fileExists(atPath: directory + "/ipam/\(list.name)/\(ip)"), "the address is released")
            #expect(try await Self.inNamespace(netns, ["ip", "link", "show", "eth0"]).status != 0, "eth0 is gone")
            // DEL again, and with the namespace gone: still a success, as the spec asks of plugins.
            try await invoker.delete(list, args)
            try await invoker.delete(list, CNIRuntimeArgs(containerID: "pod-a", netns: ""))
        } cleanup: {
            await Self.removeNamespace(netns)
            try? FileManager.default.removeItem(atPath: directory)
            let failures = await test.release()
            #expect(failures.isEmpty, "\(failures)")
        }
    }

    @Test("a failing plugin is named with its CNI error code, message and stderr; a missing one says where it was looked for")
    func errors() async throws {
        let test = try await TestNetwork.claim()
        let directory = "/tmp/bkl-cni-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try await withCleanup {
        let invoker = CNIInvoker(pluginDirectories: PodNetworkSettings.defaultPluginDirectories, cacheDirectory: directory + "/cache")
        let subnet = test.podCIDR(1)
        let list = try CNINetworkList(["cniVersion": "1.0.0", "name": "t", "plugins": [["type": "bridge", "bridge": .string(test.network.bridgeName(for: subnet)!),
                                                                                      "ipam": ["type": "host-local", "subnet": .string("\(subnet)"),
                                                                                               "dataDir": .string(directory + "/ipam")]]]])
        do {
            _ = try await invoker.add(list, CNIRuntimeArgs(containerID: "x", netns: directory + "/no-such-netns"))
            Issue.record("ADD into a missing namespace succeeded")
        } catch let error as CNIPluginError {
            #expect(error.plugin == "bridge" && error.command == "ADD")
            #expect(error.code != nil && error.message.contains("no-such-netns"), "\(error)")
            #expect("\(error)".hasPrefix("CNI plugin bridge failed on ADD"))
        }
        // The failed ADD was undone: its address released (the plugin keeps the bridge it made).
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: directory + "/ipam/t")) ?? []).filter { $0.hasPrefix("198.") } == [])
        let missing = try CNINetworkList(["cniVersion": "1.0.0", "name": "t", "plugins": [["type": "no-such-plugin"]]])
        do {
            _ = try await invoker.add(missing, CNIRuntimeArgs(containerID: "x", netns: directory + "/n"))
            Issue.record("a missing plugin succeeded")
        } catch let error as CNIPluginError {
            #expect("\(error)".contains("failed to find plugin \"no-such-plugin\" in path [/usr/lib/cni /opt/cni/bin]"), "\(error)")
        }
        // A plugin that prints garbage: refused, quoted, bounded.
        let fake = directory + "/bin"
        try FileManager.default.createDirectory(atPath: fake, withIntermediateDirectories: true)
        try "#!/bin/sh\necho 'not json'; echo 'oops' >&2; exit 0\n".write(toFile: fake + "/liar", atomically: true, encoding: .utf8)
        chmod(fake + "/liar", 0o755)
        let liar = CNIInvoker(pluginDirectories: [fake], cacheDirectory: directory + "/cache")
        do {
            _ = try await liar.add(try CNINetworkList(["cniVersion": "1.0.0", "name": "t", "plugins": [["type": "liar"]]]),
                                   CNIRuntimeArgs(containerID: "x", netns: directory + "/n"))
            Issue.record("a plugin printing garbage succeeded")
        } catch let error as CNIPluginError {
            #expect(error.plugin == "liar" && error.message.contains("not JSON: not json") && error.stderr == "oops", "\(error)")
        }
        } cleanup: {
            try? FileManager.default.removeItem(atPath: directory)
            await test.release()
        }
    }

    @Test("host routes: every pod and Service address ends on a ballast device or unreachable, never the default route; down leaves nothing")
    func hostRoutes() async throws {
        let test = try await TestNetwork.claim()
        try await withCleanup {
            let network = test.network
            try await HostNetwork.install(network, podSubnets: [test.podCIDR(1), test.podCIDR(2)])
            try await HostNetwork.install(network, podSubnets: [test.podCIDR(1), test.podCIDR(2)])   // again: idempotent
            func routeGet(_ address: String) async throws -> String {
                try await SystemCommand.run(["ip", "-o", "route", "get", address], timeout: .seconds(10)).stdout
                    + (try await SystemCommand.run(["ip", "-o", "route", "get", address], timeout: .seconds(10)).stderr)
            }
            for (address, expected) in [(test.podCIDR(1).address(7), "dev \(network.bridgeName(for: test.podCIDR(1))!)"),
                                        (test.podCIDR(2).address(7), "dev \(network.bridgeName(for: test.podCIDR(2))!)"),
                                        (test.podCIDR(3).address(7), "unreachable"),
                                        (test.podCIDR(4).address(254), "unreachable"),
                                        (network.serviceCIDR.address(10), "dev \(network.serviceDevice)"),
                                        (network.serviceCIDR.address(1000), "dev \(network.serviceDevice)")] {
                let route = try await routeGet(address)
                #expect(route.contains(expected) || (expected == "unreachable" && route.contains("No route to host")), "\(address): \(route)")
                #expect(!route.contains("dev eth0") && !route.contains(" via "), "\(address) must not take the default route: \(route)")
            }
            // The host speaks to Services from an address pods have a route back to.
            #expect(try await routeGet(network.serviceCIDR.address(10)).contains("src \(test.podCIDR(1).address(1))"))
            let tables = try await SystemCommand.run(["nft", "list", "table", "inet", network.tableName], timeout: .seconds(10)).stdout
            #expect(tables.contains("oifname != \"\(network.prefix)*\"") && tables.contains("drop"), "\(tables)")
            // The host's packets to a Service address nothing rewrote are refused on the spot.
            let connect = try await SystemCommand.run(["busybox", "nc", "-w", "2", network.serviceCIDR.address(10), "80"], timeout: .seconds(10))
            #expect(connect.status != 0)
            // A second cluster on the same ranges is refused, naming the routes in the way.
            let twin = try ClusterNetwork(tag: "zz" + network.tag.suffix(2), clusterCIDR: network.clusterCIDR, serviceCIDR: network.serviceCIDR)
            do {
                try await HostNetwork.install(twin, podSubnets: [test.podCIDR(3)])
                Issue.record("a second cluster on the same ranges was installed")
                await HostNetwork.remove(twin)
            } catch let error as KubeletError {
                #expect(error.message.contains("already routed elsewhere") && error.message.contains(network.bridgeName(for: test.podCIDR(1))!), "\(error)")
            }
            #expect(await HostNetwork.links().filter(twin.owns) == [], "nothing of the refused cluster was made")
            #expect(await !HostNetwork.leftovers(twin).contains { $0.contains("nftables") })
            #expect(await HostNetwork.leftovers(network).count > 0)
            #expect(await HostNetwork.remove(network).isEmpty)
            #expect(await HostNetwork.leftovers(network) == [])
            #expect(await HostNetwork.remove(network).isEmpty, "removing what is gone succeeds")
        } cleanup: {
            await test.release()
        }
    }
}
