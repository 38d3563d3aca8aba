// The node's namespace holder (NamespaceHolder, `ballast-shim --hold-namespaces`): pods' UTS
// and IPC namespaces pinned in its mount namespace, none on the host; a container joins them
// there; a restarted kubelet adopts the holder; removing a sandbox unpins it; a holder that died
// is replaced. Real runc, as root; skipped loudly otherwise (RuntimeHarness).
import Foundation
import HostSystem
import Kubelet
import Logging
import Testing
import TestSupport

@Suite("Namespace holder", .enabled(if: runtimeAvailable), .timeLimit(.minutes(2)))
struct NamespaceHolderTests {
    func holder(_ root: String) async throws -> NamespaceHolder {
        var logger = Logger(label: "test.holder")
        logger.logLevel = .warning
        return try await NamespaceHolder(root: root + "/kubelet", shimExecutable: shimBinary(), logger: logger)
    }

    func inode(_ path: String) -> (UInt64, UInt64)? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return (UInt64(info.st_dev), UInt64(info.st_ino))
    }

    @Test func podNamespacesArePinnedInTheHolderAndContainersJoinThem() async throws {
        let h = try RuntimeHarness()
        let first = try await holder(h.root)
        var holders = [first]
        try await withCleanup {
            let pid = try #require(first.pid)
            let (config, layers) = try await h.config(["sleep", "60"], holder: first)
            let sandbox = config.sandbox
            #expect(sandbox.utsNamespace == "/proc/\(pid)/root/pod1/uts")
            #expect(sandbox.isReady, "the UTS and IPC namespaces are pinned in the holder")
            let onHost = Mounts.current().filter { $0.fsType == "nsfs" && $0.mountPoint.hasPrefix(h.root + "/") }.map(\.mountPoint)
            #expect(onHost.isEmpty, "no pin in the host's mount table: \(onHost)")
            let holderMounts = (try? String(contentsOfFile: "/proc/\(pid)/mountinfo", encoding: .utf8))?.split(separator: "\n") ?? []
            #expect(holderMounts.count == 4, "the holder's namespace has its root, /proc and the two pins: \(holderMounts)")

            let record = try await h.runtime.start(config, layers: layers)
            guard case .running(let running) = h.runtime.state(record.id) else { Issue.record("not running"); return }
            for (kind, pin) in [("uts", sandbox.utsNamespace), ("ipc", sandbox.ipcNamespace)] {
                let joined = try #require(inode("/proc/\(running.pid)/ns/\(kind)"))
                let pinned = try #require(inode(pin))
                #expect(joined == pinned, "the container is in the pod's \(kind) namespace")
            }
            let hostname = try await SystemCommand.check(["nsenter", "--uts=" + sandbox.utsNamespace, "hostname"])
            #expect(hostname.trimmingCharacters(in: .whitespacesAndNewlines) == "pod1")

            // A restarted kubelet adopts the holder and finds the pins.
            let adopted = try await holder(h.root)
            holders.append(adopted)
            #expect(adopted.pid == pid)
            #expect(PodSandbox(directory: sandbox.directory, holder: adopted).isReady)

            _ = await h.runtime.stop(record.id, grace: .seconds(1))
            try await h.runtime.remove(record.id)
            try await sandbox.remove()
            #expect(!sandbox.isReady)
            #expect(!FileManager.default.fileExists(atPath: "/proc/\(pid)/root/pod1"), "the pod's directory in the holder is gone")

            // A holder that died is replaced; what it pinned is gone.
            let (again, _) = try await h.config(["sleep", "60"], pod: "pod2", holder: first)
            #expect(again.sandbox.isReady)
            await first.stop()
            #expect(!again.sandbox.isReady, "the pins died with the holder")
            let replaced = try await adopted.ensureRunning()
            #expect(replaced != pid)
            #expect(!PodSandbox(directory: again.sandbox.directory, holder: adopted).isReady)
            #expect(PodSandbox(directory: again.sandbox.directory, holder: adopted).holder == replaced)
        } cleanup: {
            for holder in holders { await holder.stop() }
            await h.close()
        }
        #expect(ProcessTable.pids { $0.contains("--hold-namespaces") && $0.contains { $0.hasPrefix(h.root + "/") } }.isEmpty,
                "no holder left")
    }
}
