// The Job and TTL-after-finished controllers under test: the real API handler on an embedded
// store, and a controller manager running only those two, whose requests pass through a
// transport the test can slow (a pod watch that lags) or break (pod patches that fail) and that
// records what was sent. No kubelet runs: the tests finish pods by writing their status, as a
// kubelet would.
import APIClient
import APIServerTesting
import ClusterAPI
import ControllerManager
import Foundation
import HTTPKit
import Logging
import Synchronization
import Testing

/// Passes requests to the in-process API handler, except as the test says.
final class FaultyTransport: HTTPTransport {
    struct Recorded: Sendable {
        var method: String
        var path: String
        var body: Data
    }

    private struct State {
        /// Pod watch events wait while this holds.
        var holdPodWatch = false
        /// PATCH of pods answers 500.
        var failPodPatches = false
        var recorded: [Recorded] = []
    }

    private let inner: HandlerTransport
    private let state = Mutex(State())

    init(_ inner: HandlerTransport) { self.inner = inner }

    var holdPodWatch: Bool {
        get { state.withLock { $0.holdPodWatch } }
        set { state.withLock { $0.holdPodWatch = newValue } }
    }

    var failPodPatches: Bool {
        get { state.withLock { $0.failPodPatches } }
        set { state.withLock { $0.failPodPatches = newValue } }
    }

    /// Requests with `method` whose path contains `path`.
    func requests(_ method: String, _ path: String) -> [Recorded] {
        state.withLock { $0.recorded.filter { $0.method == method && $0.path.contains(path) } }
    }

    func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        let isPod = request.path.contains("/pods/")
        let fail = state.withLock { state in
            state.recorded.append(Recorded(method: request.method.rawValue, path: request.path, body: request.body))
            return state.failPodPatches && isPod && request.method == .PATCH
        }
        if fail { return failureResponse(.internalServerError, reason: "InternalError", message: "injected fault") }
        return try await inner.send(request)
    }

    func stream(_ request: HTTPRequest) async throws -> HTTPStreamingResponse {
        relayingPodWatch(request, try await inner.stream(request)) {
            while self.holdPodWatch && !Task.isCancelled { try? await Task.sleep(for: .milliseconds(10)) }
        }
    }
}

final class JobHarness: Polling, @unchecked Sendable {
    let patience: Duration = .seconds(15)
    let api: InProcessAPIServer
    /// The test's own client (never delayed nor broken).
    let client: KubeClient
    let transport: FaultyTransport
    private(set) var manager: ControllerManagerServer?
    private var running: Task<Void, Error>?
    private let configuration: ControllerManagerConfiguration

    init(controllers: Set<ControllerName>, configure: (inout ControllerManagerConfiguration) -> Void) async throws {
        api = try await InProcessAPIServer.start()
        client = api.client()
        let handler = api.handler
        transport = FaultyTransport(HandlerTransport { await handler.handle($0) })
        var configuration = ControllerManagerConfiguration()
        configuration.controllers = controllers
        configuration.leaderElect = false
        configuration.resync = .seconds(1)
        configuration.jobPodFailureBackoff = .milliseconds(20)
        configuration.jobPodFailureBackoffMax = .milliseconds(200)
        configuration.events.retryInterval = .milliseconds(100)
        configuration.events.maxTries = 3
        configure(&configuration)
        self.configuration = configuration
        startManager()
    }

    private func startManager() {
        var logger = Logger(label: "test.job-controller")
        // Errors only: the fault-injection tests make syncs fail on purpose.
        logger.logLevel = ProcessInfo.processInfo.environment["BALLAST_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .error
        let managerClient = KubeClient(client.connection, transport: transport)
        let manager = ControllerManagerServer(client: managerClient, csi: nil, configuration: configuration, logger: logger)
        self.manager = manager
        running = Task { try await manager.run() }
    }

    /// Stops the controllers as a crash would (nothing written on the way out).
    func stopManager() async {
        running?.cancel()
        _ = await running?.result
        running = nil
    }

    /// A new controller manager process, as after a crash: empty caches and expectations.
    func restartManager() async {
        await stopManager()
        startManager()
    }

    func close() async {
        await stopManager()
        await api.close()
    }

    // MARK: Jobs and pods

    func createJob(_ job: Job) async throws -> Job { try await client.create(job) }

    func job(_ name: String, namespace: String = "default") async throws -> Job {
        try await client.get(Job.self, name: name, namespace: namespace)
    }

    /// The Job's pods (by its controller reference), oldest first.
    func pods(of job: String, namespace: String = "default") async throws -> [Pod] {
        try await client.list(Pod.self, namespace: namespace).items
            .filter { $0.metadata.ownerReferences?.contains { $0.kind == "Job" && $0.name == job } ?? false }
            .sorted { ($0.metadata.creationTimestamp ?? .minimum, $0.metadata.name ?? "") < ($1.metadata.creationTimestamp ?? .minimum, $1.metadata.name ?? "") }
    }

    /// Pods of the Job that are neither finished nor being deleted.
    func activePods(of job: String) async throws -> [Pod] {
        try await pods(of: job).filter {
            $0.metadata.deletionTimestamp == nil && $0.status.phase != "Succeeded" && $0.status.phase != "Failed"
        }
    }

    /// Writes the pod's status as a kubelet would when its container exited with `exitCode`
    /// (restartPolicy Never): Succeeded for 0, Failed otherwise, the container terminated.
    func finish(_ pod: Pod, exitCode: Int = 0) async throws {
        try await updatePodStatus(pod) { pod in
            let now = Time.now().rfc3339
            pod.status.phase = exitCode == 0 ? "Succeeded" : "Failed"
            pod.status.conditions = [PodCondition(type: "Ready", status: "False", lastTransitionTime: Time.now(), reason: "PodCompleted")]
            pod.status.containerStatuses = [[
                "name": .string(pod.spec.containers.first?.name ?? "main"), "ready": false, "restartCount": 0,
                "image": .string(pod.spec.containers.first?.image ?? ""),
                "state": ["terminated": ["exitCode": .integer(Int64(exitCode)), "reason": .string(exitCode == 0 ? "Completed" : "Error"),
                                         "startedAt": .string(now), "finishedAt": .string(now)]],
            ]]
        }
    }

    /// Running and Ready, with `restarts` container restarts.
    func run(_ pod: Pod, restarts: Int = 0) async throws {
        try await updatePodStatus(pod) { pod in
            pod.status.phase = "Running"
            pod.status.conditions = [PodCondition(type: "Ready", status: "True", lastTransitionTime: Time.now())]
            pod.status.containerStatuses = [[
                "name": .string(pod.spec.containers.first?.name ?? "main"), "ready": true, "restartCount": .integer(Int64(restarts)),
                "image": .string(pod.spec.containers.first?.image ?? ""),
                "state": ["running": ["startedAt": .string(Time.now().rfc3339)]],
            ]]
        }
    }

    /// Reads the pod, changes its status and writes it back, again on a 409 (the controller
    /// patches pods meanwhile).
    func updatePodStatus(_ pod: Pod, _ change: (inout Pod) -> Void) async throws {
        for attempt in 1... {
            var current = try await client.get(Pod.self, name: pod.metadata.name ?? "", namespace: pod.metadata.namespace)
            change(&current)
            do {
                _ = try await client.updateStatus(current)
                return
            } catch let error as APIError where error.isConflict && attempt < 20 {
                continue
            }
        }
    }

    func events(_ job: String, namespace: String = "default") async throws -> [Event] {
        try await client.list(Event.self, namespace: namespace, fieldSelector: "involvedObject.kind=Job,involvedObject.name=\(job)").items
    }

    func hasEvent(_ job: String, reason: String, containing text: String = "") async -> Bool {
        ((try? await events(job)) ?? []).contains { $0.reason == reason && (text.isEmpty || ($0.message ?? "").contains(text)) }
    }
}

/// Runs `body` with a Job harness and always closes it.
func withJobHarness(_ controllers: Set<ControllerName> = [.job, .ttlAfterFinished],
                    configure: (inout ControllerManagerConfiguration) -> Void = { _ in },
                    _ body: (JobHarness) async throws -> Void) async throws {
    let harness = try await JobHarness(controllers: controllers, configure: configure)
    do {
        try await body(harness)
    } catch {
        await harness.close()
        throw error
    }
    await harness.close()
}

/// A Job as kubectl would create it from a manifest (the API server defaults the rest).
func makeJob(_ name: String, completions: Int32? = 1, parallelism: Int32? = nil, backoffLimit: Int32? = nil,
             restartPolicy: String = "Never", deadline: Int64? = nil, suspend: Bool? = nil, ttl: Int32? = nil,
             indexed: Bool = false) -> Job {
    var job = Job(metadata: ObjectMeta(name: name, namespace: "default"))
    job.spec.completions = completions
    job.spec.parallelism = parallelism
    job.spec.backoffLimit = backoffLimit
    job.spec.activeDeadlineSeconds = deadline
    job.spec.suspend = suspend
    job.spec.ttlSecondsAfterFinished = ttl
    if indexed { job.spec.completionMode = "Indexed" }
    job.spec.template.spec.containers = [Container(name: "main", image: "busybox", command: ["sh", "-c", "exit 0"])]
    job.spec.template.spec.restartPolicy = restartPolicy
    return job
}

extension Job {
    func condition(_ type: String) -> JobCondition? { status.conditions?.first { $0.type == type } }
    func holds(_ type: String) -> Bool { condition(type)?.status == "True" }
}
