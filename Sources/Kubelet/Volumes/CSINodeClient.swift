// The kubelet's client of the CSI node plugin (`ballast csi --mode node`): grpc-swift over the
// plugin's unix socket, one connection for the kubelet's life, reconnecting when the plugin
// restarts.
import CSIProto
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2

/// The node plugin's unix socket and its node service.
public final class CSINodeClient: Sendable {
    public let socketPath: String
    private let client: GRPCClient<HTTP2ClientTransport.Posix>
    private let connections: Task<Void, any Error>
    let node: Csi_V1_Node.Client<HTTP2ClientTransport.Posix>
    let identity: Csi_V1_Identity.Client<HTTP2ClientTransport.Posix>
    /// Stage, publish, expand and their undoing: 2 minutes, as Kubernetes' kubelet gives a CSI
    /// operation (csiTimeout), so that a plugin that never answers fails the operation, which
    /// is retried, instead of holding the pod's worker for ever.
    let operationOptions: CallOptions = {
        var options = CallOptions.defaults
        options.timeout = .seconds(120)
        return options
    }()
    /// Questions (plugin info, node info, capabilities): 10 seconds.
    let questionOptions: CallOptions = {
        var options = CallOptions.defaults
        options.timeout = .seconds(10)
        return options
    }()

    /// A client of `endpoint` (`unix:///path/csi.sock`).
    public init(endpoint: String) throws {
        guard endpoint.hasPrefix("unix://"), endpoint.dropFirst(7).hasPrefix("/") else {
            throw KubeletError(.configuration, "--csi-endpoint \(endpoint): expected unix:///absolute/path.sock")
        }
        socketPath = String(endpoint.dropFirst(7))
        // A plugin that starts after the kubelet (or restarts) is reached within a second:
        // grpc-swift's default back-off grows to 2 minutes between connection attempts, and a
        // local socket costs nothing to try. (Kubernetes' kubelet dials the socket per operation.)
        var config = HTTP2ClientTransport.Posix.Config.defaults
        config.backoff = .init(initial: .milliseconds(100), max: .seconds(1), multiplier: 1.6, jitter: 0.2)
        let client = GRPCClient(transport: try HTTP2ClientTransport.Posix(target: .unixDomainSocket(path: socketPath),
                                                                          transportSecurity: .plaintext, config: config))
        self.client = client
        connections = Task { try await client.runConnections() }
        node = Csi_V1_Node.Client(wrapping: client)
        identity = Csi_V1_Identity.Client(wrapping: client)
    }

    /// Closes the connection.
    public func close() {
        client.beginGracefulShutdown()
        connections.cancel()
    }

    /// The plugin's name (GetPluginInfo).
    public func driverName() async throws -> String {
        try await identity.getPluginInfo(Csi_V1_GetPluginInfoRequest(), options: questionOptions).name
    }

    /// NodeGetInfo.
    public func info() async throws -> Csi_V1_NodeGetInfoResponse {
        try await node.nodeGetInfo(Csi_V1_NodeGetInfoRequest(), options: questionOptions)
    }

    /// The node service's capabilities (NodeGetCapabilities).
    public func capabilities() async throws -> Set<Csi_V1_NodeServiceCapability.RPC.TypeEnum> {
        let response = try await node.nodeGetCapabilities(Csi_V1_NodeGetCapabilitiesRequest(), options: questionOptions)
        return Set(response.capabilities.compactMap { capability -> Csi_V1_NodeServiceCapability.RPC.TypeEnum? in
            if case .rpc(let rpc)? = capability.type { return rpc.type }
            return nil
        })
    }
}

extension RPCError {
    /// "rpc error: code = FailedPrecondition desc = …", as Kubernetes prints CSI errors.
    var kubernetesDescription: String {
        let name: String
        switch code {
        case .invalidArgument: name = "InvalidArgument"
        case .notFound: name = "NotFound"
        case .alreadyExists: name = "AlreadyExists"
        case .failedPrecondition: name = "FailedPrecondition"
        case .aborted: name = "Aborted"
        case .outOfRange: name = "OutOfRange"
        case .unimplemented: name = "Unimplemented"
        case .internalError: name = "Internal"
        case .unavailable: name = "Unavailable"
        case .deadlineExceeded: name = "DeadlineExceeded"
        case .resourceExhausted: name = "ResourceExhausted"
        case .permissionDenied: name = "PermissionDenied"
        case .unauthenticated: name = "Unauthenticated"
        default: name = "\(code)"
        }
        return "rpc error: code = \(name) desc = \(message)"
    }
}
