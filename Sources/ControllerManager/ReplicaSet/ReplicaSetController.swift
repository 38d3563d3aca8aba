// Kubernetes' ReplicaSet controller (pkg/controller/replicaset): keeps `spec.replicas` active
// pods made from `spec.template`, each controlled by the ReplicaSet, and reports how many exist,
// are fully labelled, ready and available.
//
// Informer events only enqueue ReplicaSet keys and count expectations down; `sync(key)` reads the
// caches. A sync claims the pods (adopting orphans its selector matches, releasing its pods that
// no longer match), then — only when every creation and deletion it expected has been seen by the
// pod informer (`ControllerExpectations`) — creates or deletes the difference, and always writes
// the status. That expectation gate is what keeps a lagging watch from causing extra pods: a
// resync, a label change or another worker may sync the key many times before the informer
// shows the pods just created, and each of those syncs would otherwise create them again.
//
// | pods (active, claimed) vs spec.replicas | expectations | action |
// |---|---|---|
// | fewer | satisfied | expect N creations; create N (at most `burst`) in slow-start batches 1, 2, 4…; a failed batch stops the rest, the unattempted ones are no longer expected; event `SuccessfulCreate` / `FailedCreate`; ReplicaFailure condition on failure |
// | more | satisfied | rank (see PodRanking.swift), expect those deletions, delete them at once; `SuccessfulDelete` / `FailedDelete` |
// | any | pending (< 5 min) | status only; the pod events requeue the key |
// | ReplicaSet being deleted | — | status only |
import APIClient
import ClusterAPI
import Logging

final class ReplicaSetController: Sendable {
    let client: KubeClient
    let replicaSets: Informer<ReplicaSet>
    let pods: Informer<Pod>
    let recorder: EventRecorder
    let expectations: ControllerExpectations
    /// The most pods created or deleted in one sync (upstream's BurstReplicas, 500).
    let burst: Int
    let logger: Logger
    let controller: Controller<String>

    static let namespaceIndex = "namespace"
    static let controllerIndex = "controller-uid"

    init(client: KubeClient, replicaSets: Informer<ReplicaSet>, pods: Informer<Pod>, recorder: EventRecorder, workers: Int,
         burst: Int = 500, expectationsTimeout: Duration = .seconds(300), logger: Logger) async {
        self.client = client
        self.replicaSets = replicaSets
        self.pods = pods
        self.recorder = recorder
        self.burst = burst
        self.logger = logger
        let expectations = ControllerExpectations(timeout: expectationsTimeout)
        self.expectations = expectations
        let box = LateBound<ReplicaSetController>()
        controller = Controller(name: "replicaset", workers: workers, logger: logger) { key in
            guard let controller = box.value else { return .done }
            return try await controller.sync(key)
        }
        box.value = self
        await replicaSets.addIndex(Self.namespaceIndex) { [$0.metadata.namespace ?? ""] }
        await pods.addIndex(Self.namespaceIndex) { [$0.metadata.namespace ?? ""] }
        await pods.addIndex(Self.controllerIndex) { pod in pod.controllerRef.map { [$0.uid] } ?? [] }
        await controller.enqueue(from: replicaSets) { event in
            let key = Informer<ReplicaSet>.key(event.object)
            if case .deleted = event { expectations.delete(key) }
            return [key]
        }
        let podEvents = await pods.events()
        controller.addTask { [weak self] in
            for await event in podEvents {
                guard let self else { return }
                await self.handle(event)
            }
        }
    }

    func run() async { await controller.run() }

    // MARK: Pod events (upstream's addPod, updatePod, deletePod)

    private func handle(_ event: InformerEvent<Pod>) async {
        switch event {
        case .added(let pod):
            if pod.metadata.deletionTimestamp != nil { return await deleted(pod) }
            if let ref = pod.controllerRef {
                guard let rs = await resolve(ref, namespace: pod.metadata.namespace) else { return }
                let key = Informer<ReplicaSet>.key(rs)
                expectations.creationObserved(key, uid: rs.metadata.uid ?? "")
                await controller.queue.add(key)
                return
            }
            for rs in await matching(pod) { await controller.queue.add(Informer<ReplicaSet>.key(rs)) }
        case .updated(let old, let new):
            if old.metadata.resourceVersion == new.metadata.resourceVersion { return }
            let labelsChanged = old.metadata.labels != new.metadata.labels
            if new.metadata.deletionTimestamp != nil {
                // A pod being deleted counts as deleted at once (its grace period may be long);
                // its old labels may have pointed at another owner.
                await deleted(new)
                if labelsChanged { await deleted(old) }
                return
            }
            let oldRef = old.controllerRef, newRef = new.controllerRef
            let refChanged = oldRef?.uid != newRef?.uid
            if refChanged, let oldRef, let rs = await resolve(oldRef, namespace: old.metadata.namespace) {
                await controller.queue.add(Informer<ReplicaSet>.key(rs))
            }
            if let newRef {
                guard let rs = await resolve(newRef, namespace: new.metadata.namespace) else { return }
                let key = Informer<ReplicaSet>.key(rs)
                await controller.queue.add(key)
                // Available only minReadySeconds after Ready: look again then.
                let minReady = rs.spec.minReadySeconds ?? 0
                if !old.isReady && new.isReady && minReady > 0 {
                    await controller.queue.add(key, after: .seconds(Int64(minReady) + 1))
                }
                return
            }
            if labelsChanged || refChanged {
                for rs in await matching(new) { await controller.queue.add(Informer<ReplicaSet>.key(rs)) }
            }
        case .deleted(let pod):
            await deleted(pod)
        case .resync:
            // The ReplicaSets' own resync re-enqueues every key.
            return
        }
    }

    private func deleted(_ pod: Pod) async {
        guard let ref = pod.controllerRef, let rs = await resolve(ref, namespace: pod.metadata.namespace) else { return }
        let key = Informer<ReplicaSet>.key(rs)
        expectations.deletionObserved(key, uid: rs.metadata.uid ?? "", pod: pod.namespacedName)
        await controller.queue.add(key)
    }

    /// The cached ReplicaSet `ref` names, if it is one and still has that uid.
    private func resolve(_ ref: OwnerReference, namespace: String?) async -> ReplicaSet? {
        guard ref.kind == ReplicaSet.defaultKind, ref.apiVersion.hasPrefix("apps/") else { return nil }
        guard let rs = await replicaSets.get(name: ref.name, namespace: namespace), rs.metadata.uid == ref.uid else { return nil }
        return rs
    }

    /// The ReplicaSets of the pod's namespace whose selector matches it (`GetPodReplicaSets`).
    private func matching(_ pod: Pod) async -> [ReplicaSet] {
        let labels = pod.metadata.labels ?? [:]
        guard !labels.isEmpty else { return [] }
        return await replicaSets.byIndex(Self.namespaceIndex, pod.metadata.namespace ?? "").filter { rs in
            guard let selector = try? LabelSelector(rs.spec.selector) else { return false }
            return selector.matches(labels)
        }
    }

    // MARK: Sync

    func sync(_ key: String) async throws -> SyncResult {
        guard let rs = await replicaSets.get(key) else {
            expectations.delete(key)
            return .done
        }
        let uid = rs.metadata.uid ?? ""
        let needsSync = expectations.satisfied(key, uid: uid)
        let selector: LabelSelector
        do { selector = try LabelSelector(rs.spec.selector) } catch {
            logger.warning("the ReplicaSet's selector cannot be read; skipped", metadata: ["replicaset": "\(key)", "error": "\(error)"])
            return .done
        }
        // Every active pod of the namespace: orphans to adopt and owned ones that no longer match.
        let candidates = await pods.byIndex(Self.namespaceIndex, rs.metadata.namespace ?? "").filter(\.isActive)
        let manager = ControllerRefManager<ReplicaSet>.rechecking(client: client, owner: rs, selector: selector)
        let owned = try await manager.claim(candidates)
        var manageError: (any Error)?
        if needsSync && rs.metadata.deletionTimestamp == nil {
            do { try await manageReplicas(owned, rs, key: key) } catch { manageError = error }
        }
        let status = Self.calculateStatus(rs, pods: owned, manageError: manageError)
        let updated = try await updateStatus(rs, status)
        if let manageError { throw manageError }
        // Available pods become so only with time: look again once they may be.
        let replicas = updated.spec.replicas ?? 1
        if let minReady = updated.spec.minReadySeconds, minReady > 0,
           (updated.status.readyReplicas ?? 0) == replicas, (updated.status.availableReplicas ?? 0) != replicas {
            return .requeue(after: .seconds(Int64(minReady)))
        }
        return .done
    }
}
