// `ballast kubelet`: the node agent as a swift-service-lifecycle `Service`. It registers the
// node and keeps its status and Lease fresh, registers the CSI node plugin (CSINode), runs a
// worker per pod bound to the node (informer on spec.nodeName), and serves logs and exec over
// HTTPS. Stopping the kubelet leaves the pods' containers running (their shims own them): a
// kubelet started again adopts them.
import APIClient
import ClusterAPI
import Foundation
import HostSystem
import Logging
import ServiceLifecycle

/// The kubelet's settings, from its flags.
public struct KubeletConfiguration: Sendable {
    public var nodeName: String
    public var nodeIP: String
    public var port: Int
    public var rootDirectory: String
    public var csiEndpoint: String?
    public var containerRuntime: String
    public var imageDirectory: String
    public var podLogsDirectory: String
    public var capacity: [String: Quantity]
    public var externalCloudProvider: Bool
    public var podPidsLimit: Int64?
    /// The cgroup under which each node's pods go, as `<root>/<node>/pod<uid>`.
    public var cgroupRoot = "/ballast"
    /// The `ballast` executable (a pod's pause process is its `kubelet-pause`).
    public var executable: String
    /// The container shim's executable: `ballast-shim` beside this process's executable.
    public var shimExecutable = OCIRuntime.shimBesideThisExecutable()
    /// The token the API server presents to the kubelet's server; nil: every request to it is refused (401).
    public var authenticationToken: String?
    public var volumeTimeout: Duration = .seconds(120)
    public var backoffInitial: Duration = .seconds(10)
    public var backoffMax: Duration = .seconds(300)
    /// When containers' logs are rotated, and how often that is looked at.
    public var logRotation = LogRotationPolicy()
    public var logRotationPeriod: Duration = .seconds(10)
    /// The pods' network through CNI (nil: pods share the node's network namespace).
    public var network: PodNetworkSettings?
    /// How pods' resolv.conf is made.
    public var dns = DNSSettings()
    /// Serve logs and exec (off in logic tests).
    public var serve = true

    public init(nodeName: String, nodeIP: String, port: Int, rootDirectory: String, csiEndpoint: String?, containerRuntime: String,
                imageDirectory: String, podLogsDirectory: String, capacity: [String: Quantity], externalCloudProvider: Bool,
                podPidsLimit: Int64?, executable: String, authenticationToken: String?) {
        self.nodeName = nodeName
        self.nodeIP = nodeIP
        self.port = port
        self.rootDirectory = rootDirectory
        self.csiEndpoint = csiEndpoint
        self.containerRuntime = containerRuntime
        self.imageDirectory = imageDirectory
        self.podLogsDirectory = podLogsDirectory
        self.capacity = capacity
        self.externalCloudProvider = externalCloudProvider
        self.podPidsLimit = podPidsLimit
        self.executable = executable
        self.authenticationToken = authenticationToken
    }

    /// The version the node reports (`nodeInfo.kubeletVersion`).
    public static let version = "v1.32.0-ballast"
}

public final class KubeletServer: ServiceLifecycle.Service, Sendable {
    public let configuration: KubeletConfiguration
    let client: KubeClient
    let logger: Logger
    public let runtime: OCIRuntime
    public let images: ImageStore
    let csi: CSINodeClient?
    let volumes: VolumeManager
    let nodeStatus: NodeStatusManager
    let events: KubeletEvents
    let pods: PodManager

    public init(configuration: KubeletConfiguration, client: KubeClient, mounter: any Mounter = SystemMounter(), logger: Logger) async throws {
        self.configuration = configuration
        self.client = client
        self.logger = logger
        for path in [configuration.rootDirectory + "/pods", configuration.podLogsDirectory] {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        }
        // A directory per pod in each (its own, its logs'): spread over the block groups.
        TopDirectories.mark([configuration.rootDirectory + "/pods", configuration.podLogsDirectory], logger: logger)
        runtime = try OCIRuntime(name: configuration.containerRuntime, root: configuration.rootDirectory, nodeName: configuration.nodeName,
                                 cgroupRoot: configuration.cgroupRoot, executable: configuration.executable,
                                 shimExecutable: configuration.shimExecutable, logger: logger)
        images = try ImageStore(directory: configuration.imageDirectory)
        csi = try configuration.csiEndpoint.map { try CSINodeClient(endpoint: $0) }
        let runtimeVersion = await runtime.version()
        var nodeSettings = NodeSettings(name: configuration.nodeName, ip: configuration.nodeIP, port: configuration.port,
                                        capacity: NodeSettings.capacity(overrides: configuration.capacity),
                                        externalCloudProvider: configuration.externalCloudProvider, kubeletVersion: KubeletConfiguration.version,
                                        runtimeName: configuration.containerRuntime, runtimeVersion: runtimeVersion)
        nodeSettings.rootDirectory = configuration.rootDirectory
        nodeSettings.imageDirectory = configuration.imageDirectory
        let nodeStatus = NodeStatusManager(client: client, settings: nodeSettings, logger: logger)
        self.nodeStatus = nodeStatus
        volumes = VolumeManager(root: configuration.rootDirectory, nodeName: configuration.nodeName, client: client, csi: csi,
                                mounter: mounter, logger: logger) { names in
            try await nodeStatus.reportVolumesInUse(names)
        }
        let activity = PodSyncActivity()
        events = KubeletEvents(client: client, nodeName: configuration.nodeName, logger: logger, busy: { activity.isBusy })
        var settings = PodSettings(nodeName: configuration.nodeName, nodeIP: configuration.nodeIP, root: configuration.rootDirectory,
                                   podLogsDirectory: configuration.podLogsDirectory, podPidsLimit: configuration.podPidsLimit,
                                   volumeTimeout: configuration.volumeTimeout, backoffInitial: configuration.backoffInitial,
                                   backoffMax: configuration.backoffMax)
        settings.dns = configuration.dns
        let network = configuration.network.map {
            PodNetwork(settings: $0, root: configuration.rootDirectory, nodeName: configuration.nodeName, client: client, logger: logger)
        }
        pods = PodManager(context: KubeletContext(client: client, runtime: runtime, images: images, volumes: volumes, events: events,
                                                  settings: settings, activity: activity, network: network, logger: logger))
        let volumes = self.volumes
        let runtime = self.runtime
        await nodeStatus.connect(volumesInUse: { await volumes.volumesInUse() },
                                 onReported: { names in await volumes.noteReported(names) },
                                 runtimeHealthy: { await runtime.healthy() })
    }

    public func run() async throws {
        logger.info("starting the kubelet", metadata: ["node": "\(configuration.nodeName)", "root": "\(configuration.rootDirectory)",
                                                        "runtime": "\(configuration.containerRuntime)"])
        try await retrying("register the node") { try await self.nodeStatus.register() }
        let informer = Informer<Pod>(ResourceSource(client, Pod.self, fieldSelector: "spec.nodeName=\(configuration.nodeName)"),
                                     resync: .seconds(60), logger: logger)
        defer { csi?.close() }   // however the kubelet ends: its reconnects stop
        try await cancelWhenGracefulShutdown {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await informer.run() }
                group.addTask { await self.events.recorder.run() }
                group.addTask { await self.pods.run(informer: informer) }
                group.addTask { await self.every(self.nodeStatusRenewal, "renew the lease") { try await self.nodeStatus.renewLease() } }
                group.addTask { await self.every(.seconds(10), "update the node status") { try await self.nodeStatus.writeStatus() } }
                group.addTask {
                    let (runtime, policy, logs) = (self.runtime, self.configuration.logRotation, self.configuration.podLogsDirectory)
                    await self.every(self.configuration.logRotationPeriod, "rotate container logs") {
                        await onOwnThread(named: "log rotation") {
                            runtime.rotateLogs(policy)
                            ContainerLogFiles.removeEarlierAttempts(under: logs)
                        }
                    }
                }
                if let csi = self.csi {
                    group.addTask {
                        try? await self.retrying("register the CSI node plugin at \(csi.socketPath)") { try await self.nodeStatus.registerCSI(csi) }
                    }
                }
                if self.configuration.serve {
                    let server = try await KubeletHTTPServer(kubelet: self)
                    group.addTask {
                        do { try await server.run() } catch is CancellationError {}   // shutdown, not a failure
                    }
                }
                // Until shutdown: tasks that finish (the CSI registration) end quietly; the first
                // that fails ends the kubelet, and the group cancels the others.
                for try await _ in group {}
            }
        }
        logger.info("kubelet stopped; the pods' containers keep running under their shims")
    }

    var nodeStatusRenewal: Duration { .seconds(10) }

    /// Runs `body` every `period` until cancelled, logging failures.
    func every(_ period: Duration, _ what: String, _ body: @Sendable () async throws -> Void) async {
        while !Task.isCancelled {
            do { try await body() } catch { logger.warning("cannot \(what); retrying", metadata: ["error": "\(error)"]) }
            try? await Task.sleep(for: period)
        }
    }

    /// Runs `body` until it succeeds (200 ms doubling to 5 s between tries) or the task is cancelled.
    func retrying(_ what: String, _ body: @Sendable () async throws -> Void) async throws {
        var delay: Duration = .milliseconds(200)
        while true {
            do {
                try await body()
                return
            } catch {
                try Task.checkCancellation()
                logger.warning("cannot \(what); retrying", metadata: ["error": "\(error)", "in": "\(delay)"])
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            }
        }
    }
}

extension OCIRuntime {
    /// The runtime answers (`--version`) and its state directory is writable.
    func healthy() async -> Bool {
        guard access(stateDirectory, W_OK) == 0 else { return false }
        return (try? await SystemCommand.run([binary, "--version"], timeout: .seconds(10)))?.status == 0
    }
}
