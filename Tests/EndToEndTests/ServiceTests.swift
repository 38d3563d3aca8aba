// Services in the control plane on a real cluster (`ballast up`): a headless Service in front of
// a StatefulSet lists each ready replica in its EndpointSlices with its hostname, a ClusterIP
// Service gets an address from the cluster's Service range, and every node has its own /24 of
// the pod range from node IPAM (the shared cluster runs on a test network of its own).
import ClusterAPI
import ClusterTesting
import Foundation
import Testing
import TestSupport

@Suite("end-to-end Services", .enabled(if: endToEndCanRun), .timeLimit(.minutes(10)))
struct ServiceEndpointTests {
    @Test func statefulSetReplicasInEndpointSlicesAndNodeCIDRs() async throws {
        try await sharedCluster.with { cluster in
            let ns = try await cluster.namespace("e2e-net-endpoints")
            let manifest = """
                apiVersion: v1
                kind: Service
                metadata: {name: web}
                spec:
                  clusterIP: None
                  selector: {app: web}
                  ports: [{name: http, port: 80, targetPort: http}]
                ---
                apiVersion: v1
                kind: Service
                metadata: {name: web-vip}
                spec:
                  selector: {app: web}
                  ports: [{port: 80, targetPort: 8080}]
                ---
                apiVersion: apps/v1
                kind: StatefulSet
                metadata: {name: web}
                spec:
                  serviceName: web
                  replicas: 2
                  selector: {matchLabels: {app: web}}
                  template:
                    metadata: {labels: {app: web}}
                    spec:
                      terminationGracePeriodSeconds: 1
                      containers:
                      - name: web
                        image: busybox
                        command: ["sh", "-c", "exec sleep 3600"]
                        ports: [{name: http, containerPort: 8080}]

                """
            try await cluster.apply(manifest, namespace: ns)
            guard await cluster.waitFor("both replicas ready in the slices", namespace: ns, {
                let slices = await cluster.get("endpointslices", namespace: ns,
                                               "{range .items[?(@.metadata.labels.kubernetes\\.io/service-name==\"web\")].endpoints[*]}{.hostname}={.conditions.ready} {end}")
                return slices.split(separator: " ").sorted() == ["web-0=true", "web-1=true"]
            }) else { return }
            let addresses = await cluster.get("pods", namespace: ns, "{.items[*].status.podIP}").split(separator: " ").sorted()
            let listed = await cluster.get("endpointslices", namespace: ns,
                                           "{range .items[?(@.metadata.labels.kubernetes\\.io/service-name==\"web\")].endpoints[*]}{.addresses[0]} {end}")
            #expect(listed.split(separator: " ").sorted() == addresses, "the slices list the pods' addresses")
            #expect(await cluster.get("endpointslices", namespace: ns,
                                      "{.items[?(@.metadata.labels.kubernetes\\.io/service-name==\"web\")].ports[0].port}") == "8080",
                    "the named target port resolved")
            let table = try await cluster.ok(["get", "endpointslices", "-n", ns])
            #expect(table.contains("ADDRESSTYPE") && table.contains("IPv4") && table.contains("8080"), "\(table)")
            #expect(try await cluster.ok(["get", "endpoints", "-n", ns, "web"]).contains(":8080"), "the legacy Endpoints too")

            let vip = await cluster.get("service/web-vip", namespace: ns, "{.spec.clusterIP}")
            let network = cluster.network.network
            #expect(network.serviceCIDR.contains(vip), "ClusterIP \(vip) from the Service range \(network.serviceCIDR)")
            #expect(await cluster.get("service/kubernetes", namespace: "default", "{.spec.clusterIP}") == network.serviceCIDR.address(1))

            let cidrs = await cluster.get("nodes", "{.items[*].spec.podCIDR}").split(separator: " ").map(String.init)
            #expect(cidrs.count == cluster.nodes && Set(cidrs).count == cluster.nodes, "one podCIDR per node: \(cidrs)")
            #expect(cidrs.allSatisfy { cidr in
                IPv4CIDR(cidr).map { $0.prefixLength == 24 && network.clusterCIDR.contains($0.network) } == true
            }, "\(cidrs) in \(network.clusterCIDR)")
        }
    }
}
