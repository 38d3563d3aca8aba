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

/// One of the cluster's processes (a `TestProcess` of `ballast`), which can be started again
/// after it ended; its output is appended to `log` across restarts.
final class Daemon: Sendable {
    let name: String
    let arguments: [String]
    let log: String
    private let process = Mutex<TestProcess?>(nil)

    init(_ name: String, arguments: [String], log: String) {
        self.name = name
        self.arguments = arguments
        self.log = log
    }

    func start() throws {
        let started = try TestProcess([ballastBinary()] + arguments, logPath: log)
        process.withLock { $0 = started }
    }

    private var current: TestProcess? { process.withLock { $0 } }
    var isRunning: Bool { current?.isRunning ?? false }
    var pid: Int32 { current?.pid ?? 0 }

    func signal(_ signal: Int32) { current?.signal(signal) }

    /// SIGTERM, then SIGKILL after `grace`.
    func stop(grace: Duration = .seconds(10)) async {
        if let current { await current.terminate(grace: grace) }
    }

    /// SIGKILL (no SIGTERM first: a crash, not a shutdown) to it and its group, and waits until
    /// it is gone.
    func kill9() async {
        guard let current else { return }
        current.kill()
        _ = await current.waitForExit(timeout: .seconds(30))
    }

    var output: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
}

/// kubectl, losetup…: `TestSupport.run` with a `Duration` timeout.
func runCommand(_ executable: String, _ arguments: [String], env: [String: String] = [:], input: String? = nil,
                timeout: Duration = .seconds(60)) async throws -> CommandResult {
    try await run(executable, arguments, input: input, env: env, timeout: Double(timeout.components.seconds))
}

final class ProcessCluster: @unchecked Sendable {
    let root: String
    let apiserver: Daemon
    let csi: Daemon
    let managerArguments: [String]
    let cloudArguments: [String]
    private(set) var client: KubeClient!
    let cloudPort: Int
    var kubeconfig: String { root + "/api/admin.kubeconfig" }

    /// What chaos replaces while a test reads it from other tasks.
    private struct Replaceable {
        var manager: Daemon
        var cloudDaemon: Daemon
        var cloud: CloudClient?
    }
    private let replaceable: Mutex<Replaceable>

    /// The controller manager process (a new one after `restartManager`).
    var manager: Daemon { replaceable.withLock { $0.manager } }
    /// The cloud process (a new one after `restartCloud`).
    var cloudDaemon: Daemon { replaceable.withLock { $0.cloudDaemon } }
    /// The cloud's API (the same URL and key across restarts of the cloud).
    var cloud: CloudClient! { replaceable.withLock { $0.cloud } }

    init(cloudFlags: [String] = [], managerFlags: [String] = []) {
        root = "/tmp/bcmp-" + UUID().uuidString.prefix(8).lowercased()
        try? FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let apiPort = freePort()
        cloudPort = freePort()
        apiserver = Daemon("apiserver", arguments: ["apiserver", "--data-dir", root + "/api", "--secure-port", "\(apiPort)",
                                                     "--bind-address", "127.0.0.1", "--log-level", "warning"], log: root + "/apiserver.log")
        cloudArguments = ["cloud", "serve", "--listen", "127.0.0.1:\(cloudPort)", "--volumes-dir", root + "/volumes",
                          "--state-dir", root + "/cloud", "--attach-limit", "128", "--log-level", "warning"]
        let cloudDaemon = Daemon("cloud", arguments: cloudArguments + cloudFlags, log: root + "/cloud.log")
        csi = Daemon("csi", arguments: ["csi", "--mode", "controller", "--endpoint", "unix://\(root)/csi.sock", "--driver-name", driverName,
                                        "--cloud-url", "http://127.0.0.1:\(cloudPort)", "--cloud-key-file", root + "/cloud/admin.key",
                                        "--log-level", "warning"], log: root + "/csi.log")
        managerArguments = ["controller-manager", "--kubeconfig", root + "/api/admin.kubeconfig", "--csi-endpoint", "unix://\(root)/csi.sock",
                            "--resync", "2s", "--log-level", "info"] + managerFlags
        let manager = Daemon("controller-manager", arguments: managerArguments, log: root + "/controller-manager.log")
        replaceable = Mutex(Replaceable(manager: manager, cloudDaemon: cloudDaemon, cloud: nil))
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
            var cloud = self.cloud
            if cloud == nil {
                guard let made = try? CloudClient(url: "http://127.0.0.1:\(self.cloudPort)", keyFile: self.root + "/cloud/admin.key") else { return false }
                self.replaceable.withLock { $0.cloud = made }
                cloud = made
            }
            return (try? await cloud?.describeRegion()) != nil
        }
    }

    /// A new controller manager process (the old one must have exited).
    func restartManager() throws {
        let manager = Daemon("controller-manager", arguments: managerArguments, log: root + "/controller-manager.log")
        replaceable.withLock { $0.manager = manager }
        try manager.start()
    }

    /// Stops the cloud and starts it again with `flags` (its state, port and key are kept), and
    /// waits until it answers.
    func restartCloud(flags: [String] = []) async throws {
        await cloudDaemon.stop(grace: .seconds(5))
        let daemon = Daemon("cloud", arguments: cloudArguments + flags, log: root + "/cloud.log")
        replaceable.withLock { $0.cloudDaemon = daemon }
        try daemon.start()
        try await waitForCloud()
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
    func kubectl(_ arguments: String..., input: String? = nil) async throws -> CommandResult {
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
