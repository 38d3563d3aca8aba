// Services through `ballast kube-proxy` on a `ballast up` cluster (the shared one, namespace
// e2e-kp-*): a ClusterIP balanced over endpoints on two nodes from a pod, from the host and
// through a NodePort on the node's address; a Service without endpoints refused at once; an
// unready pod dropped; a kube-proxy killed with SIGKILL keeping existing rules and re-syncing
// when the supervisor restarts it. `down --purge` leaving no table is checked when the shared
// cluster closes (TestCluster.close counts the proxies' tables among the leftovers).
import ClusterTesting
import Foundation
import HostSystem
import Testing
import TestSupport

@Suite("end-to-end kube-proxy", .enabled(if: endToEndCanRun && TestNetwork.available), .timeLimit(.minutes(10)))
struct KubeProxyEndToEndTests {
    /// `curl` of `url` from the host, at most 3 s.
    func hostFetch(_ url: String) async throws -> CommandResult {
        try await runCommand("curl", ["-s", "-m", "3", url], timeout: .seconds(10))
    }

    @Test("ClusterIP from a pod and the host, balanced across nodes; NodePort; no endpoints refused; unready dropped; kill -9")
    func services() async throws {
        try await sharedCluster.with { cluster in
            let ns = try await cluster.namespace("e2e-kp-basic")
            try await cluster.apply(webServerPod("one", node: "node-1", app: "kp") + webServerPod("two", node: "node-2", app: "kp") + clientPod("client", node: "node-1") + """
                apiVersion: v1
                kind: Service
                metadata: {name: web}
                spec:
                  type: NodePort
                  selector: {app: kp}
                  ports: [{port: 80, targetPort: 8080}]
                ---
                apiVersion: v1
                kind: Service
                metadata: {name: nobody}
                spec:
                  selector: {app: nobody}
                  ports: [{port: 80, targetPort: 8080}]
                """, namespace: ns)
            for pod in ["one", "two", "client"] {
                guard await cluster.waitReady(pod, namespace: ns) else { return }
            }
            let vip = await cluster.get("service/web", namespace: ns, "{.spec.clusterIP}")
            let nodePort = await cluster.get("service/web", namespace: ns, "{.spec.ports[0].nodePort}")
            let empty = await cluster.get("service/nobody", namespace: ns, "{.spec.clusterIP}")
            // Both endpoints answer, from a pod on node-1 (one of them on its own bridge).
            var seen: Set<String> = []
            guard await cluster.waitFor("both endpoints answering at \(vip)", namespace: ns, timeout: .seconds(60), {
                if let answer = try? await cluster.fetch(from: "client", namespace: ns, "http://\(vip)/"), answer.status == 0 {
                    seen.insert(answer.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
                }
                return seen == ["one", "two"]
            }) else { return }
            // From the host: the ClusterIP, and the NodePort on node-2's address.
            for url in ["http://\(vip)/", "http://127.0.1.2:\(nodePort)/"] {
                var answers: Set<String> = []
                for _ in 0..<12 {
                    let answer = try await hostFetch(url)
                    #expect(answer.status == 0, "host → \(url): \(answer)")
                    answers.insert(answer.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
                }
                #expect(answers == ["one", "two"], "host → \(url) balanced: \(answers)")
            }
            // A pod reaching itself through its Service (hairpin, masqueraded).
            for _ in 0..<8 {
                let answer = try await cluster.fetch(from: "one", namespace: ns, "http://\(vip)/")
                #expect(answer.status == 0, "one → \(vip): \(answer)")
            }
            // No endpoints: refused at once, from a pod and from the host.
            let refused = try await cluster.fetch(from: "client", namespace: ns, "http://\(empty)/")
            #expect(refused.status != 0 && refused.stderr.lowercased().contains("refused"), "\(refused)")
            let hostRefused = try await hostFetch("http://\(empty)/")
            #expect(hostRefused.status == 7, "curl exit 7 (connection refused): \(hostRefused)")

            // An unready pod leaves the Service.
            try await cluster.ok(["exec", "-n", ns, "two", "--", "rm", "/tmp/ready"])
            _ = await cluster.waitFor("two unready in the slice", namespace: ns, timeout: .seconds(30), {
                await cluster.get("endpointslices", namespace: ns,
                                  "{range .items[?(@.metadata.labels.kubernetes\\.io/service-name==\"web\")].endpoints[*]}{.conditions.ready} {end}")
                    .split(separator: " ").sorted() == ["false", "true"]
            })
            try await Task.sleep(for: .seconds(1))
            for _ in 0..<10 {
                let answer = try await cluster.fetch(from: "client", namespace: ns, "http://\(vip)/")
                #expect(answer.stdout == "one\n", "only one is ready: \(answer)")
            }

            // kube-proxy of node-1 killed: its rules stay, and its successor picks up a change.
            let pidFile = cluster.data + "/logs/kube-proxy-node-1.pid"
            let pid = Int32((try String(contentsOfFile: pidFile, encoding: .utf8)).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
            #expect(pid > 0 && kill(pid, SIGKILL) == 0, "kill -9 kube-proxy-node-1 (\(pid))")
            let during = try await cluster.fetch(from: "client", namespace: ns, "http://\(vip)/")
            #expect(during.stdout == "one\n", "rules kept while the proxy is down: \(during)")
            try await cluster.ok(["exec", "-n", ns, "two", "--", "touch", "/tmp/ready"])
            seen = []
            #expect(await cluster.waitFor("two back behind the Service after the restart", namespace: ns, timeout: .seconds(60), {
                if let answer = try? await cluster.fetch(from: "client", namespace: ns, "http://\(vip)/"), answer.status == 0 {
                    seen.insert(answer.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
                }
                return seen.contains("two")
            }))
            let newPid = Int32(((try? String(contentsOfFile: pidFile, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
            #expect(newPid != pid && newPid > 0, "the supervisor restarted kube-proxy-node-1")
            let tables = try await runCommand("nft", ["list", "tables", "ip"], timeout: .seconds(10))
            for node in 1...cluster.nodes {
                #expect(tables.stdout.contains("table ip \(cluster.network.network.tableName)-node-\(node)"), "\(tables.stdout)")
            }
            try await cluster.ok(["delete", "namespace", ns, "--wait=false"])
        }
    }
}
