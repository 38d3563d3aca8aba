// What `ballast up` makes for the cluster DNS before starting `ballast dns`: the Service
// kube-system/kube-dns (as kubeadm names it) at a fixed ClusterIP, without selector, its
// EndpointSlice naming that same address (so that a kube-proxy, which rejects Services without
// endpoints, lets DNS through, its rewrite leaving the address as it is), and the address on the
// cluster's Service device, where `ballast dns` listens.
import APIClient
import ClusterAPI
import Kubelet

struct ClusterDNSSetup {
    static let domain = "cluster.local"
    static let namespace = "kube-system"
    static let name = "kube-dns"
    static let sliceName = "kube-dns-ballast"
    let address: String
    let network: ClusterNetwork

    func install(_ client: KubeClient) async throws {
        try await HostNetwork.addServiceAddress(network, address)
        let labels = ["k8s-app": "kube-dns", "kubernetes.io/name": "KubeDNS", "kubernetes.io/cluster-service": "true"]
        let service = ClusterAPI.Service(metadata: ObjectMeta(name: Self.name, namespace: Self.namespace, labels: labels), spec: [
            "type": "ClusterIP", "clusterIP": .string(address), "clusterIPs": [.string(address)],
            "ports": [["name": "dns", "protocol": "UDP", "port": 53, "targetPort": 53],
                      ["name": "dns-tcp", "protocol": "TCP", "port": 53, "targetPort": 53]],
        ])
        // A later `up` on the same data dir finds it made: creating it again would be refused for
        // its address ("provided IP is already allocated") before the name's conflict.
        let existing: ClusterAPI.Service?
        do {
            existing = try await client.get(ClusterAPI.Service.self, name: Self.name, namespace: Self.namespace)
        } catch let error as APIError where error.isNotFound {
            existing = nil
        }
        if let existing {
            try check(existing)
        } else {
            do {
                _ = try await client.create(service)
            } catch let error as APIError where error.code == 409 {
                try check(try await client.get(ClusterAPI.Service.self, name: Self.name, namespace: Self.namespace))
            } catch let error as APIError {
                throw UpFailure("cannot create Service \(Self.namespace)/\(Self.name) at \(address) for the cluster DNS: \(error)")
            }
        }
        let slice = EndpointSlice(
            metadata: ObjectMeta(name: Self.sliceName, namespace: Self.namespace, labels: [
                "kubernetes.io/service-name": Self.name, "endpointslice.kubernetes.io/managed-by": "ballast-up",
            ]),
            addressType: "IPv4",
            endpoints: [Endpoint(addresses: [address], conditions: EndpointConditions(ready: true, serving: true, terminating: false))],
            ports: [EndpointPort(name: "dns", protocol: "UDP", port: 53), EndpointPort(name: "dns-tcp", protocol: "TCP", port: 53)])
        do {
            _ = try await client.create(slice)
        } catch let error as APIError where error.code == 409 {
            return
        }
    }

    /// The Service found in place must have the address `ballast dns` listens on.
    private func check(_ existing: ClusterAPI.Service) throws {
        let held = existing.spec?["clusterIP"]?.stringValue ?? ""
        guard held == address else {
            throw UpFailure("Service \(Self.namespace)/\(Self.name) has ClusterIP \(held), not \(address) where the cluster DNS listens: delete it (kubectl -n \(Self.namespace) delete service \(Self.name)) and run `ballast up` again")
        }
    }
}
