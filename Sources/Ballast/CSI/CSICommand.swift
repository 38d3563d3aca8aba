import ArgumentParser
import CloudProvider
import CSIDriver
import Foundation
import Logging

/// `ballast csi`: the CSI v1 driver — controller plugin, node plugin, or both — on a unix socket.
/// Stops cleanly on SIGTERM and SIGINT; what the node plugin staged and published survives a
/// restart (it reconciles with the mounts it finds).
struct CSICommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "csi",
        abstract: "Serve the CSI v1 driver (identity, controller and node services) on a unix socket."
    )

    @Option(help: "controller, node or both.")
    var mode: String = "both"

    @Option(help: "Where to listen: unix:///path/to/csi.sock.")
    var endpoint: String = "unix:///var/lib/kubelet/plugins/loop.csi.ballast.dev/csi.sock"

    @Option(help: "The driver's name, as StorageClasses' provisioner field names it.")
    var driverName: String = "loop.csi.ballast.dev"

    @Option(help: "Node plugin: this node's cloud instance id or name.")
    var nodeId: String?

    @OptionGroup var cloudOptions: CloudOptions

    @Option(help: "Node plugin: the kubelet's root dir; the driver only mounts on paths under it.")
    var kubeletRoot: String = "/var/lib/kubelet"

    @Option(help: "Node plugin: where it records what it staged and published (default: KUBELET_ROOT/plugins/DRIVER_NAME).")
    var stateDir: String?

    @Option(help: "Size of volumes created without a capacity range (bytes, or with Mi, Gi).")
    var defaultVolumeSize = ByteCount(1 << 30)

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard DriverMode(rawValue: mode) != nil else { throw ValidationError("--mode \(mode): expected controller, node or both") }
        if DriverMode(rawValue: mode)!.servesNode && (nodeId ?? "").isEmpty {
            throw ValidationError("--node-id is required in \(mode) mode: give this node's cloud instance id or name")
        }
        guard kubeletRoot.hasPrefix("/") else { throw ValidationError("--kubelet-root \(kubeletRoot): expected an absolute path") }
        guard defaultVolumeSize.bytes > 0 else { throw ValidationError("--default-volume-size must be positive") }
        do {
            try DriverConfiguration.checkDriverName(driverName)
            _ = try DriverConfiguration.socketPath(fromEndpoint: endpoint)
        } catch {
            throw ValidationError("\(error)")
        }
    }

    func run() async throws {
        let logger = logging.logger("ballast.csi")
        umask(0o077)
        let root = URL(fileURLWithPath: kubeletRoot).standardizedFileURL.path
        var configuration = DriverConfiguration(
            driverName: driverName, mode: DriverMode(rawValue: mode)!,
            socketPath: try DriverConfiguration.socketPath(fromEndpoint: endpoint), kubeletRoot: root,
            stateDirectory: stateDir ?? root + "/plugins/" + driverName)
        configuration.defaultVolumeBytes = defaultVolumeSize.bytes
        let server = try CSIServer(configuration: configuration, cloud: try cloudOptions.client(), nodeID: nodeId, logger: logger)
        try await runServices([("csi", server)], logger: logger)
        logger.info("stopped")
    }
}
