// Pod networking on a `ballast up` cluster (the shared one, on a test network of its own):
// busybox pods talk over HTTP (wget, and nc by hand) on one node and across nodes; every pod
// and Service address routes to a ballast device or `unreachable` on the host, never the
// default route, and packets sent to addresses of those ranges that nobody has fail on this
// machine (counted at postrouting: none leaves through the default route); a pod reaches
// nothing outside the cluster's ranges; resolv.conf per dnsPolicy (ClusterFirst, Default,
// None with dnsConfig).
// `down --purge` leaving no bridge, route, namespace or nftables table is checked when the
// shared cluster closes (TestCluster.close).
import ClusterAPI
import ClusterTesting
import Foundation
import HostSystem
import Testing
import TestSupport

@Suite("end-to-end pod network", .enabled(if: endToEndCanRun && TestNetwork.available), .timeLimit(.minutes(10)))
struct NetworkTests {
    @Test("pod to pod on one node and across nodes; the host routes every range to ballast devices; nothing outside")
    func podToPod() async throws {
        try await sharedCluster.with { cluster in
            let ns = try await cluster.namespace("e2e-net")
            let dnsPods = """
                apiVersion: v1
                kind: Pod
                metadata: {name: dns-default}
                spec:
                  dnsPolicy: Default
                  terminationGracePeriodSeconds: 1
                  containers: [{name: c, image: busybox, command: ["sleep", "3600"]}]
                ---
                apiVersion: v1
                kind: Pod
                metadata: {name: dns-none}
                spec:
                  dnsPolicy: None
                  dnsConfig:
                    nameservers: [192.0.2.53]
                    searches: [example.test]
                    options: [{name: ndots, value: "2"}, {name: edns0}]
                  terminationGracePeriodSeconds: 1
                  containers: [{name: c, image: busybox, command: ["sleep", "3600"]}]
                ---

                """
            try await cluster.apply(webServerPod("one", node: "node-1", app: "web") + webServerPod("two", node: "node-2", app: "web") + clientPod("client", node: "node-1")
                                    + dnsPods, namespace: ns)
            for pod in ["one", "two", "client", "dns-default", "dns-none"] {
                guard await cluster.waitReady(pod, namespace: ns) else { return }
            }
            let network = cluster.network.network
            var ips: [String: String] = [:]
            for pod in ["one", "two", "client"] {
                let ip = await cluster.get("pod/" + pod, namespace: ns, "{.status.podIP}")
                #expect(network.clusterCIDR.contains(ip), "\(pod): \(ip) in \(network.clusterCIDR)")
                ips[pod] = ip
            }
            // node-1's pods are on its /24, node-2's on its own (node IPAM's, in whatever order
            // the nodes registered).
            for (pod, node) in [("one", "node-1"), ("two", "node-2")] {
                let range = await cluster.get("node/" + node, "{.spec.podCIDR}")
                #expect(IPv4CIDR(range)?.contains(ips[pod]!) == true, "\(pod) at \(ips[pod]!) in \(node)'s \(range)")
            }

            for target in ["one", "two"] {
                let wget = try await cluster.kubectl(["exec", "-n", ns, "client", "--", "wget", "-q", "-O", "-", "http://\(ips[target]!):8080/"])
                #expect(wget.status == 0 && wget.stdout == "\(target)\n", "client → \(target): \(wget)")
                let nc = try await cluster.kubectl(["exec", "-n", ns, "client", "--", "sh", "-c",
                                                    "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc \(ips[target]!) 8080"])
                #expect(nc.status == 0 && nc.stdout.split(whereSeparator: \.isNewline).last.map(String.init) == target, "nc client → \(target): \(nc)")
            }
            let back = try await cluster.kubectl(["exec", "-n", ns, "two", "--", "wget", "-q", "-O", "-", "http://\(ips["one"]!):8080/"])
            #expect(back.stdout == "one\n", "two → one: \(back)")

            // Nothing outside the cluster's ranges: no route in the pod.
            let outside = try await cluster.kubectl(["exec", "-n", ns, "client", "--", "wget", "-q", "-O", "-", "http://192.0.2.1/"])
            #expect(outside.status != 0 && outside.stderr.lowercased().contains("unreachable"), "\(outside)")

            // On the host, every address of both ranges ends on a ballast device or unreachable.
            let samples = [network.clusterCIDR.address(1), network.clusterCIDR.address(UInt32(network.clusterCIDR.size - 2)),
                           cluster.network.podCIDR(3).address(9), network.serviceCIDR.address(1),
                           network.serviceCIDR.address(UInt32(network.serviceCIDR.size - 2)), ips["two"]!]
            for address in samples {
                let route = try await runCommand("ip", ["-o", "route", "get", address], timeout: .seconds(10))
                let text = route.stdout + route.stderr
                // A node bridge's gateway address is this machine's own (`local … dev lo`).
                #expect((route.status == 0 && (text.contains("dev \(network.prefix)") || text.hasPrefix("local "))) || text.contains("unreachable")
                        || text.contains("No route to host"),
                        "ip route get \(address): \(text)")
                #expect(!text.contains(" via "), "\(address) must not take a gateway: \(text)")
            }

            // ClusterFirst: the cluster DNS (the kube-dns address, the 10th of the Service range)
            // and the search path of the pod's namespace; no MissingClusterDNS event.
            let resolv = try await cluster.kubectl(["exec", "-n", ns, "client", "--", "cat", "/etc/resolv.conf"])
            #expect(resolv.stdout.contains("nameserver \(network.serviceCIDR.address(10))\n")
                    && resolv.stdout.contains("search \(ns).svc.cluster.local svc.cluster.local cluster.local"), "\(resolv.stdout)")
            let events = try await cluster.ok(["get", "events", "-n", ns, "--field-selector", "involvedObject.name=client", "-o", "jsonpath={.items[*].reason}"])
            #expect(!events.contains("MissingClusterDNS"), "\(events)")
            // Default: the node's resolver (the kubelet's --resolv-conf, /etc/resolv.conf under `up`).
            let hostServers = ((try? String(contentsOfFile: "/etc/resolv.conf", encoding: .utf8)) ?? "").split(separator: "\n")
                .filter { $0.hasPrefix("nameserver") }.prefix(3).map(String.init)
            let byDefault = try await cluster.ok(["exec", "-n", ns, "dns-default", "--", "cat", "/etc/resolv.conf"])
            #expect(!byDefault.contains("svc.cluster.local") && !byDefault.contains(network.serviceCIDR.address(10))
                    && byDefault.split(separator: "\n").filter { $0.hasPrefix("nameserver") }.map(String.init) == hostServers, "Default: \(byDefault)")
            // None: exactly the pod's dnsConfig.
            let none = try await cluster.ok(["exec", "-n", ns, "dns-none", "--", "cat", "/etc/resolv.conf"])
            #expect(none == "search example.test\nnameserver 192.0.2.53\noptions ndots:2 edns0\n", "None with dnsConfig: \(none)")
            try await cluster.ok(["delete", "namespace", ns, "--wait=false"])
        }
    }

    @Test("nothing for the pod or Service range leaves through the default route: unallocated addresses fail on this machine")
    func nothingLeaves() async throws {
        try await sharedCluster.with { cluster in
            let network = cluster.network.network
            let ns = try await cluster.namespace("e2e-net-leak")
            try await cluster.apply(clientPod("client", node: "node-1"), namespace: ns)
            guard await cluster.waitReady("client", namespace: ns) else { return }
            // The interface(s) of the default route: what "leaving the machine" goes through.
            let defaults = try await runCommand("ip", ["-4", "-o", "route", "show", "default"], timeout: .seconds(10)).stdout
            let defaultDevices = Set(defaults.split(separator: "\n").compactMap { line -> String? in
                let words = line.split(separator: " ")
                return words.firstIndex(of: "dev").flatMap { $0 + 1 < words.count ? String(words[$0 + 1]) : nil }
            })
            if defaultDevices.isEmpty { print("⚠️  no default route here: counting packets for the ranges leaving through any other interface only") }
            // Counters at the last hook a leaving packet passes (postrouting, after every NAT):
            // packets for the ranges through the default route's device; through anything but
            // the cluster's devices, loopback and pod veths (bridged pod traffic with
            // br_netfilter); and, to show the counters see this traffic at all, through the
            // cluster's own devices. Counters only: the chain accepts everything. Named like a
            // proxy's table (`ip ballast-<tag>-…`), so that a crashed run's is removed with the
            // cluster's network (HostNetwork.remove) and counted as a leftover until then.
            let ranges = "{ \(network.clusterCIDR), \(network.serviceCIDR) }"
            let table = "ballast-\(network.tag)-leakcheck"
            let script = """
                table ip \(table) {
                  chain postrouting {
                    type filter hook postrouting priority 1000; policy accept;
                \(defaultDevices.sorted().map { "    ip daddr \(ranges) oifname \"\($0)\" counter comment \"default-route\"" }.joined(separator: "\n"))
                    ip daddr \(ranges) oifname != "\(network.prefix)*" oifname != "lo" oifname != "veth*" counter comment "elsewhere"
                    ip daddr \(ranges) oifname "\(network.prefix)*" counter comment "cluster"
                  }
                }

                """
            let loaded = try await runCommand("nft", ["-f", "-"], input: script, timeout: .seconds(10))
            #expect(loaded.status == 0, "\(script)\n\(loaded.stderr)")
            guard loaded.status == 0 else { return }
            do {
                // Addresses nobody has: one in a /24 no node was given, one in node-1's /24 no pod
                // has, one of the Service range no Service has.
                let given = Set(await cluster.get("nodes", "{.items[*].spec.podCIDR}").split(separator: " ").map(String.init))
                let spare = (1...Int(network.clusterCIDR.size / 256)).map { cluster.network.podCIDR($0) }.first { !given.contains("\($0)") }
                let node1 = await cluster.get("node/node-1", "{.spec.podCIDR}")
                let unusedPod = IPv4CIDR(node1)?.address(250) ?? ""
                let allServices = try await cluster.ok(["get", "services", "--all-namespaces", "-o", "jsonpath={.items[*].spec.clusterIP}"])
                let clusterIPs = Set(allServices.split(separator: " ").map(String.init))
                let unusedService = try #require((1..<network.serviceCIDR.size - 1).reversed().lazy.map { network.serviceCIDR.address(UInt32($0)) }
                    .first { !clusterIPs.contains($0) })
                // From the host: no route (EHOSTUNREACH at once) and refused (ECONNREFUSED).
                if let spare {
                    // (busybox nc names the errno; curl 7.88 only says it could not connect.)
                    let nc = try await runCommand("busybox", ["nc", "-w", "4", spare.address(9), "80"], input: "", timeout: .seconds(10))
                    #expect(nc.status != 0 && nc.stderr.contains("No route to host"), "host → \(spare.address(9)): \(nc)")
                    let ping = try await runCommand("busybox", ["ping", "-c", "1", "-W", "1", spare.address(10)], timeout: .seconds(10))
                    #expect(ping.status != 0, "\(ping)")
                } else {
                    print("⚠️  every /24 of \(network.clusterCIDR) is given to a node: the spare-subnet case is not exercised")
                }
                let service = try await runCommand("busybox", ["nc", "-w", "4", unusedService, "80"], input: "", timeout: .seconds(10))
                #expect(service.status != 0 && service.stderr.contains("Connection refused"), "host → \(unusedService): \(service)")
                _ = try await runCommand("busybox", ["sh", "-c", "echo x | busybox nc -u -w 1 \(unusedService) 53"], timeout: .seconds(10))
                _ = try await runCommand("curl", ["-sS", "-m", "4", "http://\(unusedPod):80/"], timeout: .seconds(10))
                // From a pod: the same, through its node's bridge and the host's forward path.
                if let spare {
                    let wget = try await cluster.fetch(from: "client", namespace: ns, "http://\(spare.address(9)):80/")
                    #expect(wget.status != 0 && wget.stderr.contains("No route to host"), "pod → \(spare.address(9)): \(wget)")
                }
                let refused = try await cluster.fetch(from: "client", namespace: ns, "http://\(unusedService):80/")
                #expect(refused.status != 0 && refused.stderr.lowercased().contains("refused"), "pod → \(unusedService): \(refused)")
                _ = try await cluster.kubectl(["exec", "-n", ns, "client", "--", "sh", "-c", "echo x | nc -u -w 1 \(unusedService) 53; true"])
                _ = try await cluster.kubectl(["exec", "-n", ns, "client", "--", "sh", "-c", "wget -q -O - http://\(unusedPod):80/; true"], timeout: .seconds(30))
                // And a pod that answers, so that the "cluster" counter has something to count.
                let me = await cluster.get("pod/client", namespace: ns, "{.status.podIP}")
                _ = try await runCommand("busybox", ["ping", "-c", "1", "-W", "2", me], timeout: .seconds(10))

                let listing = try await runCommand("nft", ["list", "chain", "ip", table, "postrouting"], timeout: .seconds(10)).stdout
                func packets(_ comment: String) -> [Int] {
                    listing.split(separator: "\n").filter { $0.contains("comment \"\(comment)\"") }.compactMap { line in
                        line.range(of: "counter packets ").flatMap { Int(line[$0.upperBound...].prefix { $0.isNumber }) }
                    }
                }
                #expect(packets("default-route").allSatisfy { $0 == 0 } && packets("default-route").count == defaultDevices.count,
                        "packets for the cluster's ranges left through the default route: \(listing)")
                #expect(packets("elsewhere") == [0], "packets for the cluster's ranges left through another interface: \(listing)")
                #expect((packets("cluster").first ?? 0) > 0, "the counters saw the ranges' traffic on the cluster's devices: \(listing)")
            } catch {
                _ = try? await runCommand("nft", ["delete", "table", "ip", table], timeout: .seconds(10))
                throw error
            }
            let removed = try await runCommand("nft", ["delete", "table", "ip", table], timeout: .seconds(10))
            #expect(removed.status == 0, "\(removed.stderr)")
            try await cluster.ok(["delete", "namespace", ns, "--wait=false"])
        }
    }
}
