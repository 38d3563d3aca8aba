// The per-container shim (`ballast kubelet-shim`, started by the kubelet in a session of its
// own): the part containerd-shim plays. It owns the OCI runtime for one container — `run
// --detach` with its stdout and stderr on pipes (create and start in one runtime process) —
// and, as the child subreaper the container's
// init is reparented to, learns its exit status. It copies the container's output into the CRI
// log, writes `state.json` once the container runs and `exit.json` (exit code, signal, OOM kill)
// once it ends, then deletes the container from the runtime. The kubelet can be killed and
// restarted meanwhile: the shim does not depend on it, and reports only through files (and one
// line on stdout, "started" or "failed: …", read while the kubelet waits for the start).
import CKubelet
import Foundation
import HostSystem
#if canImport(Glibc)
import Glibc
#endif

public enum ContainerShim {
    /// What the shim is told on its command line.
    public struct Options: Sendable {
        public var runtime: String
        public var runtimeRoot: String
        public var id: String
        /// The container's directory: the bundle, and where the records go.
        public var directory: String
        public var logPath: String
        public var cgroupsPath: String
        public var cgroupRoot: String
        /// The container shares the pod's PID namespace: when its main process ends, the
        /// other processes it left in its cgroup are killed (as containerd's shim does), since
        /// the namespace does not end with it.
        public var killAllOnExit: Bool

        public init(runtime: String, runtimeRoot: String, id: String, directory: String, logPath: String, cgroupsPath: String,
                    cgroupRoot: String = "/sys/fs/cgroup", killAllOnExit: Bool = false) {
            self.runtime = runtime
            self.runtimeRoot = runtimeRoot
            self.id = id
            self.directory = directory
            self.logPath = logPath
            self.cgroupsPath = cgroupsPath
            self.cgroupRoot = cgroupRoot
            self.killAllOnExit = killAllOnExit
        }
    }

    /// Runs the container to its end; the shim's exit status (0 when the container ran).
    public static func run(_ options: Options) async -> Int32 {
        for sig in [SIGPIPE, SIGHUP, SIGINT, SIGTERM] { signal(sig, SIG_IGN) }
        guard ckl_set_child_subreaper() == 0 else {
            return fail(options, "the shim cannot become a child subreaper: \(String(cString: strerror(errno)))")
        }
        try? "\(getpid())\n".write(toFile: options.directory + "/" + RecordFiles.shimPID, atomically: true, encoding: .utf8)
        let runtime = [options.runtime, "--root", options.runtimeRoot, "--log", options.directory + "/runtime.log", "--log-format", "json"]
        let log: CRILogWriter
        do {
            log = try CRILogWriter(path: options.logPath)
        } catch {
            return fail(options, "\(error)")
        }
        let create: ChildProcess
        do {
            create = try ChildProcess(runtime + ["run", "--detach", "--bundle", options.directory, "--pid-file", options.directory + "/pid",
                                                 options.id],
                                      workingDirectory: options.directory, standardOutput: .stream, standardError: .stream)
        } catch {
            return fail(options, "cannot run \(options.runtime): \(error)")
        }
        let pumps = Task {
            async let out: Void = log.pump(create.standardOutput!, stream: "stdout")
            async let err: Void = log.pump(create.standardError!, stream: "stderr")
            _ = await (out, err)
        }
        let created = (try? await create.wait()) ?? .unknown
        guard created.isSuccess else {
            pumps.cancel()
            _ = try? await SystemCommand.run(runtime + ["delete", "--force", options.id], timeout: .seconds(30))
            return fail(options, runtimeError(options) ?? "\(options.runtime) run \(created)")
        }
        guard let pidText = try? String(contentsOfFile: options.directory + "/pid", encoding: .utf8),
              let pid = Int32(pidText.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0 else {
            _ = try? await SystemCommand.run(runtime + ["delete", "--force", options.id], timeout: .seconds(30))
            return fail(options, "\(options.runtime) run wrote no pid file")
        }
        let startedAt = Date()
        try? RecordFiles.write(ContainerStarted(pid: pid, startedAt: startedAt), to: options.directory + "/" + RecordFiles.started)
        say("started")
        let status = await waitForChild(pid)
        let cgroups = Cgroups.detect(root: options.cgroupRoot)
        if options.killAllOnExit {
            // Its children and exec'd processes would keep the output pipes (and the cgroup) open.
            for _ in 0..<10 {
                let left = cgroups.processes(options.cgroupsPath)
                if left.isEmpty { break }
                for process in left { kill(process, SIGKILL) }
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
        // Every process of the container's PID namespace dies with its init, so the pipes end;
        // a process that joined from outside could keep them open: bounded.
        let drained = Task {
            try? await Task.sleep(for: .seconds(5))
            pumps.cancel()
        }
        await pumps.value
        drained.cancel()
        let signaled = status.signal
        let oom = (cgroups.oomKills(options.cgroupsPath) ?? 0) > 0 || (signaled == SIGKILL && cgroups.memoryLimitHit(options.cgroupsPath))
        let exit = ContainerExit(exitCode: status.code, signal: signaled, oomKilled: oom, startedAt: startedAt, finishedAt: Date(), startFailure: nil)
        try? RecordFiles.write(exit, to: options.directory + "/" + RecordFiles.exit)
        _ = try? await SystemCommand.run(runtime + ["delete", "--force", options.id], timeout: .seconds(30))
        return 0
    }

    /// Reports a container that never ran: `exit.json` with status 128 and the reason, and
    /// "failed: …" to the kubelet.
    static func fail(_ options: Options, _ message: String) -> Int32 {
        let exit = ContainerExit(exitCode: 128, signal: nil, oomKilled: false, startedAt: nil, finishedAt: Date(), startFailure: message)
        try? RecordFiles.write(exit, to: options.directory + "/" + RecordFiles.exit)
        say("failed: " + message.replacingOccurrences(of: "\n", with: " "))
        FileHandle.standardError.write(Data((message + "\n").utf8))
        return 1
    }

    /// One line to the kubelet on stdout; then stdout goes to /dev/null, so that a kubelet
    /// that went away cannot matter.
    static func say(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
        let null = open("/dev/null", O_WRONLY)
        if null >= 0 {
            dup2(null, STDOUT_FILENO)
            close(null)
        }
    }

    /// The last error the runtime logged (its `--log` file, JSON lines `{"level","msg"}`).
    static func runtimeError(_ options: Options) -> String? {
        guard let text = try? String(contentsOfFile: options.directory + "/runtime.log", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n").reversed() {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { continue }
            if (object["level"] as? String) == "error", let message = object["msg"] as? String { return message }
        }
        return nil
    }

    /// How a waited-for child ended: the exit code as a shell reports it, and the signal.
    struct ChildStatus { var code: Int32; var signal: Int32? }

    /// Waits for `pid` (reparented to this subreaper) on a thread of its own.
    static func waitForChild(_ pid: Int32) async -> ChildStatus {
        await onOwnThread(named: "wait for the container") {
            var status: Int32 = 0
            var result: Int32
            repeat { result = waitpid(pid, &status, 0) } while result < 0 && errno == EINTR
            guard result == pid else { return ChildStatus(code: 255, signal: nil) }
            let low = status & 0x7f
            return low == 0 ? ChildStatus(code: (status >> 8) & 0xff, signal: nil) : ChildStatus(code: 128 + low, signal: low)
        }
    }
}
