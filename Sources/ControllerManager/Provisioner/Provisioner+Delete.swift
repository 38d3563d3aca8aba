// Deletion of the volumes this provisioner made (sig-storage-lib-external-provisioner's
// deleteVolumeOperation and external-provisioner's Delete):
//
// | PV (provisioned-by this driver)                          | action                                        |
// |----------------------------------------------------------|-----------------------------------------------|
// | Released, policy Delete (deleted or not, finalizer held) | DeleteVolume, then delete the PV and drop the finalizer |
// |   still attached (a VolumeAttachment names it)           | wait (retried when the attachment goes)       |
// |   DeleteVolume fails                                     | phase Failed with the error, VolumeFailedDelete, retried |
// | policy Retain, finalizer present                         | finalizer removed (the disk is kept)          |
// | anything else                                            | nothing                                       |
import APIClient
import ClusterAPI
import CSIProto

extension Provisioner {
    func syncVolume(_ name: String) async throws -> SyncResult {
        guard let volume = await volumes.get(name: name),
              volume.metadata.annotations?[Annotation.provisionedBy] == driver else { return .done }
        let hasFinalizer = volume.metadata.finalizers?.contains(Finalizer.provisioner) ?? false
        if volume.spec.persistentVolumeReclaimPolicy != "Delete" {
            if hasFinalizer { _ = try await client.removeFinalizer(Finalizer.provisioner, from: volume) }
            return .done
        }
        guard volume.phase == "Released" || (volume.phase == "Failed" && volume.spec.claimRef?.uid != nil),
              volume.metadata.deletionTimestamp == nil || hasFinalizer else { return .done }
        // Released by the binder; Failed is a delete that failed before (retried).
        if volume.phase == "Failed", await claimStillExists(volume) { return .done }
        if let attachment = await attachments.list().first(where: { $0.spec.source.persistentVolumeName == name }) {
            throw BinderError("persistentvolume \(name) is still attached to node \(attachment.spec.nodeName)")
        }
        guard let handle = volume.spec.csi?.volumeHandle else { return .done }
        do {
            _ = try await csi.deleteVolume(.with { $0.volumeID = handle })
        } catch {
            let failure = CSIError(error)
            var failed = volume
            failed.status.phase = "Failed"
            failed.status.message = failure.description
            if volume.phase != "Failed" {
                failed.status.lastPhaseTransitionTime = Time.now()
            }
            if failed.status != volume.status { _ = try? await client.updateStatus(failed) }
            recorder.event(volume, .warning, "VolumeFailedDelete", failure.description)
            throw failure
        }
        logger.info("volume deleted", metadata: ["volume": "\(name)", "handle": "\(handle)"])
        if volume.metadata.deletionTimestamp == nil {
            do {
                try await client.delete(PersistentVolume.self, name: name, options: DeleteOptions(preconditionUID: volume.metadata.uid))
            } catch let error as APIError where error.isNotFound {
                return .done
            }
        }
        if hasFinalizer {
            // Read it again: the delete changed it.
            guard let current = try? await client.get(PersistentVolume.self, name: name), current.metadata.uid == volume.metadata.uid else {
                return .done
            }
            _ = try await client.removeFinalizer(Finalizer.provisioner, from: current)
        }
        return .done
    }

    /// Whether the claim a Failed volume was bound to is back (then it is not released).
    private func claimStillExists(_ volume: PersistentVolume) async -> Bool {
        guard let key = volume.claimKey, let claim = await claims.get(key) else { return false }
        return claim.metadata.uid == volume.spec.claimRef?.uid
    }
}
