// A driver under test: the simulated cloud in-process (real SQLite; real sparse files and loop
// devices when `realDevices`), `CSIServer` in mode both on a unix socket, and gRPC clients of the
// three services over that socket. `close()` removes every mount, loop device and file it made.
import CloudProvider
import CSIDriver
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import HostSystem
import Logging
import Testing
import TestSupport

let loopDevicesAvailable: Bool = {
    let usable = getuid() == 0 && FileManager.default.fileExists(atPath: "/dev/loop-control")
        && ["losetup", "mkfs.ext4", "mkfs.xfs", "blkid"].allSatisfy { FileManager.default.isExecutableFile(atPath: SystemCommand.resolve($0)) }
    if !usable {
        FileHandle.standardError.write(Data("""
            ************************************************************************
            SKIPPING the CSI node tests: they need root, /dev/loop-control, losetup,
            blkid, mkfs.ext4 and mkfs.xfs. Nothing was tested there.
            ************************************************************************

            """.utf8))
    }
    return usable
}()

final class DriverHarness: @unchecked Sendable {
    let root: String
    let cloud: CloudSimulator
    let node: Instance
    let otherNode: Instance
    let kubeletRoot: String
    private(set) var server: CSIServer
    private var serving: Task<Void, Error>
    private let grpc: GRPCClient<HTTP2ClientTransport.Posix>
    private let connections: Task<Void, Error>
    let identity: Csi_V1_Identity.Client<HTTP2ClientTransport.Posix>
    let controller: Csi_V1_Controller.Client<HTTP2ClientTransport.Posix>
    let nodeService: Csi_V1_Node.Client<HTTP2ClientTransport.Posix>
    let configuration: DriverConfiguration
    let mounter: any Mounter

    init(realDevices: Bool, simulator: SimulatorConfiguration = SimulatorConfiguration(), attachLimit: Int = 16,
         mounter: any Mounter = SystemMounter()) async throws {
        self.mounter = mounter
        root = "/tmp/bcsi-" + UUID().uuidString.prefix(8).lowercased()
        kubeletRoot = root + "/kubelet"
        try FileManager.default.createDirectory(atPath: kubeletRoot, withIntermediateDirectories: true)
        var logger = Logger(label: "test.csi")
        logger.logLevel = .warning
        let devices: DeviceBackend = realDevices ? try LoopDeviceBackend(root: URL(fileURLWithPath: root + "/volumes")) : MemoryDeviceBackend()
        cloud = try CloudSimulator(configuration: simulator, statePath: root + "/cloud.db", devices: devices, logger: logger)
        try await cloud.start()
        node = try await cloud.registerInstance(RegisterInstanceRequest(name: "node-a", zone: "ballast-1a", attachLimit: attachLimit))
        otherNode = try await cloud.registerInstance(RegisterInstanceRequest(name: "node-b", zone: "ballast-1a"))
        var configuration = DriverConfiguration(driverName: "loop.csi.ballast.dev", mode: .both, socketPath: root + "/csi.sock",
                                                kubeletRoot: kubeletRoot, stateDirectory: kubeletRoot + "/plugins/loop.csi.ballast.dev")
        configuration.attachTimeout = .seconds(20)
        configuration.operationTimeout = .seconds(30)
        self.configuration = configuration
        (server, serving) = try await Self.start(configuration, cloud: cloud, nodeID: node.id, logger: logger, mounter: mounter)
        grpc = GRPCClient(transport: try HTTP2ClientTransport.Posix(target: .unixDomainSocket(path: configuration.socketPath),
                                                                    transportSecurity: .plaintext))
        let client = grpc
        connections = Task { try await client.runConnections() }
        identity = Csi_V1_Identity.Client(wrapping: grpc)
        controller = Csi_V1_Controller.Client(wrapping: grpc)
        nodeService = Csi_V1_Node.Client(wrapping: grpc)
    }

    private static func start(_ configuration: DriverConfiguration, cloud: CloudSimulator, nodeID: String,
                              logger: Logger, mounter: any Mounter) async throws -> (CSIServer, Task<Void, Error>) {
        let server = try CSIServer(configuration: configuration, cloud: cloud, nodeID: nodeID, logger: logger, mounter: mounter)
        let serving = Task { try await server.run() }
        try await server.ready()
        return (server, serving)
    }

    /// Stops the driver and starts a new one on the same socket and state, as a plugin restart.
    func restartDriver() async throws {
        server.shutdown()
        _ = await serving.result
        var logger = Logger(label: "test.csi")
        logger.logLevel = .warning
        (server, serving) = try await Self.start(configuration, cloud: cloud, nodeID: node.id, logger: logger, mounter: mounter)
        // The client backs off after losing the socket: wait until it is connected again.
        let deadline = ContinuousClock.now + .seconds(10)
        while (try? await identity.probe(Csi_V1_ProbeRequest())) == nil && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Stops everything and removes what the test made; records an issue for leftovers.
    func close() async {
        grpc.beginGracefulShutdown()
        connections.cancel()
        server.shutdown()
        _ = await serving.result
        await cloud.drain()
        for mount in Mounts.current().reversed() where mount.mountPoint.hasPrefix(root + "/") {
            _ = try? await SystemCommand.run(["umount", mount.mountPoint])
        }
        // The kernel lets a detached loop device go once its last opener closes it; another
        // suite setting up a container can hold every device for a moment (one make test run).
        for device in loopDevices() { _ = try? await LoopDevices.detach(device, settle: .seconds(10)) }
        let leftMounts = Mounts.current().filter { $0.mountPoint.hasPrefix(root + "/") }.map(\.mountPoint)
        #expect(leftMounts.isEmpty, "mounts left behind: \(leftMounts)")
        #expect(loopDevices().isEmpty, "loop devices left behind: \(loopDevices())")
        try? FileManager.default.removeItem(atPath: root)
    }

    func loopDevices() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/block")) ?? []
        return names.filter { $0.hasPrefix("loop") }.compactMap { name in
            LoopDevices.backingFile(of: "/dev/" + name)?.hasPrefix(root + "/") == true ? "/dev/" + name : nil
        }
    }

    // MARK: Request builders

    static func capability(_ mode: Csi_V1_VolumeCapability.AccessMode.Mode = .singleNodeWriter, block: Bool = false,
                           fsType: String = "", flags: [String] = []) -> Csi_V1_VolumeCapability {
        .with {
            if block {
                $0.block = Csi_V1_VolumeCapability.BlockVolume()
            } else {
                $0.mount = .with {
                    $0.fsType = fsType
                    $0.mountFlags = flags
                }
            }
            $0.accessMode = .with { $0.mode = mode }
        }
    }

    func createVolume(_ name: String, bytes: Int64 = 64 << 20, capability: Csi_V1_VolumeCapability = capability(),
                      parameters: [String: String] = [:]) async throws -> Csi_V1_Volume {
        try await controller.createVolume(.with {
            $0.name = name
            $0.capacityRange = .with { $0.requiredBytes = bytes }
            $0.volumeCapabilities = [capability]
            $0.parameters = parameters
        }).volume
    }

    func publish(_ volumeID: String, readOnly: Bool = false, capability: Csi_V1_VolumeCapability = capability()) async throws -> [String: String] {
        try await controller.controllerPublishVolume(.with {
            $0.volumeID = volumeID
            $0.nodeID = node.id
            $0.volumeCapability = capability
            $0.readonly = readOnly
        }).publishContext
    }

    func stage(_ volumeID: String, context: [String: String], path: String, capability: Csi_V1_VolumeCapability = capability()) async throws {
        _ = try await nodeService.nodeStageVolume(.with {
            $0.volumeID = volumeID
            $0.publishContext = context
            $0.stagingTargetPath = path
            $0.volumeCapability = capability
        })
    }

    func nodePublish(_ volumeID: String, staging: String, target: String, readOnly: Bool = false,
                     capability: Csi_V1_VolumeCapability = capability()) async throws {
        _ = try await nodeService.nodePublishVolume(.with {
            $0.volumeID = volumeID
            $0.stagingTargetPath = staging
            $0.targetPath = target
            $0.volumeCapability = capability
            $0.readonly = readOnly
        })
    }

    func nodeUnpublish(_ volumeID: String, target: String) async throws {
        _ = try await nodeService.nodeUnpublishVolume(.with {
            $0.volumeID = volumeID
            $0.targetPath = target
        })
    }

    func unstage(_ volumeID: String, staging: String) async throws {
        _ = try await nodeService.nodeUnstageVolume(.with {
            $0.volumeID = volumeID
            $0.stagingTargetPath = staging
        })
    }

    func controllerUnpublish(_ volumeID: String) async throws {
        _ = try await controller.controllerUnpublishVolume(.with {
            $0.volumeID = volumeID
            $0.nodeID = node.id
        })
    }
}

/// Runs `body` with a harness and always closes it.
func withDriver(realDevices: Bool = false, simulator: SimulatorConfiguration = SimulatorConfiguration(), attachLimit: Int = 16,
                mounter: any Mounter = SystemMounter(), _ body: (DriverHarness) async throws -> Void) async throws {
    let harness = try await DriverHarness(realDevices: realDevices, simulator: simulator, attachLimit: attachLimit, mounter: mounter)
    do {
        try await body(harness)
    } catch {
        await harness.close()
        throw error
    }
    await harness.close()
}

/// Expects `body` to fail with gRPC status `code`, and returns the message.
@discardableResult
func expectCode(_ code: RPCError.Code, _ body: () async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) async -> String {
    do {
        try await body()
        Issue.record("expected \(code), got success", sourceLocation: sourceLocation)
    } catch let error as RPCError {
        #expect(error.code == code, "\(error.message)", sourceLocation: sourceLocation)
        #expect(!error.message.isEmpty, sourceLocation: sourceLocation)
        return error.message
    } catch {
        Issue.record("expected RPCError \(code), got \(error)", sourceLocation: sourceLocation)
    }
    return ""
}
