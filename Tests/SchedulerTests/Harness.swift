// A scheduler under test: the real API handler on an embedded store (no sockets) and
// `SchedulerServer` with short backoffs and a fixed seed. Nodes and CSINodes are written by the
// test, as Kubernetes' scheduler_perf does; `StubVolumeBinder` plays the PV binder and a
// provisioner for WaitForFirstConsumer claims.
import APIClient
import APIServerTesting
import ClusterAPI
import Foundation
import Logging
import Scheduler
import Testing

let driverName = "loop.csi.ballast.dev"

final class Harness: Sendable {
    let api: InProcessAPIServer
    let client: KubeClient
    let scheduler: SchedulerServer
    private let running: Task<Void, Error>
    private let binder: Task<Void, Never>?

    init(configure: (inout SchedulerConfiguration) -> Void = { _ in }, stubBinder: Bool = false) async throws {
        let api = try await InProcessAPIServer.start()
        let client = api.client()
        self.api = api
        self.client = client
        var logger = Logger(label: "test.scheduler")
        logger.logLevel = ProcessInfo.processInfo.environment["BALLAST_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
        var configuration = SchedulerConfiguration()
        configuration.leaderElect = false
        configuration.seed = 7
        configuration.initialBackoff = .milliseconds(50)
        configuration.maxBackoff = .milliseconds(400)
        configuration.bindTimeout = .seconds(20)
        configuration.events.retryInterval = .milliseconds(100)
        configuration.events.maxTries = 3
        configure(&configuration)
        let scheduler = SchedulerServer(client: client, configuration: configuration, logger: logger)
        self.scheduler = scheduler
        running = Task { try await scheduler.run() }
        binder = stubBinder ? Task { await StubVolumeBinder(client: client).run() } : nil
    }

    func close() async {
        running.cancel()
        binder?.cancel()
        _ = await running.result
        await binder?.value
        await api.close()
    }

    // MARK: Objects

    /// Creates the node and writes its status (allocatable, Ready).
    func add(_ node: Node) async throws {
        let created = try await client.create(node)
        var withStatus = created
        withStatus.status = node.status
        _ = try await client.updateStatus(withStatus)
    }

    func add<T: APIObject>(_ object: T) async throws { _ = try await client.create(object) }

    /// A claim and a volume bound to each other, as the binder leaves them.
    func addBound(claim: PersistentVolumeClaim, volume: PersistentVolume) async throws {
        var claim = claim
        claim.spec.volumeName = volume.metadata.name
        claim.metadata.annotations = [SchedulerNames.bindCompleted: "yes"]
        let created = try await client.create(claim)
        var volume = volume
        volume.spec.claimRef = ObjectReference(kind: "PersistentVolumeClaim", namespace: created.metadata.namespace,
                                               name: created.metadata.name, uid: created.metadata.uid, apiVersion: "v1")
        _ = try await client.create(volume)
    }

    func pod(_ name: String, namespace: String = "default") async throws -> Pod {
        try await client.get(Pod.self, name: name, namespace: namespace)
    }

    /// The node the pod is bound to, once it is (nil after `timeout`).
    func boundNode(_ name: String, timeout: Duration = .seconds(15)) async throws -> String? {
        var node: String?
        _ = try await waitFor(timeout: timeout) {
            node = try await self.pod(name).spec.nodeName
            return !(node ?? "").isEmpty
        }
        return node.flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The pod's PodScheduled=False condition, once written.
    /// The pod's PodScheduled=False condition, once it has one (with `message`, when given: the
    /// scheduler may first decide on a cache that has not seen every object the test wrote, and
    /// decides again when the object's event arrives); the last one seen if none matched in time.
    func unschedulable(_ name: String, message: String? = nil, timeout: Duration = .seconds(15)) async throws -> PodCondition? {
        var found: PodCondition?
        _ = try await waitFor(timeout: timeout) {
            found = try await self.pod(name).status.conditions?.first { $0.type == "PodScheduled" && $0.status == "False" }
            guard let found else { return false }
            return message == nil || found.message == message
        }
        return found
    }

    func events(_ pod: String, namespace: String = "default") async throws -> [Event] {
        try await client.list(Event.self, namespace: namespace, fieldSelector: "involvedObject.kind=Pod,involvedObject.name=\(pod)").items
    }

    /// Polls every 20 ms (sleeping, never blocking a thread) until `condition` holds.
    func waitFor(timeout: Duration = .seconds(15), _ condition: () async throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if (try? await condition()) == true { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return false
    }
}

func withHarness(configure: (inout SchedulerConfiguration) -> Void = { _ in }, stubBinder: Bool = false,
                 _ body: (Harness) async throws -> Void) async throws {
    let harness = try await Harness(configure: configure, stubBinder: stubBinder)
    do {
        try await body(harness)
    } catch {
        await harness.close()
        throw error
    }
    await harness.close()
}

/// Plays the PV binder and a CSI provisioner, just enough for PreBind to finish: a volume whose
/// claimRef names a claim gets the claim bound to it; a claim with `selected-node` gets a volume
/// in that node's zone.
struct StubVolumeBinder: Sendable {
    let client: KubeClient

    func run() async {
        while !Task.isCancelled {
            try? await pass()
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    private func pass() async throws {
        let claims = try await client.list(PersistentVolumeClaim.self).items
        let volumes = try await client.list(PersistentVolume.self).items
        for claim in claims where (claim.spec.volumeName ?? "").isEmpty {
            if let volume = volumes.first(where: { $0.spec.claimRef?.name == claim.metadata.name && $0.spec.claimRef?.namespace == claim.metadata.namespace }) {
                try await bind(claim, volume)
            } else if let nodeName = claim.metadata.annotations?[SchedulerNames.selectedNode] {
                let node = try await client.get(Node.self, name: nodeName)
                let zone = node.metadata.labels?["topology.kubernetes.io/zone"] ?? ""
                var volume = makePV("pvc-\(claim.metadata.uid ?? "")", size: "1Gi", className: claim.spec.storageClassName ?? "", zone: zone)
                volume.spec.claimRef = ObjectReference(kind: "PersistentVolumeClaim", namespace: claim.metadata.namespace,
                                                       name: claim.metadata.name, uid: claim.metadata.uid, apiVersion: "v1")
                let created = try await client.create(volume)
                try await bind(claim, created)
            }
        }
    }

    private func bind(_ claim: PersistentVolumeClaim, _ volume: PersistentVolume) async throws {
        var claim = claim
        claim.spec.volumeName = volume.metadata.name
        claim.metadata.annotations = (claim.metadata.annotations ?? [:]).merging([SchedulerNames.bindCompleted: "yes"]) { $1 }
        _ = try await client.update(claim)
        if volume.spec.claimRef?.uid == nil {
            var volume = try await client.get(PersistentVolume.self, name: volume.metadata.name ?? "")
            volume.spec.claimRef?.uid = claim.metadata.uid
            _ = try await client.update(volume)
        }
    }
}
