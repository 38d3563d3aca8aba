// Storage object in-use protection (Kubernetes' pvcprotection and pvprotection controllers).
// The API server adds the finalizers on create; these controllers add them to objects made
// before that, and remove them — only they, by patch with the resourceVersion they read — once
// the object is deleted and no longer used:
//
// | object                 | finalizer                    | removed when deleted and                                    |
// |------------------------|------------------------------|-------------------------------------------------------------|
// | PersistentVolumeClaim  | kubernetes.io/pvc-protection | no scheduled, non-terminated pod uses it (the cache, then a live list of the namespace's pods agree) |
// | PersistentVolume       | kubernetes.io/pv-protection  | it is not Bound                                             |
import APIClient
import ClusterAPI
import Logging

final class PVCProtectionController: Sendable {
    let client: KubeClient
    let claims: Informer<PersistentVolumeClaim>
    let pods: Informer<Pod>
    let logger: Logger
    let controller: Controller<String>

    init(client: KubeClient, claims: Informer<PersistentVolumeClaim>, pods: Informer<Pod>, logger: Logger) async {
        self.client = client
        self.claims = claims
        self.pods = pods
        self.logger = logger
        let box = LateBound<PVCProtectionController>()
        controller = Controller(name: "pvc-protection", workers: 1, logger: logger) { key in
            guard let controller = box.value else { return .done }
            return try await controller.sync(key)
        }
        box.value = self
        await controller.enqueue(from: claims) { event in
            if case .deleted = event { return [] }
            return [Informer<PersistentVolumeClaim>.key(event.object)]
        }
        // Every pod change requeues the claims of the old and the new pod.
        await controller.enqueue(from: pods) { event in
            var pods = [event.object]
            if case .updated(let old, _) = event { pods.append(old) }
            return Array(Set(pods.flatMap { pod in pod.claimNames.map { "\(pod.metadata.namespace ?? "")/\($0)" } }))
        }
    }

    func run() async { await controller.run() }

    func sync(_ key: String) async throws -> SyncResult {
        guard let claim = await claims.get(key) else { return .done }
        let finalizers = claim.metadata.finalizers ?? []
        if !claim.isBeingDeleted {
            if !finalizers.contains(Finalizer.pvcProtection) { _ = try await client.addFinalizer(Finalizer.pvcProtection, to: claim) }
            return .done
        }
        guard finalizers.contains(Finalizer.pvcProtection) else { return .done }
        if await usedByCachedPod(claim) { return .done }
        // The cache may lag behind a pod just made: confirm with the API server.
        let live = try await client.list(Pod.self, namespace: claim.metadata.namespace)
        if live.items.contains(where: { Self.uses($0, claim) }) { return .done }
        _ = try await client.removeFinalizer(Finalizer.pvcProtection, from: claim)
        logger.info("claim no longer used; protection removed", metadata: ["claim": "\(claim.key)"])
        return .done
    }

    private func usedByCachedPod(_ claim: PersistentVolumeClaim) async -> Bool {
        await pods.list().contains { $0.metadata.namespace == claim.metadata.namespace && Self.uses($0, claim) }
    }

    /// A pod uses the claim when it is scheduled, not terminated (nor shut down) and names it.
    static func uses(_ pod: Pod, _ claim: PersistentVolumeClaim) -> Bool {
        guard let node = pod.spec.nodeName, !node.isEmpty, !pod.isShutDown,
              pod.status.phase != "Succeeded", pod.status.phase != "Failed" else { return false }
        return pod.claimNames.contains(claim.metadata.name ?? "")
    }
}

final class PVProtectionController: Sendable {
    let client: KubeClient
    let volumes: Informer<PersistentVolume>
    let logger: Logger
    let controller: Controller<String>

    init(client: KubeClient, volumes: Informer<PersistentVolume>, logger: Logger) async {
        self.client = client
        self.volumes = volumes
        self.logger = logger
        let box = LateBound<PVProtectionController>()
        controller = Controller(name: "pv-protection", workers: 1, logger: logger) { name in
            guard let controller = box.value else { return .done }
            return try await controller.sync(name)
        }
        box.value = self
        await controller.enqueue(from: volumes) { event in
            if case .deleted = event { return [] }
            return [event.object.metadata.name ?? ""]
        }
    }

    func run() async { await controller.run() }

    func sync(_ name: String) async throws -> SyncResult {
        guard let volume = await volumes.get(name: name) else { return .done }
        let finalizers = volume.metadata.finalizers ?? []
        if volume.metadata.deletionTimestamp == nil {
            if !finalizers.contains(Finalizer.pvProtection) { _ = try await client.addFinalizer(Finalizer.pvProtection, to: volume) }
            return .done
        }
        guard finalizers.contains(Finalizer.pvProtection), volume.phase != "Bound" else { return .done }
        _ = try await client.removeFinalizer(Finalizer.pvProtection, from: volume)
        logger.info("volume no longer bound; protection removed", metadata: ["volume": "\(name)"])
        return .done
    }
}
