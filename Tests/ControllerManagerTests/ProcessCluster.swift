// The real processes: `ballast apiserver`, `ballast cloud serve`, `ballast csi --mode controller`
// and `ballast controller-manager`, on 127.0.0.1, each with its log in a temporary directory,
// started and stopped without blocking the cooperative pool (termination handlers, polling with
// Task.sleep). `close()` kills what still runs, detaches the loop devices of its disks and
// removes the directory.
import APIClient
import ClusterAPI
import CloudProvider
import Foundation
import Synchronization
import TestSupport

/// A child process; `kill(signal)` and `waitForExit` never block a thread.
final class Daemon: Sendable {
    let name: String
    let arguments: [String]
    let log: String
    private let state = Mutex<(process: Process?, exited: Bool, status: Int32)>((nil, true, 0))

    init(_ name: String, arguments: [String], log: String) {
        self.name = name
        self.arguments = arguments
        self.log = log
    }

    func start() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ballastBinary())
        process.arguments = arguments
        if !FileManager.default.fileExists(atPath: log) { FileManager.default.createFile(atPath: log, contents: nil) }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        handle.seekToEndOfFile()
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        process.terminationHandler = { [self] finished in self.state.withLock { $0.exited = true; $0.status = finished.terminationStatus } }
        state.withLock { $0 = (process, false, 0) }
        try process.run()
    }

    var isRunning: Bool { !state.withLock { $0.exited } }
    var pid: Int32 { state.withLock { $0.process?.processIdentifier ?? 0 } }

    func signal(_ signal: Int32) {
        if isRunning { kill(pid, signal) }
    }

    /// SIGTERM, then SIGKILL after `grace`.
    func stop(grace: Duration = .seconds(10)) async {
        signal(SIGTERM)
        let deadline = ContinuousClock.now + grace
        while isRunning && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        if isRunning { await kill9() }
    }

    func kill9() async {
        signal(SIGKILL)
        while isRunning { try? await Task.sleep(for: .milliseconds(10)) }
    }

    var output: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
}

/// The result of a command run to its end.
struct Finished {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs a command to completion (killed after `timeout`), its output through files.
func runCommand(_ executable: String, _ arguments: [String], env: [String: String] = [:], input: String? = nil,
                timeout: Duration = .seconds(60)) async throws -> Finished {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bcm-cmd-\(UUID().uuidString.prefix(8))").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    for name in ["out", "err", "in"] { FileManager.default.createFile(atPath: "\(directory)/\(name)", contents: nil) }
    if let input { try input.write(toFile: "\(directory)/in", atomically: true, encoding: .utf8) }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable.hasPrefix("/") ? executable : "/usr/bin/env")
    process.arguments = executable.hasPrefix("/") ? arguments : [executable] + arguments
    var environment = ProcessInfo.processInfo.environment
    for (key, value) in env { environment[key] = value }
    process.environment = environment
    process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(directory)/out"))
    process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(directory)/err"))
    process.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: "\(directory)/in"))
    let status = Mutex<Int32?>(nil)
    process.terminationHandler = { finished in status.withLock { $0 = finished.terminationStatus } }
    try process.run()
    let deadline = ContinuousClock.now + timeout
    while status.withLock({ $0 }) == nil {
        if ContinuousClock.now > deadline { kill(process.processIdentifier, SIGKILL) }
        try await Task.sleep(for: .milliseconds(20))
    }
    return Finished(status: status.withLock { $0! },
                    stdout: (try? String(contentsOfFile: "\(directory)/out", encoding: .utf8)) ?? "",
                    stderr: (try? String(contentsOfFile: "\(directory)/err", encoding: .utf8)) ?? "")
}

final class ProcessCluster: @unchecked Sendable {
    let root: String
    let apiserver: Daemon
    let cloudDaemon: Daemon
    let csi: Daemon
    private(set) var manager: Daemon
    let managerArguments: [String]
    private(set) var client: KubeClient!
    private(set) var cloud: CloudClient!
    let cloudPort: Int
    var kubeconfig: String { root + "/api/admin.kubeconfig" }

    init(cloudFlags: [String] = [], managerFlags: [String] = []) {
        root = "/tmp/bcmp-" + UUID().uuidString.prefix(8).lowercased()
        try? FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let apiPort = freePort()
        cloudPort = freePort()
        apiserver = Daemon("apiserver", arguments: ["apiserver", "--data-dir", root + "/api", "--secure-port", "\(apiPort)",
                                                     "--bind-address", "127.0.0.1", "--log-level", "warning"], log: root + "/apiserver.log")
        cloudDaemon = Daemon("cloud", arguments: ["cloud", "serve", "--listen", "127.0.0.1:\(cloudPort)", "--volumes-dir", root + "/volumes",
                                                  "--state-dir", root + "/cloud", "--attach-limit", "128", "--log-level", "warning"] + cloudFlags,
                             log: root + "/cloud.log")
        csi = Daemon("csi", arguments: ["csi", "--mode", "controller", "--endpoint", "unix://\(root)/csi.sock", "--driver-name", driverName,
                                        "--cloud-url", "http://127.0.0.1:\(cloudPort)", "--cloud-key-file", root + "/cloud/admin.key",
                                        "--log-level", "warning"], log: root + "/csi.log")
        managerArguments = ["controller-manager", "--kubeconfig", root + "/api/admin.kubeconfig", "--csi-endpoint", "unix://\(root)/csi.sock",
                            "--resync", "2s", "--log-level", "info"] + managerFlags
        manager = Daemon("controller-manager", arguments: managerArguments, log: root + "/controller-manager.log")
    }

    /// Starts the four processes, each once the one before is ready.
    func start() async throws {
        try apiserver.start()
        try await until("the API server is ready", apiserver) {
            guard FileManager.default.fileExists(atPath: self.kubeconfig),
                  let client = try? KubeClient(try Connection.kubeconfig(at: self.kubeconfig)) else { return false }
            self.client = client
            return (try? await client.send(.GET, "/readyz"))?.status.code == 200
        }
        try cloudDaemon.start()
        try await waitForCloud()
        try csi.start()
        try await until("the CSI socket", csi) { FileManager.default.fileExists(atPath: "\(self.root)/csi.sock") }
        try manager.start()
    }

    func waitForCloud() async throws {
        try await until("the cloud is ready", cloudDaemon) {
            guard let cloud = try? CloudClient(url: "http://127.0.0.1:\(self.cloudPort)", keyFile: self.root + "/cloud/admin.key") else { return false }
            self.cloud = cloud
            return (try? await cloud.describeRegion()) != nil
        }
    }

    /// A new controller manager process (the old one must have exited).
    func restartManager() throws {
        manager = Daemon("controller-manager", arguments: managerArguments, log: root + "/controller-manager.log")
        try manager.start()
    }

    private func until(_ what: String, _ daemon: Daemon, timeout: Duration = .seconds(60), _ ready: () async -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if await ready() { return }
            guard daemon.isRunning else { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("\(what): not within \(timeout); \(daemon.name) log:\n\(daemon.output.suffix(3000))")
    }

    /// kubectl against this cluster, with a private discovery cache.
    func kubectl(_ arguments: String..., input: String? = nil) async throws -> Finished {
        try await runCommand("kubectl", ["--kubeconfig", kubeconfig, "--cache-dir", root + "/kube-cache"] + arguments,
                             env: ["HOME": root], input: input)
    }

    /// A node as the kubelet and the cloud would register it.
    func addNode(_ name: String, zone: String = "ballast-1a") async throws {
        let instance = try await cloud.registerInstance(RegisterInstanceRequest(name: name, zone: zone))
        var node = Node(metadata: ObjectMeta(name: name, labels: ["topology.kubernetes.io/zone": zone],
                                             annotations: ["volumes.kubernetes.io/controller-managed-attach-detach": "true"]))
        node.status.conditions = [NodeCondition(type: "Ready", status: "True", lastHeartbeatTime: Time.now(), lastTransitionTime: Time.now())]
        _ = try await client.create(node)
        _ = try await client.create(CSINode(metadata: ObjectMeta(name: name), spec: CSINodeSpec(drivers: [
            CSINodeDriver(name: driverName, nodeID: instance.id, topologyKeys: ["topology.kubernetes.io/zone"])])))
    }

    func close() async {
        for daemon in [manager, csi, cloudDaemon, apiserver] { await daemon.stop(grace: .seconds(5)) }
        // Loop devices of this cluster's disks (a failed test may leave some attached).
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/block")) ?? []
        for name in names where name.hasPrefix("loop") {
            if let backing = try? String(contentsOfFile: "/sys/block/\(name)/loop/backing_file", encoding: .utf8),
               backing.hasPrefix(root + "/") {
                _ = try? await runCommand("losetup", ["--detach", "/dev/" + name], timeout: .seconds(10))
            }
        }
        try? FileManager.default.removeItem(atPath: root)
    }

    /// The logs of every process, for a failure message.
    var logs: String {
        [apiserver, cloudDaemon, csi, manager].map { "== \($0.name)\n\($0.output.suffix(4000))" }.joined(separator: "\n")
    }
}

/// Runs `body` with a started cluster and always closes it.
func withCluster(cloudFlags: [String] = [], managerFlags: [String] = [], _ body: (ProcessCluster) async throws -> Void) async throws {
    let cluster = ProcessCluster(cloudFlags: cloudFlags, managerFlags: managerFlags)
    do {
        try await cluster.start()
        try await body(cluster)
    } catch {
        let logs = cluster.logs
        await cluster.close()
        throw TestFailure("\(error)\n\(logs)")
    }
    await cluster.close()
}

/// Whether the process tests can run here: root and loop devices (the cloud attaches disks as loop devices).
let processTestsCanRun: Bool = getuid() == 0 && FileManager.default.fileExists(atPath: "/dev/loop-control")
    && FileManager.default.fileExists(atPath: ballastBinary())
