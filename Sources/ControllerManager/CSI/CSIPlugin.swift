// The CSI controller plugin as the sidecars see it: the identity and controller RPCs they call,
// over the plugin's unix socket (`GRPCCSIPlugin`), or any other implementation a test injects.
import CSIProto
import GRPCCore

/// The CSI calls the controller manager makes. Failures are `CSIError`s.
public protocol CSIPlugin: Sendable {
    func getPluginInfo() async throws -> Csi_V1_GetPluginInfoResponse
    func controllerGetCapabilities() async throws -> Csi_V1_ControllerGetCapabilitiesResponse
    func createVolume(_ request: Csi_V1_CreateVolumeRequest) async throws -> Csi_V1_CreateVolumeResponse
    func deleteVolume(_ request: Csi_V1_DeleteVolumeRequest) async throws -> Csi_V1_DeleteVolumeResponse
    func controllerPublishVolume(_ request: Csi_V1_ControllerPublishVolumeRequest) async throws -> Csi_V1_ControllerPublishVolumeResponse
    func controllerUnpublishVolume(_ request: Csi_V1_ControllerUnpublishVolumeRequest) async throws -> Csi_V1_ControllerUnpublishVolumeResponse
    func controllerExpandVolume(_ request: Csi_V1_ControllerExpandVolumeRequest) async throws -> Csi_V1_ControllerExpandVolumeResponse
    func controllerModifyVolume(_ request: Csi_V1_ControllerModifyVolumeRequest) async throws -> Csi_V1_ControllerModifyVolumeResponse
    func listVolumes(_ request: Csi_V1_ListVolumesRequest) async throws -> Csi_V1_ListVolumesResponse
    func createSnapshot(_ request: Csi_V1_CreateSnapshotRequest) async throws -> Csi_V1_CreateSnapshotResponse
    func deleteSnapshot(_ request: Csi_V1_DeleteSnapshotRequest) async throws -> Csi_V1_DeleteSnapshotResponse
    func listSnapshots(_ request: Csi_V1_ListSnapshotsRequest) async throws -> Csi_V1_ListSnapshotsResponse
}

/// A failed CSI call: the gRPC status code and message, printed as Go's gRPC prints them
/// (`rpc error: code = OutOfRange desc = …`), which is what Kubernetes' events show.
public struct CSIError: Error, Sendable, CustomStringConvertible {
    public var code: RPCError.Code
    public var message: String

    public init(code: RPCError.Code, message: String) {
        self.code = code
        self.message = message
    }

    public init(_ error: any Error) {
        if let error = error as? CSIError {
            self = error
        } else if let error = error as? RPCError {
            self.init(code: error.code, message: error.message)
        } else if error is CancellationError {
            self.init(code: .cancelled, message: "context canceled")
        } else {
            self.init(code: .unavailable, message: "\(error)")
        }
    }

    /// Go's name of the code (`OutOfRange`, `DeadlineExceeded`, …).
    public var codeName: String {
        switch code {
        case .cancelled: "Canceled"
        case .unknown: "Unknown"
        case .invalidArgument: "InvalidArgument"
        case .deadlineExceeded: "DeadlineExceeded"
        case .notFound: "NotFound"
        case .alreadyExists: "AlreadyExists"
        case .permissionDenied: "PermissionDenied"
        case .resourceExhausted: "ResourceExhausted"
        case .failedPrecondition: "FailedPrecondition"
        case .aborted: "Aborted"
        case .outOfRange: "OutOfRange"
        case .unimplemented: "Unimplemented"
        case .internalError: "Internal"
        case .unavailable: "Unavailable"
        case .dataLoss: "DataLoss"
        case .unauthenticated: "Unauthenticated"
        default: "Code(\(code.rawValue))"
        }
    }

    public var description: String { "rpc error: code = \(codeName) desc = \(message)" }

    /// The call may still be running in the plugin (external-provisioner's "in background"
    /// codes): retry with the same name, never give up on it.
    public var isInProgress: Bool { [.deadlineExceeded, .unavailable, .cancelled, .aborted].contains(code) }

    /// Retrying the same request cannot succeed (the external-resizer's "infeasible" codes).
    public var isInfeasible: Bool { [.invalidArgument, .outOfRange, .notFound, .unimplemented].contains(code) }
}
