import Foundation
import GRPCCore
import GRPCNIOTransportCore
import GRPCNIOTransportHTTP2
import Logging
import MVCCStore
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// Configuration of `ballast store serve` (etcd's flag names where they exist).
public struct EtcdServerConfiguration: Sendable {
    /// Client address, as --listen-client-urls http://HOST:PORT.
    public var host = "127.0.0.1"
    public var port = 2379
    /// Advertised in MemberList (--advertise-client-urls).
    public var advertiseClientURLs: [String] = []
    public var name = "ballast"
    public var maxRequestBytes = 1_572_864
    /// Periodic progress notifications for watches that ask for them.
    public var progressNotifyInterval: Duration = .seconds(600)
    /// A separate HTTP listener for /metrics and /health (etcd's
    /// --listen-metrics-urls). When set, gRPC is served directly on the client
    /// port, without the protocol sniffer and its extra hop; the client port
    /// then answers gRPC only.
    public var metricsHost: String?
    public var metricsPort: Int?

    public init() {}
}

/// Serves the etcd v3 API of one MVCC store: gRPC, and on the same port, as
/// etcd does, HTTP/1.1 `/metrics`, `/health` and `/version`.
///
/// The public listener looks at the first bytes of each connection: an HTTP/2
/// preface goes to the gRPC server (listening on a private unix socket), any
/// other request is answered as HTTP/1.1. See docs/store.md.
public final class EtcdServer: Sendable {
    public let store: MVCCStore
    public let configuration: EtcdServerConfiguration
    private let grpcSocket: String
    private let grpcServer: GRPCServer<HTTP2ServerTransport.Posix>
    private let group: MultiThreadedEventLoopGroup
    private let logger: Logger
    private let frontChannel: NIOLockedValueBox<Channel?> = NIOLockedValueBox(nil)
    private let metrics: Metrics

    public init(store: MVCCStore, configuration: EtcdServerConfiguration, socketDirectory: String, logger: Logger) {
        self.store = store
        self.configuration = configuration
        self.logger = logger
        let name = "grpc-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        // A unix socket path must fit in sun_path (108 bytes): fall back to /tmp for deep data dirs.
        let preferred = socketDirectory + "/" + name
        self.grpcSocket = preferred.utf8.count < 100 ? preferred : "/tmp/ballast-" + name
        let headers = HeaderFactory(clusterID: store.clusterID, memberID: store.memberID)
        let urls = configuration.advertiseClientURLs.isEmpty
            ? ["http://\(configuration.host):\(configuration.port)"] : configuration.advertiseClientURLs
        metrics = Metrics(store: store)
        var transportConfig = HTTP2ServerTransport.Posix.Config.defaults
        transportConfig.rpc.maxRequestPayloadSize = configuration.maxRequestBytes + 512 * 1024
        let address: GRPCNIOTransportCore.SocketAddress = configuration.metricsPort == nil
            ? .unixDomainSocket(path: grpcSocket) : .ipv4(host: configuration.host, port: configuration.port)
        grpcServer = GRPCServer(
            transport: .http2NIOPosix(address: address, transportSecurity: .plaintext, config: transportConfig),
            services: [
                KVService(store: store, headers: headers, limits: ServerLimits(maxRequestBytes: configuration.maxRequestBytes)),
                WatchService(store: store, headers: headers, progressInterval: configuration.progressNotifyInterval),
                LeaseService(store: store, headers: headers),
                ClusterService(store: store, headers: headers, name: configuration.name, clientURLs: urls),
                MaintenanceService(store: store, headers: headers),
            ],
            interceptors: [metrics]
        )
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    /// Serves until `shutdown()`; returns once the listeners are closed.
    public func run() async throws {
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await self.grpcServer.serve() }
            _ = try await grpcServer.listeningAddress
            let direct = configuration.metricsPort != nil
            let front = try await FrontDoor.bind(host: direct ? configuration.metricsHost ?? configuration.host : configuration.host,
                                                 port: configuration.metricsPort ?? configuration.port,
                                                 grpcSocket: direct ? nil : grpcSocket, group: group, metrics: metrics)
            frontChannel.withLockedValue { $0 = front }
            logger.info("serving etcd v3 API", metadata: ["address": "\(configuration.host):\(configuration.port)",
                                                          "revision": "\(store.revision)"])
            tasks.addTask { try await front.closeFuture.get() }
            try await tasks.next()
            shutdown()
            try await tasks.waitForAll()
        }
        try? FileManager.default.removeItem(atPath: grpcSocket)
        try await group.shutdownGracefully()
    }

    /// The port the server listens on (useful with port 0).
    public var boundPort: Int? {
        frontChannel.withLockedValue { $0?.localAddress?.port }
    }

    /// Stops accepting connections and lets running calls finish.
    public func shutdown() {
        grpcServer.beginGracefulShutdown()
        let ch = frontChannel.withLockedValue { $0 }
        ch?.close(promise: nil)
    }
}
