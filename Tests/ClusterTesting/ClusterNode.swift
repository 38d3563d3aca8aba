// A real node of a `ProcessCluster`: a cloud instance, `ballast csi --mode node` on its own
// socket and `ballast kubelet` with its own root, node IP (127.0.1.N) and port. The node name is
// unique per cluster (`<prefix>-N`): cgroups live under /ballast/<node>, shared by every test of
// the machine. `close()` stops both processes, then removes what the node's pods left behind —
// containers (with their shims), mounts, cgroups — as a test must even when it failed.
import APIClient
import ClusterAPI
import CloudProvider
import Foundation
import HostSystem
import Kubelet
import Synchronization
import TestSupport

public final class ClusterNode: Sendable {
    public let name: String
    public let index: Int
    public let ip: String
    public let port: Int
    /// The kubelet's root directory.
    public let root: String
    public let logsDirectory: String
    public let socket: String
    public let csi: Daemon
    /// The kubelet (a new process after `restartKubelet`).
    public var kubelet: Daemon { current.withLock { $0 } }
    private let current: Mutex<Daemon>
    private let kubeletArguments: [String]

    init(cluster: ProcessCluster, name: String, index: Int, networkArguments: [String] = []) {
        self.name = name
        self.index = index
        ip = "127.0.1.\(index)"
        port = freePort()
        let directory = cluster.root + "/" + name
        root = directory + "/kubelet"
        logsDirectory = directory + "/logs"
        socket = directory + "/csi.sock"
        csi = Daemon("csi-\(name)", arguments: ["csi", "--mode", "node", "--node-id", name, "--endpoint", "unix://" + socket,
                                                 "--driver-name", ProcessCluster.driverName, "--kubelet-root", root,
                                                 "--cloud-url", "http://127.0.0.1:\(cluster.cloudPort)", "--cloud-key-file", cluster.root + "/cloud/admin.key",
                                                 "--log-level", "info"], log: directory + "/csi.log")
        kubeletArguments = ["kubelet", "--node-name", name, "--kubeconfig", cluster.kubeconfig, "--root-dir", root,
                            "--csi-endpoint", "unix://" + socket, "--node-ip", ip, "--port", "\(port)",
                            "--image-dir", cluster.root + "/images", "--pod-logs-dir", logsDirectory,
                            "--authentication-token-file", cluster.root + "/api/pki/kubelet-client.token", "--cloud-provider", "external",
                            "--log-level", "info"] + networkArguments
        current = Mutex(Daemon("kubelet-\(name)", arguments: kubeletArguments, log: directory + "/kubelet.log"))
    }

    /// A new kubelet process over the same root (the old one must have ended).
    public func restartKubelet() throws {
        let daemon = Daemon("kubelet-\(name)", arguments: kubeletArguments, log: kubelet.log)
        current.withLock { $0 = daemon }
        try daemon.start()
    }

    /// Stops the processes and removes what the node's pods left behind.
    func close() async {
        await kubelet.stop(grace: .seconds(5))
        await csi.stop(grace: .seconds(5))
        let stateDirectory = root + "/runtime/runc"
        if let listed = try? await runCommand("runc", ["--root", stateDirectory, "list", "-q"], timeout: .seconds(30)) {
            for id in listed.stdout.split(separator: "\n") {
                _ = try? await runCommand("runc", ["--root", stateDirectory, "delete", "--force", String(id)], timeout: .seconds(30))
            }
        }
        // The shims of this node's containers end once their containers are gone; any left is
        // killed, and so is a pod's pause process.
        for pid in shims() { kill(pid, SIGKILL) }
        let mounts = Mounts.current().map(\.mountPoint).filter { $0.hasPrefix(root + "/") }
        for mount in mounts.reversed() { _ = try? await runCommand("umount", ["-l", mount], timeout: .seconds(30)) }
        Cgroups.detect().remove(Cgroups.nodePath(node: name))
    }

    /// What this node leaves on the machine: mounts under its root, cgroups, processes of its
    /// containers (empty lists when it cleaned up after its pods).
    public func leftovers() -> (mounts: [String], cgroups: [String], shims: Int) {
        let mounts = Mounts.current().map(\.mountPoint).filter { $0.hasPrefix(root + "/") && !$0.hasPrefix(root + "/plugins/") }
        let cgroupDirectories = Cgroups.detect().directories(of: Cgroups.nodePath(node: name)).flatMap { directory in
            ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasPrefix("pod") }.map { directory + "/" + $0 }
        }
        return (mounts, cgroupDirectories, shims().count)
    }

    /// The shims of this node's containers, and the pause processes of its pods
    /// (`shareProcessNamespace`), still running.
    func shims() -> [Int32] {
        ProcessTable.pids { arguments in
            (arguments.first?.hasSuffix("/" + OCIRuntime.shimName) == true || arguments.contains("kubelet-pause"))
                && arguments.contains(where: { $0.hasPrefix(root + "/") })
        }
    }
}

extension ProcessCluster {
    /// Registers a cloud instance and starts a node's CSI node plugin and kubelet; returns once
    /// the Node is Ready with its CSINode.
    @discardableResult
    /// With `network`, the kubelet gives pods their own network namespaces on the network's
    /// `index`-th node range (and `kubeletFlags` are added to its command line).
    public func startNode(zone: String = "ballast-1a", network: TestNetwork? = nil, kubeletFlags: [String] = []) async throws -> ClusterNode {
        try await startCloudControllerManager()
        let index = nodes.withLock { $0.count } + 1
        let prefix = (root as NSString).lastPathComponent.replacingOccurrences(of: "bcmp-", with: "n")
        let networkArguments = network.map { test in
            ["--cluster-cidr", "\(test.network.clusterCIDR)", "--pod-cidr", "\(test.podCIDR(index))",
             "--service-cluster-ip-range", "\(test.network.serviceCIDR)", "--network-tag", test.network.tag]
        } ?? []
        let node = ClusterNode(cluster: self, name: "\(prefix)-\(index)", index: index, networkArguments: networkArguments + kubeletFlags)
        nodes.withLock { $0.append(node) }
        try FileManager.default.createDirectory(atPath: node.root, withIntermediateDirectories: true)
        _ = try await cloud.registerInstance(RegisterInstanceRequest(name: node.name, zone: zone,
                                                                     addresses: [InstanceAddress(type: "InternalIP", address: node.ip)]))
        try node.csi.start()
        try await until("the CSI node socket of \(node.name)", node.csi) { FileManager.default.fileExists(atPath: node.socket) }
        try node.kubelet.start()
        try await waitForNodeReady(node)
        return node
    }

    /// Waits until `node` is Ready, initialised by the cloud controller manager (zone label, no
    /// `uninitialized` taint) and its CSINode lists the driver.
    public func waitForNodeReady(_ node: ClusterNode) async throws {
        try await until("node \(node.name) Ready, initialised, with its CSINode", node.kubelet) {
            guard let object = try? await self.client.get(Node.self, name: node.name),
                  object.status.conditions?.contains(where: { $0.type == "Ready" && $0.status == "True" }) == true,
                  object.metadata.labels?["topology.kubernetes.io/zone"] != nil,
                  !(object.spec.taints ?? []).contains(where: { $0.key == "node.cloudprovider.kubernetes.io/uninitialized" }),
                  let csiNode = try? await self.client.get(CSINode.self, name: node.name) else { return false }
            return csiNode.spec.drivers.contains { $0.name == ProcessCluster.driverName }
        }
    }

    /// The default StorageClass of `ballast up`: the loop driver, bound when a pod needs it.
    public func createDefaultStorageClass(name: String = "ballast-loop", bindingMode: String = "WaitForFirstConsumer") async throws {
        let manifest = """
            apiVersion: storage.k8s.io/v1
            kind: StorageClass
            metadata:
              name: \(name)
              annotations: {storageclass.kubernetes.io/is-default-class: "true"}
            provisioner: \(ProcessCluster.driverName)
            volumeBindingMode: \(bindingMode)
            allowVolumeExpansion: true
            """
        let applied = try await kubectl(["apply", "-f", "-"], input: manifest)
        guard applied.status == 0 else { throw TestFailure("kubectl apply StorageClass: \(applied.stderr)") }
    }
}
