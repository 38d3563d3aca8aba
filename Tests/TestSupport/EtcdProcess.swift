// A real etcd (Debian's etcd-server, /usr/bin/etcd) for the tests that run the API server on it.
import Foundation

/// etcd on free loopback ports with a temporary data directory. `stop()` ends it and removes
/// the directory; a failed start cleans up before it throws.
public final class EtcdProcess: @unchecked Sendable {
    public let port = freePort()
    public let peerPort = freePort()
    public let dataDir = FileManager.default.temporaryDirectory.path + "/ballast-etcd-\(UUID().uuidString.prefix(8))"
    private let process = Process()
    public var endpoint: String { "http://127.0.0.1:\(port)" }

    /// Whether an `etcd` binary is on the PATH (`make deps` installs Debian's etcd-server).
    public static var installed: Bool { (try? run("etcd", ["--version"]).status) == 0 }

    public init() throws {
        guard Self.installed else {
            throw TestFailure("etcd is not on the PATH: run `make deps` (it installs Debian's etcd-server)")
        }
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["etcd", "--name", "t", "--data-dir", dataDir,
                             "--listen-client-urls", endpoint, "--advertise-client-urls", endpoint,
                             "--listen-peer-urls", "http://127.0.0.1:\(peerPort)",
                             "--initial-advertise-peer-urls", "http://127.0.0.1:\(peerPort)",
                             "--initial-cluster", "t=http://127.0.0.1:\(peerPort)"]
        var environment = ProcessInfo.processInfo.environment
        #if arch(arm64)
        environment["ETCD_UNSUPPORTED_ARCH"] = "arm64"  // etcd 3.4 refuses to start on arm64 without it
        #endif
        process.environment = environment
        FileManager.default.createFile(atPath: dataDir + ".log", contents: nil)
        let log = FileHandle(forWritingAtPath: dataDir + ".log") ?? FileHandle.nullDevice
        process.standardOutput = log
        process.standardError = log
        try process.run()
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            // /version names etcd itself, so a stray server on the port cannot pass for it.
            if let r = try? run("curl", ["-s", "--max-time", "1", "\(endpoint)/version"], timeout: 3), r.stdout.contains("\"etcdserver\""),
               let h = try? run("curl", ["-s", "--max-time", "1", "\(endpoint)/health"], timeout: 3), h.stdout.contains("\"health\":\"true\"") {
                return
            }
            if !process.isRunning { break }
            usleep(100_000)
        }
        let output = (try? String(contentsOfFile: dataDir + ".log", encoding: .utf8)) ?? ""
        stop()
        throw TestFailure("etcd did not become healthy on \(endpoint): \(output.suffix(2000))")
    }

    public func stop() {
        if process.isRunning {
            process.terminate()
            let deadline = Date().addingTimeInterval(10)
            while process.isRunning && Date() < deadline { usleep(50_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: dataDir)
        try? FileManager.default.removeItem(atPath: dataDir + ".log")
    }
}
