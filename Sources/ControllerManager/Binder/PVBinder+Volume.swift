// syncVolume: a volume's phase follows its claim, and a released volume is reclaimed.
//
// | volume claimRef            | claim                                  | action                                          |
// |----------------------------|----------------------------------------|-------------------------------------------------|
// | none                       | —                                      | Available                                       |
// | without uid (pre-bound)    | —                                      | Available (the claim's sync binds it)           |
// | with uid                   | gone, or a new claim of the same name  | Released, then the reclaim policy               |
// |   "                        | volumeName "" (bind half-done)         | the claim is queued to finish it                |
// |   "                        | volumeName = this volume               | Bound                                           |
// |   "                        | bound elsewhere; provisioned, Delete   | Released, reclaimed                             |
// |   "                        | bound elsewhere; bound by controller   | unbound (claimRef removed), Available           |
// |   "                        | bound elsewhere; pre-bound by user     | claimRef uid cleared, Available                 |
//
// Reclaim: Retain keeps the Released volume (and its data); Delete of a volume a CSI
// provisioner made is that provisioner's job (the built-in one calls DeleteVolume, then deletes
// the PV, and marks it Failed with the error and retries when that fails); Delete of a volume no
// provisioner made, and Recycle, fail (Failed, VolumeFailedDelete / VolumeFailedRecycle).
import APIClient
import ClusterAPI

extension PersistentVolumeBinder {
    func syncVolume(_ key: String, volumeStore: ObjectStore<PersistentVolume>) async throws -> SyncResult {
        guard let volume = await volumeStore.get(key) else { return .done }
        guard let ref = volume.spec.claimRef else {
            try await updateVolumePhase(volume, "Available")
            return .done
        }
        guard let uid = ref.uid, !uid.isEmpty else {
            // Reserved for a claim that has not bound yet; its sync binds it.
            try await updateVolumePhase(volume, "Available")
            return .done
        }
        let claimKey = volume.claimKey ?? ""
        var claim = await claims.get(claimKey)
        if claim == nil {
            // The cache may lag behind (a claim just made): ask the API server before releasing.
            claim = try? await client.get(PersistentVolumeClaim.self, name: ref.name ?? "", namespace: ref.namespace)
        }
        if let found = claim, found.metadata.uid != uid {
            // The claim was deleted and another made with the same name.
            claim = nil
        }
        guard let claim else {
            var released = volume
            if volume.phase != "Released" && volume.phase != "Failed" {
                logger.info("volume is released", metadata: ["volume": "\(volume.metadata.name ?? "")",
                                                             "policy": "\(volume.spec.persistentVolumeReclaimPolicy ?? "")"])
                released = try await updateVolumePhase(volume, "Released")
            }
            try await reclaim(released)
            return .done
        }
        let claimVolume = claim.spec.volumeName ?? ""
        if claimVolume.isEmpty {
            // Bound on the volume's side only: the claim's sync finishes it (provisioned volumes
            // arrive this way).
            await claimController.queue.add(claimKey)
        } else if claimVolume == volume.metadata.name {
            try await updateVolumePhase(volume, "Bound")
        } else if volume.hasAnnotation(Annotation.provisionedBy) && volume.spec.persistentVolumeReclaimPolicy == "Delete" {
            // Provisioned for this claim, which got bound to another volume: not needed.
            var released = volume
            if volume.phase != "Released" && volume.phase != "Failed" { released = try await updateVolumePhase(volume, "Released") }
            try await reclaim(released)
        } else {
            // Bound by the controller to a claim bound elsewhere: undo it. Pre-bound by the user:
            // keep the reservation, clear the uid.
            try await unbindVolume(volume)
        }
        return .done
    }

    /// Applies the reclaim policy of a released volume.
    private func reclaim(_ volume: PersistentVolume) async throws {
        switch volume.spec.persistentVolumeReclaimPolicy ?? "Retain" {
        case "Retain":
            break
        case "Delete":
            let provisioner = volume.metadata.annotations?[Annotation.provisionedBy] ?? ""
            if !provisioner.isEmpty && !provisioner.hasPrefix("kubernetes.io/") {
                // An external (CSI) provisioner deletes it.
                return
            }
            try await updateVolumePhase(volume, "Failed", message: nil, event: (.warning, "VolumeFailedDelete",
                "error getting deleter volume plugin for volume \"\(volume.metadata.name ?? "")\": no deletable volume plugin matched"))
        case "Recycle":
            try await updateVolumePhase(volume, "Failed", message: nil, event: (.warning, "VolumeFailedRecycle",
                "No recycler plugin found for the volume!"))
        default:
            try await updateVolumePhase(volume, "Failed", message: nil, event: (.warning, "VolumeUnknownReclaimPolicy",
                "Volume has unrecognized PersistentVolumeReclaimPolicy"))
        }
    }
}
