// The driver's configuration, its identity service, and the gRPC server that serves the
// identity, controller and node services on one unix socket.
import CloudProvider
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import HostSystem
import Logging
import ServiceLifecycle
import SwiftProtobuf
import Synchronization

public enum DriverMode: String, Sendable, CaseIterable {
    case controller, node, both

    public var servesController: Bool { self != .node }
    public var servesNode: Bool { self != .controller }
}

public struct DriverConfiguration: Sendable {
    public var driverName: String
    public var mode: DriverMode
    /// The socket's path (from `unix:///path/csi.sock`).
    public var socketPath: String
    /// Node plugin: paths the driver may mount on or create are under this directory.
    public var kubeletRoot: String
    /// Node plugin: where it keeps what it staged and published.
    public var stateDirectory: String
    /// Size of a volume created without a capacity range.
    public var defaultVolumeBytes: Int64 = 1 << 30
    public var operationTimeout: Duration = .seconds(120)
    /// How long an attach may stay "attaching" before it is cancelled.
    public var attachTimeout: Duration = .seconds(90)

    public init(driverName: String, mode: DriverMode, socketPath: String, kubeletRoot: String, stateDirectory: String) {
        self.driverName = driverName
        self.mode = mode
        self.socketPath = socketPath
        self.kubeletRoot = kubeletRoot
        self.stateDirectory = stateDirectory
    }

    /// A CSI driver name: at most 63 characters, starting and ending with a letter, with
    /// letters, digits, '-', '.' and '_' between (what csi-sanity and Kubernetes accept).
    public static func checkDriverName(_ name: String) throws {
        let scalars = Array(name.unicodeScalars)
        let valid = (2...63).contains(scalars.count) && scalars.allSatisfy { $0.isASCII }
            && scalars.first!.properties.isAlphabetic && scalars.last!.properties.isAlphabetic
            && scalars.allSatisfy { $0.properties.isAlphabetic || ("0"..."9").contains($0) || "-._".unicodeScalars.contains($0) }
        guard valid else {
            throw CSIError.invalid("--driver-name", "\"\(name)\" must be 2 to 63 characters, start and end with a letter, and hold only letters, digits, '-', '.' and '_'")
        }
    }

    /// "unix:///run/csi.sock" → "/run/csi.sock".
    public static func socketPath(fromEndpoint endpoint: String) throws -> String {
        guard endpoint.hasPrefix("unix://") else {
            throw CSIError.invalid("--endpoint", "\"\(endpoint)\" is not unix:///path/to/csi.sock; CSI plugins listen on unix sockets only")
        }
        let path = String(endpoint.dropFirst("unix://".count))
        guard path.hasPrefix("/"), path.utf8.count < 108 else {
            throw CSIError.invalid("--endpoint", "\"\(path)\" must be an absolute path shorter than 108 bytes")
        }
        return path
    }
}

/// The cloud instance this node plugin runs on, looked up once and remembered.
public final class NodeIdentity: Sendable {
    private let cloud: any CloudProvider
    private let nodeID: String
    private let cached = Mutex<Instance?>(nil)

    /// `nodeID` is an instance id or an instance name.
    public init(cloud: any CloudProvider, nodeID: String) {
        self.cloud = cloud
        self.nodeID = nodeID
    }

    func instance() async throws -> Instance {
        if let known = cached.withLock({ $0 }) { return known }
        let found: Instance?
        if (try? CloudValidation.checkID(nodeID, .instance, parameter: "node-id")) != nil {
            found = try await cloud.describeInstance(id: nodeID)
        } else {
            found = try await cloud.findInstance(name: nodeID)
        }
        guard let instance = found, instance.state != .terminated else {
            throw CSIError(.failedPrecondition, "no running cloud instance \(nodeID); register it with the cloud or fix --node-id")
        }
        cached.withLock { $0 = instance }
        return instance
    }

    /// Checks with the cloud that disk `volumeID` is attached to this node's instance: several
    /// nodes of one machine share its loop devices, and a device that holds the volume (checked
    /// by `verify`) may have been attached for another node. FAILED_PRECONDITION otherwise.
    func checkAttached(_ volumeID: String) async throws {
        let instance = try await instance()
        let disk = try await cloud.describeDisk(id: volumeID)
        guard disk.attachments.contains(where: { $0.instanceId == instance.id && $0.state == .attached }) else {
            let elsewhere = disk.attachments.map { "\($0.instanceId) (\($0.state.rawValue))" }
            throw CSIError(.failedPrecondition, "volume \(volumeID) is not attached to this node's instance \(instance.id)"
                + (elsewhere.isEmpty ? "" : " but to \(elsewhere.joined(separator: ", "))")
                + "; refusing to stage it — ControllerPublishVolume it to this node first")
        }
    }
}

struct IdentityService: Csi_V1_Identity.SimpleServiceProtocol {
    let configuration: DriverConfiguration
    let cloud: any CloudProvider
    let node: NodeIdentity?

    static let vendorVersion = "0.1.0"

    func getPluginInfo(request: Csi_V1_GetPluginInfoRequest, context: ServerContext) async throws -> Csi_V1_GetPluginInfoResponse {
        .with {
            $0.name = configuration.driverName
            $0.vendorVersion = Self.vendorVersion
            $0.manifest = ["mode": configuration.mode.rawValue]
        }
    }

    func getPluginCapabilities(request: Csi_V1_GetPluginCapabilitiesRequest, context: ServerContext) async throws -> Csi_V1_GetPluginCapabilitiesResponse {
        var capabilities: [Csi_V1_PluginCapability] = [
            .with { $0.service = .with { $0.type = .volumeAccessibilityConstraints } },
            .with { $0.volumeExpansion = .with { $0.type = .online } },
        ]
        if configuration.mode.servesController {
            capabilities.insert(.with { $0.service = .with { $0.type = .controllerService } }, at: 0)
        }
        return .with { $0.capabilities = capabilities }
    }

    /// Ready when the cloud answers (controller) and the node's tools and instance are there (node).
    func probe(request: Csi_V1_ProbeRequest, context: ServerContext) async throws -> Csi_V1_ProbeResponse {
        try await edge {
            do {
                _ = try await cloud.describeRegion()
            } catch {
                throw CSIError(.failedPrecondition, "the cloud does not answer: \(error)")
            }
            if configuration.mode.servesNode {
                let tools = ["losetup", "mount", "umount", "blkid", "mkfs.ext4", "resize2fs", "mkfs.xfs", "xfs_growfs"]
                let missing = tools.filter { !FileManager.default.isExecutableFile(atPath: SystemCommand.resolve($0)) }
                guard missing.isEmpty else {
                    throw CSIError(.failedPrecondition, "missing tools: \(missing.joined(separator: ", ")); install util-linux, mount, e2fsprogs and xfsprogs")
                }
                _ = try await node?.instance()
            }
            return .with { $0.ready = .with { $0.value = true } }
        }
    }
}

/// The driver's gRPC server on its unix socket. The socket never exists with a wider mode than
/// 0600: it is bound inside a private (0700) directory next to its final path, given its mode
/// there, and only then renamed into place.
public final class CSIServer: Sendable {
    private let server: GRPCServer<HTTP2ServerTransport.Posix>
    private let configuration: DriverConfiguration
    private let logger: Logger
    /// The private directory the socket is bound in before it moves to its path.
    private let bindDirectory: String
    /// The published socket's (device, inode): at the end it is removed only if the path still
    /// is this server's socket, not one a newer plugin put there since.
    private let published = Mutex<(dev_t, ino_t)?>(nil)

    /// `mounter` is what the node service does to the kernel: `SystemMounter` unless a test
    /// gives a `RecordingMounter`.
    public init(configuration: DriverConfiguration, cloud: any CloudProvider, nodeID: String?, logger: Logger,
                mounter: any Mounter = SystemMounter()) throws {
        try DriverConfiguration.checkDriverName(configuration.driverName)
        self.configuration = configuration
        self.logger = logger
        var services: [any RegistrableRPCService] = []
        let node = nodeID.map { NodeIdentity(cloud: cloud, nodeID: $0) }
        services.append(IdentityService(configuration: configuration, cloud: cloud, node: node))
        if configuration.mode.servesController {
            services.append(ControllerService(cloud: cloud, configuration: configuration, logger: logger))
        }
        if configuration.mode.servesNode {
            guard let node else { throw CSIError.invalid("--node-id", "is required in node mode") }
            let state = try NodeState(directory: configuration.stateDirectory)
            try state.reconcile(mounter: mounter, logger: logger)
            services.append(NodeService(configuration: configuration, node: node, state: state, mounter: mounter, logger: logger))
        }
        let socket = configuration.socketPath
        let parent = (socket as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        // A socket left by a crashed run is replaced; anything else at the path is not ours.
        var info = stat()
        if lstat(socket, &info) == 0, (info.st_mode & S_IFMT) != S_IFSOCK {
            throw CSIError.invalid("--endpoint", "\(socket) exists and is not a socket; remove it or choose another path")
        }
        bindDirectory = parent + "/.csi-bind-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        guard mkdir(bindDirectory, 0o700) == 0 else {
            throw CSIError(.internalError, "cannot create \(bindDirectory) to bind the socket in: \(String(cString: strerror(errno)))")
        }
        server = GRPCServer(
            transport: .http2NIOPosix(address: .unixDomainSocket(path: bindDirectory + "/csi.sock"), transportSecurity: .plaintext),
            services: services
        )
    }

    /// Serves until `shutdown()` (called too when a `ServiceGroup` it runs in shuts down
    /// gracefully).
    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await serve()
        } onGracefulShutdown: {
            self.shutdown()
        }
    }

    private func serve() async throws {
        defer { try? FileManager.default.removeItem(atPath: bindDirectory) }
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await self.server.serve() }
            _ = try await server.listeningAddress
            try publishSocket()
            logger.info("serving CSI", metadata: ["driver": "\(configuration.driverName)", "mode": "\(configuration.mode.rawValue)",
                                                  "endpoint": "unix://\(configuration.socketPath)"])
            try await tasks.waitForAll()
        }
        var info = stat()
        if let (device, inode) = published.withLock({ $0 }), lstat(configuration.socketPath, &info) == 0,
           info.st_dev == device, info.st_ino == inode {
            unlink(configuration.socketPath)
        }
    }

    /// Gives the bound socket its mode (0600) inside the private directory, then moves it to
    /// its path (replacing a stale socket).
    private func publishSocket() throws {
        let bound = bindDirectory + "/csi.sock"
        var info = stat()
        guard chmod(bound, 0o600) == 0, lstat(bound, &info) == 0, rename(bound, configuration.socketPath) == 0 else {
            let reason = String(cString: strerror(errno))
            server.beginGracefulShutdown()
            throw CSIError(.internalError, "cannot put the CSI socket at \(configuration.socketPath): \(reason)")
        }
        published.withLock { $0 = (info.st_dev, info.st_ino) }
        rmdir(bindDirectory)
    }

    /// Resolves once the socket accepts connections at its path.
    public func ready() async throws {
        _ = try await server.listeningAddress
        let deadline = ContinuousClock.now + .seconds(10)
        while !FileManager.default.fileExists(atPath: configuration.socketPath) {
            guard ContinuousClock.now < deadline else {
                throw CSIError(.internalError, "the CSI socket did not appear at \(configuration.socketPath)")
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    public func shutdown() {
        server.beginGracefulShutdown()
    }
}

extension CSIServer: Service {}
