// The real API handler on a real embedded store, without a socket: controller tests create
// objects through it and run controllers against it, table by table, as Kubernetes' controller
// tests use a fake clientset.
import APIClient
import APIServer
import Foundation
import HTTPKit
import Logging
import MVCCStore

public final class InProcessAPIServer: Sendable {
    public let store: MVCCStore
    public let handler: APIHandler
    private let tokens: [String: String]
    private let directory: String

    private init(store: MVCCStore, handler: APIHandler, tokens: [String: String], directory: String) {
        self.store = store
        self.handler = handler
        self.tokens = tokens
        self.directory = directory
    }

    /// An API server over a new store in a temporary directory; `users` get tokens besides
    /// `admin` (`system:masters`).
    public static func start(users: [UserInfo] = [], logLevel: Logger.Level = .warning) async throws -> InProcessAPIServer {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ballast-inprocess-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var logger = Logger(label: "in-process-apiserver")
        logger.logLevel = logLevel
        do {
            let store = try MVCCStore.open(path: directory)
            let (handler, tokens) = try await APIServer.inProcessHandler(store: store, users: users, logger: logger)
            return InProcessAPIServer(store: store, handler: handler, tokens: tokens, directory: directory)
        } catch {
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
    }

    /// A client whose requests the handler answers as `user` (a name given to `start`).
    public func client(as user: String = "admin") -> KubeClient {
        let handler = self.handler
        var connection = Connection(server: URL(string: "http://in-process.invalid")!, token: tokens[user])
        connection.timeout = .seconds(10)
        return KubeClient(connection, transport: HandlerTransport { request in await handler.handle(request) })
    }

    /// Ends the watches, closes the store and removes its directory.
    public func close() async {
        handler.stopWatches()
        try? await store.close()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

extension InProcessAPIServer {
    /// Runs `body` against a fresh in-process server and closes it after, even when `body` throws.
    public static func with<T>(users: [UserInfo] = [], _ body: (InProcessAPIServer) async throws -> T) async throws -> T {
        let server = try await start(users: users)
        do {
            let result = try await body(server)
            await server.close()
            return result
        } catch {
            await server.close()
            throw error
        }
    }
}
