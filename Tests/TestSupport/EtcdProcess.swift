// A real etcd (Debian's etcd-server, /usr/bin/etcd) for the tests that run the API server on it.
import Foundation

/// etcd on free loopback ports with a temporary data directory. `stop()` kills it and removes
/// the directory; a failed start cleans up before it throws.
public final class EtcdProcess: Sendable {
    public let port: Int
    public let peerPort: Int
    public let dataDir: String
    private let process: TestProcess
    public var endpoint: String { "http://127.0.0.1:\(port)" }

    /// Whether an `etcd` binary is on the PATH (`make deps` installs Debian's etcd-server).
    public static func isInstalled() async -> Bool { (try? await run("etcd", ["--version"]).status) == 0 }

    private init(port: Int, peerPort: Int, dataDir: String, process: TestProcess) {
        self.port = port
        self.peerPort = peerPort
        self.dataDir = dataDir
        self.process = process
    }

    /// Starts etcd and waits until it is healthy.
    public static func start() async throws -> EtcdProcess {
        guard await isInstalled() else {
            throw TestFailure("etcd is not on the PATH: run `make deps` (it installs Debian's etcd-server)")
        }
        let port = freePort(), peerPort = freePort()
        let dataDir = FileManager.default.temporaryDirectory.path + "/ballast-etcd-\(UUID().uuidString.prefix(8))"
        let endpoint = "http://127.0.0.1:\(port)"
        var environment: [String: String] = [:]
        #if arch(arm64)
        environment["ETCD_UNSUPPORTED_ARCH"] = "arm64"  // etcd 3.4 refuses to start on arm64 without it
        #endif
        let process = try TestProcess(["etcd", "--name", "t", "--data-dir", dataDir,
                                       "--listen-client-urls", endpoint, "--advertise-client-urls", endpoint,
                                       "--listen-peer-urls", "http://127.0.0.1:\(peerPort)",
                                       "--initial-advertise-peer-urls", "http://127.0.0.1:\(peerPort)",
                                       "--initial-cluster", "t=http://127.0.0.1:\(peerPort)"],
                                      environment: environment, logPath: dataDir + ".log")
        let etcd = EtcdProcess(port: port, peerPort: peerPort, dataDir: dataDir, process: process)
        let healthy = await waitUntil(timeout: .seconds(30), interval: .milliseconds(100)) {
            guard process.isRunning else { return true }
            // /version names etcd itself, so a stray server on the port cannot pass for it.
            guard let version = try? await run("curl", ["-s", "--max-time", "1", "\(endpoint)/version"], timeout: 3),
                  version.stdout.contains("\"etcdserver\""),
                  let health = try? await run("curl", ["-s", "--max-time", "1", "\(endpoint)/health"], timeout: 3) else { return false }
            return health.stdout.contains("\"health\":\"true\"")
        }
        guard healthy, process.isRunning else {
            let output = process.log
            etcd.stop()
            throw TestFailure("etcd did not become healthy on \(endpoint): \(output.suffix(2000))")
        }
        return etcd
    }

    public func stop() {
        process.kill()
        try? FileManager.default.removeItem(atPath: dataDir)
        try? FileManager.default.removeItem(atPath: dataDir + ".log")
    }
}
