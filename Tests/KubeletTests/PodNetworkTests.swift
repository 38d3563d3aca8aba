// Pod networking with everything real: two `ballast kubelet` nodes of a process cluster on a
// test network of their own, busybox pods in network namespaces set up by the CNI plugins,
// talking over HTTP on one node and across nodes; the containers of a pod sharing one
// namespace; each node's conflist; a hostNetwork pod on the node's; resolv.conf
// per dnsPolicy; nothing reachable outside the cluster's ranges; nothing left once the pods
// are deleted and the network removed.
import ClusterAPI
import ClusterTesting
import Foundation
import HostSystem
import Kubelet
import Testing
import TestSupport

@Suite("Pod network on a cluster", .enabled(if: clusterTestsCanRun && TestNetwork.available))
struct PodNetworkTests {
    func server(_ name: String, node: String, hostPort: Int? = nil) -> String {
        """
        apiVersion: v1
        kind: Pod
        metadata: {name: \(name)}
        spec:
          nodeName: \(node)
          terminationGracePeriodSeconds: 1
          containers:
          - name: c
            image: busybox
            command: ["sh", "-c", "mkdir -p /www && echo hello from $(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www"]
            env: [{name: MY_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}]
            readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
        \(hostPort.map { "    ports: [{containerPort: 8080, hostPort: \($0)}]\n" } ?? "")---

        """
    }

    @Test("pods get their own address on their node's range, reach each other on one node and across nodes, nothing else; hostNetwork keeps the node's; teardown releases everything")
    func podToPod() async throws {
        let test = try await TestNetwork.claim()
        try await withCleanup {
            // What `ballast up` installs before any kubelet starts.
            try await HostNetwork.install(test.network, podSubnets: [test.podCIDR(1), test.podCIDR(2)])
            try await withCluster(scheduler: true) { c in
                let dns = test.network.serviceCIDR.address(10)
                let one = try await c.startNode(network: test, kubeletFlags: ["--cluster-dns", dns])
                let two = try await c.startNode(network: test, kubeletFlags: ["--cluster-dns", dns])
                let hostPort = Int.random(in: 20000..<30000)
                try await c.apply(server("a", node: one.name) + server("b", node: one.name) + server("c", node: two.name, hostPort: hostPort) + """
                    apiVersion: v1
                    kind: Pod
                    metadata: {name: duo}
                    spec:
                      nodeName: \(one.name)
                      terminationGracePeriodSeconds: 1
                      containers:
                      - {name: web, image: busybox, command: ["sh", "-c", "mkdir -p /www && echo duo > /www/index.html && exec httpd -f -p 8080 -h /www"]}
                      - {name: peer, image: busybox, command: ["sleep", "3600"]}
                    ---
                    apiVersion: v1
                    kind: Pod
                    metadata: {name: host}
                    spec:
                      nodeName: \(one.name)
                      hostNetwork: true
                      terminationGracePeriodSeconds: 1
                      containers:
                      - {name: c, image: busybox, command: ["sleep", "3600"]}
                    """)
                var ips: [String: String] = [:]
                for (name, node) in [("a", one), ("b", one), ("c", two)] {
                    // Ready: the httpGet probe asks the pod's own address.
                    let pod = try await c.waitForPod(name, "Running and ready", timeout: .seconds(90)) { $0.isRunning("c") && $0.isReady && $0.status.podIP != nil }
                    let ip = try #require(pod.status.podIP)
                    ips[name] = ip
                    let range = test.podCIDR(node.index)
                    #expect(range.contains(ip) && ip != range.address(1), "pod \(name) on \(node.name): \(ip) in \(range)")
                    #expect(pod.status.hostIP == node.ip)
                    #expect(pod.status.podIPs?.first?["ip"]?.stringValue == ip)
                    // status.podIP through the downward API is the pod's own address.
                    let env = try await c.kubectl("exec", name, "--", "sh", "-c", "echo $MY_IP")
                    #expect(env.stdout == ip + "\n", "\(env)")
                }
                #expect(Set(ips.values).count == 3)

                // Each node's network list, written by its kubelet under its root from the Node's podCIDR.
                for node in [one, two] {
                    let path = node.root + "/cni/net.d/10-ballast.conflist"
                    let list = try JSONValue(parsing: try Data(contentsOf: URL(fileURLWithPath: path)))
                    let bridge = list["plugins"]?[0]
                    #expect(list["name"]?.stringValue == test.network.tableName && list["cniVersion"]?.stringValue == "1.0.0", "\(path): \(list)")
                    #expect(bridge?["type"]?.stringValue == "bridge" && bridge?["bridge"]?.stringValue == test.network.bridgeName(for: test.podCIDR(node.index)))
                    #expect(bridge?["ipam"]?["ranges"]?[0]?[0]?["subnet"]?.stringValue == "\(test.podCIDR(node.index))", "\(path): \(list)")
                }
                // The containers of a pod share its network namespace: one address, one loopback.
                let duo = try await c.waitForPod("duo", "both containers running", timeout: .seconds(90)) { $0.isRunning("web") && $0.isRunning("peer") && $0.status.podIP != nil }
                // web is Running once its shell starts, a moment before httpd listens: try for 10 s.
                let local = try await c.kubectl("exec", "duo", "-c", "peer", "--", "sh", "-c",
                                                "for i in $(seq 50); do wget -q -O - http://127.0.0.1:8080/ && exit 0; sleep 0.2; done; exit 1")
                #expect(local.stdout == "duo\n", "peer → web over the pod's loopback: \(local)")
                for container in ["web", "peer"] {
                    let address = try await c.kubectl("exec", "duo", "-c", container, "--", "ip", "-4", "-o", "addr", "show", "eth0")
                    #expect(address.stdout.contains(" \(duo.status.podIP!)/"), "\(container)'s eth0: \(address)")
                }

                // HTTP on one node (a → b) and across nodes (a → c, c → a), with busybox wget (without -T:
                // Debian's static busybox 1.35 crashes on it).
                for (from, to) in [("a", "b"), ("a", "c"), ("c", "a"), ("b", "b")] {
                    let fetched = try await c.kubectl("exec", from, "--", "wget", "-q", "-O", "-", "http://\(ips[to]!):8080/")
                    #expect(fetched.status == 0 && fetched.stdout == "hello from \(to)\n", "\(from) → \(to): \(fetched)")
                }
                // The host reaches pods through their bridges too.
                let fromHost = try await SystemCommand.run(["busybox", "wget", "-q", "-O", "-", "http://\(ips["c"]!):8080/"], timeout: .seconds(15))
                #expect(fromHost.stdout == "hello from c\n", "\(fromHost)")
                // c's hostPort on its node's address (portmap).
                let viaHostPort = try await SystemCommand.run(["busybox", "wget", "-q", "-O", "-", "http://\(two.ip):\(hostPort)/"], timeout: .seconds(15))
                #expect(viaHostPort.stdout == "hello from c\n", "\(viaHostPort)")

                // A restarted kubelet adopts the pod with its address (from the CNI cache): same
                // container, same IP, still ready and reachable.
                let before = try await c.pod("a")
                await one.kubelet.kill9()
                try one.restartKubelet()
                try await c.waitForNodeReady(one)
                try await Task.sleep(for: .seconds(3))   // a few passes of the restarted kubelet's workers
                let after = try await c.waitForPod("a", "running and ready again") { $0.isRunning("c") && $0.isReady }
                #expect(after.containerID("c") == before.containerID("c") && after.status.podIP == ips["a"])
                let again = try await c.kubectl("exec", "b", "--", "wget", "-q", "-O", "-", "http://\(ips["a"]!):8080/")
                #expect(again.stdout == "hello from a\n", "\(again)")

                // Only the cluster's ranges are routed in a pod: no default route, nothing outside.
                let routes = try await c.kubectl("exec", "a", "--", "cat", "/proc/net/route")
                #expect(routes.status == 0 && !routes.stdout.contains("eth0\t00000000\t"), "no default route: \(routes.stdout)")
                let outside = try await c.kubectl("exec", "a", "--", "wget", "-q", "-O", "-", "http://192.0.2.1/")
                #expect(outside.status != 0 && outside.stderr.lowercased().contains("unreachable"), "\(outside)")
                // A Service address nothing rewrote is refused where it is sent (the host's nftables table).
                let service = try await c.kubectl("exec", "a", "--", "wget", "-q", "-O", "-", "http://\(dns):8080/")
                #expect(service.status != 0 && service.stderr.lowercased().contains("refused"), "\(service)")

                // resolv.conf: ClusterFirst with the kubelet's --cluster-dns.
                let resolv = try await c.kubectl("exec", "a", "--", "cat", "/etc/resolv.conf")
                #expect(resolv.stdout.hasPrefix("search default.svc.cluster.local svc.cluster.local cluster.local"), "\(resolv.stdout)")
                #expect(resolv.stdout.contains("nameserver \(dns)\n") && resolv.stdout.contains("options ndots:5"), "\(resolv.stdout)")

                // hostNetwork: the node's address and namespace (the node's bridge is visible), the node's resolver.
                let host = try await c.waitForPod("host", "Running", timeout: .seconds(60)) { $0.isRunning("c") }
                #expect(host.status.podIP == one.ip)
                let bridge = test.network.bridgeName(for: test.podCIDR(one.index))!
                let links = try await c.kubectl("exec", "host", "--", "ls", "/sys/class/net")
                #expect(links.stdout.contains(bridge), "\(links.stdout)")
                let hostResolv = try await c.kubectl("exec", "host", "--", "cat", "/etc/resolv.conf")
                #expect(!hostResolv.stdout.contains("svc.cluster.local"), "\(hostResolv.stdout)")

                // Deleting the pods runs CNI DEL: addresses released, veths gone, namespaces unmounted.
                let deleted = try await c.kubectl(["delete", "pod", "a", "b", "c", "duo", "host", "--wait=true"], timeout: .seconds(90))
                #expect(deleted.status == 0, "\(deleted)")
                for node in [one, two] {
                    let ipam = node.root + "/cni/ipam/\(test.network.tableName)"
                    let held = ((try? FileManager.default.contentsOfDirectory(atPath: ipam)) ?? []).filter { IPv4CIDR.parseAddress($0) != nil }
                    #expect(held.isEmpty, "\(node.name) still holds \(held)")
                    let name = test.network.bridgeName(for: test.podCIDR(node.index))!
                    let ports = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/net/\(name)/brif")) ?? []
                    #expect(ports.isEmpty, "veths left on \(name): \(ports)")
                    let cache = (try? FileManager.default.contentsOfDirectory(atPath: node.root + "/cni/cache/results")) ?? []
                    #expect(cache.isEmpty, "\(cache)")
                    #expect(Mounts.current().filter { $0.mountPoint.hasPrefix(node.root + "/pods/") }.isEmpty)
                }
                let nat = try await SystemCommand.run(["iptables", "-w", "-t", "nat", "-S"], timeout: .seconds(10)).stdout
                #expect(!nat.contains("\(hostPort)"), "c's mapping is gone: \(nat)")
            }
        } cleanup: {
            let failures = await test.release()
            #expect(failures.isEmpty, "\(failures)")
            #expect(await test.leftovers() == [])
            let nat = (try? await SystemCommand.run(["iptables", "-w", "-t", "nat", "-S"], timeout: .seconds(10)))?.stdout ?? ""
            #expect(!nat.contains("ballast-\(test.network.tag)"), "\(nat)")
        }
    }
}
