// The sidecar's half: VolumeSnapshotContents of this driver (external-snapshotter
// pkg/sidecar-controller), and the common controller's rule for contents whose snapshot is gone.
//
// | VolumeSnapshotContent                          | action                                               |
// |------------------------------------------------|------------------------------------------------------|
// | any driver, Delete, its VolumeSnapshot gone     | annotated being-deleted and deleted                  |
// | other driver                                    | nothing more (another sidecar's)                     |
// | Delete policy                                   | content finalizer                                    |
// | dynamic (volumeHandle), not ready               | annotated being-created, CreateSnapshot              |
// |                                                 | `snapshot-<VolumeSnapshot uid>` (idempotent by name),|
// |                                                 | status: handle, creationTime, restoreSize, ready;    |
// |                                                 | annotation removed                                   |
// |   CreateSnapshot fails                          | status.error, SnapshotCreationFailed, retried         |
// | pre-provisioned (snapshotHandle), not ready     | ListSnapshots by id → status (missing: status.error) |
// | deleted, Delete, VolumeSnapshot still bound     | held until the VolumeSnapshot is deleted             |
// | deleted, Delete                                 | DeleteSnapshot (a handle never recorded is found by  |
// |                                                 | CreateSnapshot with the same name), finalizer removed|
// | deleted, Retain                                 | finalizer removed; the storage snapshot stays        |
//
// The finalizer and the being-created annotation are written before CreateSnapshot is called:
// whatever instant the controller dies at, the snapshot it may have made is reachable from the
// content, and deleting the content deletes it.
import APIClient
import ClusterAPI
import CSIProto
import Foundation

extension SnapshotSyncer {
    func syncContent(_ name: String) async throws -> SyncResult {
        guard var content = await contents.get(name: name) else { return .done }
        let policyDelete = content.spec.deletionPolicy == "Delete"
        let ours = content.spec.driver == driver
        if content.metadata.deletionTimestamp == nil {
            // The finalizer first (a Retain content switched to Delete gets it too), so that a
            // content deleted below takes its storage snapshot with it.
            let finalizers = content.metadata.finalizers ?? []
            if ours, policyDelete, !finalizers.contains(SnapshotNames.contentFinalizer) {
                content = try await client.addFinalizer(SnapshotNames.contentFinalizer, to: content)
            } else if ours, !policyDelete, finalizers.contains(SnapshotNames.contentFinalizer) {
                content = try await client.removeFinalizer(SnapshotNames.contentFinalizer, from: content)
            }
            if policyDelete, try await isOrphaned(content) {
                content = try await annotate(content, SnapshotNames.beingDeleted, "yes")
                do {
                    try await client.delete(VolumeSnapshotContent.self, name: name)
                } catch let error as APIError where error.isNotFound {
                }
                return .done
            }
        }
        guard ours else { return .done }
        if content.metadata.deletionTimestamp != nil { return try await finishDeletion(content) }
        if content.status?.readyToUse == true, content.snapshotHandle != nil { return .done }
        if let handle = content.spec.source.snapshotHandle, !handle.isEmpty {
            return try await checkExisting(content, handle: handle)
        }
        guard let volume = content.spec.source.volumeHandle, !volume.isEmpty else {
            try await fail(content, "SnapshotContentCheckandUpdateFailed",
                           "Failed to check and update snapshot content: spec.source must set exactly one of volumeHandle and snapshotHandle")
            return .done
        }
        return try await create(content, from: volume)
    }

    /// A content whose VolumeSnapshot (by the uid it was bound to) no longer exists.
    private func isOrphaned(_ content: VolumeSnapshotContent) async throws -> Bool {
        let ref = content.spec.volumeSnapshotRef
        guard let uid = ref.uid, !uid.isEmpty, let name = ref.name else { return false }
        guard let snapshot = try await snapshot(name: name, namespace: ref.namespace) else { return true }
        return snapshot.metadata.uid != uid
    }

    // MARK: Creating

    private func create(_ content: VolumeSnapshotContent, from volume: String) async throws -> SyncResult {
        var content = content
        let uid = content.spec.volumeSnapshotRef.uid ?? ""
        guard !uid.isEmpty else {
            try await fail(content, "SnapshotCreationFailed",
                           "Failed to create snapshot: spec.volumeSnapshotRef.uid is not set: a dynamic content is bound to its VolumeSnapshot by uid")
            return .done
        }
        var parameters: [String: String] = [:]
        if let className = content.spec.volumeSnapshotClassName, !className.isEmpty {
            guard let snapshotClass = await classes.get(name: className) else {
                try await fail(content, "SnapshotCreationFailed",
                               "Failed to create snapshot: failed to get input parameters to create snapshot for content \(content.metadata.name ?? ""): volumesnapshotclass.snapshot.storage.k8s.io \"\(className)\" not found")
                throw SnapshotError("volumesnapshotclass \(className) not found")
            }
            parameters = (snapshotClass.parameters ?? [:]).filter { !$0.key.hasPrefix("csi.storage.k8s.io/") }
        }
        content = try await annotate(content, SnapshotNames.beingCreated, "yes")
        let request = Csi_V1_CreateSnapshotRequest.with {
            $0.name = SnapshotNames.csiName(snapshotUID: uid)
            $0.sourceVolumeID = volume
            $0.parameters = parameters
        }
        let response: Csi_V1_CreateSnapshotResponse
        do {
            response = try await csi.createSnapshot(request)
        } catch {
            let failure = CSIError(error)
            try await fail(content, "SnapshotCreationFailed", "Failed to create snapshot: failed to take snapshot of the volume \(volume): \"\(failure)\"")
            if !failure.isInProgress {
                // Nothing was made: no snapshot to look for if the content goes now.
                _ = try? await annotate(try await client.get(VolumeSnapshotContent.self, name: content.metadata.name ?? ""),
                                        SnapshotNames.beingCreated, nil)
            }
            throw failure
        }
        content = try await record(content, response.snapshot)
        content = try await annotate(content, SnapshotNames.beingCreated, nil)
        logger.info("snapshot created", metadata: ["content": "\(content.metadata.name ?? "")", "handle": "\(response.snapshot.snapshotID)",
                                                  "ready": "\(response.snapshot.readyToUse)"])
        return response.snapshot.readyToUse ? .done : .requeue(after: .seconds(1))
    }

    /// Writes what the driver said of the snapshot into the content's status.
    private func record(_ content: VolumeSnapshotContent, _ snapshot: Csi_V1_Snapshot) async throws -> VolumeSnapshotContent {
        var content = content
        let old = content.status ?? VolumeSnapshotContentStatus()
        var status = old
        status.snapshotHandle = snapshot.snapshotID
        status.readyToUse = snapshot.readyToUse
        status.restoreSize = max(0, snapshot.sizeBytes)
        if snapshot.hasCreationTime {
            let seconds = snapshot.creationTime.seconds
            if seconds >= 0, seconds < Int64.max / 1_000_000_000 {
                status.creationTime = seconds * 1_000_000_000 + Int64(snapshot.creationTime.nanos)
            }
        }
        status.error = nil
        guard status != old else { return content }
        content.status = status
        return try await client.updateStatus(content)
    }

    private func checkExisting(_ content: VolumeSnapshotContent, handle: String) async throws -> SyncResult {
        let response = try await csi.listSnapshots(.with { $0.snapshotID = handle })
        guard let entry = response.entries.first(where: { $0.snapshot.snapshotID == handle }) else {
            try await fail(content, "SnapshotContentCheckandUpdateFailed",
                           "Failed to check and update snapshot content: snapshot \(handle) does not exist in the storage system")
            return .requeue(after: .seconds(30))
        }
        _ = try await record(content, entry.snapshot)
        return entry.snapshot.readyToUse ? .done : .requeue(after: .seconds(1))
    }

    /// Records `message` in the content's `status.error` and as a Warning event.
    private func fail(_ content: VolumeSnapshotContent, _ reason: String, _ message: String) async throws {
        recorder.event(content, .warning, reason, message)
        var status = content.status ?? VolumeSnapshotContentStatus()
        guard status.error?.message != message else { return }
        status.error = VolumeSnapshotError(time: Time.now(), message: message)
        if status.readyToUse == nil { status.readyToUse = false }
        var updated = try await client.get(VolumeSnapshotContent.self, name: content.metadata.name ?? "")
        updated.status = status
        _ = try await client.updateStatus(updated)
    }

    // MARK: Deleting

    private func finishDeletion(_ content: VolumeSnapshotContent) async throws -> SyncResult {
        guard (content.metadata.finalizers ?? []).contains(SnapshotNames.contentFinalizer) else { return .done }
        if content.spec.deletionPolicy == "Delete" {
            let ref = content.spec.volumeSnapshotRef
            if content.metadata.annotations?[SnapshotNames.beingDeleted] == nil, let name = ref.name,
               let snapshot = try await snapshot(name: name, namespace: ref.namespace),
               snapshot.metadata.uid == ref.uid, snapshot.metadata.deletionTimestamp == nil {
                // Deleted directly while its VolumeSnapshot still uses it: kept until that goes.
                recorder.event(content, .warning, "SnapshotDeletePending",
                               "VolumeSnapshotContent is bound to VolumeSnapshot \(snapshot.key), which is not being deleted: delete the VolumeSnapshot")
                return .requeue(after: .seconds(30))
            }
            var handle = content.snapshotHandle
            if handle == nil, content.metadata.annotations?[SnapshotNames.beingCreated] != nil,
               let volume = content.spec.source.volumeHandle, let uid = ref.uid, !uid.isEmpty {
                // CreateSnapshot may have made it without the answer being recorded: the same
                // name finds it (or makes it, to be deleted at once).
                do {
                    let response = try await csi.createSnapshot(.with {
                        $0.name = SnapshotNames.csiName(snapshotUID: uid)
                        $0.sourceVolumeID = volume
                    })
                    handle = response.snapshot.snapshotID
                } catch let error as CSIError where error.code == .notFound {
                    // The source volume is gone, and no snapshot of that name was made from it.
                }
            }
            if let handle {
                do {
                    _ = try await csi.deleteSnapshot(.with { $0.snapshotID = handle })
                } catch {
                    let failure = CSIError(error)
                    recorder.event(content, .warning, "SnapshotDeleteError", "Failed to delete snapshot: \(failure)")
                    throw failure
                }
                logger.info("snapshot deleted", metadata: ["content": "\(content.metadata.name ?? "")", "handle": "\(handle)"])
            }
        }
        _ = try await client.removeFinalizer(SnapshotNames.contentFinalizer, from: content)
        return .done
    }
}

/// A snapshot sync that cannot go on yet, logged and retried.
struct SnapshotError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
