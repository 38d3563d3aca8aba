// Three members of Debian's etcd on loopback ports, for the tests that run Ballast on a real etcd
// cluster and kill a member while it works.
import Foundation
import Synchronization

public final class EtcdCluster: Sendable {
    public struct Member: Sendable {
        public let name: String
        public let clientPort: Int
        public let peerPort: Int
        public let dataDir: String
        public var endpoint: String { "http://127.0.0.1:\(clientPort)" }
    }

    public let members: [Member]
    private let root: String
    private let processes: Mutex<[String: TestProcess]>

    /// The client URLs, comma-separated (`--etcd-servers`).
    public var endpoints: String { members.map(\.endpoint).joined(separator: ",") }

    /// Starts the members and waits until every one is healthy; cleans up before it throws.
    public static func start(members count: Int = 3) async throws -> EtcdCluster {
        guard await EtcdProcess.isInstalled() else {
            throw TestFailure("etcd is not on the PATH: run `make deps` (it installs Debian's etcd-server)")
        }
        let root = FileManager.default.temporaryDirectory.path + "/ballast-etcd-cluster-\(UUID().uuidString.prefix(8))"
        let members = (1...count).map { Member(name: "m\($0)", clientPort: freePort(), peerPort: freePort(), dataDir: root + "/m\($0)") }
        let cluster = EtcdCluster(root: root, members: members)
        do {
            for member in members { try cluster.launch(member) }
            for member in members {
                guard await cluster.waitHealthy(member) else {
                    throw TestFailure("etcd member \(member.name) did not become healthy: \(cluster.log(member).suffix(2000))")
                }
            }
        } catch {
            cluster.stop()
            throw error
        }
        return cluster
    }

    private init(root: String, members: [Member]) {
        self.root = root
        self.members = members
        self.processes = Mutex([:])
    }

    private func launch(_ member: Member) throws {
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let initial = members.map { "\($0.name)=http://127.0.0.1:\($0.peerPort)" }.joined(separator: ",")
        var environment: [String: String] = [:]
        #if arch(arm64)
        environment["ETCD_UNSUPPORTED_ARCH"] = "arm64"
        #endif
        let process = try TestProcess(["etcd", "--name", member.name, "--data-dir", member.dataDir,
                                       "--listen-client-urls", member.endpoint, "--advertise-client-urls", member.endpoint,
                                       "--listen-peer-urls", "http://127.0.0.1:\(member.peerPort)",
                                       "--initial-advertise-peer-urls", "http://127.0.0.1:\(member.peerPort)",
                                       "--initial-cluster", initial, "--initial-cluster-token", URL(fileURLWithPath: root).lastPathComponent],
                                      environment: environment, logPath: root + "/\(member.name).log")
        processes.withLock { $0[member.name] = process }
    }

    /// Whether `member` answers its health check within 30 s.
    public func waitHealthy(_ member: Member) async -> Bool {
        await waitUntil(timeout: .seconds(30), interval: .milliseconds(200)) {
            guard let health = try? await run("curl", ["-s", "--max-time", "1", "\(member.endpoint)/health"], timeout: 3) else { return false }
            return health.stdout.contains("\"health\":\"true\"")
        }
    }

    /// SIGKILL of a member (its data stays for `restart`).
    public func kill(_ member: Member) async {
        guard let process = processes.withLock({ $0[member.name] }) else { return }
        process.kill()
        _ = await process.waitForExit(timeout: .seconds(10))
    }

    /// Starts a killed member again on its data.
    public func restart(_ member: Member) throws { try launch(member) }

    public func log(_ member: Member) -> String {
        (try? String(contentsOfFile: root + "/\(member.name).log", encoding: .utf8)) ?? ""
    }

    /// Kills every member and removes their data.
    public func stop() {
        for process in processes.withLock({ Array($0.values) }) { process.kill() }
        try? FileManager.default.removeItem(atPath: root)
    }
}
