import ArgumentParser
import Foundation
import Kubelet

/// `ballast kubelet-pause` (hidden): starts a pod's pause process — PID 1 of the pod's PID
/// namespace for `shareProcessNamespace` — and exits; see `PodSandbox+Pause.swift`.
struct KubeletPauseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kubelet-pause",
        abstract: "Start a pod's pause process (PID 1 of its shared PID namespace) for the kubelet, and exit.",
        shouldDisplay: false
    )

    @Option(help: "The pod's sandbox directory: the namespace is pinned at <dir>/pid, the pause's pid written to <dir>/pause.pid.")
    var sandbox: String
    @Option(help: "The cgroup the pause runs in.") var cgroup: String
    @Option(help: "Where the cgroup hierarchies are mounted.") var cgroupRoot: String = "/sys/fs/cgroup"

    func run() throws {
        do {
            let pid = try PauseProcess.start(sandbox: sandbox, cgroupRoot: cgroupRoot, cgroupPath: cgroup)
            print(pid)
        } catch let error as KubeletError {
            FileHandle.standardError.write(Data((error.message + "\n").utf8))
            throw ExitCode(1)
        }
    }
}
