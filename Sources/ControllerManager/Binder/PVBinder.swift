// The PV binder (Kubernetes' pkg/controller/volume/persistentvolume, "persistentvolume-binder"):
// binds claims to volumes with the two-pointer protocol, starts provisioning, and reclaims
// released volumes. Like pv_controller.go it keeps one worker per queue — two syncClaims at
// once could bind two claims to one volume, or one claim to two volumes — and a cache of its
// own writes (`ObjectStore`).
//
// Claims (syncClaim):
//
// | claim                          | volume                                   | action                                             |
// |--------------------------------|------------------------------------------|----------------------------------------------------|
// | no bind-completed, no volumeName | a volume pre-bound to it, or the smallest Available fit | bind (PV claimRef, PV Bound, PVC volumeName, PVC Bound) |
// |   "                            | none; class WaitForFirstConsumer, no selected-node | event WaitForFirstConsumer, Pending          |
// |   "                            | none; class set                          | annotate storage-provisioner, event ExternalProvisioning, Pending |
// |   "                            | none; no class                           | event FailedBinding, Pending                       |
// | no bind-completed, volumeName V | V missing                               | Pending (waits for V)                              |
// |   "                            | V unclaimed and fits                     | bind                                               |
// |   "                            | V unclaimed, does not fit                | event VolumeMismatch, Pending                      |
// |   "                            | V claimed by this claim                  | bind (finishes a half-done bind)                   |
// |   "                            | V claimed by another, claim pre-bound by user | Pending                                      |
// | bind-completed, volumeName ""   | —                                       | Lost, event ClaimLost                              |
// | bind-completed, volumeName V    | V missing                               | Lost, event ClaimLost                              |
// |   "                            | V unclaimed or claimed by this claim     | bind (repairs)                                     |
// |   "                            | V claimed by another claim               | Lost, event ClaimMisbound                          |
import APIClient
import ClusterAPI
import Logging
import Synchronization

final class PersistentVolumeBinder: Sendable {
    let client: KubeClient
    let claims: ObjectStore<PersistentVolumeClaim>
    let volumes: ObjectStore<PersistentVolume>
    let classes: Informer<StorageClass>
    let recorder: EventRecorder
    let logger: Logger
    let claimController: Controller<String>
    let volumeController: Controller<String>

    init(client: KubeClient, claims: Informer<PersistentVolumeClaim>, volumes: Informer<PersistentVolume>,
         classes: Informer<StorageClass>, recorder: EventRecorder, logger: Logger) async {
        self.client = client
        self.claims = ObjectStore(claims)
        self.volumes = ObjectStore(volumes)
        self.classes = classes
        self.recorder = recorder
        self.logger = logger
        let claimStore = self.claims, volumeStore = self.volumes
        let box = LateBound<PersistentVolumeBinder>()
        claimController = Controller(name: "persistentvolume-binder-claims", workers: 1, logger: logger) { key in
            guard let binder = box.value else { return .done }
            return try await binder.syncClaim(key, claimStore: claimStore)
        }
        volumeController = Controller(name: "persistentvolume-binder-volumes", workers: 1, logger: logger) { key in
            guard let binder = box.value else { return .done }
            return try await binder.syncVolume(key, volumeStore: volumeStore)
        }
        box.value = self
        await claimController.enqueue(from: claims) { [Informer<PersistentVolumeClaim>.key($0.object)] }
        // A deleted volume may leave its claim Lost.
        await claimController.enqueue(from: volumes) { event in
            if case .deleted(let volume) = event, let key = volume.claimKey { return [key] }
            return []
        }
        await volumeController.enqueue(from: volumes) { [Informer<PersistentVolume>.key($0.object)] }
        // A deleted claim releases its volume.
        await volumeController.enqueue(from: claims) { event in
            if case .deleted(let claim) = event, let name = claim.spec.volumeName, !name.isEmpty { return [name] }
            return []
        }
    }

    /// Runs both queues until cancelled.
    func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.claimController.run() }
            group.addTask { await self.volumeController.run() }
        }
    }

    // MARK: Claims

    func syncClaim(_ key: String, claimStore: ObjectStore<PersistentVolumeClaim>) async throws -> SyncResult {
        guard let claim = await claimStore.get(key) else { return .done }
        if claim.hasAnnotation(Annotation.bindCompleted) {
            try await syncBoundClaim(claim)
        } else {
            try await syncUnboundClaim(claim)
        }
        return .done
    }

    private func syncUnboundClaim(_ claim: PersistentVolumeClaim) async throws {
        let volumeName = claim.spec.volumeName ?? ""
        if volumeName.isEmpty {
            // The user did not ask for a particular volume.
            let storageClass = await classes.get(name: claim.className)
            let delayBinding = storageClass?.isWaitForFirstConsumer ?? false
            if let volume = VolumeMatching.bestMatch(for: claim, in: await volumes.list(), delayBinding: delayBinding) {
                try await bind(volume, claim)
                return
            }
            if delayBinding && !claim.hasAnnotation(Annotation.selectedNode) {
                recorder.event(claim, .normal, "WaitForFirstConsumer", "waiting for first consumer to be created before binding")
            } else if !claim.className.isEmpty {
                try await provisionClaim(claim, storageClass)
                return
            } else {
                recorder.event(claim, .normal, "FailedBinding", "no persistent volumes available for this claim and no storage class is set")
            }
            try await updateClaimStatus(claim, phase: "Pending", volume: nil)
            return
        }
        // The user asked for a particular volume.
        guard let volume = await volumes.get(name: volumeName) else {
            logger.debug("claim waits for its volume", metadata: ["claim": "\(claim.key)", "volume": "\(volumeName)"])
            try await updateClaimStatus(claim, phase: "Pending", volume: nil)
            return
        }
        if volume.spec.claimRef == nil {
            if let reason = VolumeMatching.mismatch(volume, claim) {
                recorder.event(claim, .warning, "VolumeMismatch", "Cannot bind to requested volume \"\(volumeName)\": \(reason)")
                try await updateClaimStatus(claim, phase: "Pending", volume: nil)
                return
            }
            try await bind(volume, claim)
        } else if volume.isBound(to: claim) {
            // Half-finished: the volume points at the claim; finish it.
            try await bind(volume, claim)
        } else if !claim.hasAnnotation(Annotation.boundByController) {
            // Pre-bound by the user to a volume someone else holds: wait.
            try await updateClaimStatus(claim, phase: "Pending", volume: nil)
        } else {
            throw BinderError("Invalid binding of claim \"\(claim.key)\" to volume \"\(volumeName)\": volume already claimed by \"\(volume.claimKey ?? "")\"")
        }
    }

    private func syncBoundClaim(_ claim: PersistentVolumeClaim) async throws {
        let volumeName = claim.spec.volumeName ?? ""
        if volumeName.isEmpty {
            try await updateClaimStatus(claim, phase: "Lost", volume: nil, event: (.warning, "ClaimLost",
                "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!"))
            return
        }
        var volume = await volumes.get(name: volumeName)
        if volume == nil {
            // Make sure before declaring the data lost: the cache may lag behind.
            volume = try? await client.get(PersistentVolume.self, name: volumeName)
        }
        guard let volume else {
            try await updateClaimStatus(claim, phase: "Lost", volume: nil, event: (.warning, "ClaimLost",
                "Bound claim has lost its PersistentVolume. Data on the volume is lost!"))
            return
        }
        if volume.spec.claimRef == nil || volume.spec.claimRef?.uid == claim.metadata.uid {
            // Unbound volume (the user or a lagging cache) or all is well: bind makes sure.
            try await bind(volume, claim)
        } else {
            try await updateClaimStatus(claim, phase: "Lost", volume: nil, event: (.warning, "ClaimMisbound",
                "Two claims are bound to the same volume, this one is bound incorrectly"))
        }
    }

    /// Asks for a volume: the claim is annotated with its class's provisioner, which (built in
    /// or external) makes one; the binder binds it when it appears.
    private func provisionClaim(_ claim: PersistentVolumeClaim, _ storageClass: StorageClass?) async throws {
        guard let storageClass else {
            recorder.event(claim, .warning, "ProvisioningFailed", "storageclass.storage.k8s.io \"\(claim.className)\" not found")
            try await updateClaimStatus(claim, phase: "Pending", volume: nil)
            return
        }
        var current = claim
        if current.metadata.annotations?[Annotation.storageProvisioner] != storageClass.provisioner
            || current.metadata.annotations?[Annotation.betaStorageProvisioner] != storageClass.provisioner {
            var annotated = claim
            annotated.metadata.annotations = (annotated.metadata.annotations ?? [:]).merging([
                Annotation.storageProvisioner: storageClass.provisioner,
                Annotation.betaStorageProvisioner: storageClass.provisioner,
            ]) { $1 }
            current = try await client.update(annotated)
            claims.record(current)
        }
        recorder.event(current, .normal, "ExternalProvisioning",
                       "Waiting for a volume to be created either by the external provisioner '\(storageClass.provisioner)' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered.")
        try await updateClaimStatus(current, phase: "Pending", volume: nil)
    }
}

/// A binder error that only retrying can fix.
struct BinderError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A reference set once its owner is initialised: a controller's sync closure is made in the
/// owner's initialiser, before `self` can be captured.
final class LateBound<T: AnyObject & Sendable>: Sendable {
    private let lock = Mutex<T?>(nil)
    var value: T? {
        get { lock.withLock { $0 } }
        set { lock.withLock { $0 = newValue } }
    }
}
