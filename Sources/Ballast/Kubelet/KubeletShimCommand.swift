import ArgumentParser
import Foundation
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

extension KubeletShimCommand {
    /// The shim's options read straight from `arguments` (those after `kubelet-shim`), as the
    /// kubelet writes them: `--name value` pairs and `--kill-all-on-exit`. Nil for anything
    /// else (help, a missing or unknown option), which ArgumentParser then reports. The kubelet
    /// starts one shim per container, and ArgumentParser's walk over every command of `ballast`
    /// (reflection, protocol conformance look-ups) cost a few milliseconds of CPU each time.
    static func fastOptions(_ arguments: ArraySlice<String>) -> ContainerShim.Options? {
        var values: [String: String] = [:]
        var killAll = false
        var index = arguments.startIndex
        while index < arguments.endIndex {
            let name = arguments[index]
            if name == "--kill-all-on-exit" {
                killAll = true
                index += 1
                continue
            }
            let known = ["--runtime", "--runtime-root", "--id", "--directory", "--log", "--cgroup", "--cgroup-root"]
            guard known.contains(name), values[name] == nil, index + 1 < arguments.endIndex else { return nil }
            values[name] = arguments[index + 1]
            index += 2
        }
        guard let runtime = values["--runtime"], let runtimeRoot = values["--runtime-root"], let id = values["--id"],
              let directory = values["--directory"], let log = values["--log"], let cgroup = values["--cgroup"] else { return nil }
        return ContainerShim.Options(runtime: runtime, runtimeRoot: runtimeRoot, id: id, directory: directory, logPath: log,
                                     cgroupsPath: cgroup, cgroupRoot: values["--cgroup-root"] ?? "/sys/fs/cgroup", killAllOnExit: killAll)
    }
}
