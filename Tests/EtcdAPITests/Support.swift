import Foundation
import Testing
import TestSupport

/// `ballast store serve` on a free loopback port, in a temporary data dir.
/// Killed and its directory removed when released; `stop(signal:)` stops it and awaits its end.
final class StoreServer: @unchecked Sendable {
    let port: Int
    let dataDir: String
    // Written only by `start` and `stop`, which a test calls from one task.
    private(set) var process: TestProcess?
    private let ownsDir: Bool

    var endpoint: String { "http://127.0.0.1:\(port)" }

    /// Port that answers /health (the client port unless metrics have their own).
    private let healthPort: Int?
    private var lastArgs: [String] = []

    private init(dataDir: String?, healthPort: Int?) {
        port = freePort()
        self.healthPort = healthPort
        ownsDir = dataDir == nil
        self.dataDir = dataDir ?? FileManager.default.temporaryDirectory.path + "/ballast-etcd-\(UUID().uuidString.prefix(8))"
    }

    /// Starts a server and waits until it answers /health.
    static func start(dataDir: String? = nil, extraArgs: [String] = [], healthPort: Int? = nil) async throws -> StoreServer {
        let server = StoreServer(dataDir: dataDir, healthPort: healthPort)
        try await server.start(extraArgs)
        return server
    }

    /// Starts it again (after `stop`), with the same arguments unless given others.
    func start(_ extraArgs: [String]? = nil) async throws {
        let extraArgs = extraArgs ?? lastArgs
        lastArgs = extraArgs
        let process = try TestProcess([ballastBinary(), "store", "serve", "--data-dir", dataDir, "--listen-client-urls", endpoint] + extraArgs,
                                      logPath: dataDir + ".log")
        self.process = process
        let health = healthPort.map { "http://127.0.0.1:\($0)" } ?? endpoint
        let answered = await waitUntil(timeout: .seconds(20)) {
            guard process.isRunning else { return true }
            return (try? await run("curl", ["-s", "--max-time", "1", "\(health)/health"], timeout: 3))?.stdout.contains("health") == true
        }
        if let ended = process.child.termination {
            throw TestFailure("ballast store serve \(ended) before it served: \(process.log.suffix(2000))")
        }
        guard answered else { throw TestFailure("ballast store serve did not answer on \(endpoint) within 20 s") }
    }

    /// Stops the server with `signal` (SIGKILL after 15 s) and returns its exit status as a shell reports it.
    @discardableResult
    func stop(signal sig: Int32 = SIGTERM) async -> Int32 {
        guard let process else { return -1 }
        self.process = nil
        process.signal(sig)
        if let ended = await process.waitForExit(timeout: .seconds(15)) { return ended.shellStatus }
        return await process.terminate(grace: .zero).shellStatus
    }

    deinit {
        process?.kill()
        if ownsDir { try? FileManager.default.removeItem(atPath: dataDir) }
        try? FileManager.default.removeItem(atPath: dataDir + ".log")
    }

    /// Runs etcdctl (API v3) against this server.
    @discardableResult
    func etcdctl(_ args: [String], input: String? = nil, timeout: Double = 30) async throws -> CommandResult {
        try await run("etcdctl", ["--endpoints", endpoint] + args, input: input, env: ["ETCDCTL_API": "3"], timeout: timeout)
    }
}

/// Whether etcdctl is installed; the suite requires it (make test installs etcd-client).
func haveEtcdctl() async -> Bool { (try? await run("etcdctl", ["version"]).status) == 0 }
