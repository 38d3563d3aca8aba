// The garbage collector (kube-controller-manager's, pkg/controller/garbagecollector): deletes
// objects whose owners are gone, and carries out the owners' `foregroundDeletion` and `orphan`
// finalizers, for every resource the API server serves — found by discovery, so resources
// added later (apps/v1, batch/v1, …) are covered without a change here.
//
//   discovery (/api/v1, /apis; again every 30 s) ──> one monitor (metadata informer) per resource
//        that supports list, watch and delete (events excepted)
//   monitors ──handler──> DependencyGraph ──uids──> attemptToDelete queue ──> workers
//                                                └─> attemptToOrphan queue ──> workers
//
// The graph says what to look at; a worker decides only after reading the object and each of
// its owners from the API server (never from the cache alone), and writes with preconditions:
// deletes carry the uid and the resourceVersion read, reference removals are strategic merge
// patches that name the object's uid, finalizer removals carry the resourceVersion read.
// Everything is rebuilt from lists when the controller starts (a restart, a new lease term).
import APIClient
import ClusterAPI
import Logging
import Synchronization

final class GarbageCollector: Sendable {
    /// metav1 `FinalizerOrphanDependents`.
    static let orphan = "orphan"
    /// metav1 `FinalizerDeleteDependents`.
    static let foregroundDeletion = "foregroundDeletion"
    /// The `source.component` of its events.
    static let eventSource = "garbage-collector-controller"
    /// Resources never watched (kube-controller-manager's default `ignoredResources`).
    static let ignoredResources: Set<String> = ["events", "events.events.k8s.io"]

    let client: KubeClient
    let graph = DependencyGraph()
    let mapper = ResourceMapper()
    let absentOwners = AbsentOwnerCache()
    let recorder: EventRecorder
    let logger: Logger
    let attemptToDelete: Controller<String>
    let attemptToOrphan: Controller<String>
    private let resync: Duration
    private let discoveryPeriod: Duration
    private let initialSyncTimeout: Duration
    private let pending = PendingKeys()
    /// Where the served resources come from (the API server's discovery; a test's list).
    private let discover: @Sendable () async throws -> DiscoveredResources
    /// resource (`pods`, `replicasets.apps`) → its monitor. Changed only by `syncMonitors`,
    /// which runs in one task at a time.
    private let monitors = Mutex<[String: Monitor]>([:])

    private struct Monitor: Sendable {
        var resource: APIResource
        var informer: Informer<PartialObjectMetadata>
        var task: Task<Void, Never>
    }

    /// - Parameters:
    ///   - workers: keys processed at once by each of the two queues (`--concurrent-gc-syncs`).
    ///   - resync: how often each monitor replays its objects through the graph.
    ///   - discoveryPeriod: how often the served resources are discovered again.
    init(client: KubeClient, recorder: EventRecorder, workers: Int, resync: Duration, discoveryPeriod: Duration = .seconds(30),
         initialSyncTimeout: Duration = .seconds(60), logger: Logger,
         discover: (@Sendable () async throws -> DiscoveredResources)? = nil) {
        self.client = client
        self.discover = discover ?? { try await client.serverPreferredResources() }
        self.recorder = recorder
        self.logger = logger
        self.resync = resync
        self.discoveryPeriod = discoveryPeriod
        self.initialSyncTimeout = initialSyncTimeout
        let box = LateBound<GarbageCollector>()
        attemptToDelete = Controller(name: "garbagecollector/attempt-to-delete", workers: max(1, workers), logger: logger) { uid in
            await box.value?.attemptToDeleteItem(uid) ?? .done
        }
        attemptToOrphan = Controller(name: "garbagecollector/attempt-to-orphan", workers: max(1, workers), logger: logger) { uid in
            await box.value?.attemptToOrphanItem(uid) ?? .done
        }
        box.value = self
    }

    /// Runs until cancelled: discovery, the monitors, and once they have listed, the workers.
    func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.feedQueues() }
            group.addTask {
                guard let discovered = await self.discoverUntilAnswered() else { return }
                await self.syncMonitors(discovered, waitAtMost: self.initialSyncTimeout)
                if Task.isCancelled { return }
                self.logger.info("garbage collector: dependency graph built", metadata: [
                    "objects": "\(self.graph.count)", "resources": "\(self.monitors.withLock { $0.count })"])
                await withTaskGroup(of: Void.self) { workers in
                    workers.addTask { await self.attemptToDelete.run() }
                    workers.addTask { await self.attemptToOrphan.run() }
                    workers.addTask { await self.rediscoverPeriodically() }
                }
            }
            await group.next()
            group.cancelAll()
        }
        await stopMonitors()
    }

    // MARK: Discovery and monitors

    private func discoverUntilAnswered() async -> DiscoveredResources? {
        var delay: Duration = .milliseconds(200)
        while !Task.isCancelled {
            do {
                return try await discover()
            } catch {
                if Task.isCancelled { return nil }
                logger.warning("garbage collector: discovery failed; retrying", metadata: ["error": "\(error)", "in": "\(delay)"])
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(10))
            }
        }
        return nil
    }

    private func rediscoverPeriodically() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: discoveryPeriod)
            if Task.isCancelled { return }
            do {
                await syncMonitors(try await discover(), waitAtMost: .seconds(30))
            } catch {
                logger.warning("garbage collector: discovery failed; keeping the resources already watched", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Whether the garbage collector watches `resource`.
    static func shouldMonitor(_ resource: APIResource) -> Bool {
        resource.verbs.isSuperset(of: ["list", "watch", "delete"]) && !ignoredResources.contains(resource.description)
    }

    /// Starts a monitor for each new deletable resource (and waits, at most `waitAtMost`, for
    /// them to list), and stops those of resources no longer served — only when discovery was
    /// complete: a group that failed to answer keeps its monitors.
    func syncMonitors(_ discovered: DiscoveredResources, waitAtMost timeout: Duration) async {
        if discovered.isComplete { mapper.update(discovered.resources) } else { mapper.merge(discovered.resources) }
        for (groupVersion, error) in discovered.failedGroups.sorted(by: { $0.key < $1.key }) {
            logger.warning("garbage collector: discovery of a group failed", metadata: ["groupVersion": "\(groupVersion)", "error": "\(error)"])
        }
        let wanted = Dictionary(discovered.resources.filter(Self.shouldMonitor).map { ($0.description, $0) }, uniquingKeysWith: { a, _ in a })
        var started: [Informer<PartialObjectMetadata>] = []
        var stopped: [Task<Void, Never>] = []
        for (name, resource) in wanted.sorted(by: { $0.key < $1.key }) where monitors.withLock({ $0[name] == nil }) {
            let informer = Informer<PartialObjectMetadata>(DynamicResourceSource(client, resource), resync: resync, name: name,
                                                           logger: logger)
            await informer.addHandler { [weak self] event in self?.observe(event, resource: resource) }
            let task = Task { await informer.run() }
            monitors.withLock { $0[name] = Monitor(resource: resource, informer: informer, task: task) }
            started.append(informer)
        }
        if discovered.isComplete {
            monitors.withLock { current in
                for name in current.keys.sorted() where wanted[name] == nil {
                    stopped.append(current.removeValue(forKey: name)!.task)
                }
            }
        }
        for task in stopped { task.cancel() }
        if !started.isEmpty || !stopped.isEmpty {
            logger.info("garbage collector: watching resources", metadata: [
                "added": "\(started.count)", "removed": "\(stopped.count)", "total": "\(monitors.withLock { $0.count })"])
        }
        await waitForSync(started, timeout: timeout)
    }

    /// Returns once every informer of `informers` has listed, or after `timeout` (logging the
    /// ones that had not: the workers go on with what the others show).
    private func waitForSync(_ informers: [Informer<PartialObjectMetadata>], timeout: Duration) async {
        guard !informers.isEmpty else { return }
        let deadline = ContinuousClock.now + timeout
        while !Task.isCancelled {
            var unsynced: [Informer<PartialObjectMetadata>] = []
            for informer in informers where await !informer.hasSynced { unsynced.append(informer) }
            if unsynced.isEmpty { return }
            if ContinuousClock.now >= deadline {
                let names = monitors.withLock { $0.values.filter { m in unsynced.contains { $0 === m.informer } }.map(\.resource.description) }
                logger.warning("garbage collector: some resources have not listed yet; going on without them",
                               metadata: ["resources": "\(names.sorted())", "after": "\(timeout)"])
                return
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    private func stopMonitors() async {
        let tasks = monitors.withLock { current in
            defer { current.removeAll() }
            return current.values.map(\.task)
        }
        for task in tasks { task.cancel() }
        for task in tasks { await task.value }
    }

    /// Whether objects of `resource` are watched.
    func isMonitored(_ resource: APIResource) -> Bool { monitors.withLock { $0[resource.description] != nil } }

    // MARK: Events into the graph, keys into the queues

    /// A monitor's event (called synchronously by its informer): into the graph, then the
    /// keys it asks for into the pending sets, which a task hands to the queues.
    private func observe(_ event: InformerEvent<PartialObjectMetadata>, resource: APIResource) {
        let changes = graph.observe(event, resource: resource)
        guard !changes.isEmpty else { return }
        for identity in changes.absent { absentOwners.add(identity) }
        for (dependent, owner) in changes.invalidNamespace {
            reportInvalidNamespace(dependent, owner: owner)
        }
        pending.add(delete: changes.attemptToDelete, orphan: changes.attemptToOrphan)
    }

    /// Hands the pending keys to the queues as they come (both sets are bounded by the number
    /// of objects, and the queues de-duplicate).
    private func feedQueues() async {
        for await _ in pending.signals {
            let (delete, orphan) = pending.take()
            for uid in delete { await attemptToDelete.queue.add(uid) }
            for uid in orphan { await attemptToOrphan.queue.add(uid) }
        }
    }

    /// Queues `uids` for attemptToDelete.
    func enqueueForDeletion(_ uids: [String]) {
        pending.add(delete: uids, orphan: [])
    }

    /// upstream's reportInvalidNamespaceOwnerRef: a Warning event on the dependent.
    func reportInvalidNamespace(_ dependent: ObjectIdentity, owner: OwnerReference) {
        let named = ObjectIdentity(owner, namespace: dependent.namespace)
        logger.warning("garbage collector: an ownerReference names an owner that is not in the object's namespace", metadata: [
            "object": "\(dependent.kind) \(dependent.key)", "owner": "\(named)"])
        recorder.event(reference: ObjectReference(kind: dependent.kind, namespace: dependent.namespace.isEmpty ? nil : dependent.namespace,
                                                  name: dependent.name, uid: dependent.uid, apiVersion: dependent.apiVersion),
                       .warning, "OwnerRefInvalidNamespace", "ownerRef \(named) does not exist in namespace \"\(dependent.namespace)\"")
    }
}

/// uids waiting to be queued, de-duplicated, and a wake-up signal for the task that queues them.
final class PendingKeys: Sendable {
    private let keys = Mutex<(delete: Set<String>, orphan: Set<String>)>(([], []))
    let signals: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    init() {
        (signals, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    func add(delete: [String], orphan: [String]) {
        guard !delete.isEmpty || !orphan.isEmpty else { return }
        keys.withLock {
            $0.delete.formUnion(delete)
            $0.orphan.formUnion(orphan)
        }
        continuation.yield()
    }

    func take() -> (delete: [String], orphan: [String]) {
        keys.withLock { keys in
            defer { keys = ([], []) }
            return (keys.delete.sorted(), keys.orphan.sorted())
        }
    }
}
