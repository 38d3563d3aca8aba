// The node's namespace holder: one process per kubelet (`ballast-shim --hold-namespaces
// <root>/namespaces`, pause.c) in a mount namespace of its own whose root is an empty tmpfs
// with /proc. The kubelet pins its pods' UTS and IPC namespaces there (nsfs bind mounts, made by
// a thread that enters that namespace) instead of in the host's mount namespace, and the
// containers join them through the holder's root:
//
//     /proc/<holder pid>/root/<pod uid>/uts
//     /proc/<holder pid>/root/<pod uid>/ipc
//
// Every `runc` and every container start reads or copies the host's whole mount table; two
// pins per pod there made each start on a busy node slower (`ballast bench kubelet`,
// docs/kubelet-bench.md). The network namespace stays pinned on the host (`<pod>/sandbox/net`):
// its path is handed to the CNI plugins and must outlive the holder for their DEL.
//
// The holder runs in a session of its own, like the shims, and survives a kubelet restart: its
// pid is in `<root>/namespaces.pid`, and a kubelet adopts it when that pid's command line is the
// holder's of this root. When it dies, the pins go with it (a namespace lives on while a
// container is in it); the next kubelet sync of each pod finds its sandbox gone and makes new
// namespaces, which the pod's next containers join.
import CKubelet
import Foundation
import HostSystem
import Logging
import Primitives
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

public final class NamespaceHolder: Sendable {
    /// Where the holder mounts its tmpfs before it pivots into it (in its namespace only; on the
    /// host an empty directory).
    public let directory: String
    let pidFile: String
    let shimExecutable: String
    let logger: Logger
    /// The running holder: its pid, and a descriptor of its mount namespace opened once its
    /// identity was checked — what the kubelet's threads enter, so that a pid reused after the
    /// holder died can never take them into another process's namespace.
    private struct Running {
        var pid: Int32
        var namespace: Int32
    }
    private let current = Mutex<Running?>(nil)
    /// One start at a time.
    private let starting = ConcurrencyGate(limit: 1)
    /// The holder this process started, so that its exit is reaped.
    private let child = Mutex<ChildProcess?>(nil)

    /// The holder of kubelet root `root`: adopted when one runs, else started. Throws when it
    /// cannot start (the kubelet then pins in the host's namespace).
    public init(root: String, shimExecutable: String, logger: Logger) async throws {
        directory = root + "/namespaces"
        pidFile = root + "/namespaces.pid"
        self.shimExecutable = shimExecutable
        self.logger = logger
        _ = try await ensureRunning()
    }

    /// The pid of the running holder, as last found (nil before the first start); it may have
    /// died since: `ensureRunning` checks.
    public var pid: Int32? { current.withLock { $0?.pid } }

    /// The running holder's pid and its mount namespace as the kubelet's threads enter it
    /// (`/proc/self/fd/N`), as last found.
    var location: (pid: Int32, mountNamespace: String)? {
        current.withLock { running in running.map { ($0.pid, "/proc/self/fd/\($0.namespace)") } }
    }

    /// The running holder's pid: the one known, else the one `namespaces.pid` names, else a new
    /// one.
    public func ensureRunning() async throws -> Int32 {
        if let pid, isHolder(pid) { return pid }
        return try await starting.run {
            if let pid = self.pid, self.isHolder(pid) { return pid }
            forget()
            if let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
               let recorded = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), isHolder(recorded),
               (try? hold(recorded)) != nil {
                logger.info("adopted the namespace holder", metadata: ["pid": "\(recorded)"])
                return recorded
            }
            return try await start()
        }
    }

    /// Opens the mount namespace of `pid`, checked to be a holder's (again: it is open now).
    private func hold(_ pid: Int32) throws {
        let fd = open("/proc/\(pid)/ns/mnt", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw KubeletError(.runtime, "cannot open the namespace holder's mount namespace: \(String(cString: strerror(errno)))") }
        guard isHolder(pid) else {
            close(fd)
            throw KubeletError(.runtime, "process \(pid) is not the namespace holder")
        }
        current.withLock { $0 = Running(pid: pid, namespace: fd) }
    }

    /// Lets a holder that died go: its namespace's descriptor is closed (it would keep the
    /// namespace, and the pins in it, alive).
    private func forget() {
        let gone = current.withLock { running -> Running? in
            defer { running = nil }
            return running
        }
        if let gone { close(gone.namespace) }
    }

    /// True when `pid` is this root's holder: its command line, and a mount namespace other
    /// than this process's.
    func isHolder(_ pid: Int32) -> Bool {
        guard let arguments = ProcessTable.arguments(of: pid), arguments.count == 3,
              arguments[0].hasSuffix("/" + OCIRuntime.shimName), arguments[1] == "--hold-namespaces", arguments[2] == directory,
              !PodSandbox.isZombie(pid) else { return false }
        let theirs = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/mnt")
        let ours = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/mnt")
        return theirs != nil && theirs != ours
    }

    private func start() async throws -> Int32 {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let process: ChildProcess
        do {
            process = try ChildProcess([shimExecutable, "--hold-namespaces", directory], newSession: true,
                                       standardOutput: .stream, standardError: .discard)
        } catch {
            throw KubeletError(.runtime, "cannot start the namespace holder (\(shimExecutable) --hold-namespaces): \(error)", cause: error)
        }
        var answer = ""
        if let output = process.standardOutput {
            do {
                for try await line in output.lines {
                    answer = line
                    break
                }
            } catch {}
            output.close()
        }
        guard answer == "ready" else {
            await process.terminate(grace: .zero)
            let reason = answer.hasPrefix("failed: ") ? String(answer.dropFirst(8)) : "it ended without a word"
            throw KubeletError(.runtime, "the namespace holder did not start: \(reason)")
        }
        do {
            try hold(process.pid)
            try UnsyncedFile.write("\(process.pid)\n", to: pidFile, atomically: true)
        } catch {
            forget()
            await process.terminate(grace: .zero)
            throw error
        }
        child.withLock { $0 = process }
        logger.info("started the namespace holder", metadata: ["pid": "\(process.pid)", "directory": "\(directory)"])
        return process.pid
    }

    /// Stops the holder (every pin in it goes): for tests and teardown.
    public func stop() async {
        let process = child.withLock { $0 }
        if let process {
            try? process.signal(SIGKILL)
            _ = await process.wait(timeout: .seconds(5))
        } else if let pid, isHolder(pid) {
            kill(pid, SIGKILL)
        }
        forget()
        unlink(pidFile)
    }

    deinit { forget() }
}
