// The OCI runtime driver: containers of `runc` (or `crun`) as bundles under
// `<root>/containers/<id>` with overlayfs roots, each owned by a shim process
// (`ballast-shim`, Sources/BallastShim). The kubelet asks it to start, signal, wait for, exec into and remove
// containers; everything it knows is on disk (`ContainerRecord`), so a restarted kubelet adopts
// what runs.
import CKubelet
import Crypto
import Foundation
import HostSystem
import Logging
import Primitives
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A container's state as the runtime sees it.
public enum ContainerState: Sendable, Equatable {
    /// Its shim runs it.
    case running(ContainerStarted)
    /// It ended (or never started: `startFailure`).
    case exited(ContainerExit)
    /// Neither: its shim is gone without a word (killed, or the machine rebooted).
    case unknown
}

public final class OCIRuntime: Sendable {
    /// `runc` or `crun`.
    public let name: String
    /// The runtime's executable.
    public let binary: String
    /// The kubelet's root directory.
    public let root: String
    /// The runtime's state directory (`--root` of runc): per kubelet, so that two kubelets of
    /// one machine never see each other's containers.
    public let stateDirectory: String
    public var containersDirectory: String { root + "/containers" }
    /// The `ballast` executable, for a pod's pause process (`kubelet-pause`).
    public let executable: String
    /// The container shim's executable (`ballast-shim`): by default beside this process's own.
    public let shimExecutable: String
    /// How to start a pod's pause process (`shareProcessNamespace`): `ballast kubelet-pause`.
    public var pauseCommand: [String] { [executable, "kubelet-pause"] }
    public let cgroups: Cgroups
    public let nodeName: String
    /// The cgroup of this node's pods (`Cgroups.nodePath`).
    public let cgroupParent: String
    let logger: Logger
    /// Shims this process started, by container id (adopted ones are not here).
    private let shims = Mutex<[String: ChildProcess]>([:])
    /// The records read so far, by container id: `meta.json` is written once, before the shim
    /// starts, and never changed, so each is decoded once (every new pod worker looks for its
    /// containers among all of them).
    private let knownRecords = Mutex<[String: ContainerRecord]>([:])
    /// Runtime starts in flight: at most two per core, in the order asked. A burst of pods
    /// would otherwise start all their runtimes at once (30 `runc run` and 30 `runc init` on two
    /// cores), and the CPU each start took grew by a tenth or more with the switching between
    /// them (`ballast bench kubelet`, docs/kubelet-bench.md); the starts behind wait, suspended.
    /// A start still running after five seconds gives its turn up.
    private let startGate = ConcurrencyGate(limit: 2 * ProcessInfo.processInfo.activeProcessorCount)

    /// The shim's file name (CKubelet's `CKL_SHIM_EXECUTABLE`).
    public static let shimName = CKL_SHIM_EXECUTABLE

    /// `ballast-shim` in the directory of this process's executable (/proc/self/exe): where
    /// `swift build` puts it beside `ballast` (and beside the test bundle).
    public static func shimBesideThisExecutable() -> String {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: executable).deletingLastPathComponent().appendingPathComponent(shimName).path
    }

    public init(name: String, root: String, nodeName: String, cgroupRoot: String = "/ballast", executable: String,
                shimExecutable: String = OCIRuntime.shimBesideThisExecutable(), cgroups: Cgroups = .detect(), logger: Logger) throws {
        guard ["runc", "crun"].contains(name) else {
            throw KubeletError(.configuration, "--container-runtime \(name) is not supported: use runc or crun")
        }
        let binary = SystemCommand.resolve(name)
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw KubeletError(.configuration, "the container runtime \(name) is not installed (looked for \(binary)): run `make deps` (apt-get install \(name))")
        }
        if name == "crun" && cgroups.isHybrid {
            throw KubeletError(.configuration, "crun does not run containers on this machine's hybrid cgroup layout (cgroup v1 hierarchies with a v2 one at \(cgroups.root)/unified): use --container-runtime runc, or boot with cgroup v2 only")
        }
        self.name = name
        self.binary = binary
        self.root = root
        self.stateDirectory = root + "/runtime/" + name
        self.executable = executable
        self.shimExecutable = shimExecutable
        self.cgroups = cgroups
        self.nodeName = nodeName
        self.cgroupParent = Cgroups.nodePath(root: cgroupRoot, node: nodeName)
        self.logger = logger
        for path in [root + "/containers", stateDirectory] {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        }
        // A directory per container in each: spread over the file system's block groups.
        TopDirectories.mark([root + "/containers", stateDirectory], logger: logger)
    }

    /// "runc 1.1.5" for `nodeInfo.containerRuntimeVersion` (as `runc://1.1.5`).
    public func version() async -> String {
        let output = (try? await SystemCommand.run([binary, "--version"], timeout: .seconds(10)))?.stdout ?? ""
        let first = output.split(separator: "\n").first ?? ""
        let version = first.split(separator: " ").last.map(String.init) ?? "unknown"
        return version.split(separator: "+").first.map(String.init) ?? version
    }

    /// The directory of container `id`.
    public func directory(_ id: String) -> String { containersDirectory + "/" + id }

    // MARK: Starting

    /// Makes the bundle (overlayfs root over `layers`, config.json), starts the shim and waits
    /// until the container runs. Throws `.containerCreate` with the runtime's message when it
    /// does not start; the container's directory then stays (with its `exit.json`) for the
    /// kubelet to report and remove.
    public func start(_ config: ContainerConfig, layers: [String]) async throws -> ContainerRecord {
        let began = ContinuousClock.now
        guard FileManager.default.isExecutableFile(atPath: shimExecutable) else {
            throw KubeletError(.containerCreate, "the container shim \(shimExecutable) is missing: it is built beside ballast by `swift build` (or `swift build --product \(Self.shimName)`; `make build`)")
        }
        let id = Self.newID()
        let dir = directory(id)
        let cgroupsPath = Cgroups.containerPath(parent: cgroupParent, podUID: config.podUID, containerID: id)
        let record = ContainerRecord(id: id, podUID: config.podUID, podNamespace: config.podNamespace, podName: config.podName,
                                     name: config.name, attempt: config.attempt, isInit: config.isInit, image: config.image.reference,
                                     imageID: config.image.imageID, logPath: config.logPath, cgroupsPath: cgroupsPath,
                                     createdAt: Date(), specHash: config.specHash)
        for sub in ["rootfs", "upper", "work"] {
            try FileManager.default.createDirectory(atPath: dir + "/" + sub, withIntermediateDirectories: true)
        }
        // Not fsynced (two syncs, a sixth of the kubelet's CPU per pod in a burst): a kubelet
        // restart finds it in the page cache, and a machine crash ends the container anyway;
        // what such a crash may leave — a directory whose record is empty or missing — is
        // removed by housekeeping (`removeUnrecorded`).
        try RecordFiles.write(record, to: dir + "/" + RecordFiles.meta, durable: false)
        knownRecords.withLock { $0[id] = record }
        let options = "lowerdir=\(layers.joined(separator: ":")),upperdir=\(dir)/upper,workdir=\(dir)/work"
        guard ckl_mount_fs("overlay", dir + "/rootfs", options, 0) == 0 else {
            let reason = String(cString: strerror(errno))
            throw KubeletError(.containerCreate, "cannot mount the container's root file system (overlayfs over \(layers.count) layers): \(reason)")
        }
        let spec = config.ociSpec(rootfs: dir + "/rootfs", cgroupsPath: cgroupsPath)
        try UnsyncedFile.write(try spec.configJSON(), to: dir + "/config.json", atomically: false)   // read by the runtime once, now
        if let previous = try? FileManager.default.attributesOfItem(atPath: config.logPath), (previous[.size] as? NSNumber)?.intValue ?? 0 > 0 {
            try? FileManager.default.removeItem(atPath: config.logPath)   // a log of this attempt from an earlier kubelet run
        }
        let bundled = ContinuousClock.now
        let (shim, answer, turn) = try await startGate.run(releasingAfter: .seconds(5)) {
            let turn = ContinuousClock.now
            let (shim, answer) = try await startShim(config, id: id, directory: dir, cgroupsPath: cgroupsPath)
            return (shim, answer, turn)
        }
        guard answer == "started" else {
            if answer.isEmpty { _ = await shim.wait(timeout: .seconds(5)) }
            let exit = RecordFiles.read(ContainerExit.self, from: dir + "/" + RecordFiles.exit)
            let message = exit?.startFailure ?? (answer.hasPrefix("failed: ") ? String(answer.dropFirst(8)) : "the container shim ended without starting it (see \(dir)/shim.log)")
            if exit == nil {
                try? RecordFiles.write(ContainerExit(exitCode: 128, signal: nil, oomKilled: false, startedAt: nil, finishedAt: Date(),
                                                     startFailure: message), to: dir + "/" + RecordFiles.exit)
            }
            throw KubeletError(.containerCreate, message)
        }
        logger.info("container started", metadata: ["container": "\(config.name)", "pod": "\(config.podNamespace)/\(config.podName)", "id": "\(id)",
                                                  "bundleMs": "\(Self.milliseconds(bundled - began))", "waitMs": "\(Self.milliseconds(turn - bundled))",
                                                  "runtimeMs": "\(Self.milliseconds(.now - turn))"])
        return record
    }

    /// Starts the container's shim, which runs the runtime; the shim and its first line:
    /// "started" once the container runs, "failed: …" or nothing when it did not.
    private func startShim(_ config: ContainerConfig, id: String, directory dir: String, cgroupsPath: String) async throws -> (ChildProcess, String) {
        let shim: ChildProcess
        do {
            shim = try ChildProcess([shimExecutable, "--runtime", binary, "--runtime-root", stateDirectory, "--id", id, "--directory", dir,
                                                   "--log", config.logPath, "--cgroup", cgroupsPath, "--cgroup-root", cgroups.root]
                                                   + (config.pidNamespace != nil ? ["--kill-all-on-exit"] : []),
                                    newSession: true, standardOutput: .stream, standardError: .discard)   // its messages: shim.log, made when it has one
        } catch {
            throw KubeletError(.runtime, "cannot start the container shim \(shimExecutable): \(error)", cause: error)
        }
        shims.withLock { $0[id] = shim }
        var answer = ""
        if let output = shim.standardOutput {
            do {
                for try await line in output.lines {
                    answer = line
                    break
                }
            } catch {}
            output.close()
        }
        return (shim, answer)
    }

    static func milliseconds(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// A fresh container id: 32 random hex digits.
    static func newID() -> String {
        var generator = SystemRandomNumberGenerator()
        let digits = hexDigits
        return String(unsafeUninitializedCapacity: 32) { buffer in
            for index in stride(from: 0, to: 32, by: 16) {
                var random = generator.next() as UInt64
                for offset in 0..<16 {
                    buffer[index + offset] = digits[Int(random & 0xf)]
                    random >>= 4
                }
            }
            return 32
        }
    }

    // MARK: Looking

    /// Every container on disk.
    public func records() -> [ContainerRecord] {
        let ids = (try? FileManager.default.contentsOfDirectory(atPath: containersDirectory)) ?? []
        let known = knownRecords.withLock { $0 }
        var found: [String: ContainerRecord] = [:]
        for id in ids {
            if let record = known[id] ?? RecordFiles.read(ContainerRecord.self, from: directory(id) + "/" + RecordFiles.meta) {
                found[id] = record
            }
        }
        knownRecords.withLock { $0 = found }
        return ids.compactMap { found[$0] }
    }

    /// Removes the container directories without a readable record (`meta.json` is written
    /// without a sync, so a machine crash can leave one empty or missing) that are older than
    /// `age` (a start in progress writes it right after making the directory) and that no shim
    /// names: their root is unmounted if it still is. The ids removed.
    public func removeUnrecorded(olderThan age: Duration = .seconds(60)) -> [String] {
        let ids = (try? FileManager.default.contentsOfDirectory(atPath: containersDirectory)) ?? []
        let recorded = Set(records().map(\.id))
        let cutoff = Date().addingTimeInterval(-Double(age.components.seconds))
        var removed: [String] = []
        for id in ids where !recorded.contains(id) {
            let dir = directory(id)
            guard let modified = (try? FileManager.default.attributesOfItem(atPath: dir))?[.modificationDate] as? Date, modified < cutoff,
                  ProcessTable.pids(where: { Self.isShim($0, of: dir) }).isEmpty else { continue }
            if SystemMounter().isMountPoint(dir + "/rootfs") && ckl_unmount(dir + "/rootfs", 0) != 0 {
                _ = ckl_unmount(dir + "/rootfs", 1)
            }
            guard !SystemMounter().isMountPoint(dir + "/rootfs") else { continue }
            if (try? FileManager.default.removeItem(atPath: dir)) != nil { removed.append(id) }
        }
        return removed
    }

    /// What container `id` is doing, from its files and its shim.
    public func state(_ id: String) -> ContainerState {
        let dir = directory(id)
        if let exit = RecordFiles.read(ContainerExit.self, from: dir + "/" + RecordFiles.exit) { return .exited(exit) }
        let started = RecordFiles.read(ContainerStarted.self, from: dir + "/" + RecordFiles.started)
        if shimAlive(id) {
            return started.map { .running($0) } ?? .unknown
        }
        // Checked again: the shim may have written exit.json and ended since.
        if let exit = RecordFiles.read(ContainerExit.self, from: dir + "/" + RecordFiles.exit) { return .exited(exit) }
        return .unknown
    }

    /// Whether the shim of `id` still runs: a child of ours, or (adopted) the process of the pid
    /// it recorded (in `state.json`, or `shim.pid` from older shims) when that process is still
    /// a shim of this container (a pid is reused), or, for a shim that recorded none (still
    /// starting the container), a process whose command line names the directory.
    func shimAlive(_ id: String) -> Bool {
        if let shim = shims.withLock({ $0[id] }) { return shim.termination == nil }
        let dir = directory(id)
        if let pid = recordedShimPID(dir), pid > 0 {
            return ProcessTable.arguments(of: pid).map { Self.isShim($0, of: dir) } ?? false
        }
        return !ProcessTable.pids { Self.isShim($0, of: dir) }.isEmpty
    }

    private func recordedShimPID(_ dir: String) -> Int32? {
        if let pid = RecordFiles.read(ContainerStarted.self, from: dir + "/" + RecordFiles.started)?.shimPID { return pid }
        guard let text = try? String(contentsOfFile: dir + "/" + RecordFiles.shimPID, encoding: .utf8) else { return nil }
        return Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// A shim's command line: `…/ballast-shim … --directory <dir> …` (or, started by a kubelet
    /// from before the shim was its own executable, `ballast kubelet-shim …`, so that an upgraded
    /// kubelet still adopts those).
    static func isShim(_ arguments: [String], of directory: String) -> Bool {
        guard arguments.contains(directory), let first = arguments.first else { return false }
        return first.hasSuffix("/" + shimName) || first == shimName || arguments.contains("kubelet-shim")
    }

    /// Waits until container `id` has ended; its exit. A shim of ours is awaited; an adopted
    /// one is watched through its files.
    public func waitForExit(_ id: String) async throws -> ContainerExit {
        if let shim = shims.withLock({ $0[id] }) {
            try await shim.wait()
            shims.withLock { _ = $0.removeValue(forKey: id) }
        }
        while true {
            switch state(id) {
            case .exited(let exit): return exit
            case .unknown:
                // The shim is gone without an exit record: the container cannot be running.
                if !shimAlive(id) {
                    let exit = ContainerExit(exitCode: 255, signal: nil, oomKilled: false, startedAt: nil, finishedAt: Date(),
                                             startFailure: nil)
                    try? RecordFiles.write(exit, to: directory(id) + "/" + RecordFiles.exit)
                    return exit
                }
            case .running: break
            }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    // MARK: Stopping

    /// Sends `signal` (e.g. "TERM", "KILL") to container `id`'s processes.
    public func kill(_ id: String, signal: String) async {
        let result = try? await SystemCommand.run([binary, "--root", stateDirectory, "kill", id, signal], timeout: .seconds(30))
        if let result, result.status != 0 {
            logger.debug("runtime kill failed", metadata: ["container": "\(id)", "signal": "\(signal)", "stderr": "\(result.stderr)"])
        }
    }

    /// SIGTERM, up to `grace` for the container to end, then SIGKILL; returns its exit.
    public func stop(_ id: String, grace: Duration) async -> ContainerExit? {
        if case .exited(let exit) = state(id) { return exit }
        await kill(id, signal: "TERM")
        let ended = await withTaskGroup(of: ContainerExit?.self) { group -> ContainerExit? in
            group.addTask { try? await self.waitForExit(id) }
            group.addTask {
                try? await Task.sleep(for: grace)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        if let ended { return ended }
        await kill(id, signal: "KILL")
        return try? await withThrowingTaskGroup(of: ContainerExit?.self) { group in
            group.addTask { try await self.waitForExit(id) }
            group.addTask {
                try await Task.sleep(for: .seconds(30))
                return nil
            }
            let first = try await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    /// Removes an ended container: the runtime's state (if any is left), its root file
    /// system, its directory and its cgroup. Its log stays.
    public func remove(_ id: String) async throws {
        let dir = directory(id)
        let record = RecordFiles.read(ContainerRecord.self, from: dir + "/" + RecordFiles.meta)
        // The shim deletes the container from the runtime once it has ended; a runtime process
        // (~3 ms of CPU) only when its state is still there (the shim was killed, or it runs).
        if FileManager.default.fileExists(atPath: stateDirectory + "/" + id) {
            _ = try? await SystemCommand.run([binary, "--root", stateDirectory, "delete", "--force", id], timeout: .seconds(30))
        }
        // On a thread of its own: unmounting an overlay syncs its upper file system (seconds
        // on a busy disk).
        let rootfs = dir + "/rootfs"
        let failure = await onOwnThread(named: "umount") { () -> Int32 in
            var failure: Int32 = 0
            for _ in 0..<4 where SystemMounter().isMountPoint(rootfs) {
                if ckl_unmount(rootfs, 0) != 0 {
                    failure = errno
                    if failure == EBUSY && ckl_unmount(rootfs, 1) != 0 { failure = errno }
                }
            }
            return failure
        }
        if SystemMounter().isMountPoint(dir + "/rootfs") {
            throw KubeletError(.runtime, "cannot unmount the root file system of container \(id): \(String(cString: strerror(failure)))")
        }
        if let record { cgroups.remove(record.cgroupsPath) }
        shims.withLock { _ = $0.removeValue(forKey: id) }
        knownRecords.withLock { _ = $0.removeValue(forKey: id) }
        try? FileManager.default.removeItem(atPath: dir)
    }

    // MARK: Exec

    /// Starts `command` in container `id` (`runc exec`, with the container's environment and
    /// working directory). With `tty`, `runc exec --tty` gives the command a terminal of the
    /// container's and relays it to its own stdio, a new pseudo-terminal whose master is
    /// returned (a size set on the master reaches the command when runc gets SIGWINCH);
    /// otherwise its stdin is a pipe (when `stdin`) and its stdout and stderr are streamed.
    public func exec(_ id: String, command: [String], stdin: Bool, tty: Bool) throws -> ExecSession {
        guard tty else {
            do {
                let child = try ChildProcess([binary, "--root", stateDirectory, "exec", id] + command, newSession: true,
                                             standardInput: stdin ? .pipe : .null, standardOutput: .stream, standardError: .stream)
                return ExecSession(process: child, terminal: nil)
            } catch {
                throw KubeletError(.runtime, "cannot run \(name) exec: \(error)", cause: error)
            }
        }
        var path = [CChar](repeating: 0, count: 128)
        let master = ckl_open_pty(&path, path.count)
        guard master >= 0 else { throw KubeletError(.runtime, "cannot open a pseudo-terminal: \(String(cString: strerror(errno)))") }
        let slave = String(decoding: path.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        do {
            let child = try ChildProcess([binary, "--root", stateDirectory, "exec", "--tty", id] + command, newSession: true,
                                         standardInput: .file(slave), standardOutput: .file(slave, append: true), standardError: .sameAsOutput)
            return ExecSession(process: child, terminal: master)
        } catch {
            close(master)
            throw KubeletError(.runtime, "cannot run \(name) exec: \(error)", cause: error)
        }
    }

    /// Runs `command` in container `id` to its end, at most `timeout` (exec probes); its exit
    /// status and the first 10 KiB of its output.
    public func execSync(_ id: String, command: [String], timeout: Duration) async throws -> (status: Int32, output: String) {
        do {
            let result = try await SystemCommand.run([binary, "--root", stateDirectory, "exec", id] + command, timeout: timeout,
                                                     outputLimit: 10 * 1024)
            return (result.status, result.stdout + result.stderr)
        } catch let error as CommandError where error.timedOut != nil {
            throw KubeletError(.timeout, "command \(command) timed out after \(timeout)")
        }
    }
}

/// A process started by `exec`, and its terminal's master side when it has one.
public struct ExecSession: Sendable {
    public let process: ChildProcess
    /// The pseudo-terminal's master descriptor (the caller closes it), for `tty`.
    public let terminal: Int32?
}

extension ContainerConfig {
    /// A stable hash of what the container runs, to notice that the pod spec changed.
    public static func hash(_ parts: [String]) -> String {
        SHA256.hash(data: Data(parts.joined(separator: "\u{0}").utf8)).prefix(8).map { String(format: "%02x", $0) }.joined()
    }
}
