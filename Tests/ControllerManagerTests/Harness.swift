// A controller manager under test: the real API handler on an embedded store (no sockets), the
// real CSI driver in controller mode on a unix socket in front of the in-memory simulated cloud,
// and `ControllerManagerServer` running the chosen controllers with short timings. `close()`
// stops everything and removes the files, even when the test failed.
import APIClient
import APIServerTesting
import ClusterAPI
import CloudProvider
import ControllerManager
import CSIDriver
import CSIProto
import Foundation
import Logging
import Testing

let driverName = "loop.csi.ballast.dev"

final class Harness: Polling, @unchecked Sendable {
    let patience: Duration = .seconds(10)
    let api: InProcessAPIServer
    let client: KubeClient
    let cloud: CloudSimulator?
    let csiServer: CSIServer?
    let csiServing: Task<Void, Error>?
    let plugin: GRPCCSIPlugin?
    let root: String
    private(set) var manager: ControllerManagerServer?
    private var running: Task<Void, Error>?

    /// - Parameters:
    ///   - csi: run the CSI driver and the cloud (needed by the CSI controllers).
    ///   - wrap: wraps the plugin the manager talks to (fault injection).
    init(controllers: Set<ControllerName>, csi: Bool = true, simulator: SimulatorConfiguration = SimulatorConfiguration(),
         configure: (inout ControllerManagerConfiguration) -> Void = { _ in },
         wrap: ((any CSIPlugin) -> any CSIPlugin)? = nil) async throws {
        api = try await InProcessAPIServer.start()
        client = api.client()
        root = "/tmp/bcm-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        var logger = Logger(label: "test.controller-manager")
        logger.logLevel = ProcessInfo.processInfo.environment["BALLAST_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
        if csi {
            let cloud = try await CloudSimulator.inMemory(simulator)
            self.cloud = cloud
            var configuration = DriverConfiguration(driverName: driverName, mode: .controller, socketPath: root + "/csi.sock",
                                                    kubeletRoot: root + "/kubelet", stateDirectory: root + "/state")
            configuration.attachTimeout = .seconds(20)
            let server = try CSIServer(configuration: configuration, cloud: cloud, nodeID: nil, logger: logger)
            csiServer = server
            csiServing = Task { try await server.run() }
            try await server.ready()
            plugin = try GRPCCSIPlugin(endpoint: "unix://" + configuration.socketPath, timeout: .seconds(20))
        } else {
            cloud = nil
            csiServer = nil
            csiServing = nil
            plugin = nil
        }
        var configuration = ControllerManagerConfiguration()
        configuration.controllers = controllers
        configuration.leaderElect = false
        configuration.resync = .seconds(1)
        configuration.nodeMonitorPeriod = .milliseconds(200)
        configuration.events.retryInterval = .milliseconds(100)
        configuration.events.maxTries = 3
        configure(&configuration)
        let csiPlugin: (any CSIPlugin)? = plugin.map { wrap?($0) ?? $0 }
        let manager = ControllerManagerServer(client: client, csi: csiPlugin, configuration: configuration, logger: logger)
        self.manager = manager
        running = Task { try await manager.run() }
    }

    /// Stops the controllers (as a crash would, without cleanup); `restartManager` starts a new
    /// manager.
    func stopManager() async {
        running?.cancel()
        _ = await running?.result
    }

    /// Stops the controllers (as a crash would, without cleanup) and starts a new manager.
    func restartManager(configure: (inout ControllerManagerConfiguration) -> Void = { _ in }) async throws {
        running?.cancel()
        _ = await running?.result
        var configuration = manager!.configuration
        configure(&configuration)
        var logger = Logger(label: "test.controller-manager")
        logger.logLevel = .warning
        let manager = ControllerManagerServer(client: client, csi: plugin, configuration: configuration, logger: logger)
        self.manager = manager
        running = Task { try await manager.run() }
    }

    func close() async {
        running?.cancel()
        _ = await running?.result
        plugin?.close()
        csiServer?.shutdown()
        _ = await csiServing?.result
        await cloud?.drain()
        await api.close()
        try? FileManager.default.removeItem(atPath: root)
    }

    // MARK: Reading

    func pvc(_ name: String, namespace: String = "default") async throws -> PersistentVolumeClaim {
        try await client.get(PersistentVolumeClaim.self, name: name, namespace: namespace)
    }

    func pv(_ name: String) async throws -> PersistentVolume { try await client.get(PersistentVolume.self, name: name) }

    func exists<T: APIObject>(_ type: T.Type, _ name: String, namespace: String? = nil) async -> Bool {
        do {
            _ = try await client.get(type, name: name, namespace: namespace)
            return true
        } catch let error as APIError where error.isNotFound {
            return false
        } catch {
            return true
        }
    }

    /// Events about the object `name` of `kind`, in `namespace` ("default" for cluster-scoped ones).
    func events(_ kind: String, _ name: String, namespace: String = "default") async throws -> [Event] {
        try await client.list(Event.self, namespace: namespace,
                              fieldSelector: "involvedObject.kind=\(kind),involvedObject.name=\(name)").items
    }

    func hasEvent(_ kind: String, _ name: String, reason: String, namespace: String = "default", containing text: String = "") async -> Bool {
        ((try? await events(kind, name, namespace: namespace)) ?? []).contains { $0.reason == reason && (text.isEmpty || ($0.message ?? "").contains(text)) }
    }

    /// The cloud's disks (not deleted).
    func disks() async throws -> [Disk] {
        guard let cloud else { return [] }
        return try await cloud.allDisks().filter { $0.state != .deleting }
    }
}

/// Runs `body` with a harness and always closes it.
func withHarness(_ controllers: Set<ControllerName>, csi: Bool = true, simulator: SimulatorConfiguration = SimulatorConfiguration(),
                 configure: (inout ControllerManagerConfiguration) -> Void = { _ in },
                 wrap: ((any CSIPlugin) -> any CSIPlugin)? = nil, _ body: (Harness) async throws -> Void) async throws {
    let harness = try await Harness(controllers: controllers, csi: csi, simulator: simulator, configure: configure, wrap: wrap)
    do {
        try await body(harness)
    } catch {
        await harness.close()
        throw error
    }
    await harness.close()
}

extension Set where Element == ControllerName {
    static let all = Set(ControllerName.allCases)
    static let binderOnly: Set<ControllerName> = [.persistentVolumeBinder, .pvcProtection, .pvProtection]
}

extension Harness {
    /// Reads the node, applies `change` and writes it back (its status subresource when `status`),
    /// again on a 409: the controllers write the same node (volumesAttached, taints) meanwhile.
    func modifyNode(_ name: String, status: Bool = false, _ change: (inout Node) -> Void) async throws {
        for attempt in 1... {
            var node = try await client.get(Node.self, name: name)
            change(&node)
            do {
                _ = status ? try await client.updateStatus(node) : try await client.update(node)
                return
            } catch let error as APIError where error.isConflict && attempt < 20 {
                continue
            }
        }
    }
}
