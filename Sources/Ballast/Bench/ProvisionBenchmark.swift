// `ballast bench provision`: a volume's whole life through the CSI driver — create, attach,
// stage, publish and back — beside the same kernel work done directly with the tools (the
// floor any driver pays), measured in the same run on the same machine.
//
// Ballast's side is the real path: gRPC over the driver's unix socket, the driver's checks and
// state file, HTTP to the simulated cloud (in this process, on 127.0.0.1, latency injection
// off), its SQLite transactions, then the same tools. Needs root and loop devices.
import ArgumentParser
import CloudProvider
import CSIDriver
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import HTTPKit
import HostSystem
import Logging

struct BenchProvisionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "provision",
        abstract: "Provision volumes through the CSI driver and the simulated cloud, beside the same steps done directly."
    )

    @Option(help: "Volumes to take through the whole lifecycle (each side).")
    var volumes: Int = 20

    @Option(help: "Size of each volume (bytes, or with Mi, Gi).")
    var size = ByteCount(64 << 20)

    @Option(help: "File system: ext4 or xfs (xfs needs at least 300Mi).")
    var fsType: String = "ext4"

    @Option(help: "Directory for the volumes, mounts and sockets (a new /tmp/ballast-prov-* by default; removed at the end).")
    var dir: String?

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard (1...1000).contains(volumes) else { throw ValidationError("--volumes \(volumes): expected 1 to 1000") }
        guard size.bytes > 0 else { throw ValidationError("--size must be positive") }
        guard ["ext4", "xfs"].contains(fsType) else { throw ValidationError("--fs-type \(fsType): expected ext4 or xfs") }
        guard getuid() == 0, FileManager.default.fileExists(atPath: "/dev/loop-control") else {
            throw ValidationError("bench provision needs root and /dev/loop-control: it attaches loop devices and mounts file systems")
        }
    }

    func run() async throws {
        let bytes = size.bytes
        let root = dir ?? "/tmp/ballast-prov-" + UUID().uuidString.prefix(6).lowercased()
        try FileManager.default.createDirectory(atPath: root + "/kubelet", withIntermediateDirectories: true)
        let logger = logging.logger("ballast.bench", defaultLevel: .warning)
        print("ballast bench provision: \(volumes) volumes of \(size), \(fsType), in \(root)\n")

        let ballast: [String: LatencyHistogram]
        let direct: [String: LatencyHistogram]
        do {
            ballast = try await measureDriver(root: root, bytes: bytes, logger: logger)
            direct = try await measureDirect(root: root + "/direct", bytes: bytes)
        } catch {
            await HostCleanup.sweep(root)
            throw error
        }
        await HostCleanup.sweep(root)

        var table = TextTable([("step", .left), ("ballast p50 ms", .right), ("ballast p99 ms", .right),
                               ("direct p50 ms", .right), ("direct p99 ms", .right), ("ballast/direct p50", .right)])
        func ms(_ nanos: Double?) -> String { nanos.map { fixed($0 / 1e6, 2) } ?? "-" }
        for step in Self.steps {
            let b = ballast[step.name], d = direct[step.name]
            let b50 = b?.percentile(0.5), d50 = d?.percentile(0.5)
            table.append([step.name + " (" + step.what + ")", ms(b50), ms(b?.percentile(0.99)), ms(d50), ms(d?.percentile(0.99)),
                          ratio(b50.flatMap { b in d50.map { b / $0 } }, suffix: "x")])
        }
        let totalB = Self.steps.compactMap { ballast[$0.name]?.percentile(0.5) }.reduce(0, +)
        let totalD = Self.steps.compactMap { direct[$0.name]?.percentile(0.5) }.reduce(0, +)
        table.append(["lifecycle (sum of p50)", ms(totalB), "", ms(totalD), "", ratio(totalB / totalD, suffix: "x")])
        print(table.render())
        print("\nballast: CSI gRPC over a unix socket → driver → HTTP → simulated cloud (SQLite) → the tools;")
        print("direct: the same kernel work with the tools alone (truncate, losetup, mkfs, mount, umount, losetup -d, rm).")
    }

    static let steps: [(name: String, what: String)] = [
        ("create", "CreateVolume"), ("attach", "ControllerPublish"), ("stage", "NodeStage: mkfs + mount"),
        ("publish", "NodePublish: bind"), ("unpublish", "NodeUnpublish"), ("unstage", "NodeUnstage"),
        ("detach", "ControllerUnpublish"), ("delete", "DeleteVolume"),
    ]

    private func measureDriver(root: String, bytes: Int64, logger: Logger) async throws -> [String: LatencyHistogram] {
        let cloud = try CloudSimulator(configuration: SimulatorConfiguration(), statePath: root + "/cloud.db",
                                       devices: try LoopDeviceBackend(root: URL(fileURLWithPath: root + "/volumes")), logger: logger)
        try await cloud.start()
        let instance = try await cloud.registerInstance(RegisterInstanceRequest(name: "bench-node", zone: "ballast-1a", attachLimit: 256))
        let key = "bench-key-" + UUID().uuidString
        let http = try await HTTPServer(host: "127.0.0.1", port: 0, logger: logger,
                                        handler: CloudHTTPService(cloud: cloud, keys: APIKeys(roles: [key: .admin])).handle)
        let httpTask = Task { try await http.run() }
        defer {
            http.close()
            httpTask.cancel()
        }
        let configuration = DriverConfiguration(driverName: "loop.csi.ballast.dev", mode: .both, socketPath: root + "/csi.sock",
                                                kubeletRoot: root + "/kubelet", stateDirectory: root + "/kubelet/plugins/state")
        let client = try CloudClient(url: "http://127.0.0.1:\(http.port)", key: key)
        let server = try CSIServer(configuration: configuration, cloud: client, nodeID: instance.id, logger: logger)
        let serving = Task { try await server.run() }
        try await server.ready()
        defer { server.shutdown() }
        return try await withGRPCClient(transport: try HTTP2ClientTransport.Posix(
            target: .unixDomainSocket(path: configuration.socketPath), transportSecurity: .plaintext)) { grpc in
            let controller = Csi_V1_Controller.Client(wrapping: grpc)
            let node = Csi_V1_Node.Client(wrapping: grpc)
            let capability = Csi_V1_VolumeCapability.with {
                $0.mount = .with { $0.fsType = fsType }
                $0.accessMode = .with { $0.mode = .singleNodeWriter }
            }
            var histograms: [String: LatencyHistogram] = [:]
            func timed<T>(_ step: String, _ body: () async throws -> T) async throws -> T {
                let start = monotonicNanos()
                let result = try await body()
                histograms[step, default: LatencyHistogram()].record(monotonicNanos() - start)
                return result
            }
            for index in 0..<volumes {
                progress("ballast", index)
                let volume = try await timed("create") {
                    try await controller.createVolume(.with {
                        $0.name = "bench-\(index)"
                        $0.capacityRange = .with { $0.requiredBytes = bytes }
                        $0.volumeCapabilities = [capability]
                    }).volume
                }
                let context = try await timed("attach") {
                    try await controller.controllerPublishVolume(.with {
                        $0.volumeID = volume.volumeID; $0.nodeID = instance.id; $0.volumeCapability = capability
                    }).publishContext
                }
                let staging = root + "/kubelet/staging/\(index)"
                let target = root + "/kubelet/pods/\(index)/volume"
                try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
                _ = try await timed("stage") {
                    try await node.nodeStageVolume(.with {
                        $0.volumeID = volume.volumeID; $0.publishContext = context; $0.stagingTargetPath = staging; $0.volumeCapability = capability
                    })
                }
                _ = try await timed("publish") {
                    try await node.nodePublishVolume(.with {
                        $0.volumeID = volume.volumeID; $0.stagingTargetPath = staging; $0.targetPath = target; $0.volumeCapability = capability
                    })
                }
                _ = try await timed("unpublish") {
                    try await node.nodeUnpublishVolume(.with { $0.volumeID = volume.volumeID; $0.targetPath = target })
                }
                _ = try await timed("unstage") {
                    try await node.nodeUnstageVolume(.with { $0.volumeID = volume.volumeID; $0.stagingTargetPath = staging })
                }
                _ = try await timed("detach") {
                    try await controller.controllerUnpublishVolume(.with { $0.volumeID = volume.volumeID; $0.nodeID = instance.id })
                }
                _ = try await timed("delete") {
                    try await controller.deleteVolume(.with { $0.volumeID = volume.volumeID })
                }
            }
            server.shutdown()
            _ = await serving.result
            await cloud.drain()
            return histograms
        }
    }

    private func measureDirect(root: String, bytes: Int64) async throws -> [String: LatencyHistogram] {
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        var histograms: [String: LatencyHistogram] = [:]
        func timed<T>(_ step: String, _ body: () async throws -> T) async throws -> T {
            let start = monotonicNanos()
            let result = try await body()
            histograms[step, default: LatencyHistogram()].record(monotonicNanos() - start)
            return result
        }
        for index in 0..<volumes {
            progress("direct", index)
            let file = root + "/disk-\(index).img"
            let staging = root + "/staging-\(index)"
            let target = root + "/target-\(index)"
            try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
            try await timed("create") { try DirectVolume.create(file, bytes: bytes) }
            let device = try await timed("attach") { try await DirectVolume.attach(file) }
            try await timed("stage") { try await DirectVolume.stage(device, fsType: fsType, at: staging) }
            try await timed("publish") { try await DirectVolume.publish(staging, at: target) }
            try await timed("unpublish") { try await SystemCommand.check(["umount", target]) }
            try await timed("unstage") { try await SystemCommand.check(["umount", staging]) }
            try await timed("detach") { try await SystemCommand.check(["losetup", "--detach", device]) }
            try await timed("delete") { guard unlink(file) == 0 else { throw CleanExit.message("cannot remove \(file)") } }
        }
        return histograms
    }

    private func progress(_ side: String, _ index: Int) {
        FileHandle.standardError.write(Data("\r\(side): volume \(index + 1)/\(volumes)   ".utf8))
        if index + 1 == volumes { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}

/// A volume's kernel work done with the tools alone, what any CSI driver pays: a sparse file,
/// `losetup`, `mkfs` and `mount`, a bind mount (`bench provision`'s and `bench kubelet`'s floor).
enum DirectVolume {
    /// The disk: a sparse file of `bytes`, synced.
    static func create(_ file: String, bytes: Int64) throws {
        try FileSystem.createSparseFile(file, size: bytes)
    }

    /// Attaches `file` as a loop device; its path.
    static func attach(_ file: String) async throws -> String {
        try await SystemCommand.check(["losetup", "--find", "--show", file]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Makes the file system and mounts it at `staging` (an existing directory).
    static func stage(_ device: String, fsType: String, at staging: String) async throws {
        try await SystemCommand.check(fsType == "ext4" ? ["mkfs.ext4", "-F", "-q", "-m0", device] : ["mkfs.xfs", "-f", "-q", device])
        try await SystemCommand.check(["mount", "-t", fsType, device, staging])
    }

    /// Bind-mounts `staging` at `target` (an existing directory).
    static func publish(_ staging: String, at target: String) async throws {
        try await SystemCommand.check(["mount", "--bind", staging, target])
    }

    /// The four steps in a row, an ext4 volume at `target`; its loop device.
    static func setUp(_ file: String, bytes: Int64, staging: String, target: String) async throws -> String {
        try create(file, bytes: bytes)
        let device = try await attach(file)
        try await stage(device, fsType: "ext4", at: staging)
        try await publish(staging, at: target)
        return device
    }
}
