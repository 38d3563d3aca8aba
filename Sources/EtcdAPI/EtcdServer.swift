import Foundation
import GRPCWire
import Logging
import ServiceLifecycle
import MVCCStore
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

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
    /// --listen-metrics-urls), in addition to the client port.
    public var metricsHost: String?
    public var metricsPort: Int?
    /// Event-loop threads serving connections.
    public var eventLoops = 1
    /// What clients may make the server hold or do: connections, streams per
    /// connection (--max-concurrent-streams), buffered request bytes, timeouts,
    /// flood allowances. See docs/security.md#store-wire-grpcwire.
    public var limits = GRPCWireLimits()

    public init() {}
}

/// Serves the etcd v3 API of one MVCC store: gRPC (Ballast's own wire
/// server, see docs/store.md) and, on the same port, as etcd does, HTTP/1.1
/// `/metrics`, `/health` and `/version`; also on a separate metrics listener
/// when one is configured.
public final class EtcdServer: Sendable {
    public let store: MVCCStore
    public let configuration: EtcdServerConfiguration
    private let server: GRPCWireServer
    private let metricsServer: GRPCWireServer?
    private let logger: Logger
    private let port = NIOLockedValueBox<Int?>(nil)
    private let stopped = NIOLockedValueBox<Task<Void, Never>?>(nil)

    public init(store: MVCCStore, configuration: EtcdServerConfiguration, logger: Logger) {
        self.store = store
        self.configuration = configuration
        self.logger = logger
        let headers = HeaderFactory(clusterID: store.clusterID, memberID: store.memberID)
        let urls = configuration.advertiseClientURLs.isEmpty
            ? ["http://\(configuration.host):\(configuration.port)"] : configuration.advertiseClientURLs
        let metrics = Metrics(store: store)
        var router = GRPCRouter()
        // etcd's gRPC limit: the request limit plus 512 KiB of envelope (embed.Config's grpcOverheadBytes).
        router.maxRequestMessageBytes = configuration.maxRequestBytes + 512 * 1024
        router.observer = { path, code in metrics.observe(path, code) }
        KVService(store: store, headers: headers, limits: ServerLimits(maxRequestBytes: configuration.maxRequestBytes))
            .register(in: &router)
        WatchService(store: store, headers: headers, progressInterval: configuration.progressNotifyInterval).register(in: &router)
        LeaseService(store: store, headers: headers).register(in: &router)
        ClusterService(store: store, headers: headers, name: configuration.name, clientURLs: urls).register(in: &router)
        MaintenanceService(store: store, headers: headers).register(in: &router)
        let http1: @Sendable (ChannelPipeline.SynchronousOperations) throws -> Void = { ops in
            try ops.configureHTTPServerPipeline(position: .last)
            try ops.addHandler(HTTPEndpoints(metrics: metrics))
        }
        server = GRPCWireServer(router: router, threads: configuration.eventLoops, limits: configuration.limits, http1: http1)
        metricsServer = configuration.metricsPort == nil ? nil
            : GRPCWireServer(router: GRPCRouter(), threads: 1, limits: configuration.limits, http1: http1)
    }

    /// Serves until `shutdown()` (called too when a `ServiceGroup` it runs in shuts down
    /// gracefully); returns once the listeners are closed.
    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await serve()
        } onGracefulShutdown: {
            self.shutdown()
        }
    }

    private func serve() async throws {
        let bound = try await server.bind(host: configuration.host, port: configuration.port)
        port.withLockedValue { $0 = bound }
        if let metricsServer, let metricsPort = configuration.metricsPort {
            try await metricsServer.bind(host: configuration.metricsHost ?? configuration.host, port: metricsPort)
        }
        logger.info("serving etcd v3 API", metadata: ["address": "\(configuration.host):\(bound)", "revision": "\(store.revision)"])
        try await server.wait()
        await stopped.withLockedValue { $0 }?.value
    }

    /// The port the server listens on (useful with port 0).
    public var boundPort: Int? { port.withLockedValue { $0 } }

    /// Stops accepting connections and lets running calls finish (briefly).
    public func shutdown() {
        stopped.withLockedValue { task in
            guard task == nil else { return }
            task = Task { [server, metricsServer] in
                await server.shutdown()
                await metricsServer?.shutdown()
            }
        }
    }
}

extension EtcdServer: Service {}
