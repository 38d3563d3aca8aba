// Kubernetes' Deployment controller (pkg/controller/deployment): a Deployment owns ReplicaSets
// named `<deployment>-<pod-template-hash>`, one per template it has had, and moves replicas from
// the old ones to the new one by its strategy (RollingUpdate within maxSurge and maxUnavailable,
// or Recreate), scales them all proportionally when its replicas change mid-rollout, keeps
// `revisionHistoryLimit` old ones, and reports Available and Progressing.
//
// | Deployment | sync does |
// |---|---|
// | being deleted | status only |
// | paused | scale (proportionally), clean old ReplicaSets, status; Progressing Unknown `DeploymentPaused` |
// | replicas changed (a ReplicaSet's desired-replicas annotation differs) | scale proportionally, status |
// | Recreate | old ReplicaSets to 0; once none of their pods is left, the new one to the replicas |
// | RollingUpdate | the new one up within maxSurge; else the old ones down within maxUnavailable (unavailable old pods first); once complete, clean old ReplicaSets |
//
// Informer events only enqueue Deployment keys: a ReplicaSet's event its controlling Deployment
// (or, for an orphan, every Deployment whose selector matches it); a deleted pod its
// ReplicaSet's Deployment (Recreate waits for the old pods to be gone). The controller keeps
// its own writes of Deployments and ReplicaSets until the informers show them (`ObjectStore`), so
// the sync that follows a scale sees it instead of fighting it with conflicts.
import APIClient
import ClusterAPI
import Logging

final class DeploymentController: Sendable {
    let client: KubeClient
    let deployments: ObjectStore<Deployment>
    let replicaSets: ObjectStore<ReplicaSet>
    let pods: Informer<Pod>
    let recorder: EventRecorder
    let logger: Logger
    let controller: Controller<String>

    static let namespaceIndex = ReplicaSetController.namespaceIndex
    static let controllerIndex = ReplicaSetController.controllerIndex

    init(client: KubeClient, deployments: Informer<Deployment>, replicaSets: Informer<ReplicaSet>, pods: Informer<Pod>,
         recorder: EventRecorder, workers: Int, logger: Logger) async {
        self.client = client
        self.deployments = ObjectStore(deployments)
        self.replicaSets = ObjectStore(replicaSets)
        self.pods = pods
        self.recorder = recorder
        self.logger = logger
        let box = LateBound<DeploymentController>()
        controller = Controller(name: "deployment", workers: workers, logger: logger) { key in
            guard let controller = box.value else { return .done }
            return try await controller.sync(key)
        }
        box.value = self
        await deployments.addIndex(Self.namespaceIndex) { [$0.metadata.namespace ?? ""] }
        await replicaSets.addIndex(Self.namespaceIndex) { [$0.metadata.namespace ?? ""] }
        await replicaSets.addIndex(Self.controllerIndex) { rs in rs.controllerRef.map { [$0.uid] } ?? [] }
        await pods.addIndex(Self.controllerIndex) { pod in pod.controllerRef.map { [$0.uid] } ?? [] }
        await controller.enqueue(from: deployments) { [Informer<Deployment>.key($0.object)] }
        let setEvents = await replicaSets.events()
        let podEvents = await pods.events()
        controller.addTask { [weak self] in
            for await event in setEvents {
                guard let self else { return }
                await self.handle(event)
            }
        }
        controller.addTask { [weak self] in
            for await event in podEvents {
                guard let self else { return }
                await self.handle(event)
            }
        }
    }

    func run() async { await controller.run() }

    // MARK: Events (upstream's addReplicaSet, updateReplicaSet, deleteReplicaSet, deletePod)

    private func handle(_ event: InformerEvent<ReplicaSet>) async {
        switch event {
        case .added(let rs):
            if let ref = rs.controllerRef {
                if let d = await resolve(ref, namespace: rs.metadata.namespace) { await enqueue(d) }
                return
            }
            for d in await matching(rs) { await enqueue(d) }
        case .updated(let old, let new):
            if old.metadata.resourceVersion == new.metadata.resourceVersion { return }
            let oldRef = old.controllerRef, newRef = new.controllerRef
            let refChanged = oldRef?.uid != newRef?.uid
            if refChanged, let oldRef, let d = await resolve(oldRef, namespace: old.metadata.namespace) { await enqueue(d) }
            if let newRef {
                if let d = await resolve(newRef, namespace: new.metadata.namespace) { await enqueue(d) }
                return
            }
            if refChanged || old.metadata.labels != new.metadata.labels {
                for d in await matching(new) { await enqueue(d) }
            }
        case .deleted(let rs):
            if let ref = rs.controllerRef, let d = await resolve(ref, namespace: rs.metadata.namespace) { await enqueue(d) }
        case .resync:
            return
        }
    }

    private func handle(_ event: InformerEvent<Pod>) async {
        let pod: Pod
        switch event {
        case .deleted(let gone): pod = gone
        case .updated(let old, let new) where old.isActive && !new.isActive: pod = new
        default: return
        }
        // A Recreate rollout waits for the old pods to be gone.
        guard let ref = pod.controllerRef, ref.kind == ReplicaSet.defaultKind,
              let rs = await replicaSets.get(name: ref.name, namespace: pod.metadata.namespace), rs.metadata.uid == ref.uid,
              let owner = rs.controllerRef, let d = await resolve(owner, namespace: rs.metadata.namespace),
              d.spec.strategy?.type == "Recreate" else { return }
        await enqueue(d)
    }

    private func enqueue(_ d: Deployment) async { await controller.queue.add(Informer<Deployment>.key(d)) }

    /// The cached Deployment `ref` names, if it is one and still has that uid.
    private func resolve(_ ref: OwnerReference, namespace: String?) async -> Deployment? {
        guard ref.kind == Deployment.defaultKind, ref.apiVersion.hasPrefix("apps/"),
              let d = await deployments.get(name: ref.name, namespace: namespace), d.metadata.uid == ref.uid else { return nil }
        return d
    }

    /// The Deployments of the namespace whose selector matches the ReplicaSet's labels
    /// (`getDeploymentsForReplicaSet`).
    private func matching(_ rs: ReplicaSet) async -> [Deployment] {
        let labels = rs.metadata.labels ?? [:]
        guard !labels.isEmpty else { return [] }
        return await deployments.byIndex(Self.namespaceIndex, rs.metadata.namespace ?? "").filter { d in
            guard let selector = try? LabelSelector(d.spec.selector), !selector.isEmpty else { return false }
            return selector.matches(labels)
        }
    }

    // MARK: Sync

    func sync(_ key: String) async throws -> SyncResult {
        guard var d = await deployments.get(key) else { return .done }
        let selector: LabelSelector
        do { selector = try LabelSelector(d.spec.selector) } catch {
            logger.warning("the Deployment's selector cannot be read; skipped", metadata: ["deployment": "\(key)", "error": "\(error)"])
            return .done
        }
        // Adopt the orphans the selector matches, release what no longer matches.
        let candidates = await replicaSets.byIndex(Self.namespaceIndex, d.metadata.namespace ?? "")
        let manager = ControllerRefManager<Deployment>.rechecking(client: client, owner: d, selector: selector)
        let owned = try await manager.claim(candidates)
        let pass = await Pass(self, owned)
        if d.metadata.deletionTimestamp != nil { return try await syncStatusOnly(&d, pass) }
        try await checkPausedConditions(&d)
        if d.spec.paused == true { return try await syncScaling(&d, pass) }
        if try await isScalingEvent(&d, pass) { return try await syncScaling(&d, pass) }
        if d.spec.strategy?.type == "Recreate" { return try await rolloutRecreate(&d, pass) }
        return try await rolloutRolling(&d, pass)
    }

    /// One sync's view of a Deployment's ReplicaSets and of their pods (by owner uid), kept
    /// current as the sync writes.
    final class Pass {
        var sets: [ReplicaSet]
        /// Pods per ReplicaSet uid, terminating ones included (`getPodMapForDeployment`).
        let pods: [String: [Pod]]

        init(_ controller: DeploymentController, _ sets: [ReplicaSet]) async {
            self.sets = sets
            var pods: [String: [Pod]] = [:]
            for rs in sets {
                let uid = rs.metadata.uid ?? ""
                pods[uid] = await controller.pods.byIndex(DeploymentController.controllerIndex, uid)
            }
            self.pods = pods
        }

        /// Replaces a ReplicaSet with the version just written (or adds one just made).
        func update(_ rs: ReplicaSet) {
            if let index = sets.firstIndex(where: { $0.metadata.uid == rs.metadata.uid }) { sets[index] = rs } else { sets.append(rs) }
        }

        func current(_ rs: ReplicaSet) -> ReplicaSet { sets.first { $0.metadata.uid == rs.metadata.uid } ?? rs }

        /// The pods counted against maxSurge for `rs`: the most of what it wants, what its status
        /// last counted and the active pods seen, so that pods an older ReplicaSet is still
        /// removing are not replaced before they are gone.
        func existingPods(_ rs: ReplicaSet) -> Int32 {
            let seen = Int32((pods[rs.metadata.uid ?? ""] ?? []).filter(\.isActive).count)
            return max(DeploymentUtil.specReplicas(rs), rs.status.replicas, seen)
        }
    }
}
