// Where kube-proxy sends a Service's connections, on the shared `ballast up` cluster (namespaces
// e2e-kp-affinity, e2e-kp-move): `sessionAffinity: ClientIP` keeps one client on one backend
// while a Service without it spreads the same client over both; a StatefulSet replica moved to
// another node with its volume answers, with the data it wrote there, at the same ClusterIP and
// the same DNS name; a NodePort with `externalTrafficPolicy: Local` answers on each node from that
// node's endpoint only, and drops on a node without one.
import ClusterTesting
import Foundation
import HostSystem
import Testing
import TestSupport

@Suite("end-to-end Service routing", .enabled(if: endToEndCanRun && TestNetwork.available), .timeLimit(.minutes(10)))
struct ServiceRoutingTests {
    /// The answers to `count` requests to `url` from `pod`, one connection each, in one exec.
    func answers(_ cluster: TestCluster, _ ns: String, _ pod: String, _ url: String, count: Int) async throws -> [String] {
        let loop = "for i in $(seq \(count)); do wget -q -O - \(url); done"
        let result = try await cluster.kubectl(["exec", "-n", ns, pod, "--", "sh", "-c", loop], timeout: .seconds(60))
        return result.stdout.split(separator: "\n").map(String.init)
    }

    @Test("sessionAffinity ClientIP: every request of one client reaches the same backend; without it, both")
    func sessionAffinity() async throws {
        try await sharedCluster.with { cluster in
            let ns = try await cluster.namespace("e2e-kp-affinity")
            try await cluster.apply(webServerPod("one", node: "node-1", app: "aff") + webServerPod("two", node: "node-2", app: "aff") + clientPod("client", node: "node-1") + """
                apiVersion: v1
                kind: Service
                metadata: {name: sticky}
                spec:
                  selector: {app: aff}
                  sessionAffinity: ClientIP
                  ports: [{port: 80, targetPort: 8080}]
                ---
                apiVersion: v1
                kind: Service
                metadata: {name: spread}
                spec:
                  selector: {app: aff}
                  ports: [{port: 80, targetPort: 8080}]
                """, namespace: ns)
            for pod in ["one", "two", "client"] {
                guard await cluster.waitReady(pod, namespace: ns) else { return }
            }
            // Both backends in both Services' chains of the client's node proxy, so that one
            // backend answering is the affinity's doing, not a rule still missing the other.
            let table = cluster.network.network.tableName + "-node-1"
            for service in ["sticky", "spread"] {
                guard await cluster.waitFor("\(service) with two endpoints in table ip \(table)", namespace: ns, timeout: .seconds(60), {
                    let chain = try await runCommand("nft", ["list", "chain", "ip", table, "svc-\(ns)/\(service)/tcp/p80"], timeout: .seconds(10))
                    return chain.stdout.contains("numgen random mod 2")
                }) else { return }
            }
            let sticky = await cluster.get("service/sticky", namespace: ns, "{.spec.clusterIP}")
            let spread = await cluster.get("service/spread", namespace: ns, "{.spec.clusterIP}")
            #expect(await cluster.get("service/sticky", namespace: ns, "{.spec.sessionAffinityConfig.clientIP.timeoutSeconds}") == "10800")

            // Without affinity each connection picks a backend at random (1/2 each): all 20 on
            // one backend has probability 2 × 2⁻²⁰ ≈ 2·10⁻⁶.
            let spreadAnswers = try await answers(cluster, ns, "client", "http://\(spread)/", count: 20)
            #expect(spreadAnswers.count == 20 && Set(spreadAnswers) == ["one", "two"], "without affinity: \(spreadAnswers)")
            // With it, the first connection's backend is kept for the client's address; were
            // the affinity ignored, 20 answers from one backend would have probability 2⁻¹⁹.
            let stickyAnswers = try await answers(cluster, ns, "client", "http://\(sticky)/", count: 20)
            #expect(stickyAnswers.count == 20 && Set(stickyAnswers).count == 1, "with ClientIP affinity: \(stickyAnswers)")
            // The client's address is what the kernel remembers, in the set of the backend that
            // answered (the other's set does not have it).
            let clientIP = await cluster.get("pod/client", namespace: ns, "{.status.podIP}")
            for backend in ["one", "two"] {
                let ip = await cluster.get("pod/" + backend, namespace: ns, "{.status.podIP}")
                let set = try await runCommand("nft", ["list", "set", "ip", table, "affinity-10800-\(ns)/sticky/tcp/p80__\(ip)/8080"], timeout: .seconds(10))
                #expect(set.status == 0, "\(set)")
                #expect(set.stdout.contains(clientIP + " ") == (stickyAnswers.first == backend), "\(backend)'s affinity set and client \(clientIP): \(set.stdout)")
            }
            try await cluster.ok(["delete", "namespace", ns, "--wait=false"])
        }
    }

    @Test("externalTrafficPolicy Local: each node's NodePort reaches that node's endpoint only; a node without one drops; the ClusterIP keeps both")
    func externalTrafficPolicyLocal() async throws {
        try await sharedCluster.with { cluster in
            let ns = try await cluster.namespace("e2e-kp-local")
            try await cluster.apply(webServerPod("one", node: "node-1", app: "loc") + webServerPod("two", node: "node-2", app: "loc") + """
                apiVersion: v1
                kind: Service
                metadata: {name: local}
                spec:
                  type: NodePort
                  externalTrafficPolicy: Local
                  selector: {app: loc}
                  ports: [{port: 80, targetPort: 8080}]
                """, namespace: ns)
            for pod in ["one", "two"] {
                guard await cluster.waitReady(pod, namespace: ns) else { return }
            }
            let nodePort = await cluster.get("service/local", namespace: ns, "{.spec.ports[0].nodePort}")
            let vip = await cluster.get("service/local", namespace: ns, "{.spec.clusterIP}")
            // node-1's and node-2's proxies each hold a chain of their one local endpoint.
            for node in ["node-1", "node-2"] {
                let table = cluster.network.network.tableName + "-" + node
                guard await cluster.waitFor("\(node)'s local endpoint in table ip \(table)", namespace: ns, timeout: .seconds(60), {
                    let chain = try await runCommand("nft", ["list", "chain", "ip", table, "ext-\(ns)/local/tcp/p80"], timeout: .seconds(10))
                    return chain.stdout.contains("numgen random mod 1 ")
                }) else { return }
            }
            for (address, expected) in [("127.0.1.1", "one"), ("127.0.1.2", "two")] {
                for _ in 0..<8 {
                    let answer = try await runCommand("curl", ["-s", "-m", "3", "http://\(address):\(nodePort)/"], timeout: .seconds(10))
                    #expect(answer.status == 0 && answer.stdout == expected + "\n", "host → \(address):\(nodePort): \(answer)")
                }
            }
            // node-3 has no endpoint of it: the packet is dropped (curl times out, exit 28), not
            // refused (exit 7) as a Service without any endpoint is.
            let dropped = try await runCommand("curl", ["-s", "-m", "2", "http://127.0.1.3:\(nodePort)/"], timeout: .seconds(10))
            #expect(dropped.status == 28, "node-3's NodePort without a local endpoint: \(dropped)")
            // The ClusterIP keeps both endpoints: 16 connections all on one has probability 2⁻¹⁵.
            var answers: Set<String> = []
            for _ in 0..<16 {
                let answer = try await runCommand("curl", ["-s", "-m", "3", "http://\(vip)/"], timeout: .seconds(10))
                answers.insert(answer.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
            }
            #expect(answers == ["one", "two"], "the ClusterIP from the host: \(answers)")
            try await cluster.ok(["delete", "namespace", ns, "--wait=false"])
        }
    }

    @Test("a StatefulSet replica moved to another node with its volume answers at the same ClusterIP and DNS name")
    func movedReplicaKeepsItsService() async throws {
        try await sharedCluster.with { cluster in
            let ns = try await cluster.namespace("e2e-kp-move")
            // Zone a (node-1 and node-3) only, so that the volume can follow the replica.
            try await cluster.apply(clientPod("client", node: "node-2") + """
                apiVersion: v1
                kind: Service
                metadata: {name: kv}
                spec:
                  selector: {app: kv}
                  ports: [{name: http, port: 80, targetPort: 8080}]
                ---
                apiVersion: apps/v1
                kind: StatefulSet
                metadata: {name: kv}
                spec:
                  serviceName: kv
                  replicas: 1
                  selector: {matchLabels: {app: kv}}
                  template:
                    metadata: {labels: {app: kv}}
                    spec:
                      terminationGracePeriodSeconds: 1
                      affinity:
                        nodeAffinity:
                          requiredDuringSchedulingIgnoredDuringExecution:
                            nodeSelectorTerms: [{matchExpressions: [{key: topology.kubernetes.io/zone, operator: In, values: [ballast-1a]}]}]
                      containers:
                      - name: kv
                        image: busybox
                        command: ["sh", "-c", "[ -s /data/index.html ] || { echo $HOSTNAME $RANDOM$RANDOM > /data/index.html; sync; }; exec httpd -f -p 8080 -h /data"]
                        volumeMounts: [{name: data, mountPath: /data}]
                  volumeClaimTemplates:
                  - metadata: {name: data}
                    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 32Mi}}}
                """, namespace: ns)
            guard await cluster.waitSetReady("kv", replicas: 1, namespace: ns), await cluster.waitReady("client", namespace: ns) else { return }
            let vip = await cluster.get("service/kv", namespace: ns, "{.spec.clusterIP}")
            let name = "kv.\(ns).svc.cluster.local"
            let identity = try await cluster.ok(["exec", "-n", ns, "kv-0", "--", "cat", "/data/index.html"])
            #expect(identity.hasPrefix("kv-0 "), "\(identity)")
            guard await cluster.waitFor("kv-0 answering at \(vip)", namespace: ns, timeout: .seconds(60), {
                try await cluster.fetch(from: "client", namespace: ns, "http://\(vip)/").stdout == identity
            }) else { return }
            let byName = try await cluster.fetch(from: "client", namespace: ns, "http://\(name)/")
            #expect(byName.stdout == identity, "kv-0 at \(name): \(byName)")

            // The move: kv-0's node cordoned, kv-0 deleted; it comes back on the other node of
            // zone a with its volume.
            let oldIP = await cluster.get("pod/kv-0", namespace: ns, "{.status.podIP}")
            let (node, back) = try await cluster.moveOffItsNode("kv-0", namespace: ns)
            guard back else { return }
            let newNode = await cluster.get("pod/kv-0", namespace: ns, "{.spec.nodeName}")
            let newIP = await cluster.get("pod/kv-0", namespace: ns, "{.status.podIP}")
            #expect(newNode != node && newIP != oldIP, "kv-0 moved: \(node) \(oldIP) → \(newNode) \(newIP)")
            // Same ClusterIP, same data (from the volume that followed it), through kube-proxy.
            guard await cluster.waitFor("the moved kv-0 answering at \(vip)", namespace: ns, timeout: .seconds(60), {
                try await cluster.fetch(from: "client", namespace: ns, "http://\(vip)/").stdout == identity
            }) else { return }
            let slice = await cluster.get("endpointslices", namespace: ns,
                                          "{range .items[?(@.metadata.labels.kubernetes\\.io/service-name==\"kv\")].endpoints[*]}{.addresses[0]} {end}")
            #expect(slice.split(separator: " ") == [Substring(newIP)], "the slice names the new address only: \(slice)")
            let movedByName = try await cluster.fetch(from: "client", namespace: ns, "http://\(name)/")
            #expect(movedByName.stdout == identity, "the moved kv-0 at \(name): \(movedByName)")
            try await cluster.ok(["delete", "namespace", ns, "--wait=false"])
        }
    }
}
