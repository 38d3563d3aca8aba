import Foundation
import Testing
import TestSupport

/// `ballast store serve` on a free loopback port, in a temporary data dir.
/// Stopped with SIGTERM (or SIGKILL) and its directory removed on `stop()`/deinit.
final class StoreServer {
    let port: Int
    let dataDir: String
    private(set) var process: Process?
    private let ownsDir: Bool

    var endpoint: String { "http://127.0.0.1:\(port)" }

    /// Port that answers /health (the client port unless metrics have their own).
    private let healthPort: Int?

    init(dataDir: String? = nil, extraArgs: [String] = [], healthPort: Int? = nil) throws {
        port = freePort()
        self.healthPort = healthPort
        ownsDir = dataDir == nil
        self.dataDir = dataDir ?? FileManager.default.temporaryDirectory.path + "/ballast-etcd-\(UUID().uuidString.prefix(8))"
        try start(extraArgs)
    }

    private var lastArgs: [String] = []

    func start(_ extraArgs: [String]? = nil) throws {
        let extraArgs = extraArgs ?? lastArgs
        lastArgs = extraArgs
        let p = Process()
        p.executableURL = URL(fileURLWithPath: ballastBinary())
        p.arguments = ["store", "serve", "--data-dir", dataDir, "--listen-client-urls", endpoint] + extraArgs
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        process = p
        // Ready when the port answers /health.
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            let health = healthPort.map { "http://127.0.0.1:\($0)" } ?? endpoint
            if let r = try? run("curl", ["-s", "--max-time", "1", "\(health)/health"], timeout: 3), r.stdout.contains("health") { return }
            if !p.isRunning { throw TestFailure("ballast store serve exited with \(p.terminationStatus) before it served") }
            usleep(50_000)
        }
        throw TestFailure("ballast store serve did not answer on \(endpoint) within 20 s")
    }

    /// Stops the server and returns its exit status.
    func stopAndReturnStatus(signal sig: Int32) -> Int32 {
        guard let p = process else { return -1 }
        if p.isRunning { kill(p.processIdentifier, sig) }
        p.waitUntilExit()
        process = nil
        return p.terminationStatus
    }

    func stop(signal sig: Int32 = SIGTERM) {
        guard let p = process else { return }
        if p.isRunning { kill(p.processIdentifier, sig) }
        p.waitUntilExit()
        process = nil
    }

    deinit {
        stop(signal: SIGKILL)
        if ownsDir { try? FileManager.default.removeItem(atPath: dataDir) }
    }

    /// Runs etcdctl (API v3) against this server.
    @discardableResult
    func etcdctl(_ args: [String], input: String? = nil, timeout: Double = 30) throws -> CommandResult {
        try run("etcdctl", ["--endpoints", endpoint] + args, input: input, env: ["ETCDCTL_API": "3"], timeout: timeout)
    }
}

/// Whether etcdctl is installed; the suite requires it (make test installs etcd-client).
let haveEtcdctl = (try? run("etcdctl", ["version"]).status) == 0
