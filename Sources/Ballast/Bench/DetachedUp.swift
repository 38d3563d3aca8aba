// The cluster a benchmark runs on (`bench e2e`, `bench network`): `ballast up --detach` with its
// data dir under the benchmark's root, its components' logs copied out before the purge, and
// `ballast down --purge` at the end.
import APIClient
import Foundation
import HostSystem

struct DetachedUp {
    /// The benchmark's working directory; the cluster's data dir is `<root>/data`.
    let root: String
    var data: String { root + "/data" }

    /// `ballast up --detach` with `nodes` nodes on free ports, its cgroups under `cgroupRoot`, and
    /// `arguments`: how long until it said every node is Ready, and a client with its admin
    /// kubeconfig.
    func start(nodes: Int, cgroupRoot: String, logLevel: String, _ arguments: [String]) async throws -> (seconds: Double, client: KubeClient) {
        let command = ["/proc/self/exe", "up", "--detach", "--data-dir", data, "--nodes", "\(nodes)",
                       "--api-port", "\(BenchCluster.freePort())", "--cloud-port", "\(BenchCluster.freePort())",
                       "--kubelet-port", "\(BenchCluster.freePort())", "--cgroup-root", cgroupRoot, "--log-level", logLevel]
        let start = ContinuousClock.now
        let up = try await SystemCommand.run(command + arguments, timeout: .seconds(300))
        let elapsed = (ContinuousClock.now - start).seconds
        guard up.status == 0 else { throw BenchFailure("ballast up failed:\n\(up.stdout)\(up.stderr)") }
        return (elapsed, try KubeClient(try Connection.kubeconfig(at: data + "/admin.kubeconfig")))
    }

    /// Copies the components' logs to `<root>/logs`, out of the data dir the purge removes.
    func keepLogs() {
        try? FileManager.default.removeItem(atPath: root + "/logs")
        try? FileManager.default.copyItem(atPath: data + "/logs", toPath: root + "/logs")
    }

    /// `ballast down --purge`.
    func down() async {
        _ = try? await SystemCommand.run(["/proc/self/exe", "down", "--purge", "--data-dir", data], timeout: .seconds(300))
    }
}
