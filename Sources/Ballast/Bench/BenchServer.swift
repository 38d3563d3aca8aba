// A server a benchmark starts: `ballast store serve`, `ballast apiserver` or a real etcd, as a
// child process (HostSystem's ChildProcess) on a free loopback port with a temporary
// directory; its output goes to DIR.log (kept with BALLAST_BENCH_KEEP_LOGS). Readiness is
// polled over HTTP without holding a thread; `stop()` sends SIGTERM, then SIGKILL after 10 s.
import APIClient
import EtcdAPI
import Foundation
import HostSystem
import HTTPKit
import Logging

final class BenchServer: Sendable {
    let name: String
    let port: Int
    /// The server's data directory ("" for a server the benchmark did not start).
    let directory: String
    private let child: ChildProcess?

    var endpoint: String { "http://127.0.0.1:\(port)" }

    private init(name: String, port: Int, directory: String, child: ChildProcess?) {
        self.name = name
        self.port = port
        self.directory = directory
        self.child = child
    }

    /// Starts `arguments` and polls `ready` until it answers true (30 s at most).
    private static func start(name: String, port: Int, directory: String, arguments: [String],
                              ready: @escaping @Sendable () async -> Bool) async throws -> BenchServer {
        let child = try ChildProcess(arguments, newSession: true, standardOutput: .file(directory + ".log"), standardError: .sameAsOutput)
        let server = BenchServer(name: name, port: port, directory: directory, child: child)
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline, child.termination == nil {
            if await ready() { return server }
            try await Task.sleep(for: .milliseconds(50))
        }
        let log = (try? String(contentsOfFile: directory + ".log", encoding: .utf8))?.split(separator: "\n").suffix(3).joined(separator: "\n") ?? ""
        await server.stop()
        throw BenchError(description: "\(name) did not start on 127.0.0.1:\(port) (is it installed? etcd comes from Debian's etcd-server); its last words: \(log)")
    }

    /// `ballast store serve` (this binary), every write fsynced.
    static func ballastStore(logLevel: Logger.Level) async throws -> BenchServer {
        let port = freePort(), directory = try BenchStoreCommand.makeTemporaryDirectory()
        return try await start(name: "ballast", port: port, directory: directory,
                               arguments: ["/proc/self/exe", "store", "serve", "--data-dir", directory, "--listen-client-urls",
                                           "http://127.0.0.1:\(port)", "--sync", "always", "--log-level", logLevel.rawValue],
                               ready: { await healthy(port, path: "/health") })
    }

    /// Debian's etcd-server.
    static func etcd() async throws -> BenchServer {
        let path = ["/usr/bin/etcd", "/usr/local/bin/etcd"].first { FileManager.default.isExecutableFile(atPath: $0) } ?? "/usr/bin/etcd"
        let port = freePort(), peer = freePort(), directory = try BenchStoreCommand.makeTemporaryDirectory()
        return try await start(name: "etcd", port: port, directory: directory,
                               arguments: [path, "--name", "bench", "--data-dir", directory,
                                           "--listen-client-urls", "http://127.0.0.1:\(port)", "--advertise-client-urls", "http://127.0.0.1:\(port)",
                                           "--listen-peer-urls", "http://127.0.0.1:\(peer)", "--initial-advertise-peer-urls", "http://127.0.0.1:\(peer)",
                                           "--initial-cluster", "bench=http://127.0.0.1:\(peer)"],
                               ready: { await healthy(port, path: "/health") })
    }

    /// `ballast apiserver` (this binary) on the embedded store, or on `etcd`'s endpoint.
    static func apiserver(etcd: String?, logLevel: Logger.Level) async throws -> BenchServer {
        let port = freePort(), directory = try BenchStoreCommand.makeTemporaryDirectory()
        let kubeconfig = directory + "/admin.kubeconfig"
        return try await start(name: "ballast apiserver", port: port, directory: directory,
                               arguments: ["/proc/self/exe", "apiserver", "--data-dir", directory, "--secure-port", String(port),
                                           "--bind-address", "127.0.0.1", "--log-level", logLevel.rawValue]
                                   + (etcd.map { ["--etcd-servers", $0] } ?? []),
                               ready: {
                                   guard let client = try? KubeClient(try Connection.kubeconfig(at: kubeconfig)) else { return false }
                                   return (try? await client.send(.GET, "/readyz"))?.status.code == 200
                               })
    }

    /// A server the benchmark did not start (no CPU figure, nothing to stop).
    static func external(port: Int) -> BenchServer {
        BenchServer(name: "external", port: port, directory: "", child: nil)
    }

    /// User + system CPU seconds of the server process so far (0 for an external server).
    func cpuSeconds() -> Double {
        guard let child, child.termination == nil else { return 0 }
        return ProcessInfoReader.cpuSeconds(pid: String(child.pid)) ?? 0
    }

    /// Stops the server and removes its files.
    func stop() async {
        guard let child else { return }
        await child.terminate(grace: .seconds(10))
        try? FileManager.default.removeItem(atPath: directory)
        if ProcessInfo.processInfo.environment["BALLAST_BENCH_KEEP_LOGS"] == nil { try? FileManager.default.removeItem(atPath: directory + ".log") }
    }

    /// Runs `body` with the server and stops it after, also when `body` throws.
    func using<T>(_ body: (BenchServer) async throws -> T) async throws -> T {
        do {
            let result = try await body(self)
            await stop()
            return result
        } catch {
            await stop()
            throw error
        }
    }

    /// Whether GET `path` on 127.0.0.1:`port` answers 200 with an etcd health body.
    private static func healthy(_ port: Int, path: String) async -> Bool {
        let client = HTTPClient(host: "127.0.0.1", port: port, timeout: .seconds(1))
        guard let response = try? await client.send(HTTPRequest(method: .GET, path: path)) else { return false }
        return response.status.code == 200 && String(decoding: response.body, as: UTF8.self).contains("\"health\":\"true\"")
    }

    /// A free TCP port on 127.0.0.1.
    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}
