// The real `ballast apiserver` and `ballast controller-manager --controllers=replicaset,deployment`
// processes driven with kubectl: apply, rollout status, rollout history, scale, rollout undo, and
// a kill -9 of the controller manager in the middle of a rollout. No kubelet runs: the test
// writes pod status (Running, Ready) as one would.
import APIClient
import ClusterAPI
import ClusterTesting
import Foundation
import Synchronization
import Testing
import TestSupport

/// The API server and a controller manager running only the workload controllers, on 127.0.0.1,
/// each logging to a file in a temporary directory.
final class WorkloadCluster: @unchecked Sendable {
    let root = "/tmp/bwp-" + UUID().uuidString.prefix(8).lowercased()
    let apiserver: Daemon
    let managerArguments: [String]
    private let managerDaemon: Mutex<Daemon>
    private(set) var client: KubeClient!
    var kubeconfig: String { root + "/api/admin.kubeconfig" }
    var manager: Daemon { managerDaemon.withLock { $0 } }

    init() {
        try? FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        apiserver = Daemon("apiserver", arguments: ["apiserver", "--data-dir", root + "/api", "--secure-port", "\(freePort())",
                                                     "--bind-address", "127.0.0.1", "--log-level", "warning"], log: root + "/apiserver.log")
        managerArguments = ["controller-manager", "--kubeconfig", root + "/api/admin.kubeconfig", "--controllers", "replicaset,deployment",
                            "--leader-elect=false", "--resync", "2s", "--log-level", "info"]
        managerDaemon = Mutex(Daemon("controller-manager", arguments: managerArguments, log: root + "/controller-manager.log"))
    }

    func start() async throws {
        try apiserver.start()
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            if FileManager.default.fileExists(atPath: kubeconfig), let client = try? KubeClient(try Connection.kubeconfig(at: kubeconfig)),
               (try? await client.send(.GET, "/readyz"))?.status.code == 200 {
                self.client = client
                break
            }
            guard apiserver.isRunning else { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        guard client != nil else { throw TestFailure("the API server did not become ready:\n\(apiserver.output.suffix(3000))") }
        try manager.start()
    }

    /// A new controller manager process (the old one must have exited).
    func restartManager() throws {
        let daemon = Daemon("controller-manager", arguments: managerArguments, log: root + "/controller-manager.log")
        managerDaemon.withLock { $0 = daemon }
        try daemon.start()
    }

    func kubectl(_ arguments: String..., input: String? = nil) async throws -> CommandResult {
        try await runCommand("kubectl", ["--kubeconfig", kubeconfig, "--cache-dir", root + "/kube-cache"] + arguments,
                             env: ["HOME": root], input: input, timeout: .seconds(90))
    }

    func close() async {
        await manager.stop(grace: .seconds(5))
        await apiserver.stop(grace: .seconds(5))
        try? FileManager.default.removeItem(atPath: root)
    }

    var logs: String { [apiserver, manager].map { "== \($0.name)\n\($0.output.suffix(4000))" }.joined(separator: "\n") }
}

/// How long the simulated kubelet takes to make a pod ready, changed as the test goes.
final class KubeletPace: Sendable {
    private let value: Mutex<Duration>
    init(_ delay: Duration) { value = Mutex(delay) }
    var delay: Duration {
        get { value.withLock { $0 } }
        set { value.withLock { $0 = newValue } }
    }
}

let workloadProcessTestsCanRun = FileManager.default.fileExists(atPath: ballastBinary())
    && ["/usr/bin/kubectl", "/usr/local/bin/kubectl"].contains { FileManager.default.isExecutableFile(atPath: $0) }

func deploymentManifest(image: String, changeCause: String, replicas: Int = 4) -> String {
    """
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: web
      namespace: default
      annotations:
        kubernetes.io/change-cause: \(changeCause)
    spec:
      replicas: \(replicas)
      selector:
        matchLabels: {app: web}
      strategy:
        type: RollingUpdate
        rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
      template:
        metadata:
          labels: {app: web}
        spec:
          containers:
          - name: app
            image: \(image)
    """
}

@Suite("Workload controller processes", .serialized, .enabled(if: workloadProcessTestsCanRun, "needs kubectl and the built ballast binary"),
       .timeLimit(.minutes(6)))
struct WorkloadProcessTests {
    @Test("kubectl apply, rollout status, rollout history, scale, rollout undo; kill -9 mid-rollout leaves no extra pod")
    func kubectlRollouts() async throws {
        let c = WorkloadCluster()
        let kubeletDelay = KubeletPace(.milliseconds(50))
        var kubelet: Task<Void, Never>?
        do {
            try await c.start()
            kubelet = simulateKubelet(c.client, delay: { kubeletDelay.delay })
            try await Self.scenario(c, kubeletDelay)
        } catch {
            kubelet?.cancel()
            let logs = c.logs
            await c.close()
            throw TestFailure("\(error)\n\(logs)")
        }
        kubelet?.cancel()
        await kubelet?.value
        await c.close()
    }

    static func expectOK(_ result: CommandResult, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(result.status == 0, "\(what): \(result.stderr) \(result.stdout)", sourceLocation: sourceLocation)
    }

    /// The images of the active pods of the Deployment.
    static func images(_ c: WorkloadCluster) async throws -> [String] {
        try await c.client.list(Pod.self, namespace: "default", labelSelector: "app=web").items
            .filter { $0.metadata.deletionTimestamp == nil }.compactMap { $0.spec.containers.first?.image }.sorted()
    }

    static func scenario(_ c: WorkloadCluster, _ kubeletDelay: KubeletPace) async throws {
        expectOK(try await c.kubectl("apply", "-f", "-", input: deploymentManifest(image: "nginx:1.27", changeCause: "v1")), "apply v1")
        let status = try await c.kubectl("rollout", "status", "deployment/web", "--timeout=90s")
        expectOK(status, "rollout status v1")
        #expect(status.stdout.contains("deployment \"web\" successfully rolled out"), "\(status.stdout)")
        #expect(try await images(c) == Array(repeating: "nginx:1.27", count: 4))

        expectOK(try await c.kubectl("apply", "-f", "-", input: deploymentManifest(image: "nginx:1.28", changeCause: "v2")), "apply v2")
        expectOK(try await c.kubectl("rollout", "status", "deployment/web", "--timeout=90s"), "rollout status v2")
        #expect(try await images(c) == Array(repeating: "nginx:1.28", count: 4))
        let history = try await c.kubectl("rollout", "history", "deployment/web")
        expectOK(history, "rollout history")
        let rows = history.stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
        #expect(rows.contains(["1", "v1"]) && rows.contains(["2", "v2"]), "\(history.stdout)")

        expectOK(try await c.kubectl("scale", "deployment/web", "--replicas=6"), "scale")
        expectOK(try await c.kubectl("rollout", "status", "deployment/web", "--timeout=90s"), "rollout status after scale")
        #expect(try await images(c) == Array(repeating: "nginx:1.28", count: 6))

        let undo = try await c.kubectl("rollout", "undo", "deployment/web")
        expectOK(undo, "rollout undo")
        #expect(undo.stdout.contains("rolled back"), "\(undo.stdout)")
        expectOK(try await c.kubectl("rollout", "status", "deployment/web", "--timeout=90s"), "rollout status after undo")
        #expect(try await images(c) == Array(repeating: "nginx:1.27", count: 6))
        let after = try await c.kubectl("rollout", "history", "deployment/web")
        let afterRows = after.stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
        #expect(afterRows.contains(["2", "v2"]) && afterRows.contains(["3", "v1"]) && !afterRows.contains { $0.first == "1" }, "\(after.stdout)")

        // kill -9 in the middle of a rollout whose pods become ready slowly.
        kubeletDelay.delay = .milliseconds(600)
        let census = try await PodCensus.start(c.client, selector: "app=web")
        defer { census.stop() }
        expectOK(try await c.kubectl("set", "image", "deployment/web", "app=nginx:1.29"), "set image")
        let midway = await waitUntil(timeout: .seconds(30), interval: .milliseconds(20)) {
            let pods = try? await c.client.list(Pod.self, namespace: "default", labelSelector: "app=web").items
            return (pods ?? []).contains { $0.spec.containers.first?.image == "nginx:1.29" }
        }
        #expect(midway, "the rollout never started")
        await c.manager.kill9()
        try await Task.sleep(for: .milliseconds(800))
        try c.restartManager()
        kubeletDelay.delay = .milliseconds(50)
        expectOK(try await c.kubectl("rollout", "status", "deployment/web", "--timeout=120s"), "rollout status after the kill")
        try await Task.sleep(for: .seconds(1))
        #expect(try await images(c) == Array(repeating: "nginx:1.29", count: 6))
        #expect(census.maxActive <= 7, "\(census.maxActive) pods at once across the kill, over replicas + maxSurge = 7")
        // Every ReplicaSet has exactly the pods it wants, and every pod an owner.
        let d = try await c.client.get(Deployment.self, name: "web", namespace: "default")
        let sets = try await c.client.list(ReplicaSet.self, namespace: "default").items
            .filter { $0.metadata.ownerReferences?.first?.uid == d.metadata.uid }
        let pods = try await c.client.list(Pod.self, namespace: "default", labelSelector: "app=web").items
            .filter { $0.metadata.deletionTimestamp == nil }
        for rs in sets {
            let owned = pods.filter { $0.metadata.ownerReferences?.first?.uid == rs.metadata.uid }.count
            #expect(owned == Int(rs.spec.replicas ?? 0), "\(rs.metadata.name ?? "") wants \(rs.spec.replicas ?? 0) and has \(owned)")
        }
        #expect(pods.allSatisfy { pod in sets.contains { $0.metadata.uid == pod.metadata.ownerReferences?.first?.uid } })
        #expect(sets.count == 3 && sets.reduce(0) { $0 + ($1.spec.replicas ?? 0) } == 6)
    }
}
