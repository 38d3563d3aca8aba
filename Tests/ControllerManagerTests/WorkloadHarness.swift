// The ReplicaSet and Deployment controllers under test: the real API handler on an embedded
// store (no sockets), `ControllerManagerServer` running only them, and between the two a
// transport that can refuse pod creations (as a quota would) and hold back the pods watch (a
// lagging informer). No kubelet runs: `Kubelet` plays its part by writing pod status (Running,
// Ready) through the API, as a kubelet would; pods are never scheduled, so a deleted pod goes
// at once. `close()` stops everything, even when the test failed.
import APIClient
import APIServerTesting
import ClusterAPI
import ControllerManager
import Foundation
import HTTPKit
import Logging
import NIOHTTP1
import Synchronization
import Testing

/// What the manager's transport does to its requests.
final class WorkloadFaults: Sendable {
    private struct State {
        var podCreateRefusal: String?
        var podCreateAttempts = 0
        var podWatchDelay: Duration = .zero
    }
    private let state = Mutex(State())

    /// Refuse every pod creation with 403 and this message (nil: let them through).
    var podCreateRefusal: String? {
        get { state.withLock { $0.podCreateRefusal } }
        set { state.withLock { $0.podCreateRefusal = newValue } }
    }
    /// How long each chunk of a pods watch is held back.
    var podWatchDelay: Duration {
        get { state.withLock { $0.podWatchDelay } }
        set { state.withLock { $0.podWatchDelay = newValue } }
    }
    /// Pod creations the manager attempted.
    var podCreateAttempts: Int { state.withLock { $0.podCreateAttempts } }

    fileprivate func countCreate() -> String? {
        state.withLock {
            $0.podCreateAttempts += 1
            return $0.podCreateRefusal
        }
    }
}

/// The handler, with `faults` applied.
struct FaultTransport: HTTPTransport {
    let inner: HandlerTransport
    let faults: WorkloadFaults

    func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        if request.method == .POST, request.path.hasSuffix("/pods"), let message = faults.countCreate() {
            return failureResponse(.forbidden, reason: "Forbidden", message: message)
        }
        return try await inner.send(request)
    }

    func stream(_ request: HTTPRequest) async throws -> HTTPStreamingResponse {
        let faults = self.faults
        return relayingPodWatch(request, try await inner.stream(request)) {
            let delay = faults.podWatchDelay
            if delay > .zero { try await Task.sleep(for: delay) }
        }
    }
}

final class WorkloadHarness: Polling, @unchecked Sendable {
    let patience: Duration = .seconds(20)
    let api: InProcessAPIServer
    /// The test's own client (no faults).
    let client: KubeClient
    let faults = WorkloadFaults()
    private let managerClient: KubeClient
    private(set) var manager: ControllerManagerServer?
    private var running: Task<Void, Error>?
    private var configuration: ControllerManagerConfiguration
    private var kubelets: [Task<Void, Never>] = []

    init(_ controllers: Set<ControllerName> = [.replicaSet, .deployment],
         configure: (inout ControllerManagerConfiguration) -> Void = { _ in }) async throws {
        api = try await InProcessAPIServer.start()
        client = api.client()
        let handler = api.handler
        let base = api.client()
        managerClient = KubeClient(base.connection, transport: FaultTransport(inner: HandlerTransport { await handler.handle($0) },
                                                                             faults: faults))
        var configuration = ControllerManagerConfiguration()
        configuration.controllers = controllers
        configuration.leaderElect = false
        configuration.resync = .seconds(1)
        configuration.events.retryInterval = .milliseconds(100)
        configuration.events.maxTries = 3
        configure(&configuration)
        self.configuration = configuration
        startManager()
    }

    private func startManager() {
        var logger = Logger(label: "test.workloads")
        logger.logLevel = ProcessInfo.processInfo.environment["BALLAST_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
        let manager = ControllerManagerServer(client: managerClient, csi: nil, configuration: configuration, logger: logger)
        self.manager = manager
        running = Task { try await manager.run() }
    }

    /// Stops the controllers (their memory — expectations, queues — goes with them) and starts
    /// new ones, which begin from fresh lists.
    func restartManager() async {
        running?.cancel()
        _ = await running?.result
        startManager()
    }

    func stopManager() async {
        running?.cancel()
        _ = await running?.result
        running = nil
    }

    func close() async {
        for kubelet in kubelets { kubelet.cancel() }
        for kubelet in kubelets { await kubelet.value }
        running?.cancel()
        _ = await running?.result
        await api.close()
    }

    // MARK: Playing the kubelet

    /// Makes every pod that `ready` accepts Running and Ready, as its kubelet would once its
    /// containers run and its readiness probe passes, after `delay`; until the test ends.
    func startKubelet(delay: Duration = .milliseconds(20), _ ready: @escaping @Sendable (Pod) -> Bool = { _ in true }) {
        kubelets.append(simulateKubelet(client, delay: { delay }, ready))
    }

    /// Marks one pod Ready now.
    func makeReady(_ pod: Pod) async throws { try await makePodReady(client, pod, after: .zero) }

    // MARK: Reading

    /// Pods (of the default namespace) matching `selector`, not being deleted, not terminated.
    func activePods(_ selector: String) async throws -> [Pod] {
        try await client.list(Pod.self, namespace: "default", labelSelector: selector).items.filter(\.isActiveForTest)
    }

    /// Pods controlled by the object with `uid`.
    func pods(ownedBy uid: String) async throws -> [Pod] {
        try await client.list(Pod.self, namespace: "default").items.filter { $0.metadata.ownerReferences?.contains { $0.uid == uid && $0.controller == true } == true }
    }

    func replicaSet(_ name: String) async throws -> ReplicaSet { try await client.get(ReplicaSet.self, name: name, namespace: "default") }
    func deployment(_ name: String) async throws -> Deployment { try await client.get(Deployment.self, name: name, namespace: "default") }

    /// The ReplicaSets a Deployment controls, lowest revision first.
    func replicaSets(of deployment: String) async throws -> [ReplicaSet] {
        let d = try await self.deployment(deployment)
        func revision(_ rs: ReplicaSet) -> Int { Int(rs.metadata.annotations?["deployment.kubernetes.io/revision"] ?? "") ?? 0 }
        return try await client.list(ReplicaSet.self, namespace: "default").items
            .filter { $0.metadata.ownerReferences?.contains { $0.uid == d.metadata.uid && $0.controller == true } == true }
            .sorted { (revision($0), $0.metadata.name ?? "") < (revision($1), $1.metadata.name ?? "") }
    }

    func events(_ kind: String, _ name: String) async throws -> [Event] {
        try await client.list(Event.self, namespace: "default", fieldSelector: "involvedObject.kind=\(kind),involvedObject.name=\(name)").items
    }

    func hasEvent(_ kind: String, _ name: String, reason: String, containing text: String = "") async -> Bool {
        ((try? await events(kind, name)) ?? []).contains { $0.reason == reason && (text.isEmpty || ($0.message ?? "").contains(text)) }
    }

    /// Reads, changes and writes back the Deployment, again on a conflict (the controller writes its status).
    @discardableResult
    func modifyDeployment(_ name: String, _ change: (inout Deployment) -> Void) async throws -> Deployment {
        for attempt in 1... {
            var d = try await deployment(name)
            change(&d)
            do { return try await client.update(d) } catch let error as APIError where error.isConflict && attempt < 20 { continue }
        }
        fatalError("unreachable")
    }

    @discardableResult
    func modifyReplicaSet(_ name: String, _ change: (inout ReplicaSet) -> Void) async throws -> ReplicaSet {
        for attempt in 1... {
            var rs = try await replicaSet(name)
            change(&rs)
            do { return try await client.update(rs) } catch let error as APIError where error.isConflict && attempt < 20 { continue }
        }
        fatalError("unreachable")
    }
}

/// Plays the kubelet of every pod `ready` accepts: Running and Ready after `delay()`, until
/// the task is cancelled (a list, then a watch, again after a failure).
func simulateKubelet(_ client: KubeClient, delay: @escaping @Sendable () -> Duration,
                     _ ready: @escaping @Sendable (Pod) -> Bool = { _ in true }) -> Task<Void, Never> {
    Task {
        while !Task.isCancelled {
            do {
                let list = try await client.list(Pod.self, namespace: "default")
                for pod in list.items where ready(pod) { try? await makePodReady(client, pod, after: delay()) }
                let events = try await client.watch(Pod.self, namespace: "default", resourceVersion: list.metadata.resourceVersion,
                                                    timeoutSeconds: 600)
                for try await event in events where event.kind == .added || event.kind == .modified {
                    guard let pod = event.object, ready(pod) else { continue }
                    try? await makePodReady(client, pod, after: delay())
                }
            } catch {
                try? await Task.sleep(for: .milliseconds(50))
            }
        }
    }
}

/// Writes the status a kubelet writes once a pod's containers run and it is ready.
func makePodReady(_ client: KubeClient, _ pod: Pod, after delay: Duration) async throws {
    guard pod.isActiveForTest, !pod.isReadyForTest else { return }
    if delay > .zero { try await Task.sleep(for: delay) }
    var current = pod
    for _ in 0..<10 {
        guard current.isActiveForTest, !current.isReadyForTest else { return }
        current.status.phase = "Running"
        current.status.conditions = [PodCondition(type: "Ready", status: "True", lastTransitionTime: Time.now())]
        do {
            _ = try await client.updateStatus(current)
            return
        } catch let error as APIError where error.isConflict {
            current = try await client.get(Pod.self, name: pod.metadata.name ?? "", namespace: pod.metadata.namespace)
        }
    }
}

/// Runs `body` with a harness and always closes it.
func withWorkloads(_ controllers: Set<ControllerName> = [.replicaSet, .deployment],
                   configure: (inout ControllerManagerConfiguration) -> Void = { _ in },
                   _ body: (WorkloadHarness) async throws -> Void) async throws {
    let harness = try await WorkloadHarness(controllers, configure: configure)
    do {
        try await body(harness)
    } catch {
        await harness.close()
        throw error
    }
    await harness.close()
}

/// Watches pods matching `selector` from now on and keeps, after every event, the number of
/// active pods and of ready ones: the extremes over the whole watch are what a rollout's
/// bounds are checked against.
final class PodCensus: Sendable {
    private struct State {
        var pods: [String: (active: Bool, ready: Bool, owner: String)] = [:]
        var maxActive = 0
        var minReady = Int.max
        var maxOwners = 0
        var samples = 0
    }
    private let state = Mutex(State())
    private let task = Mutex<Task<Void, Never>?>(nil)

    /// Starts from a list (so the first moment is the current state), then follows the watch.
    static func start(_ client: KubeClient, selector: String) async throws -> PodCensus {
        let census = PodCensus()
        let list = try await client.list(Pod.self, namespace: "default", labelSelector: selector)
        census.apply(list.items)
        let events = try await client.watch(Pod.self, namespace: "default", labelSelector: selector,
                                            resourceVersion: list.metadata.resourceVersion, timeoutSeconds: 600)
        census.task.withLock {
            $0 = Task {
                do {
                    for try await event in events {
                        guard let pod = event.object, event.kind != .bookmark else { continue }
                        census.apply(pod, deleted: event.kind == .deleted)
                    }
                } catch {}
            }
        }
        return census
    }

    private func apply(_ pod: Pod, deleted: Bool) {
        if deleted {
            state.withLock { $0.pods[pod.metadata.name ?? ""] = nil }
            sample()
        } else {
            apply([pod])
        }
    }

    /// Records `pods` as they are now, then takes one sample.
    private func apply(_ pods: [Pod]) {
        state.withLock { state in
            for pod in pods {
                state.pods[pod.metadata.name ?? ""] = (pod.isActiveForTest, pod.isActiveForTest && pod.isReadyForTest, pod.controllerRefForTest ?? "")
            }
        }
        sample()
    }

    private func sample() {
        state.withLock { state in
            let active = state.pods.values.filter(\.active)
            state.maxActive = max(state.maxActive, active.count)
            state.minReady = min(state.minReady, active.filter(\.ready).count)
            state.maxOwners = max(state.maxOwners, Set(active.map(\.owner)).count)
            state.samples += 1
        }
    }

    func stop() { task.withLock { $0?.cancel() } }

    /// The most active pods seen at one moment.
    var maxActive: Int { state.withLock { $0.maxActive } }
    /// The fewest ready (active) pods seen at one moment.
    var minReady: Int { state.withLock { $0.minReady } }
    /// The most distinct owners (ReplicaSets) of active pods seen at one moment.
    var maxOwners: Int { state.withLock { $0.maxOwners } }
    var samples: Int { state.withLock { $0.samples } }
}

extension Pod {
    var isActiveForTest: Bool {
        metadata.deletionTimestamp == nil && status.phase != "Succeeded" && status.phase != "Failed"
    }
    var isReadyForTest: Bool { status.conditions?.contains { $0.type == "Ready" && $0.status == "True" } == true }
    var controllerRefForTest: String? { metadata.ownerReferences?.first { $0.controller == true }?.uid }
}

/// A pod template labelled `labels`, one container running `image`.
func podTemplate(_ labels: [String: String], image: String = "nginx:1.27", annotations: [String: String]? = nil) -> PodTemplateSpec {
    var template = PodTemplateSpec(metadata: ObjectMeta(labels: labels, annotations: annotations))
    template.spec.containers = [Container(name: "app", image: image)]
    template.spec.restartPolicy = "Always"
    return template
}

func makeReplicaSet(_ name: String, replicas: Int32, labels: [String: String] = ["app": "web"], minReadySeconds: Int32? = nil) -> ReplicaSet {
    ReplicaSet(metadata: ObjectMeta(name: name, namespace: "default"),
               spec: ReplicaSetSpec(replicas: replicas, minReadySeconds: minReadySeconds, selector: LabelSelectorSpec(matchLabels: labels),
                                    template: podTemplate(labels, annotations: ["team": "storage"])))
}

func makeDeployment(_ name: String, replicas: Int32, labels: [String: String]? = nil, image: String = "nginx:1.27",
                    strategy: DeploymentStrategy? = nil, revisionHistoryLimit: Int32? = nil,
                    progressDeadlineSeconds: Int32? = nil) -> Deployment {
    let labels = labels ?? ["app": name]
    var d = Deployment(metadata: ObjectMeta(name: name, namespace: "default"))
    d.spec.replicas = replicas
    d.spec.selector = LabelSelectorSpec(matchLabels: labels)
    d.spec.template = podTemplate(labels, image: image)
    d.spec.strategy = strategy
    d.spec.revisionHistoryLimit = revisionHistoryLimit
    d.spec.progressDeadlineSeconds = progressDeadlineSeconds
    return d
}

func rolling(surge: IntOrString, unavailable: IntOrString) -> DeploymentStrategy {
    DeploymentStrategy(type: "RollingUpdate", rollingUpdate: RollingUpdateDeployment(maxUnavailable: unavailable, maxSurge: surge))
}
