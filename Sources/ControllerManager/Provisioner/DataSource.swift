// Volumes provisioned from a data source (external-provisioner's getVolumeContentSource): a claim
// whose `dataSourceRef` (or `dataSource`) names a VolumeSnapshot is restored from it (CreateVolume
// `content_source.snapshot`, in any zone); one that names a PersistentVolumeClaim is a clone of
// it (`content_source.volume`, in the source's zone). A source that cannot be used leaves the
// claim Pending with a ProvisioningFailed event saying why, in external-provisioner's words:
//
// | source                                         | why the claim stays Pending                          |
// |------------------------------------------------|------------------------------------------------------|
// | in another namespace                            | no ReferenceGrant can allow it (not implemented)     |
// | a kind other than VolumeSnapshot or PVC         | a volume populator's; not this provisioner's         |
// | snapshot missing, not ready, being deleted and  | retried (every 2 s while it is not ready yet)        |
// |   no longer held by its as-source finalizer     |                                                      |
// | snapshot's content missing, of another driver   |                                                      |
// | snapshot larger than the claim asks for         | `requested volume size … is less than the size …`    |
// | snapshot of the other volume mode               |                                                      |
// | PVC missing, not bound, being deleted           |                                                      |
// | PVC of another class, mode or driver            |                                                      |
// | PVC larger than the claim asks for              |                                                      |
import APIClient
import ClusterAPI
import CSIProto

/// Why a claim's data source cannot be used (yet).
struct DataSourceError: Error, CustomStringConvertible {
    let description: String
    /// The source may become usable by itself (a snapshot not ready yet): looked at again soon.
    var isTransient = false
}

extension Provisioner {
    static let snapshotGroup = "snapshot.storage.k8s.io"

    /// The content source for CreateVolume; nil when the claim has no data source.
    func contentSource(_ claim: PersistentVolumeClaim, _ storageClass: StorageClass) async throws(DataSourceError) -> Csi_V1_VolumeContentSource? {
        let namespace = claim.metadata.namespace ?? ""
        let kind: String, name: String, group: String
        if let ref = claim.spec.dataSourceRef {
            kind = ref.kind ?? ""
            name = ref.name ?? ""
            group = ref.apiGroup ?? ""
            if let other = ref.namespace, !other.isEmpty, other != namespace {
                throw DataSourceError(description: "accessing \(other)/\(name) of \(kind) dataSource from \(namespace)/\(claim.metadata.name ?? "") isn't allowed: cross-namespace data sources need a ReferenceGrant, which Ballast does not implement")
            }
        } else if let source = claim.spec.dataSource {
            kind = source.kind ?? ""
            name = source.name ?? ""
            group = source.apiGroup ?? ""
        } else {
            return nil
        }
        switch (group, kind) {
        case (Self.snapshotGroup, "VolumeSnapshot"):
            return try await snapshotSource(claim, name: name)
        case ("", "PersistentVolumeClaim"):
            return try await cloneSource(claim, storageClass, name: name)
        default:
            throw DataSourceError(description: "the data source \(kind.isEmpty ? "" : kind + " ")\"\(name)\" (apiGroup \"\(group)\") is not supported: only VolumeSnapshot (snapshot.storage.k8s.io) and PersistentVolumeClaim are")
        }
    }

    private func snapshotSource(_ claim: PersistentVolumeClaim, name: String) async throws(DataSourceError) -> Csi_V1_VolumeContentSource {
        let prefix = "error getting handle for DataSource Type VolumeSnapshot by Name \(name): "
        let namespace = claim.metadata.namespace ?? ""
        let snapshot: VolumeSnapshot
        do {
            snapshot = try await client.get(VolumeSnapshot.self, name: name, namespace: namespace)
        } catch let error as APIError where error.isNotFound {
            throw DataSourceError(description: prefix + "error getting snapshot \(name) from api server: volumesnapshots.snapshot.storage.k8s.io \"\(name)\" not found")
        } catch {
            throw DataSourceError(description: prefix + "error getting snapshot \(name) from api server: \(error)", isTransient: true)
        }
        // A snapshot being deleted is still restored from while its as-source finalizer holds
        // it: the snapshot controller keeps that finalizer for as long as a Pending claim
        // restores from it (upstream refuses any snapshot being deleted, which leaves such a
        // claim Pending for good).
        if snapshot.metadata.deletionTimestamp != nil,
           !(snapshot.metadata.finalizers ?? []).contains("snapshot.storage.kubernetes.io/volumesnapshot-as-source-protection") {
            throw DataSourceError(description: prefix + "snapshot \(name) is currently being deleted")
        }
        guard snapshot.isReadyToUse, let contentName = snapshot.status?.boundVolumeSnapshotContentName, !contentName.isEmpty else {
            throw DataSourceError(description: prefix + "snapshot \(name) is not Ready", isTransient: true)
        }
        let content: VolumeSnapshotContent
        do {
            content = try await client.get(VolumeSnapshotContent.self, name: contentName)
        } catch {
            throw DataSourceError(description: prefix + "error getting snapshot content \(contentName) from api server: \(error)")
        }
        guard content.spec.volumeSnapshotRef.uid == snapshot.metadata.uid else {
            throw DataSourceError(description: prefix + "snapshot content \(contentName) is not bound to snapshot \(namespace)/\(name)")
        }
        guard content.spec.driver == driver else {
            throw DataSourceError(description: prefix + "snapshot content \(contentName) is of driver \(content.spec.driver), not \(driver)")
        }
        guard let handle = content.snapshotHandle, content.status?.readyToUse == true else {
            throw DataSourceError(description: prefix + "snapshot \(name) is not Ready", isTransient: true)
        }
        let requested = claim.requestedStorage?.value ?? 0
        if let size = content.status?.restoreSize, size > requested {
            throw DataSourceError(description: prefix + "requested volume size \(requested) is less than the size \(size) for the source snapshot \(name)")
        }
        if let sourceMode = content.spec.sourceVolumeMode, !sourceMode.isEmpty, sourceMode != claim.volumeMode {
            throw DataSourceError(description: prefix + "snapshot \(name) is of a \(sourceMode) volume; the claim asks for volumeMode \(claim.volumeMode)")
        }
        return .with { $0.snapshot = .with { $0.snapshotID = handle } }
    }

    private func cloneSource(_ claim: PersistentVolumeClaim, _ storageClass: StorageClass, name: String) async throws(DataSourceError) -> Csi_V1_VolumeContentSource {
        let namespace = claim.metadata.namespace ?? ""
        guard let source = await claims.get(name: name, namespace: namespace) else {
            throw DataSourceError(description: "error getting PVC \(name) (namespace \"\(namespace)\") from api server: persistentvolumeclaims \"\(name)\" not found")
        }
        if source.isBeingDeleted {
            throw DataSourceError(description: "PVC \(name) is being deleted: it cannot be cloned")
        }
        guard source.status.phase == "Bound", let volumeName = source.spec.volumeName, !volumeName.isEmpty,
              let volume = await volumes.get(name: volumeName) else {
            throw DataSourceError(description: "persistentVolumeClaim \(name) is not bound", isTransient: true)
        }
        let className = storageClass.metadata.name ?? ""
        guard source.className == className else {
            throw DataSourceError(description: "the source PVC and destination PVCs must be in the same storage class for cloning.  Source is in \(source.className), but new PVC is in \(className)")
        }
        guard source.volumeMode == claim.volumeMode else {
            throw DataSourceError(description: "the source PVC and destination PVCs must have the same volume mode for cloning.  Source is \(source.volumeMode).  Destination is \(claim.volumeMode)")
        }
        guard let csi = volume.spec.csi, csi.driver == driver else {
            throw DataSourceError(description: "the source volume \(volumeName) for PVC \(name) was provisioned by a different driver \(volume.spec.csi?.driver ?? "(not CSI)")")
        }
        let requested = claim.requestedStorage?.value ?? 0
        let sourceSize = volume.capacity?.value ?? source.requestedStorage?.value ?? 0
        if requested < sourceSize {
            throw DataSourceError(description: "error, new PVC request must be greater than or equal in size to the specified PVC data source, requested \(requested) but source is \(sourceSize)")
        }
        return .with { $0.volume = .with { $0.volumeID = csi.volumeHandle } }
    }
}
