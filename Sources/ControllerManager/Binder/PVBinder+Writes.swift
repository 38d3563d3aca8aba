// The binder's writes, each one object with the resourceVersion it read (a conflict is retried
// by the queue), recorded in the binder's own cache. A bind writes the volume first, then the
// claim, so that at every step the state can be completed or undone by the next sync.
import APIClient
import ClusterAPI

extension PersistentVolumeBinder {
    /// PV `claimRef` (with uid), PV Bound, PVC `volumeName` (+ bind-completed), PVC Bound.
    func bind(_ volume: PersistentVolume, _ claim: PersistentVolumeClaim) async throws {
        logger.debug("binding", metadata: ["volume": "\(volume.metadata.name ?? "")", "claim": "\(claim.key)"])
        var volume = try await bindVolumeToClaim(volume, claim)
        volume = try await updateVolumePhase(volume, "Bound")
        let claim = try await bindClaimToVolume(claim, volume)
        try await updateClaimStatus(claim, phase: "Bound", volume: volume)
    }

    private func bindVolumeToClaim(_ volume: PersistentVolume, _ claim: PersistentVolumeClaim) async throws -> PersistentVolume {
        var updated = volume
        var dirty = false
        let ref = volume.spec.claimRef
        if ref == nil || ref?.name != claim.metadata.name || ref?.namespace != claim.metadata.namespace || ref?.uid != claim.metadata.uid {
            updated.spec.claimRef = objectReference(claim)
            dirty = true
        }
        if !volume.isBound(to: claim) && !volume.hasAnnotation(Annotation.boundByController) {
            updated.metadata.annotations = (updated.metadata.annotations ?? [:]).merging([Annotation.boundByController: "yes"]) { $1 }
            dirty = true
        }
        guard dirty else { return volume }
        let written = try await client.update(updated)
        volumes.record(written)
        logger.info("claim bound to volume", metadata: ["claim": "\(claim.key)", "volume": "\(volume.metadata.name ?? "")"])
        return written
    }

    private func bindClaimToVolume(_ claim: PersistentVolumeClaim, _ volume: PersistentVolume) async throws -> PersistentVolumeClaim {
        var updated = claim
        var dirty = false
        let name = volume.metadata.name ?? ""
        let userChose = claim.spec.volumeName == name
        if claim.spec.volumeName != name {
            updated.spec.volumeName = name
            dirty = true
        }
        var annotations = updated.metadata.annotations ?? [:]
        if !userChose && annotations[Annotation.boundByController] == nil {
            annotations[Annotation.boundByController] = "yes"
            dirty = true
        }
        if annotations[Annotation.bindCompleted] == nil {
            annotations[Annotation.bindCompleted] = "yes"
            dirty = true
        }
        guard dirty else { return claim }
        updated.metadata.annotations = annotations
        let written = try await client.update(updated)
        claims.record(written)
        return written
    }

    /// Undoes a binding the controller made (claimRef and annotation removed), or clears the uid
    /// of a user's reservation; the volume becomes Available.
    func unbindVolume(_ volume: PersistentVolume) async throws {
        var updated = volume
        if volume.hasAnnotation(Annotation.boundByController) {
            updated.spec.claimRef = nil
            updated.metadata.annotations?[Annotation.boundByController] = nil
            if updated.metadata.annotations?.isEmpty == true { updated.metadata.annotations = nil }
        } else {
            updated.spec.claimRef?.uid = nil
        }
        let written = try await client.update(updated)
        volumes.record(written)
        try await updateVolumePhase(written, "Available")
    }

    /// Writes the claim's phase, and its capacity and access modes from `volume` (cleared
    /// without one); `event` is recorded only when the phase changes.
    func updateClaimStatus(_ claim: PersistentVolumeClaim, phase: String, volume: PersistentVolume?,
                           event: (EventType, String, String)? = nil) async throws {
        if event != nil && claim.status.phase == phase { return }
        var updated = claim
        updated.status.phase = phase
        if let volume {
            updated.status.accessModes = volume.spec.accessModes
            // A volume larger than the claim's capacity is a resize in progress: the resizer (and
            // the kubelet) set the claim's capacity when it is done.
            if let capacity = volume.capacity, claim.status.capacity?["storage"].map({ capacity < $0 }) ?? true {
                updated.status.capacity = volume.spec.capacity
            }
        } else {
            updated.status.accessModes = nil
            updated.status.capacity = nil
        }
        if updated.status == claim.status { return }
        let written = try await client.updateStatus(updated)
        claims.record(written)
        if phase != claim.status.phase {
            logger.info("claim entered phase", metadata: ["claim": "\(claim.key)", "phase": "\(phase)"])
        }
        if let (type, reason, message) = event { recorder.event(written, type, reason, message) }
    }

    /// Writes the volume's phase (and message); `event` is recorded only when it changes.
    @discardableResult
    func updateVolumePhase(_ volume: PersistentVolume, _ phase: String, message: String? = nil,
                           event: (EventType, String, String)? = nil) async throws -> PersistentVolume {
        if volume.phase == phase { return volume }
        var updated = volume
        updated.status.phase = phase
        updated.status.message = message ?? event?.2
        updated.status.lastPhaseTransitionTime = Time.now()
        let written = try await client.updateStatus(updated)
        volumes.record(written)
        logger.info("volume entered phase", metadata: ["volume": "\(volume.metadata.name ?? "")", "phase": "\(phase)"])
        if let (type, reason, text) = event { recorder.event(written, type, reason, text) }
        return written
    }
}
