// What the benchmarks that touch the kernel and `ballast up`/`down` leave must go, however they
// end: a sweep of a directory (containers, the processes still running from it, mounts, loop
// devices, cgroups, the files) and a SIGINT / SIGTERM handler that turns Ctrl-C into an event,
// so that the sweep runs instead of the process dying with its mounts in place.
import Dispatch
import Foundation
import HostSystem
import Kubelet

enum HostCleanup {
    /// Removes what a run left under `root`: the containers of the OCI runtime state
    /// directories `runtimeRoots` (deleted with `--force`, which kills them), the processes
    /// whose command line names a path under `root` (the kubelet's shims), the mounts under
    /// `root` (deepest first; lazily when busy), the loop devices backed by files under `root`,
    /// the cgroups `cgroups` (paths as `linux.cgroupsPath` has them) and, with `removeDirectory`,
    /// `root` itself.
    static func sweep(_ root: String, runtimeRoots: [String] = [], runtime: String = "runc", cgroups: [String] = [],
                      removeDirectory: Bool = true) async {
        let binary = SystemCommand.resolve(runtime)
        for state in runtimeRoots where FileManager.default.fileExists(atPath: state) {
            let ids = ((try? await SystemCommand.run([binary, "--root", state, "list", "-q"], timeout: .seconds(30)))?.stdout ?? "")
                .split(separator: "\n").map(String.init).filter { !$0.isEmpty }
            for id in ids {
                _ = try? await SystemCommand.run([binary, "--root", state, "delete", "--force", id], timeout: .seconds(30))
            }
        }
        await killProcesses(under: root)
        // What still runs in the cgroups (a container's processes the runtime did not reap)
        // would keep the mounts busy: killed, and waited for, before they are unmounted.
        let hierarchy = Cgroups.detect()
        let deadline = ContinuousClock.now + .seconds(5)
        var left = Set(cgroups.flatMap { hierarchy.processes($0) })
        while !left.isEmpty && ContinuousClock.now < deadline {
            for pid in left { kill(pid, SIGKILL) }
            try? await Task.sleep(for: .milliseconds(100))
            left = Set(cgroups.flatMap { hierarchy.processes($0) })
        }
        for mount in Mounts.current().reversed() where mount.mountPoint.hasPrefix(root + "/") {
            if (try? await SystemCommand.run(["umount", mount.mountPoint]))?.status != 0 {
                _ = try? await SystemCommand.run(["umount", "-l", mount.mountPoint])
            }
        }
        for device in LoopDevices.all() where LoopDevices.backingFile(of: device)?.hasPrefix(root + "/") == true {
            _ = try? await LoopDevices.detach(device, settle: .seconds(2))
        }
        for path in cgroups { hierarchy.remove(path) }
        if removeDirectory { try? FileManager.default.removeItem(atPath: root) }
    }

    /// Removes the cluster's pod network from the host: its nftables table, bridges, Service
    /// device and routes (after its pods are gone); says what could not be removed.
    static func removeNetwork(_ spec: ClusterSpec) async {
        guard let network = try? spec.network else { return }
        for failure in await HostNetwork.remove(network) {
            say("cannot remove the pod network's \(failure)")
        }
        await HostNetwork.removeUnusedPortmapChains(network: network.tableName)
    }

    /// SIGKILL to every process (but this one) with an argument naming a path under `root`,
    /// by pid, then up to 5 s for them to be gone.
    static func killProcesses(under root: String) async {
        func matching() -> [Int32] {
            ProcessTable.pids { $0.contains { $0.hasPrefix(root + "/") || $0.contains("=" + root + "/") } }
        }
        let deadline = ContinuousClock.now + .seconds(5)
        var pids = matching()
        while !pids.isEmpty && ContinuousClock.now < deadline {
            for pid in pids { kill(pid, SIGKILL) }
            try? await Task.sleep(for: .milliseconds(100))
            pids = matching()
        }
    }
}

/// While it exists, SIGINT and SIGTERM call `handler` (once each signal) instead of ending the
/// process; `cancel()` gives them back their default action.
final class InterruptHandler: @unchecked Sendable {
    private let sources: [DispatchSourceSignal]
    private static let signals = [SIGINT, SIGTERM]

    init(_ handler: @escaping @Sendable (Int32) -> Void) {
        sources = Self.signals.map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { handler(number) }
            source.resume()
            return source
        }
    }

    func cancel() {
        for source in sources { source.cancel() }
        for number in Self.signals { signal(number, SIG_DFL) }
    }
}
