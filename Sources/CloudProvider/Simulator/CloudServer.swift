// `ballast cloud serve` as one service: the simulator behind its HTTP API. Graceful shutdown
// stops accepting requests, gives those in flight a moment (idle keep-alive connections and
// long polls are cut), then lets the operations in progress finish.
import HTTPKit
import Logging
import ServiceLifecycle

public final class CloudServer: Service {
    public let cloud: CloudSimulator
    private let http: HTTPServer
    private let logger: Logger

    /// The bound port (useful with port 0).
    public var port: Int { http.port }

    private init(cloud: CloudSimulator, http: HTTPServer, logger: Logger) {
        self.cloud = cloud
        self.http = http
        self.logger = logger
    }

    /// Starts `cloud` (resuming the operations a previous run left) and binds its API.
    public static func start(cloud: CloudSimulator, keys: APIKeys, host: String, port: Int, logger: Logger) async throws -> CloudServer {
        try await cloud.start()
        let service = CloudHTTPService(cloud: cloud, keys: keys)
        let http = try await HTTPServer(host: host, port: port, limits: HTTPServerLimits(maxBodyBytes: 1 << 20), logger: logger,
                                        headCheck: service.checkHead, handler: service.handle)
        return CloudServer(cloud: cloud, http: http, logger: logger)
    }

    /// Serves until `shutdown()` or the graceful shutdown of the `ServiceGroup` it runs in;
    /// returns once the operations in progress have finished.
    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await http.run()
        } onGracefulShutdown: {
            self.shutdown()
        }
        await cloud.drain()
    }

    /// Stops accepting requests; those in flight get 2 seconds.
    public func shutdown() {
        http.shutdown(grace: .seconds(2))
    }
}
