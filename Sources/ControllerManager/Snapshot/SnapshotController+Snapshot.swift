// The common controller's half: VolumeSnapshots (external-snapshotter pkg/common-controller).
//
// | VolumeSnapshot                                  | action                                              |
// |-------------------------------------------------|-----------------------------------------------------|
// | new                                             | as-source finalizer                                 |
// | source: claim, no class                         | the default class of the claim's driver is written  |
// | source: claim, unbound                          | content `snapcontent-<uid>` created (ref with uid), |
// |                                                 | then status.boundVolumeSnapshotContentName          |
// | source: content (pre-provisioned)               | content's ref gets the uid; status bound            |
// | bound                                           | status copied from the content: readyToUse,         |
// |                                                 | restoreSize, creationTime, error; bound finalizer   |
// |                                                 | while the content's deletionPolicy is Delete        |
// | invalid (claim missing or unbound, no class,    | status.error and a Warning event; retried           |
// |   content missing or bound elsewhere)           |                                                     |
// | deleted, a Pending claim restores from it       | held (as-source finalizer), SnapshotDeletePending   |
// | deleted, content Delete                         | content annotated being-deleted and deleted; bound  |
// |                                                 | finalizer removed once the content is gone          |
// | deleted, content Retain (or none)               | finalizers removed; the content stays               |
//
// The content is created before the snapshot records it, under a name derived from the
// snapshot's uid: a crash in between is repaired by finding the content by that name.
import APIClient
import ClusterAPI
import Foundation

extension SnapshotSyncer {
    func syncSnapshot(_ key: String) async throws -> SyncResult {
        guard var snapshot = await snapshots.get(key) else { return .done }
        if snapshot.metadata.deletionTimestamp != nil { return try await finishDeletion(snapshot) }
        if !(snapshot.metadata.finalizers ?? []).contains(SnapshotNames.asSourceFinalizer) {
            snapshot = try await client.addFinalizer(SnapshotNames.asSourceFinalizer, to: snapshot)
        }
        let claimName = snapshot.spec.source.persistentVolumeClaimName ?? ""
        let contentName = snapshot.spec.source.volumeSnapshotContentName ?? ""
        switch (claimName.isEmpty, contentName.isEmpty) {
        case (true, false): return try await syncPreProvisioned(snapshot, contentName: contentName)
        case (false, true): return try await syncDynamic(snapshot, claimName: claimName)
        default:
            try await fail(snapshot, "SnapshotValidationError",
                           "Invalid snapshot: exactly one of spec.source.volumeSnapshotContentName and spec.source.persistentVolumeClaimName must be set")
            return .done
        }
    }

    // MARK: Dynamic

    private func syncDynamic(_ snapshot: VolumeSnapshot, claimName: String) async throws -> SyncResult {
        var snapshot = snapshot
        let namespace = snapshot.metadata.namespace ?? ""
        let uid = snapshot.metadata.uid ?? ""
        if let bound = snapshot.status?.boundVolumeSnapshotContentName, !bound.isEmpty {
            return try await syncBound(snapshot, contentName: bound)
        }
        // Made by an earlier sync that stopped before recording it?
        let contentName = SnapshotNames.contentName(snapshotUID: uid)
        if let existing = try await content(contentName) {
            return try await bind(snapshot, to: existing)
        }
        guard let claim = await controller.claims.get(name: claimName, namespace: namespace) else {
            try await fail(snapshot, "SnapshotContentCreationFailed",
                           "Failed to create snapshot content with error snapshot controller failed to update \(snapshot.key) on API server: cannot get claim from snapshot: persistentvolumeclaim \"\(claimName)\" not found")
            return .done
        }
        if claim.metadata.deletionTimestamp != nil {
            try await fail(snapshot, "SnapshotContentCreationFailed",
                           "Failed to create snapshot content with error the PVC \(claimName) is being deleted")
            return .done
        }
        guard let volumeName = claim.spec.volumeName, !volumeName.isEmpty, claim.status.phase == "Bound",
              let volume = await controller.volumes.get(name: volumeName) else {
            try await fail(snapshot, "SnapshotContentCreationFailed",
                           "Failed to create snapshot content with error the PVC \(claimName) is not yet bound to a PV, will not attempt to take a snapshot")
            return .done
        }
        guard let csiSource = volume.spec.csi else {
            try await fail(snapshot, "SnapshotContentCreationFailed",
                           "Failed to create snapshot content with error the PV \(volumeName) is not a CSI volume: only CSI volumes can be snapshotted")
            return .done
        }
        let snapshotClass: VolumeSnapshotClass
        if let className = snapshot.spec.volumeSnapshotClassName, !className.isEmpty {
            guard let found = await classes.get(name: className) else {
                try await fail(snapshot, "SnapshotContentCreationFailed",
                               "Failed to create snapshot content with error failed to get snapshot class with error volumesnapshotclass.snapshot.storage.k8s.io \"\(className)\" not found")
                return .done
            }
            guard found.driver == csiSource.driver else {
                try await fail(snapshot, "SnapshotContentCreationFailed",
                               "Failed to create snapshot content with error the VolumeSnapshotClass \(className) is for driver \(found.driver), the PV \(volumeName) of claim \(claimName) is of driver \(csiSource.driver)")
                return .done
            }
            snapshotClass = found
        } else {
            let defaults = await classes.list().filter { $0.driver == csiSource.driver && $0.isDefault }
            guard defaults.count == 1, let found = defaults.first else {
                let reason = defaults.isEmpty ? "cannot find default snapshot class" : "\(defaults.count) default snapshot classes were found"
                try await fail(snapshot, "SnapshotContentCreationFailed",
                               "Failed to create snapshot content with error failed to get default snapshot class for driver \(csiSource.driver): \(reason)")
                return .done
            }
            // Written into the snapshot, as upstream's SetDefaultSnapshotClass does.
            snapshot = try await client.mergePatch(VolumeSnapshot.self, name: snapshot.metadata.name ?? "", namespace: namespace, patch: .object([
                "metadata": .object(["resourceVersion": .string(snapshot.metadata.resourceVersion ?? "")]),
                "spec": .object(["volumeSnapshotClassName": .string(found.metadata.name ?? "")])]))
            snapshotClass = found
        }
        var content = VolumeSnapshotContent(metadata: ObjectMeta(name: contentName))
        content.spec = VolumeSnapshotContentSpec(
            volumeSnapshotRef: ObjectReference(kind: VolumeSnapshot.defaultKind, namespace: namespace, name: snapshot.metadata.name, uid: uid,
                                               apiVersion: VolumeSnapshot.defaultAPIVersion, resourceVersion: snapshot.metadata.resourceVersion),
            deletionPolicy: snapshotClass.deletionPolicy, driver: snapshotClass.driver,
            volumeSnapshotClassName: snapshotClass.metadata.name,
            source: VolumeSnapshotContentSource(volumeHandle: csiSource.volumeHandle),
            sourceVolumeMode: volume.spec.volumeMode ?? "Filesystem")
        let created: VolumeSnapshotContent
        do {
            created = try await client.create(content)
        } catch let error as APIError where error.isAlreadyExists {
            guard let existing = try await self.content(contentName) else { throw error }
            created = existing
        } catch {
            try await fail(snapshot, "SnapshotContentCreationFailed", "Failed to create snapshot content with error \(error)")
            throw error
        }
        recorder.event(snapshot, .normal, "CreatingSnapshot", "Waiting for a snapshot \(snapshot.key) to be created by the CSI driver.")
        return try await bind(snapshot, to: created)
    }

    // MARK: Pre-provisioned

    private func syncPreProvisioned(_ snapshot: VolumeSnapshot, contentName: String) async throws -> SyncResult {
        guard var content = try await content(contentName) else {
            try await fail(snapshot, "SnapshotContentMissing", "VolumeSnapshotContent is missing")
            return .done
        }
        let ref = content.spec.volumeSnapshotRef
        guard ref.name == snapshot.metadata.name, ref.namespace == snapshot.metadata.namespace,
              (ref.uid ?? "").isEmpty || ref.uid == snapshot.metadata.uid else {
            try await fail(snapshot, "SnapshotBindFailed",
                           "Snapshot failed to bind VolumeSnapshotContent, VolumeSnapshotContent \(contentName) is bound to a different snapshot \(ref.namespace ?? "")/\(ref.name ?? "")")
            return .done
        }
        if (ref.uid ?? "").isEmpty {
            content.spec.volumeSnapshotRef.uid = snapshot.metadata.uid
            content.spec.volumeSnapshotRef.kind = VolumeSnapshot.defaultKind
            content.spec.volumeSnapshotRef.apiVersion = VolumeSnapshot.defaultAPIVersion
            content = try await client.update(content)
        }
        return try await bind(snapshot, to: content)
    }

    // MARK: Bound

    private func syncBound(_ snapshot: VolumeSnapshot, contentName: String) async throws -> SyncResult {
        guard let content = try await content(contentName) else {
            try await fail(snapshot, "SnapshotContentMissing", "VolumeSnapshotContent is missing", keepReady: false)
            return .done
        }
        return try await bind(snapshot, to: content)
    }

    /// Checks that `content` points back at `snapshot`, then records the binding and the
    /// content's state in the snapshot's status (and the bound finalizer when the content's
    /// policy is Delete).
    private func bind(_ snapshot: VolumeSnapshot, to content: VolumeSnapshotContent) async throws -> SyncResult {
        var snapshot = snapshot
        let ref = content.spec.volumeSnapshotRef
        let contentName = content.metadata.name ?? ""
        guard ref.name == snapshot.metadata.name, ref.namespace == snapshot.metadata.namespace, ref.uid == snapshot.metadata.uid else {
            try await fail(snapshot, "InvalidSnapshotBinding",
                           "Snapshot failed to bind VolumeSnapshotContent, VolumeSnapshotContent \(contentName) is bound to a different snapshot \(ref.namespace ?? "")/\(ref.name ?? "") (uid \(ref.uid ?? "none"))")
            return .done
        }
        let finalizers = snapshot.metadata.finalizers ?? []
        if content.spec.deletionPolicy == "Delete", !finalizers.contains(SnapshotNames.boundFinalizer) {
            snapshot = try await client.addFinalizer(SnapshotNames.boundFinalizer, to: snapshot)
        }
        let old = snapshot.status ?? VolumeSnapshotStatus()
        var status = old
        status.boundVolumeSnapshotContentName = contentName
        status.readyToUse = content.status?.readyToUse ?? false
        if let bytes = content.status?.restoreSize { status.restoreSize = Quantity(bytes, format: .binarySI) }
        if let nanoseconds = content.status?.creationTime { status.creationTime = Time(secondsSinceEpoch: nanoseconds / 1_000_000_000) }
        status.error = content.status?.error
        if status != old {
            snapshot.status = status
            snapshot = try await client.updateStatus(snapshot)
            if old.creationTime == nil, status.creationTime != nil {
                recorder.event(snapshot, .normal, "SnapshotCreated", "Snapshot \(snapshot.key) was successfully created by the CSI driver.")
            }
            if old.readyToUse != true, status.readyToUse == true {
                recorder.event(snapshot, .normal, "SnapshotReady", "Snapshot \(snapshot.key) is ready to use.")
            }
        }
        return .done
    }

    /// Records `message` in `status.error` (when it changed) and as a Warning event with `reason`.
    func fail(_ snapshot: VolumeSnapshot, _ reason: String, _ message: String, keepReady: Bool = true) async throws {
        recorder.event(snapshot, .warning, reason, message)
        var status = snapshot.status ?? VolumeSnapshotStatus()
        guard status.error?.message != message || (!keepReady && status.readyToUse == true) else { return }
        status.error = VolumeSnapshotError(time: Time.now(), message: message)
        if !keepReady || status.readyToUse == nil { status.readyToUse = false }
        var updated = snapshot
        updated.status = status
        _ = try await client.updateStatus(updated)
    }

    // MARK: Deletion

    private func finishDeletion(_ snapshot: VolumeSnapshot) async throws -> SyncResult {
        var snapshot = snapshot
        let finalizers = snapshot.metadata.finalizers ?? []
        if finalizers.contains(SnapshotNames.asSourceFinalizer) {
            let restoring = await controller.claims.list().filter { claim in
                claim.metadata.namespace == snapshot.metadata.namespace && (claim.spec.volumeName ?? "").isEmpty
                    && claim.status.phase != "Bound" && claim.metadata.deletionTimestamp == nil
                    && Self.sourceSnapshot(of: claim) == snapshot.metadata.name
            }
            if let claim = restoring.first {
                recorder.event(snapshot, .warning, "SnapshotDeletePending",
                               "Snapshot is being used to restore a PVC: \(claim.metadata.namespace ?? "")/\(claim.metadata.name ?? "")")
                return .requeue(after: .seconds(5))
            }
            snapshot = try await client.removeFinalizer(SnapshotNames.asSourceFinalizer, from: snapshot)
        }
        guard (snapshot.metadata.finalizers ?? []).contains(SnapshotNames.boundFinalizer) else { return .done }
        let contentName = snapshot.status?.boundVolumeSnapshotContentName
            ?? snapshot.spec.source.volumeSnapshotContentName
            ?? SnapshotNames.contentName(snapshotUID: snapshot.metadata.uid ?? "")
        if var content = try await content(contentName), content.spec.volumeSnapshotRef.uid == snapshot.metadata.uid,
           content.spec.deletionPolicy == "Delete" {
            if content.metadata.deletionTimestamp == nil {
                content = try await annotate(content, SnapshotNames.beingDeleted, "yes")
                do {
                    try await client.delete(VolumeSnapshotContent.self, name: contentName)
                } catch let error as APIError where error.isNotFound {
                }
            }
            // The content's deletion (its snapshot deleted first) enqueues this snapshot again.
            return .requeue(after: .seconds(10))
        }
        _ = try await client.removeFinalizer(SnapshotNames.boundFinalizer, from: snapshot)
        return .done
    }
}
