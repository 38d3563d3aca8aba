// The snapshot controller and restore/clone in the provisioner, against the real CSI driver
// (controller mode) in front of the in-memory simulated cloud, with the snapshot CRDs installed
// from fixtures/crds/ as `ballast up` installs them.
import APIClient
import ClusterAPI
import CloudProvider
import ControllerManager
import CSIProto
import Foundation
import GRPCCore
import Synchronization
import Testing

let snapshotControllers: Set<ControllerName> = [.persistentVolumeBinder, .provisioner, .snapshot, .pvcProtection, .pvProtection]

extension Harness {
    /// The cloud's snapshots (not being deleted).
    func cloudSnapshots() async throws -> [Snapshot] {
        guard let cloud else { return [] }
        return try await cloud.listSnapshots(sourceDiskId: nil, PageRequest(limit: 1000, pageToken: nil)).items.filter { $0.state != .deleting }
    }

    func snapshot(_ name: String, namespace: String = "default") async throws -> VolumeSnapshot {
        try await client.get(VolumeSnapshot.self, name: name, namespace: namespace)
    }

    /// A class, a claim of it, bound: the volume to snapshot.
    func snapshotSource(_ name: String, className: String = "fast", size: String = "1Gi") async throws -> PersistentVolumeClaim {
        if !(await exists(StorageClass.self, className)) { _ = try await client.create(makeClass(className)) }
        _ = try await client.create(makePVC(name, size: size, className: className))
        await eventually("\(name) Bound") { try await self.pvc(name).status.phase == "Bound" }
        return try await pvc(name)
    }

    func makeSnapshot(_ name: String, claim: String? = nil, content: String? = nil, className: String? = nil) async throws -> VolumeSnapshot {
        var snapshot = VolumeSnapshot(metadata: ObjectMeta(name: name, namespace: "default"))
        snapshot.spec.source = VolumeSnapshotSource(persistentVolumeClaimName: claim, volumeSnapshotContentName: content)
        snapshot.spec.volumeSnapshotClassName = className
        return try await client.create(snapshot)
    }

    /// Waits until the snapshot is readyToUse and returns it.
    func readySnapshot(_ name: String, timeout: Duration = .seconds(15), sourceLocation: SourceLocation = #_sourceLocation) async throws -> VolumeSnapshot {
        await eventually("VolumeSnapshot \(name) readyToUse", timeout: timeout, sourceLocation: sourceLocation) {
            try await self.snapshot(name).status?.readyToUse == true
        }
        return try await snapshot(name)
    }

    func restoreClaim(_ name: String, from source: String, kind: String = "VolumeSnapshot", size: String = "1Gi", className: String = "fast",
                      useRef: Bool = false) async throws {
        var claim = makePVC(name, size: size, className: className)
        let group: String? = kind == "VolumeSnapshot" ? "snapshot.storage.k8s.io" : nil
        if useRef {
            claim.spec.dataSourceRef = TypedObjectReference(apiGroup: group, kind: kind, name: source)
        } else {
            claim.spec.dataSource = TypedLocalObjectReference(apiGroup: group, kind: kind, name: source)
        }
        _ = try await client.create(claim)
    }

    func installSnapshotCRDs() async throws {
        try await SnapshotDefinitions.install(client)
    }
}

/// Passes calls on, except that while `hang` is set, CreateSnapshot makes the snapshot and then
/// never answers (as a controller manager killed before it recorded the answer).
final class HangingSnapshotPlugin: CSIPlugin {
    let base: any CSIPlugin
    let hang = Mutex(true)
    let created = Mutex(0)
    init(_ base: any CSIPlugin) { self.base = base }

    func getPluginInfo() async throws -> Csi_V1_GetPluginInfoResponse { try await base.getPluginInfo() }
    func controllerGetCapabilities() async throws -> Csi_V1_ControllerGetCapabilitiesResponse { try await base.controllerGetCapabilities() }
    func createVolume(_ request: Csi_V1_CreateVolumeRequest) async throws -> Csi_V1_CreateVolumeResponse { try await base.createVolume(request) }
    func deleteVolume(_ request: Csi_V1_DeleteVolumeRequest) async throws -> Csi_V1_DeleteVolumeResponse { try await base.deleteVolume(request) }
    func controllerPublishVolume(_ request: Csi_V1_ControllerPublishVolumeRequest) async throws -> Csi_V1_ControllerPublishVolumeResponse {
        try await base.controllerPublishVolume(request)
    }
    func controllerUnpublishVolume(_ request: Csi_V1_ControllerUnpublishVolumeRequest) async throws -> Csi_V1_ControllerUnpublishVolumeResponse {
        try await base.controllerUnpublishVolume(request)
    }
    func controllerExpandVolume(_ request: Csi_V1_ControllerExpandVolumeRequest) async throws -> Csi_V1_ControllerExpandVolumeResponse {
        try await base.controllerExpandVolume(request)
    }
    func controllerModifyVolume(_ request: Csi_V1_ControllerModifyVolumeRequest) async throws -> Csi_V1_ControllerModifyVolumeResponse {
        try await base.controllerModifyVolume(request)
    }
    func listVolumes(_ request: Csi_V1_ListVolumesRequest) async throws -> Csi_V1_ListVolumesResponse { try await base.listVolumes(request) }
    func createSnapshot(_ request: Csi_V1_CreateSnapshotRequest) async throws -> Csi_V1_CreateSnapshotResponse {
        let response = try await base.createSnapshot(request)
        created.withLock { $0 += 1 }
        if hang.withLock({ $0 }) { try await Task.sleep(for: .seconds(3600)) }
        return response
    }
    func deleteSnapshot(_ request: Csi_V1_DeleteSnapshotRequest) async throws -> Csi_V1_DeleteSnapshotResponse { try await base.deleteSnapshot(request) }
    func listSnapshots(_ request: Csi_V1_ListSnapshotsRequest) async throws -> Csi_V1_ListSnapshotsResponse { try await base.listSnapshots(request) }
}

@Suite(.serialized) struct SnapshotControllerTests {
    @Test func dynamicSnapshotWithTheDefaultClassBindsBothWaysAndRestores() async throws {
        try await withHarness(snapshotControllers) { h in
            try await h.installSnapshotCRDs()
            let origin = try await h.snapshotSource("data")
            _ = try await h.makeSnapshot("snap", claim: "data")
            let snapshot = try await h.readySnapshot("snap")
            let uid = snapshot.metadata.uid ?? ""
            // The default class was written into the snapshot.
            #expect(snapshot.spec.volumeSnapshotClassName == "ballast-snapshots")
            #expect(snapshot.status?.boundVolumeSnapshotContentName == "snapcontent-\(uid)")
            #expect(snapshot.status?.restoreSize == quantity("1Gi"))
            #expect(snapshot.status?.creationTime != nil)
            #expect(snapshot.status?.error == nil)
            #expect(Set(snapshot.metadata.finalizers ?? []) == [SnapshotNames.asSourceFinalizer, SnapshotNames.boundFinalizer])
            let content = try await h.client.get(VolumeSnapshotContent.self, name: "snapcontent-\(uid)")
            #expect(content.spec.volumeSnapshotRef.uid == uid)
            #expect(content.spec.volumeSnapshotRef.name == "snap")
            #expect(content.spec.deletionPolicy == "Delete")
            #expect(content.spec.driver == driverName)
            #expect(content.spec.source.volumeHandle == (try await h.pv(origin.spec.volumeName ?? "")).spec.csi?.volumeHandle)
            #expect(content.metadata.finalizers == [SnapshotNames.contentFinalizer])
            // Removed once the status is written (after it, so that a crash between the two
            // leaves the annotation, never a handle-less content without it).
            await h.eventually("being-created annotation removed") {
                try await h.client.get(VolumeSnapshotContent.self, name: "snapcontent-\(uid)").metadata.annotations?[SnapshotNames.beingCreated] == nil
            }
            let cloudSnapshots = try await h.cloudSnapshots()
            #expect(cloudSnapshots.map(\.id) == [content.status?.snapshotHandle ?? "-"])
            await h.eventually("SnapshotReady event") { await h.hasEvent("VolumeSnapshot", "snap", reason: "SnapshotReady") }

            // Restore through dataSourceRef.
            try await h.restoreClaim("restored", from: "snap", useRef: true)
            await h.eventually("restored Bound") { try await h.pvc("restored").status.phase == "Bound" }
            // The API server normalized the data sources on create, as Kubernetes does.
            #expect(try await h.pvc("restored").spec.dataSource
                    == TypedLocalObjectReference(apiGroup: "snapshot.storage.k8s.io", kind: "VolumeSnapshot", name: "snap"))
            let restored = try await h.pv(try await h.pvc("restored").spec.volumeName ?? "")
            let disk = try await h.cloud!.describeDisk(id: restored.spec.csi?.volumeHandle ?? "")
            #expect(disk.sourceSnapshotId == content.status?.snapshotHandle)

            // Deleting the snapshot deletes the content and the cloud's snapshot.
            try await h.client.delete(VolumeSnapshot.self, name: "snap", namespace: "default")
            await h.eventually("snapshot and content gone") {
                let snapshotExists = await h.exists(VolumeSnapshot.self, "snap", namespace: "default")
                let contentExists = await h.exists(VolumeSnapshotContent.self, "snapcontent-\(uid)")
                return !snapshotExists && !contentExists
            }
            #expect(try await h.cloudSnapshots().isEmpty)
        }
    }

    @Test func aSnapshotRestoringAClaimIsHeldUntilTheClaimIsProvisioned() async throws {
        try await withHarness(snapshotControllers) { h in
            try await h.installSnapshotCRDs()
            _ = try await h.snapshotSource("data")
            _ = try await h.makeSnapshot("snap", claim: "data")
            _ = try await h.readySnapshot("snap")
            // WaitForFirstConsumer with no pod: the restore stays Pending.
            _ = try await h.client.create(makeClass("later", binding: "WaitForFirstConsumer"))
            try await h.restoreClaim("restored", from: "snap", className: "later")
            try await h.client.delete(VolumeSnapshot.self, name: "snap", namespace: "default")
            await h.eventually("SnapshotDeletePending") { await h.hasEvent("VolumeSnapshot", "snap", reason: "SnapshotDeletePending") }
            await h.stays("snapshot held by its as-source finalizer") {
                let snapshot = try await h.snapshot("snap")
                return snapshot.metadata.deletionTimestamp != nil && (snapshot.metadata.finalizers ?? []).contains(SnapshotNames.asSourceFinalizer)
            }
            #expect(try await h.cloudSnapshots().count == 1)
            // A consumer is scheduled: the claim is restored from the snapshot being deleted,
            // which then goes.
            _ = try await h.client.create(makeNode("node-a"))
            _ = try await h.client.create(makeCSINode("node-a", nodeID: "node-a"))
            _ = try await h.client.mergePatch(PersistentVolumeClaim.self, name: "restored", namespace: "default",
                                              patch: ["metadata": ["annotations": [Annotation.selectedNode: "node-a"]]])
            await h.eventually("the restore provisioned", timeout: .seconds(20)) { try await h.pvc("restored").status.phase == "Bound" }
            await h.eventually("snapshot gone once nothing restores from it", timeout: .seconds(20)) {
                !(await h.exists(VolumeSnapshot.self, "snap", namespace: "default"))
            }
            await h.eventually("cloud snapshot deleted") { try await h.cloudSnapshots().isEmpty }
        }
    }

    @Test func retainKeepsTheContentAndTheCloudSnapshotWhichBindsAgainPreProvisioned() async throws {
        try await withHarness(snapshotControllers) { h in
            try await h.installSnapshotCRDs()
            _ = try await h.client.create(VolumeSnapshotClass(metadata: ObjectMeta(name: "keep"), driver: driverName, deletionPolicy: "Retain"))
            _ = try await h.snapshotSource("data")
            _ = try await h.makeSnapshot("snap", claim: "data", className: "keep")
            let snapshot = try await h.readySnapshot("snap")
            #expect(!(snapshot.metadata.finalizers ?? []).contains(SnapshotNames.boundFinalizer))
            let contentName = snapshot.status?.boundVolumeSnapshotContentName ?? ""
            let handle = try await h.client.get(VolumeSnapshotContent.self, name: contentName).status?.snapshotHandle ?? ""
            try await h.client.delete(VolumeSnapshot.self, name: "snap", namespace: "default")
            await h.eventually("snapshot gone") { !(await h.exists(VolumeSnapshot.self, "snap", namespace: "default")) }
            await h.stays("content and cloud snapshot kept", for: .milliseconds(1000)) {
                let kept = await h.exists(VolumeSnapshotContent.self, contentName)
                let ids = try await h.cloudSnapshots().map { $0.id }
                return kept && ids == [handle]
            }

            // The kept snapshot, bound again by a pre-provisioned content and snapshot.
            var content = VolumeSnapshotContent(metadata: ObjectMeta(name: "imported"))
            content.spec = VolumeSnapshotContentSpec(volumeSnapshotRef: ObjectReference(namespace: "default", name: "again"),
                                                     deletionPolicy: "Delete", driver: driverName,
                                                     source: VolumeSnapshotContentSource(snapshotHandle: handle))
            _ = try await h.client.create(content)
            _ = try await h.makeSnapshot("again", content: "imported")
            let again = try await h.readySnapshot("again")
            #expect(again.status?.restoreSize == quantity("1Gi"))
            let bound = try await h.client.get(VolumeSnapshotContent.self, name: "imported")
            #expect(bound.spec.volumeSnapshotRef.uid == again.metadata.uid)
            try await h.restoreClaim("restored", from: "again")
            await h.eventually("restored from the pre-provisioned snapshot") { try await h.pvc("restored").status.phase == "Bound" }

            // A Retain content whose snapshot is gone, switched to Delete: deleted with its storage
            // snapshot (the one "imported" names too: two contents of one handle share its fate).
            _ = try await h.client.mergePatch(VolumeSnapshotContent.self, name: contentName, patch: ["spec": ["deletionPolicy": "Delete"]])
            await h.eventually("the orphaned content and its cloud snapshot deleted") {
                let kept = await h.exists(VolumeSnapshotContent.self, contentName)
                let ids = try await h.cloudSnapshots().map { $0.id }
                return !kept && ids.isEmpty
            }
        }
    }

    @Test func invalidSourcesLeaveTheClaimPendingWithAnEvent() async throws {
        try await withHarness(snapshotControllers) { h in
            try await h.installSnapshotCRDs()
            _ = try await h.snapshotSource("data", size: "2Gi")
            _ = try await h.client.create(makeClass("other"))
            _ = try await h.makeSnapshot("snap", claim: "data")
            _ = try await h.readySnapshot("snap")
            try await h.restoreClaim("missing", from: "nothing")
            try await h.restoreClaim("small", from: "snap", size: "1Gi")
            try await h.restoreClaim("clone-small", from: "data", kind: "PersistentVolumeClaim", size: "1Gi")
            try await h.restoreClaim("clone-other-class", from: "data", kind: "PersistentVolumeClaim", size: "2Gi", className: "other")
            var elsewhere = makePVC("elsewhere", className: "fast")
            elsewhere.spec.dataSourceRef = TypedObjectReference(apiGroup: "snapshot.storage.k8s.io", kind: "VolumeSnapshot", name: "snap",
                                                                namespace: "kube-system")
            _ = try await h.client.create(elsewhere)
            for (claim, text) in [("missing", "volumesnapshots.snapshot.storage.k8s.io \"nothing\" not found"),
                                  ("small", "is less than the size 2147483648 for the source snapshot snap"),
                                  ("clone-small", "new PVC request must be greater than or equal in size"),
                                  ("clone-other-class", "must be in the same storage class for cloning"),
                                  ("elsewhere", "isn't allowed")] {
                await h.eventually("ProvisioningFailed for \(claim): \(text)") {
                    await h.hasEvent("PersistentVolumeClaim", claim, reason: "ProvisioningFailed", containing: text)
                }
                #expect(try await h.pvc(claim).status.phase == "Pending")
            }
            // A snapshot that is not ready yet: the claim waits, then is provisioned.
            try await h.restoreClaim("later", from: "coming", size: "2Gi")
            await h.eventually("waits for the snapshot") { await h.hasEvent("PersistentVolumeClaim", "later", reason: "ProvisioningFailed") }
            _ = try await h.makeSnapshot("coming", claim: "data")
            await h.eventually("provisioned once the snapshot is ready", timeout: .seconds(20)) { try await h.pvc("later").status.phase == "Bound" }
        }
    }

    @Test func aClaimIsClonedFromAnotherInItsClass() async throws {
        try await withHarness(snapshotControllers) { h in
            let origin = try await h.snapshotSource("data")
            try await h.restoreClaim("copy", from: "data", kind: "PersistentVolumeClaim", size: "2Gi")
            await h.eventually("clone Bound") { try await h.pvc("copy").status.phase == "Bound" }
            #expect(try await h.pvc("copy").spec.dataSourceRef == TypedObjectReference(kind: "PersistentVolumeClaim", name: "data"))
            let sourceHandle = try await h.pv(origin.spec.volumeName ?? "").spec.csi?.volumeHandle
            let copy = try await h.pv(try await h.pvc("copy").spec.volumeName ?? "")
            let disk = try await h.cloud!.describeDisk(id: copy.spec.csi?.volumeHandle ?? "")
            #expect(disk.sourceDiskId == sourceHandle)
            #expect(copy.spec.capacity?["storage"] == quantity("2Gi"))
        }
    }

    @Test func aSnapshotWhoseCreationWasCutOffLeavesNoOrphanWhenDeleted() async throws {
        let plugin = Locked<HangingSnapshotPlugin?>(nil)
        try await withHarness(snapshotControllers, wrap: { base in
            let hanging = HangingSnapshotPlugin(base)
            plugin.withLock { $0 = hanging }
            return hanging
        }) { h in
            try await h.installSnapshotCRDs()
            _ = try await h.snapshotSource("data")
            let snapshot = try await h.makeSnapshot("snap", claim: "data")
            let contentName = SnapshotNames.contentName(snapshotUID: snapshot.metadata.uid ?? "")
            await h.eventually("CreateSnapshot made the cloud snapshot") { plugin.withLock { $0?.created.withLock { $0 } ?? 0 } == 1 }
            // The controllers stop before they record the answer.
            await h.stopManager()
            let content = try await h.client.get(VolumeSnapshotContent.self, name: contentName)
            #expect(content.status?.snapshotHandle == nil)
            #expect(content.metadata.annotations?[SnapshotNames.beingCreated] == "yes")
            #expect(content.metadata.finalizers == [SnapshotNames.contentFinalizer])
            #expect(try await h.cloudSnapshots().count == 1)
            try await h.client.delete(VolumeSnapshot.self, name: "snap", namespace: "default")
            try await h.restartManager()
            await h.eventually("snapshot and content gone", timeout: .seconds(20)) {
                let snapshotExists = await h.exists(VolumeSnapshot.self, "snap", namespace: "default")
                let contentExists = await h.exists(VolumeSnapshotContent.self, contentName)
                return !snapshotExists && !contentExists
            }
            await h.eventually("no cloud snapshot left") { try await h.cloudSnapshots().isEmpty }
        }
    }

    @Test func problemsAreInTheStatusAndEvents() async throws {
        try await withHarness(snapshotControllers) { h in
            try await h.installSnapshotCRDs()
            _ = try await h.makeSnapshot("no-claim", claim: "absent")
            _ = try await h.makeSnapshot("no-content", content: "absent")
            for (name, reason, text) in [("no-claim", "SnapshotContentCreationFailed", "persistentvolumeclaim \"absent\" not found"),
                                         ("no-content", "SnapshotContentMissing", "VolumeSnapshotContent is missing")] {
                await h.eventually("\(name): \(reason)") {
                    let snapshot = try await h.snapshot(name)
                    let evented = await h.hasEvent("VolumeSnapshot", name, reason: reason)
                    return snapshot.status?.error?.message?.contains(text) == true && snapshot.status?.readyToUse == false && evented
                }
            }
        }
    }
}
