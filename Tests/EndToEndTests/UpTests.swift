// `ballast up --detach` as a user runs it: a two-node cluster on temporary dirs, a PVC and a pod
// applied with kubectl, the pod writing to its loop-device volume, `ballast status` (text and
// JSON), a kubelet crash (`ballast node kill`), then `ballast down --purge`, which must leave no
// process, mount or loop device behind, and none of the network objects seen while it ran
// (kube-proxy's tables and processes, the cluster DNS's address and process, the pod's
// namespace and veth, bridges, routes: ClusterNetworkObjects).
import ClusterTesting
import Foundation
import HostSystem
import Testing
import TestSupport

@Suite("ballast up", .enabled(if: endToEndCanRun))
struct UpTests {
    @Test("up --detach, a pod writing to its PVC, status, node kill, down --purge leaves nothing")
    func upWriteDown() async throws {
        let cluster = try await TestCluster.start(nodes: 2, zones: 1)
        // The network objects seen while it runs, each checked gone after `down --purge`.
        var network = ClusterNetworkObjects()
        try await cluster.run(afterDown: { await network.stillPresent(cluster) }) { cluster in
            #expect(try await cluster.ok(["get", "nodes", "-o", "name"]) == "node/node-1\nnode/node-2\n")
            #expect(try await cluster.ok(["get", "storageclass", "-o", "name"])
                == "storageclass.storage.k8s.io/ballast-loop\nstorageclass.storage.k8s.io/ballast-loop-immediate\n")
            try await cluster.apply(claimYAML("data") + "---\n"
                                    + podYAML("writer", claim: "data", command: "echo hello > /data/f && cat /data/f && exec sleep 3600"), namespace: "default")
            #expect(await cluster.waitReady("writer", namespace: "default"))
            await cluster.waitFor("writer's log", namespace: "default", timeout: .seconds(20)) {
                try await cluster.kubectl(["logs", "writer"]).stdout == "hello\n"
            }
            let status = try await cluster.ballast(["status"])
            #expect(status.status == 0, "\(status)")
            #expect(status.stdout.contains("node-1  Ready=True") && status.stdout.contains("1 persistent volume")
                    && status.stdout.contains("kubelet-node-2") && status.stdout.contains("kube-proxy-node-2") && !status.stdout.contains("DOWN"), "\(status.stdout)")
            let json = try await cluster.ballast(["status", "-o", "json"])
            let report = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
            #expect(report?["healthy"] as? Bool == true && (report?["components"] as? [Any])?.count == 13, "\(json.stdout)")
            // A kubelet crash (`ballast node kill`): the supervisor starts it again, which adopts the
            // running container: exec reaches it through the new kubelet, no restart counted.
            let node = await cluster.get("pod/writer", "{.spec.nodeName}")
            let killed = try await cluster.ballast(["node", "kill", node])
            #expect(killed.status == 0, "\(killed)")
            await cluster.waitFor("exec through the restarted kubelet", namespace: "default", timeout: .seconds(30)) {
                try await cluster.kubectl(["exec", "writer", "--", "cat", "/data/f"]).stdout == "hello\n"
            }
            #expect(await cluster.get("pod/writer", "{.status.containerStatuses[0].restartCount}") == "0")

            // kube-proxy's and the cluster DNS's kernel objects and processes, the pod's
            // namespace and veth, the bridges and routes: there now, each gone after down --purge.
            network = await ClusterNetworkObjects.current(cluster)
            let tag = cluster.network.network.tableName
            #expect(network.proxyTables.sorted() == ["ip \(tag)-node-1", "ip \(tag)-node-2"], "\(network.proxyTables)")
            #expect(network.clusterTable == "inet \(tag)" && network.dnsAddress != nil, "\(network)")
            #expect(network.namespaces.count == 1 && network.veths.count == 1, "the writer's namespace and veth: \(network)")
            #expect(network.links.count >= 2 && network.routes.count >= 3, "the writer's node bridge, the Service device; their routes and unreachable: \(network)")
            #expect(Set(network.processes.keys) == ["kube-proxy-node-1", "kube-proxy-node-2", "dns"], "\(network.processes)")
        }
    }
}
