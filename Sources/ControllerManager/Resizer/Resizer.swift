// The resizer: the expand controller's part (it names the resizer on the claim,
// `volume.kubernetes.io/storage-resizer`) and external-resizer's (it expands), built in, with
// the RecoverVolumeExpansionFailure statuses of Kubernetes 1.32.
//
// | bound claim of this driver, requests.storage > status.capacity | action                          |
// |------------------------------------------------------------|-------------------------------------|
// | class without allowVolumeExpansion                         | nothing (the API server refuses it) |
// | first seen                                                 | storage-resizer annotation; allocatedResources = request, allocatedResourceStatuses[storage] = ControllerResizeInProgress, condition Resizing, event Resizing |
// | ControllerExpandVolume OK, node expansion required         | PV capacity; NodeResizePending, condition FileSystemResizePending, event FileSystemResizeRequired (the kubelet finishes) |
// | ControllerExpandVolume OK, no node expansion               | PV capacity; status.capacity; statuses and conditions cleared; event VolumeResizeSuccessful |
// | InvalidArgument/OutOfRange/NotFound/Unimplemented          | ControllerResizeInfeasible, event VolumeResizeFailed (until the request changes) |
// | other errors                                               | event VolumeResizeFailed; retried with back-off |
import APIClient
import ClusterAPI
import CSIProto
import Logging

final class Resizer: Sendable {
    let driver: String
    let client: KubeClient
    let csi: any CSIPlugin
    let claims: Informer<PersistentVolumeClaim>
    let volumes: Informer<PersistentVolume>
    let classes: Informer<StorageClass>
    let recorder: EventRecorder
    let logger: Logger
    let controller: Controller<String>

    init(driver: String, client: KubeClient, csi: any CSIPlugin, claims: Informer<PersistentVolumeClaim>,
         volumes: Informer<PersistentVolume>, classes: Informer<StorageClass>, recorder: EventRecorder, logger: Logger) async {
        self.driver = driver
        self.client = client
        self.csi = csi
        self.claims = claims
        self.volumes = volumes
        self.classes = classes
        self.recorder = recorder
        self.logger = logger
        let box = LateBound<Resizer>()
        controller = Controller(name: "csi-resizer", workers: 4, queue: WorkQueue(baseDelay: .seconds(1), maxDelay: .seconds(300)),
                                logger: logger) { key in
            guard let resizer = box.value else { return .done }
            return try await resizer.sync(key)
        }
        box.value = self
        await controller.enqueue(from: claims) { event in
            if case .deleted = event { return [] }
            return [Informer<PersistentVolumeClaim>.key(event.object)]
        }
    }

    func run() async { await controller.run() }

    func sync(_ key: String) async throws -> SyncResult {
        guard var claim = await claims.get(key), claim.status.phase == "Bound", !claim.isBeingDeleted,
              let requested = claim.requestedStorage, let capacity = claim.status.capacity?["storage"], requested > capacity,
              let volumeName = claim.spec.volumeName, let volume = await volumes.get(name: volumeName),
              let source = volume.spec.csi, source.driver == driver else { return .done }
        guard let storageClass = await classes.get(name: claim.className), storageClass.allowVolumeExpansion == true else { return .done }
        let storage = claim.status.allocatedResourceStatuses?["storage"]
        if storage == "ControllerResizeInfeasible", claim.status.allocatedResources?["storage"] == requested {
            return .done  // Already refused; the user has to change the request.
        }
        if storage == "NodeResizePending" || storage == "NodeResizeInProgress",
           let allocated = claim.status.allocatedResources?["storage"], allocated >= requested {
            return .done  // The kubelet's turn.
        }
        if claim.metadata.annotations?[Annotation.storageResizer] != driver {
            var annotated = claim
            annotated.metadata.annotations = (annotated.metadata.annotations ?? [:]).merging([Annotation.storageResizer: driver]) { $1 }
            claim = try await client.update(annotated)
        }
        claim = try await markInProgress(claim, requested)
        recorder.event(claim, .normal, "Resizing", "External resizer is resizing volume \(volumeName)")
        let response: Csi_V1_ControllerExpandVolumeResponse
        do {
            response = try await csi.controllerExpandVolume(.with {
                $0.volumeID = source.volumeHandle
                $0.capacityRange = .with { $0.requiredBytes = requested.value }
                $0.volumeCapability = Attacher.capability(volume)
            })
        } catch {
            let failure = CSIError(error)
            recorder.event(claim, .warning, "VolumeResizeFailed", "resize volume \"\(volumeName)\" by resizer \"\(driver)\" failed: \(failure)")
            if failure.isInfeasible {
                var failed = claim
                failed.status.allocatedResourceStatuses = (failed.status.allocatedResourceStatuses ?? [:]).merging(["storage": "ControllerResizeInfeasible"]) { $1 }
                failed.status.conditions = (failed.status.conditions ?? []).filter { $0.type != "Resizing" }
                _ = try await client.updateStatus(failed)
                return .done
            }
            throw failure
        }
        let newSize = response.capacityBytes > 0 ? Quantity(response.capacityBytes, format: .binarySI) : requested
        var grown = volume
        if (grown.capacity ?? .zero) < newSize {
            grown.spec.capacity = ["storage": newSize]
            _ = try await client.update(grown)
        }
        var done = claim
        var conditions = (done.status.conditions ?? []).filter { $0.type != "Resizing" && $0.type != "FileSystemResizePending" }
        if response.nodeExpansionRequired {
            done.status.allocatedResourceStatuses = (done.status.allocatedResourceStatuses ?? [:]).merging(["storage": "NodeResizePending"]) { $1 }
            conditions.append(PersistentVolumeClaimCondition(type: "FileSystemResizePending", status: "True", lastProbeTime: nil,
                                                             lastTransitionTime: Time.now(), reason: nil,
                                                             message: "Waiting for user to (re-)start a pod to finish file system resize of volume on node."))
            done.status.conditions = conditions
            _ = try await client.updateStatus(done)
            recorder.event(done, .normal, "FileSystemResizeRequired", "Require file system resize of volume on node")
        } else {
            done.status.capacity = ["storage": newSize]
            done.status.allocatedResourceStatuses?["storage"] = nil
            if done.status.allocatedResourceStatuses?.isEmpty == true { done.status.allocatedResourceStatuses = nil }
            done.status.conditions = conditions.isEmpty ? nil : conditions
            _ = try await client.updateStatus(done)
            recorder.event(done, .normal, "VolumeResizeSuccessful", "Resize volume succeeded")
        }
        logger.info("volume expanded", metadata: ["claim": "\(claim.key)", "volume": "\(volumeName)", "size": "\(newSize)",
                                                  "nodeExpansion": "\(response.nodeExpansionRequired)"])
        return .done
    }

    /// allocatedResources, ControllerResizeInProgress and the Resizing condition.
    private func markInProgress(_ claim: PersistentVolumeClaim, _ requested: Quantity) async throws -> PersistentVolumeClaim {
        var updated = claim
        updated.status.allocatedResources = (updated.status.allocatedResources ?? [:]).merging(["storage": requested]) { $1 }
        updated.status.allocatedResourceStatuses = (updated.status.allocatedResourceStatuses ?? [:]).merging(["storage": "ControllerResizeInProgress"]) { $1 }
        var conditions = (updated.status.conditions ?? []).filter { $0.type != "Resizing" }
        conditions.append(PersistentVolumeClaimCondition(type: "Resizing", status: "True", lastTransitionTime: Time.now()))
        updated.status.conditions = conditions
        if updated.status == claim.status { return claim }
        return try await client.updateStatus(updated)
    }
}
