// What `ballast up` was asked for, kept in DATA_DIR/cluster.json: a later `up` on the same data
// dir reads it back (a flag that contradicts it is an error naming it), `down --purge` knows the
// volumes dir from it. Paths are absolute: the supervisor's children may run elsewhere.
import ClusterAPI
import Foundation
import HostSystem
import Kubelet

struct ClusterSpec: Codable, Equatable {
    var dataDir: String
    var volumesDir: String
    var nodes: Int
    var zones: Int
    var attachLimit: Int
    var cloudLatency: String
    var cloudFaults: String?
    var etcdServers: String
    var apiPort: Int
    var cloudPort: Int
    var kubeletPort: Int
    /// The kubelets' `--cgroup-root`, a cgroup of this cluster's own under /ballast; nil: /ballast.
    var cgroupRoot: String?
    /// The pod range (`--cluster-cidr`); nil (a cluster of an earlier version): the default.
    var clusterCIDR: String?
    /// The Service range (`--service-cluster-ip-range`); nil: the default.
    var serviceCIDR: String?
    /// The tag in the names of the cluster's kernel objects; nil: derived from the data dir.
    var networkTag: String?

    static let fileName = "cluster.json"

    /// The kubeconfig the API server writes.
    var kubeconfig: String { dataDir + "/admin.kubeconfig" }
    var cloudURL: String { "http://127.0.0.1:\(cloudPort)" }
    var cloudKeyFile: String { dataDir + "/cloud/admin.key" }
    var logsDirectory: String { dataDir + "/logs" }
    var controllerSocket: String { dataDir + "/csi/controller.sock" }
    var pidFile: String { dataDir + "/up.pid" }
    var readyFile: String { dataDir + "/up.ready" }

    func nodeName(_ index: Int) -> String { "node-\(index)" }
    func nodeIP(_ index: Int) -> String { "127.0.1.\(index)" }
    func nodeDirectory(_ index: Int) -> String { dataDir + "/nodes/" + nodeName(index) }
    /// The cgroup of node `index`'s pods.
    func nodeCgroup(_ index: Int) -> String { Cgroups.nodePath(root: cgroupRoot ?? "/ballast", node: nodeName(index)) }
    /// The cgroups the nodes' pods live in, for cleanup: the cluster's own root when it has one
    /// (nothing else lives there), else each node's cgroup under /ballast.
    var cgroups: [String] {
        if let cgroupRoot { return [cgroupRoot] }
        return (1...max(1, nodes)).map(nodeCgroup)
    }
    /// The cluster's pod network: ranges and kernel object names.
    var network: ClusterNetwork {
        get throws {
            let cluster = clusterCIDR.map { IPv4CIDR($0) } ?? ClusterNetwork.defaultClusterCIDR
            let service = serviceCIDR.map { IPv4CIDR($0) } ?? ClusterNetwork.defaultServiceCIDR
            guard let cluster else { throw UpFailure("--cluster-cidr \(clusterCIDR ?? ""): expected an IPv4 network such as 198.18.0.0/16") }
            guard let service else { throw UpFailure("--service-cluster-ip-range \(serviceCIDR ?? ""): expected an IPv4 network such as 198.19.0.0/16") }
            do {
                return try ClusterNetwork(tag: networkTag ?? ClusterNetwork.tag(for: dataDir), clusterCIDR: cluster, serviceCIDR: service)
            } catch {
                throw UpFailure(error.message)
            }
        }
    }
    /// The cluster DNS's address, the kube-dns Service's ClusterIP: the 10th address of the
    /// Service range, as kubeadm picks it (the last but one of a range too small for that).
    var clusterDNS: String {
        get throws {
            let range = try network.serviceCIDR
            return range.address(UInt32(min(10, range.size - 2)))
        }
    }
    /// The supervised components, in start order (their logs are `<logs>/<name>.log`).
    var components: [String] {
        ["apiserver", "cloud", "csi-controller", "cloud-controller-manager", "controller-manager", "scheduler", "dns"]
            + (1...max(1, nodes)).flatMap { ["csi-" + nodeName($0), "kubelet-" + nodeName($0), "kube-proxy-" + nodeName($0)] }
    }
    /// The kubelets' runtime state roots.
    var runtimeRoots: [String] { (1...max(1, nodes)).map(runtimeRoot) }
    func runtimeRoot(_ index: Int) -> String { nodeDirectory(index) + "/kubelet/runtime/runc" }

    static func read(dataDir: String) throws -> ClusterSpec? {
        let path = dataDir + "/" + fileName
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        do {
            return try JSONDecoder().decode(ClusterSpec.self, from: data)
        } catch {
            throw UpFailure("\(path) cannot be read (\(error)): fix it, or remove the data dir with `ballast down --purge`")
        }
    }

    func write() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: URL(fileURLWithPath: dataDir + "/" + Self.fileName), options: .atomic)
    }
}

/// One line to the user, written at once (unbuffered: a detached supervisor's log shows its
/// progress as it happens).
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// A failure of `up`, `down` or `status`, said to the user as is.
struct UpFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension String {
    /// This path made absolute against the working directory, without a trailing slash.
    var absolutePath: String {
        let url = hasPrefix("/") ? URL(fileURLWithPath: self) : URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(self)
        return url.standardizedFileURL.path
    }
}

/// The pid in DATA_DIR/up.pid when that process still runs `ballast`.
func runningSupervisor(_ spec: ClusterSpec) -> Int32? {
    guard let text = try? String(contentsOfFile: spec.pidFile, encoding: .utf8),
          let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0,
          let arguments = ProcessTable.arguments(of: pid) else { return nil }
    return arguments.contains("up") && arguments.contains(where: { $0.hasSuffix("ballast") || $0 == "/proc/self/exe" }) ? pid : nil
}
