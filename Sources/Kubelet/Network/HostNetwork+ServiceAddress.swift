// A Service address served by the host itself (the cluster DNS's ClusterIP under `ballast up`):
// assigned to the cluster's Service device, it becomes a local address of this machine. A pod's
// packet to it comes in on the pod's node bridge and is delivered locally (the `input` hook),
// never forwarded, so the table's `forward` rule does not reject it; nothing else can reach it
// from outside, since the Service range is routed nowhere but to this device.
import ClusterAPI
import HostSystem

extension HostNetwork {
    /// Assigns `address` (an address of the Service range) to the Service device, as a /32.
    /// Idempotent; the address goes with the device (`remove`).
    public static func addServiceAddress(_ network: ClusterNetwork, _ address: String) async throws {
        guard network.serviceCIDR.contains(address) else {
            throw KubeletError(.network, "\(address) is not in the Service range \(network.serviceCIDR): a host-served Service address must be one of the range's")
        }
        guard linkExists(network.serviceDevice) else {
            throw KubeletError(.network, "the Service device \(network.serviceDevice) does not exist: install the host network first (HostNetwork.install)")
        }
        try await ip(["addr", "replace", address + "/32", "dev", network.serviceDevice])
    }
}
