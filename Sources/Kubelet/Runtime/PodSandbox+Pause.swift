// A pod's PID namespace for `shareProcessNamespace: true`, as Kubernetes' runtimes make it: an
// infrastructure ("pause") process is PID 1 of a new PID namespace, reaps the processes
// orphaned in it, and every container of the pod joins that namespace (`linux.namespaces`
// `pid` with a path), so that they see and can signal each other's processes. A container's
// main process is not PID 1 there; it is still reaped by its shim, because `runc` orphans it
// from the host's PID namespace, where the shim is the nearest subreaper (only processes
// orphaned inside the pod's namespace go to the pause).
//
// The pause is forked by `ballast kubelet-pause` (`PauseProcess.start`, pause.c), which exits
// at once: the pause lives in the pod's cgroup (`<pod cgroup>/pause`), outside the kubelet,
// and survives a kubelet restart. Its namespace is pinned like the others, so a container
// never joins another one by a reused pid:
//
//     <root>/pods/<uid>/sandbox/pid          nsfs bind mount of the pause's PID namespace
//     <root>/pods/<uid>/sandbox/pause.pid    the pause's pid (host namespace)
//
// The pause is alive when that pid's command line is `kubelet-pause` of this sandbox and its
// PID namespace is the pinned one. When it dies the kernel kills every process of the
// namespace, so the pod's containers end, and the kubelet starts a new pause before it starts
// them again.
import CKubelet
import Foundation
import HostSystem
#if canImport(Glibc)
import Glibc
#endif

extension PodSandbox {
    public var pidNamespace: String { directory + "/pid" }
    var pausePIDFile: String { directory + "/pause.pid" }

    /// The pause process's pid when it runs for this sandbox (identity checked: its command
    /// line and its PID namespace), else nil.
    public var pausePID: Int32? {
        guard let pid = recordedPause, Self.isPinned(pidNamespace) else { return nil }
        var running = stat(), pinned = stat()
        guard stat("/proc/\(pid)/ns/pid", &running) == 0, stat(pidNamespace, &pinned) == 0,
              running.st_ino == pinned.st_ino, running.st_dev == pinned.st_dev else { return nil }
        return pid
    }

    /// The pid of `pause.pid` when it is a live pause process of this sandbox (its command
    /// line), whatever its namespace: what teardown stops.
    var recordedPause: Int32? {
        guard let text = try? String(contentsOfFile: pausePIDFile, encoding: .utf8),
              let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0,
              let arguments = ProcessTable.arguments(of: pid), arguments.contains("kubelet-pause"), arguments.contains(directory),
              !Self.isZombie(pid) else { return nil }
        return pid
    }

    static func isZombie(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return true }
        return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }

    /// Starts the pause (unless it runs) with `command` (`ballast kubelet-pause`) in cgroup
    /// `cgroupPath`; what a dead one pinned is unpinned first.
    public func ensurePause(command: [String], cgroupRoot: String, cgroupPath: String) async throws {
        if pausePID != nil { return }
        try await stopPause()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let result = try await SystemCommand.run(command + ["--sandbox", directory, "--cgroup", cgroupPath, "--cgroup-root", cgroupRoot],
                                                 timeout: .seconds(30))
        guard result.status == 0, pausePID != nil else {
            try? await stopPause()
            let message = result.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
            throw KubeletError(.runtime, "cannot start the pod's pause process for shareProcessNamespace (\(command.joined(separator: " "))): \(message.isEmpty ? "exit \(result.status)" : message)")
        }
    }

    /// Stops the pause (SIGTERM, SIGKILL after 2 s; the kernel kills what is left in its
    /// namespace) and unpins its namespace.
    public func stopPause() async throws {
        if let pid = recordedPause {
            kill(pid, SIGTERM)
            var waited = 0
            // Each look asks again whether the pid is this sandbox's pause: once it has ended
            // (reaped at once by init), the number may be another process's.
            while recordedPause == pid {
                if waited == 200 { kill(pid, SIGKILL) }
                guard waited < 400 else {
                    throw KubeletError(.runtime, "the pod's pause process \(pid) did not end after SIGKILL")
                }
                waited += 1
                try? await Task.sleep(for: .milliseconds(10))
            }
        }
        var attempts = 0
        while SystemMounter().isMountPoint(pidNamespace) && attempts < 4 {
            if ckl_unmount(pidNamespace, 0) != 0 && errno != EINVAL && errno != ENOENT {
                throw KubeletError(.runtime, "cannot unmount the pod's PID namespace \(pidNamespace): \(String(cString: strerror(errno)))")
            }
            attempts += 1
        }
        try? FileManager.default.removeItem(atPath: pausePIDFile)
        try? FileManager.default.removeItem(atPath: pidNamespace)
    }
}

/// What `ballast kubelet-pause` does, in its own short-lived process.
public enum PauseProcess {
    /// Joins cgroup `cgroupPath` (made in every hierarchy), forks the pause as PID 1 of a new
    /// PID namespace, pins that namespace at the sandbox's `pid` and records the pause's pid.
    /// Returns the pid.
    public static func start(sandbox directory: String, cgroupRoot: String, cgroupPath: String) throws -> Int32 {
        let sandbox = PodSandbox(directory: directory)
        let cgroups = Cgroups.detect(root: cgroupRoot)
        try cgroups.join(cgroupPath, pid: getpid())
        let target = sandbox.pidNamespace
        let fd = open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw KubeletError(.runtime, "cannot create \(target): \(String(cString: strerror(errno)))") }
        close(fd)
        let pid = ckl_start_pause()
        guard pid > 0 else { throw KubeletError(.runtime, "cannot start the pause process: \(String(cString: strerror(errno)))") }
        guard ckl_bind_mount("/proc/\(pid)/ns/pid", target, 0, 0) == 0 else {
            let reason = String(cString: strerror(errno))
            kill(pid, SIGKILL)
            throw KubeletError(.runtime, "cannot pin the pod's PID namespace at \(target): \(reason)")
        }
        let temporary = sandbox.pausePIDFile + ".tmp"
        do {
            try "\(pid)\n".write(toFile: temporary, atomically: false, encoding: .utf8)
            try FileSystem.commit(temporary, to: sandbox.pausePIDFile)
        } catch {
            kill(pid, SIGKILL)
            _ = ckl_unmount(target, 1)
            throw KubeletError(.runtime, "cannot record the pause process's pid in \(sandbox.pausePIDFile): \(error)")
        }
        return pid
    }
}
