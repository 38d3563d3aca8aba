// Cluster DNS on a real cluster (`ballast up`): busybox `nslookup` in a pod, through the
// resolv.conf the kubelet wrote (nameserver the kube-dns ClusterIP), resolves a ClusterIP
// Service and each replica of a StatefulSet behind a headless Service; a replica moved to the
// other node of its zone (cordon + delete, its volume following it) answers at the same name
// with its new address and is reached there (its volume's data over HTTP); SRV records of named ports; a pod's `<a-b-c-d>.<ns>.pod.cluster.local` record. The shared cluster
// runs on a test network of its own.
import ClusterAPI
import ClusterTesting
import Foundation
import Testing
import TestSupport

@Suite("end-to-end cluster DNS", .enabled(if: endToEndCanRun), .timeLimit(.minutes(10)))
struct ClusterDNSEndToEndTests {
    @Test func servicesAndReplicasResolveAndFollowAMove() async throws {
        try await sharedCluster.with { cluster in
            let ns = try await cluster.namespace("e2e-dns-names")
            let zoneA = """
                      affinity:
                        nodeAffinity:
                          requiredDuringSchedulingIgnoredDuringExecution:
                            nodeSelectorTerms: [{matchExpressions: [{key: topology.kubernetes.io/zone, operator: In, values: [ballast-1a]}]}]

                """
            let manifest = """
                apiVersion: v1
                kind: Service
                metadata: {name: db}
                spec:
                  clusterIP: None
                  selector: {app: db}
                  ports: [{name: pg, port: 5432}]
                ---
                apiVersion: v1
                kind: Service
                metadata: {name: front}
                spec:
                  selector: {app: db}
                  ports: [{name: http, port: 80}]
                ---
                apiVersion: v1
                kind: Pod
                metadata: {name: client}
                spec:
                  terminationGracePeriodSeconds: 1
                  containers:
                  - name: client
                    image: busybox
                    command: ["sh", "-c", "exec sleep 3600"]
                ---

                """ + statefulSetYAML("db", replicas: 2, templateSpec: zoneA)
            try await cluster.apply(manifest, namespace: ns)
            guard await cluster.waitSetReady("db", replicas: 2, namespace: ns),
                  await cluster.waitReady("client", namespace: ns) else { return }
            let domain = "svc.cluster.local"
            let dns = cluster.network.network.serviceCIDR.address(10)
            let resolv = try await cluster.ok(["exec", "-n", ns, "client", "--", "cat", "/etc/resolv.conf"])
            #expect(resolv.contains("nameserver \(dns)") && resolv.contains("search \(ns).\(domain) \(domain) cluster.local"), "\(resolv)")

            /// The A addresses busybox nslookup prints for `name` (not the server's own line).
            func lookup(_ name: String) async -> [String] {
                let output = (try? await cluster.kubectl(["exec", "-n", ns, "client", "--", "nslookup", "-type=a", name]))?.stdout ?? ""
                return output.split(separator: "\n").compactMap { line -> String? in
                    guard line.hasPrefix("Address:"), !line.contains("#53"), !line.hasSuffix(":53") else { return nil }
                    return line.split(whereSeparator: { $0 == " " || $0 == "\t" }).last.map(String.init)
                }.sorted()
            }
            /// The address the C library's resolver gives a short name, through the search path
            /// and ndots:5 of the pod's resolv.conf (busybox nslookup ignores the search path):
            /// nc to port 1 fails, naming the address it tried. (busybox wget would do as well,
            /// but this image's wget dies of SIGSEGV even on `http://127.0.0.1:1/`.)
            func libcAddress(_ name: String) async -> String {
                let result = try? await cluster.kubectl(["exec", "-n", ns, "client", "--", "nc", "-w", "3", name, "1"])
                let text = (result?.stdout ?? "") + (result?.stderr ?? "")
                guard let open = text.firstIndex(of: "("), let close = text[open...].firstIndex(of: ")") else { return text }
                return String(text[text.index(after: open)..<close])
            }
            let vip = await cluster.get("service/front", namespace: ns, "{.spec.clusterIP}")
            #expect(await lookup("front.\(ns).\(domain)") == [vip], "the ClusterIP Service")
            #expect(await lookup("kubernetes.default.\(domain)") == [cluster.network.network.serviceCIDR.address(1)])
            var addresses: [String: String] = [:]
            for replica in ["db-0", "db-1"] {
                addresses[replica] = await cluster.get("pod/\(replica)", namespace: ns, "{.status.podIP}")
                #expect(await lookup("\(replica).db.\(ns).\(domain)") == [addresses[replica]!], "replica \(replica)")
            }
            #expect(await lookup("db.\(ns).\(domain)") == addresses.values.sorted(), "the headless Service: every ready replica")
            // SRV for the named ports: one per ready replica of the headless Service, the
            // Service's own name for the ClusterIP one (busybox prints `service = prio weight port target`).
            let srv = (try? await cluster.kubectl(["exec", "-n", ns, "client", "--", "nslookup", "-type=srv", "_pg._tcp.db.\(ns).\(domain)"]))?.stdout ?? ""
            #expect(srv.contains("5432 db-0.db.\(ns).\(domain)") && srv.contains("5432 db-1.db.\(ns).\(domain)"), "SRV of the headless Service's named port: \(srv)")
            let frontSRV = (try? await cluster.kubectl(["exec", "-n", ns, "client", "--", "nslookup", "-type=srv", "_http._tcp.front.\(ns).\(domain)"]))?.stdout ?? ""
            #expect(frontSRV.contains("0 100 80 front.\(ns).\(domain)"), "SRV of the ClusterIP Service's named port: \(frontSRV)")
            let shortReplica = await libcAddress("db-1.db"), shortService = await libcAddress("front")
            #expect(shortReplica == addresses["db-1"], "a replica by its short name, through the search path")
            #expect(shortService == vip, "a Service by its short name")
            #expect(await lookup("nothing.\(ns).\(domain)").isEmpty)
            // A pod's own record, `<a-b-c-d>.<ns>.pod.cluster.local` (the pod range only).
            let clientIP = await cluster.get("pod/client", namespace: ns, "{.status.podIP}")
            #expect(await lookup(clientIP.replacingOccurrences(of: ".", with: "-") + ".\(ns).pod.cluster.local") == [clientIP], "the client's pod record")
            #expect(await lookup("192-0-2-1.\(ns).pod.cluster.local").isEmpty, "an address outside the pod range has no pod record")

            // The move: db-0's node cordoned, db-0 deleted; it comes back on the other node of
            // zone a with its volume, under the same name.
            let (node, back) = try await cluster.moveOffItsNode("db-0", namespace: ns)
            guard back else { return }
            let moved = await cluster.get("pod/db-0", namespace: ns, "{.status.podIP}")
            #expect(await cluster.get("pod/db-0", namespace: ns, "{.spec.nodeName}") != node, "db-0 moved")
            #expect(moved != addresses["db-0"], "a new address on the new node")
            guard await cluster.waitFor("db-0's name follows it", namespace: ns, timeout: .seconds(60), {
                await lookup("db-0.db.\(ns).\(domain)") == [moved]
            }) else { return }
            // And is reached there: a server in the moved replica hands out the identity it wrote
            // to its volume before the move, fetched by the replica's name.
            let identity = try await cluster.ok(["exec", "-n", ns, "db-0", "--", "cat", "/data/identity"])
            #expect(identity.hasPrefix("db-0 "), "\(identity)")
            try await cluster.ok(["exec", "-n", ns, "db-0", "--", "httpd", "-p", "8080", "-h", "/data"])
            let fetched = try await cluster.fetch(from: "client", namespace: ns, "http://db-0.db.\(ns).\(domain):8080/identity")
            #expect(fetched.status == 0 && fetched.stdout == identity, "the moved db-0 at its name: \(fetched)")
        }
    }
}
