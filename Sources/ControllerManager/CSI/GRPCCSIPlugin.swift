// `CSIPlugin` over the plugin's unix socket with grpc-swift, every call bounded by a timeout
// (the sidecars' `--timeout`). The connection is kept and re-established by grpc-swift when the
// plugin restarts; a call made while it is down fails with UNAVAILABLE and is retried by the
// controller that made it.
import CSIProto
import GRPCCore
import GRPCNIOTransportHTTP2

public final class GRPCCSIPlugin: CSIPlugin {
    private let client: GRPCClient<HTTP2ClientTransport.Posix>
    private let identity: Csi_V1_Identity.Client<HTTP2ClientTransport.Posix>
    private let controller: Csi_V1_Controller.Client<HTTP2ClientTransport.Posix>
    private let connections: Task<Void, Never>
    private let options: CallOptions

    /// A client of the plugin listening at `endpoint` (`unix:///path/csi.sock` or a path).
    /// - Parameter timeout: the longest one call may take.
    public init(endpoint: String, timeout: Duration = .seconds(15)) throws {
        var path = endpoint
        if path.hasPrefix("unix://") { path = String(path.dropFirst("unix://".count)) }
        guard path.hasPrefix("/") else {
            throw CSIError(code: .invalidArgument, message: "--csi-endpoint \(endpoint): expected unix:///absolute/path.sock")
        }
        // The plugin may start after the controller manager, or restart: reached again within a
        // second, not after grpc-swift's default back-off of up to 2 minutes.
        var config = HTTP2ClientTransport.Posix.Config.defaults
        config.backoff = .init(initial: .milliseconds(100), max: .seconds(1), multiplier: 1.6, jitter: 0.2)
        client = GRPCClient(transport: try HTTP2ClientTransport.Posix(target: .unixDomainSocket(path: path), transportSecurity: .plaintext,
                                                                      config: config))
        let client = self.client
        connections = Task { try? await client.runConnections() }
        identity = Csi_V1_Identity.Client(wrapping: client)
        controller = Csi_V1_Controller.Client(wrapping: client)
        var options = CallOptions.defaults
        options.timeout = timeout
        self.options = options
    }

    /// Closes the connection.
    public func close() {
        client.beginGracefulShutdown()
        connections.cancel()
    }

    deinit { close() }

    private func call<T>(_ body: () async throws -> T) async throws -> T {
        do { return try await body() } catch { throw CSIError(error) }
    }

    public func getPluginInfo() async throws -> Csi_V1_GetPluginInfoResponse {
        try await call { try await identity.getPluginInfo(Csi_V1_GetPluginInfoRequest(), options: options) }
    }

    public func controllerGetCapabilities() async throws -> Csi_V1_ControllerGetCapabilitiesResponse {
        try await call { try await controller.controllerGetCapabilities(Csi_V1_ControllerGetCapabilitiesRequest(), options: options) }
    }

    public func createVolume(_ request: Csi_V1_CreateVolumeRequest) async throws -> Csi_V1_CreateVolumeResponse {
        try await call { try await controller.createVolume(request, options: options) }
    }

    public func deleteVolume(_ request: Csi_V1_DeleteVolumeRequest) async throws -> Csi_V1_DeleteVolumeResponse {
        try await call { try await controller.deleteVolume(request, options: options) }
    }

    public func controllerPublishVolume(_ request: Csi_V1_ControllerPublishVolumeRequest) async throws -> Csi_V1_ControllerPublishVolumeResponse {
        try await call { try await controller.controllerPublishVolume(request, options: options) }
    }

    public func controllerUnpublishVolume(_ request: Csi_V1_ControllerUnpublishVolumeRequest) async throws -> Csi_V1_ControllerUnpublishVolumeResponse {
        try await call { try await controller.controllerUnpublishVolume(request, options: options) }
    }

    public func controllerExpandVolume(_ request: Csi_V1_ControllerExpandVolumeRequest) async throws -> Csi_V1_ControllerExpandVolumeResponse {
        try await call { try await controller.controllerExpandVolume(request, options: options) }
    }

    public func controllerModifyVolume(_ request: Csi_V1_ControllerModifyVolumeRequest) async throws -> Csi_V1_ControllerModifyVolumeResponse {
        try await call { try await controller.controllerModifyVolume(request, options: options) }
    }

    public func listVolumes(_ request: Csi_V1_ListVolumesRequest) async throws -> Csi_V1_ListVolumesResponse {
        try await call { try await controller.listVolumes(request, options: options) }
    }

    public func createSnapshot(_ request: Csi_V1_CreateSnapshotRequest) async throws -> Csi_V1_CreateSnapshotResponse {
        try await call { try await controller.createSnapshot(request, options: options) }
    }

    public func deleteSnapshot(_ request: Csi_V1_DeleteSnapshotRequest) async throws -> Csi_V1_DeleteSnapshotResponse {
        try await call { try await controller.deleteSnapshot(request, options: options) }
    }

    public func listSnapshots(_ request: Csi_V1_ListSnapshotsRequest) async throws -> Csi_V1_ListSnapshotsResponse {
        try await call { try await controller.listSnapshots(request, options: options) }
    }
}
