// Pod networking on a `ballast up` cluster (the shared one, on a test network of its own):
// busybox pods talk over HTTP (wget, and nc by hand) on one node and across nodes; every pod
// and Service address routes to a ballast device or `unreachable` on the host, never the
// default route; a pod reaches nothing outside the cluster's ranges; without cluster DNS a
// ClusterFirst pod gets the node's resolver, with the kubelet's MissingClusterDNS event.
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
            try await cluster.apply(webServerPod("one", node: "node-1", app: "web") + webServerPod("two", node: "node-2", app: "web") + clientPod("client", node: "node-1"), namespace: ns)
            for pod in ["one", "two", "client"] {
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
            try await cluster.ok(["delete", "namespace", ns, "--wait=false"])
        }
    }
}
