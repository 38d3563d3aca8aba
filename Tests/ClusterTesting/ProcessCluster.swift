// The real processes: `ballast apiserver`, `ballast cloud serve`, `ballast csi --mode controller`
// and `ballast controller-manager` (and, when asked, the scheduler), on 127.0.0.1, each with its
// log in a temporary directory, started and stopped without blocking the cooperative pool
// (termination handlers, polling with Task.sleep). Nodes with a real kubelet and CSI node plugin
// are added by `startNode` (ClusterNode.swift). `close()` kills what still runs, removes what the
// nodes left, detaches the loop devices of its disks and removes the directory.
import APIClient
import ClusterAPI
import CloudProvider
import Foundation
import Synchronization
import TestSupport

/// One of the cluster's processes (a `TestProcess` of `ballast`), which can be started again
/// after it ended; its output is appended to `log` across restarts.
public final class Daemon: Sendable {
    public let name: String
    public let arguments: [String]
    public let log: String
    private let process = Mutex<TestProcess?>(nil)

    public init(_ name: String, arguments: [String], log: String) {
        self.name = name
        self.arguments = arguments
        self.log = log
    }

    public func start() throws {
        let started = try TestProcess([ballastBinary()] + arguments, logPath: log)
        process.withLock { $0 = started }
    }

    private var current: TestProcess? { process.withLock { $0 } }
    public var isRunning: Bool { current?.isRunning ?? false }
    public var pid: Int32 { current?.pid ?? 0 }

    public func signal(_ signal: Int32) { current?.signal(signal) }

    /// SIGTERM, then SIGKILL after `grace`.
    public func stop(grace: Duration = .seconds(10)) async {
        if let current { await current.terminate(grace: grace) }
    }

    /// SIGKILL (no SIGTERM first: a crash, not a shutdown) to it and its group, and waits until
    /// it is gone.
    public func kill9() async {
        guard let current else { return }
        current.kill()
        _ = await current.waitForExit(timeout: .seconds(30))
    }

    public var output: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
}

/// kubectl, losetup…: `TestSupport.run` with a `Duration` timeout.
public func runCommand(_ executable: String, _ arguments: [String], env: [String: String] = [:], input: String? = nil,
                timeout: Duration = .seconds(60)) async throws -> CommandResult {
    try await run(executable, arguments, input: input, env: env, timeout: Double(timeout.components.seconds))
}

public final class ProcessCluster: @unchecked Sendable {
    /// The CSI driver's name in every cluster of the tests.
    public static let driverName = "loop.csi.ballast.dev"
    public let root: String
    public let apiserver: Daemon
    public let csi: Daemon
    /// `ballast scheduler`, when the cluster was made with one.
    public let scheduler: Daemon?
    /// `ballast cloud-controller-manager`, started with the first real node.
    public let cloudControllerManager: Daemon
    public let managerArguments: [String]
    public let cloudArguments: [String]
    public private(set) var client: KubeClient!
    public let cloudPort: Int
    /// Nodes started by `startNode`.
    let nodes = Mutex<[ClusterNode]>([])
    public var kubeconfig: String { root + "/api/admin.kubeconfig" }

    /// What chaos replaces while a test reads it from other tasks.
    private struct Replaceable {
        var manager: Daemon
        var cloudDaemon: Daemon
        var cloud: CloudClient?
    }
    private let replaceable: Mutex<Replaceable>

    /// The controller manager process (a new one after `restartManager`).
    public var manager: Daemon { replaceable.withLock { $0.manager } }
    /// The cloud process (a new one after `restartCloud`).
    public var cloudDaemon: Daemon { replaceable.withLock { $0.cloudDaemon } }
    /// The cloud's API (the same URL and key across restarts of the cloud).
    public var cloud: CloudClient! { replaceable.withLock { $0.cloud } }

    public init(cloudFlags: [String] = [], managerFlags: [String] = [], scheduler: Bool = false) {
        root = "/tmp/bcmp-" + UUID().uuidString.prefix(8).lowercased()
        try? FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let apiPort = freePort()
        cloudPort = freePort()
        apiserver = Daemon("apiserver", arguments: ["apiserver", "--data-dir", root + "/api", "--secure-port", "\(apiPort)",
                                                     "--bind-address", "127.0.0.1", "--log-level", "warning"], log: root + "/apiserver.log")
        cloudArguments = ["cloud", "serve", "--listen", "127.0.0.1:\(cloudPort)", "--volumes-dir", root + "/volumes",
                          "--state-dir", root + "/cloud", "--attach-limit", "128", "--log-level", "warning"]
        let cloudDaemon = Daemon("cloud", arguments: cloudArguments + cloudFlags, log: root + "/cloud.log")
        csi = Daemon("csi", arguments: ["csi", "--mode", "controller", "--endpoint", "unix://\(root)/csi.sock", "--driver-name", Self.driverName,
                                        "--cloud-url", "http://127.0.0.1:\(cloudPort)", "--cloud-key-file", root + "/cloud/admin.key",
                                        "--log-level", "warning"], log: root + "/csi.log")
        managerArguments = ["controller-manager", "--kubeconfig", root + "/api/admin.kubeconfig", "--csi-endpoint", "unix://\(root)/csi.sock",
                            "--resync", "2s", "--log-level", "info"] + managerFlags
        let manager = Daemon("controller-manager", arguments: managerArguments, log: root + "/controller-manager.log")
        cloudControllerManager = Daemon("cloud-controller-manager", arguments: [
            "cloud-controller-manager", "--kubeconfig", root + "/api/admin.kubeconfig", "--cloud-url", "http://127.0.0.1:\(cloudPort)",
            "--cloud-key-file", root + "/cloud/admin.key", "--log-level", "info"], log: root + "/cloud-controller-manager.log")
        self.scheduler = scheduler ? Daemon("scheduler", arguments: ["scheduler", "--kubeconfig", root + "/api/admin.kubeconfig", "--leader-elect=false",
                                                                  "--log-level", "info"], log: root + "/scheduler.log") : nil
        replaceable = Mutex(Replaceable(manager: manager, cloudDaemon: cloudDaemon, cloud: nil))
    }

    /// Starts the four processes (five with the scheduler), each once the one before is ready.
    public func start() async throws {
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
        try scheduler?.start()
    }

    public func waitForCloud() async throws {
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

    /// Starts the cloud controller manager unless it runs.
    func startCloudControllerManager() async throws {
        guard !cloudControllerManager.isRunning else { return }
        try cloudControllerManager.start()
    }

    /// A new controller manager process (the old one must have exited).
    public func restartManager() throws {
        let manager = Daemon("controller-manager", arguments: managerArguments, log: root + "/controller-manager.log")
        replaceable.withLock { $0.manager = manager }
        try manager.start()
    }

    /// Stops the cloud and starts it again with `flags` (its state, port and key are kept), and
    /// waits until it answers.
    public func restartCloud(flags: [String] = []) async throws {
        await cloudDaemon.stop(grace: .seconds(5))
        let daemon = Daemon("cloud", arguments: cloudArguments + flags, log: root + "/cloud.log")
        replaceable.withLock { $0.cloudDaemon = daemon }
        try daemon.start()
        try await waitForCloud()
    }

    func until(_ what: String, _ daemon: Daemon, timeout: Duration = .seconds(60), _ ready: () async -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if await ready() { return }
            guard daemon.isRunning else { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("\(what): not within \(timeout); \(daemon.name) log:\n\(daemon.output.suffix(3000))")
    }

    /// kubectl against this cluster, with a private discovery cache.
    public func kubectl(_ arguments: String..., input: String? = nil) async throws -> CommandResult {
        try await kubectl(arguments, input: input)
    }

    public func kubectl(_ arguments: [String], input: String? = nil, timeout: Duration = .seconds(60)) async throws -> CommandResult {
        try await runCommand("kubectl", ["--kubeconfig", kubeconfig, "--cache-dir", root + "/kube-cache"] + arguments,
                             env: ["HOME": root], input: input, timeout: timeout)
    }

    /// A node as the kubelet and the cloud would register it.
    public func addNode(_ name: String, zone: String = "ballast-1a") async throws {
        let instance = try await cloud.registerInstance(RegisterInstanceRequest(name: name, zone: zone))
        var node = Node(metadata: ObjectMeta(name: name, labels: ["topology.kubernetes.io/zone": zone],
                                             annotations: ["volumes.kubernetes.io/controller-managed-attach-detach": "true"]))
        node.status.conditions = [NodeCondition(type: "Ready", status: "True", lastHeartbeatTime: Time.now(), lastTransitionTime: Time.now())]
        _ = try await client.create(node)
        _ = try await client.create(CSINode(metadata: ObjectMeta(name: name), spec: CSINodeSpec(drivers: [
            CSINodeDriver(name: Self.driverName, nodeID: instance.id, topologyKeys: ["topology.kubernetes.io/zone"])])))
    }

    public func close() async {
        for node in nodes.withLock({ $0 }) { await node.close() }
        for daemon in [scheduler, cloudControllerManager, manager, csi, cloudDaemon, apiserver].compactMap(\.self) { await daemon.stop(grace: .seconds(5)) }
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
    public var logs: String {
        ([apiserver, cloudDaemon, csi, manager, scheduler, cloudControllerManager].compactMap(\.self) + nodes.withLock { $0 }.flatMap { [$0.csi, $0.kubelet] }).map { "== \($0.name)\n\($0.output.suffix(4000))" }.joined(separator: "\n")
    }
}

/// Runs `body` with a started cluster and always closes it.
public func withCluster(cloudFlags: [String] = [], managerFlags: [String] = [], scheduler: Bool = false,
                        _ body: (ProcessCluster) async throws -> Void) async throws {
    let cluster = ProcessCluster(cloudFlags: cloudFlags, managerFlags: managerFlags, scheduler: scheduler)
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
public let processTestsCanRun: Bool = getuid() == 0 && FileManager.default.fileExists(atPath: "/dev/loop-control")
    && FileManager.default.fileExists(atPath: ballastBinary())
