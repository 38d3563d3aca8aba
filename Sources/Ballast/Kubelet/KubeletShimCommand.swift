import ArgumentParser
import Kubelet

/// `ballast kubelet-shim` (hidden): the per-container shim the kubelet starts; see `ContainerShim`.
struct KubeletShimCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kubelet-shim",
        abstract: "Own one container for the kubelet: start it with the OCI runtime, log its output, record its exit.",
        shouldDisplay: false
    )

    @Option(help: "The OCI runtime's executable.") var runtime: String
    @Option(help: "The runtime's state directory (its --root).") var runtimeRoot: String
    @Option(help: "The container id.") var id: String
    @Option(help: "The container's directory: the bundle and its records.") var directory: String
    @Option(help: "The container's CRI log file.") var log: String
    @Option(help: "The container's cgroup path.") var cgroup: String
    @Option(help: "Where the cgroup hierarchies are mounted.") var cgroupRoot: String = "/sys/fs/cgroup"
    @Flag(help: "The container shares the pod's PID namespace: kill what its main process leaves when it ends.") var killAllOnExit = false

    func run() async throws {
        let status = await ContainerShim.run(.init(runtime: runtime, runtimeRoot: runtimeRoot, id: id, directory: directory,
                                                   logPath: log, cgroupsPath: cgroup, cgroupRoot: cgroupRoot,
                                                   killAllOnExit: killAllOnExit))
        throw ExitCode(status)
    }
}
