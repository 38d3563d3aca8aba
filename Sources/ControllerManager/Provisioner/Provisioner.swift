// The provisioner: external-provisioner's job, built in. For claims the binder annotated with
// this driver (`volume.kubernetes.io/storage-provisioner`), it creates the volume through the
// plugin and writes its PV; the binder then binds them.
//
// | claim                                               | action                                            |
// |-----------------------------------------------------|---------------------------------------------------|
// | bound, deleted, other provisioner, its PV exists    | nothing                                           |
// | class WaitForFirstConsumer without selected-node    | nothing (the scheduler picks a node)              |
// | selected node gone                                  | remove selected-node (reschedule), ProvisioningFailed |
// | selected node without CSINode / topology labels     | ProvisioningFailed, retried (no CreateVolume)     |
// | otherwise                                           | event Provisioning, CreateVolume `pvc-<uid>`      |
// |   OK                                                | PV written, disk marked, ProvisioningSucceeded    |
// |   DeadlineExceeded/Unavailable/Canceled/Aborted     | ProvisioningFailed, retried with the same name    |
// |   ResourceExhausted with a selected node            | selected-node removed (reschedule), ProvisioningFailed |
// |   any other error                                   | ProvisioningFailed, retried with back-off         |
// | data source (snapshot or claim) unusable            | ProvisioningFailed, no CreateVolume (DataSource.swift) |
//
// Removing selected-node is a patch with the resourceVersion read, so a node the scheduler chose
// again meanwhile is never erased. Retries back off from 1 s doubling to 5 min, per claim.
// CreateVolume is idempotent by name, so a retry (or a restart) after a crash between
// CreateVolume and the PV write finds the same volume; a claim deleted meanwhile leaves a disk
// only the orphan sweep finds (OrphanSweep.swift).
import APIClient
import ClusterAPI
import CSIProto
import Foundation
import Logging

final class Provisioner: Sendable {
    let driver: String
    let identity: String
    let client: KubeClient
    let csi: any CSIPlugin
    let claims: Informer<PersistentVolumeClaim>
    let volumes: Informer<PersistentVolume>
    let classes: Informer<StorageClass>
    let nodes: Informer<Node>
    let csiNodes: Informer<CSINode>
    let attachments: Informer<VolumeAttachment>
    let recorder: EventRecorder
    let logger: Logger
    let claimController: Controller<String>
    let deleteController: Controller<String>
    let orphans: OrphanSweep

    struct Informers {
        var claims: Informer<PersistentVolumeClaim>
        var volumes: Informer<PersistentVolume>
        var classes: Informer<StorageClass>
        var nodes: Informer<Node>
        var csiNodes: Informer<CSINode>
        var attachments: Informer<VolumeAttachment>
    }

    init(driver: String, client: KubeClient, csi: any CSIPlugin, informers: Informers, recorder: EventRecorder,
         workers: Int, orphanGracePeriod: Duration, sweepPeriod: Duration, logger: Logger) async {
        self.driver = driver
        self.identity = recorder.component
        self.client = client
        self.csi = csi
        self.claims = informers.claims
        self.volumes = informers.volumes
        self.classes = informers.classes
        self.nodes = informers.nodes
        self.csiNodes = informers.csiNodes
        self.attachments = informers.attachments
        self.recorder = recorder
        self.logger = logger
        let box = LateBound<Provisioner>()
        claimController = Controller(name: "csi-provisioner", workers: workers,
                                     queue: WorkQueue(baseDelay: .seconds(1), maxDelay: .seconds(300)), logger: logger) { key in
            guard let provisioner = box.value else { return .done }
            return try await provisioner.syncClaim(key)
        }
        deleteController = Controller(name: "csi-provisioner-deleter", workers: max(1, workers / 2),
                                      queue: WorkQueue(baseDelay: .seconds(1), maxDelay: .seconds(300)), logger: logger) { name in
            guard let provisioner = box.value else { return .done }
            return try await provisioner.syncVolume(name)
        }
        orphans = OrphanSweep(driver: driver, client: client, csi: csi, claims: informers.claims, volumes: informers.volumes,
                              gracePeriod: orphanGracePeriod, logger: logger)
        box.value = self
        await claimController.enqueue(from: informers.claims) { event in
            if case .deleted = event { return [] }
            return [Informer<PersistentVolumeClaim>.key(event.object)]
        }
        await deleteController.enqueue(from: informers.volumes) { event in
            if case .deleted = event { return [] }
            return [event.object.metadata.name ?? ""]
        }
        // A detached volume may now be deleted.
        await deleteController.enqueue(from: informers.attachments) { event in
            if case .deleted(let attachment) = event, let name = attachment.spec.source.persistentVolumeName { return [name] }
            return []
        }
        let sweep = orphans
        claimController.addTask { await sweep.run(every: sweepPeriod) }
    }

    func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.claimController.run() }
            group.addTask { await self.deleteController.run() }
        }
    }

    // MARK: Provisioning

    func syncClaim(_ key: String) async throws -> SyncResult {
        guard let claim = await claims.get(key) else { return .done }
        guard (claim.spec.volumeName ?? "").isEmpty, !claim.isBeingDeleted, claim.requestedProvisioner == driver else { return .done }
        guard let storageClass = await classes.get(name: claim.className), storageClass.provisioner == driver else { return .done }
        let name = VolumeRequest.volumeName(claim)
        if let existing = await volumes.get(name: name) {
            // Provisioned already (the binder binds it); make sure its disk is marked.
            await orphans.markHasVolume(existing)
            return .done
        }
        var selectedNode: Node?
        var selectedCSINode: CSINode?
        if storageClass.isWaitForFirstConsumer {
            guard let nodeName = claim.metadata.annotations?[Annotation.selectedNode], !nodeName.isEmpty else { return .done }
            guard let node = await nodes.get(name: nodeName) else {
                try await reschedule(claim, because: "nodes \"\(nodeName)\" not found")
                return .done
            }
            selectedNode = node
            selectedCSINode = await csiNodes.get(name: nodeName)
        }
        recorder.event(claim, .normal, "Provisioning", "External provisioner is provisioning volume for claim \"\(claim.key)\"")
        let source: Csi_V1_VolumeContentSource?
        do {
            source = try await contentSource(claim, storageClass)
        } catch {
            recorder.event(claim, .warning, "ProvisioningFailed",
                           "failed to provision volume with StorageClass \"\(storageClass.metadata.name ?? "")\": \(error)")
            if error.isTransient { return .requeue(after: .seconds(2)) }
            throw error
        }
        let request: Csi_V1_CreateVolumeRequest
        do {
            request = try await createVolumeRequest(claim, storageClass, selectedNode: selectedNode, csiNode: selectedCSINode, source: source)
        } catch {
            // The selected node's topology cannot be computed (its CSINode is missing or lacks
            // the driver's topology keys): no CreateVolume without it. Retried with back-off —
            // the node's driver may still be registering.
            recorder.event(claim, .warning, "ProvisioningFailed",
                           "failed to provision volume with StorageClass \"\(storageClass.metadata.name ?? "")\": \(error)")
            throw error
        }
        let response: Csi_V1_CreateVolumeResponse
        do {
            response = try await csi.createVolume(request)
        } catch {
            let failure = CSIError(error)
            if failure.code == .resourceExhausted && selectedNode != nil {
                try await reschedule(claim, because: "failed to provision volume with StorageClass \"\(storageClass.metadata.name ?? "")\": \(failure)")
                return .done
            }
            recorder.event(claim, .warning, "ProvisioningFailed",
                           "failed to provision volume with StorageClass \"\(storageClass.metadata.name ?? "")\": \(failure)")
            throw failure
        }
        let requested = request.capacityRange.requiredBytes
        if response.volume.capacityBytes != 0 && response.volume.capacityBytes < requested {
            // The plugin made it too small: delete it and try again.
            _ = try? await csi.deleteVolume(.with { $0.volumeID = response.volume.volumeID })
            let message = "failed to provision volume with StorageClass \"\(storageClass.metadata.name ?? "")\": created volume capacity \(response.volume.capacityBytes) less than requested capacity \(requested)"
            recorder.event(claim, .warning, "ProvisioningFailed", message)
            throw BinderError(message)
        }
        let volume = persistentVolume(name: name, claim: claim, storageClass: storageClass, response: response, requestedBytes: requested)
        let written: PersistentVolume
        do {
            written = try await client.create(volume)
        } catch let error as APIError where error.isAlreadyExists {
            written = try await client.get(PersistentVolume.self, name: name)
        } catch {
            recorder.event(claim, .warning, "ProvisioningFailed",
                           "Error creating provisioned PV object for claim \(claim.key): \(error). Deleting the volume.")
            if (try? await csi.deleteVolume(.with { $0.volumeID = response.volume.volumeID })) == nil {
                logger.warning("cannot delete a volume whose PV could not be written; the orphan sweep will",
                               metadata: ["volume": "\(response.volume.volumeID)"])
            }
            throw error
        }
        await orphans.markHasVolume(written)
        logger.info("provisioned", metadata: ["claim": "\(claim.key)", "volume": "\(name)", "handle": "\(response.volume.volumeID)"])
        recorder.event(claim, .normal, "ProvisioningSucceeded", "Successfully provisioned volume \(name)")
        return .done
    }

    private func createVolumeRequest(_ claim: PersistentVolumeClaim, _ storageClass: StorageClass, selectedNode: Node?,
                                     csiNode: CSINode?, source: Csi_V1_VolumeContentSource?) async throws -> Csi_V1_CreateVolumeRequest {
        let bytes = claim.requestedStorage?.value ?? 0
        let topology: Csi_V1_TopologyRequirement?
        if let selectedNode {
            topology = try VolumeRequest.selectedNodeTopology(selectedNode, csiNode: csiNode, driver: driver, storageClass: storageClass)
        } else {
            var allNodes: [(Node, CSINode)] = []
            if (storageClass.allowedTopologies ?? []).isEmpty {
                for csiNode in await csiNodes.list() where csiNode.spec.drivers.contains(where: { $0.name == driver }) {
                    if let node = await nodes.get(name: csiNode.metadata.name ?? "") { allNodes.append((node, csiNode)) }
                }
            }
            topology = VolumeRequest.topology(driver: driver, storageClass: storageClass, allNodes: allNodes, claimName: claim.key)
        }
        return .with {
            $0.name = VolumeRequest.volumeName(claim)
            $0.capacityRange = .with { $0.requiredBytes = bytes }
            $0.volumeCapabilities = VolumeRequest.capabilities(accessModes: claim.spec.accessModes ?? ["ReadWriteOnce"],
                                                               volumeMode: claim.volumeMode, fsType: VolumeRequest.fsType(storageClass),
                                                               mountOptions: storageClass.mountOptions ?? [])
            $0.parameters = VolumeRequest.parameters(storageClass)
            if let topology { $0.accessibilityRequirements = topology }
            if let source { $0.volumeContentSource = source }
        }
    }

    private func persistentVolume(name: String, claim: PersistentVolumeClaim, storageClass: StorageClass,
                                  response: Csi_V1_CreateVolumeResponse, requestedBytes: Int64) -> PersistentVolume {
        let reclaim = storageClass.reclaimPolicy ?? "Delete"
        let bytes = response.volume.capacityBytes > 0 ? response.volume.capacityBytes : requestedBytes
        var attributes = response.volume.volumeContext
        attributes["storage.kubernetes.io/csiProvisionerIdentity"] = identity
        let fsType = VolumeRequest.fsType(storageClass)
        return PersistentVolume(
            metadata: ObjectMeta(name: name, annotations: [Annotation.provisionedBy: driver],
                                 finalizers: reclaim == "Delete" ? [Finalizer.provisioner] : nil),
            spec: PersistentVolumeSpec(
                capacity: ["storage": Quantity(bytes, format: .binarySI)],
                csi: CSIPersistentVolumeSource(driver: driver, volumeHandle: response.volume.volumeID,
                                               fsType: claim.volumeMode == "Block" ? nil : (fsType.isEmpty ? "ext4" : fsType),
                                               volumeAttributes: attributes),
                accessModes: claim.spec.accessModes, claimRef: objectReference(claim), persistentVolumeReclaimPolicy: reclaim,
                storageClassName: storageClass.metadata.name, mountOptions: storageClass.mountOptions, volumeMode: claim.volumeMode,
                nodeAffinity: VolumeRequest.nodeAffinity(response.volume.accessibleTopology)))
    }

    /// Removes `selected-node` so the scheduler picks a node again, by a patch that carries the
    /// resourceVersion the decision was made on (as external-provisioner's Update does): if the
    /// scheduler chose a node again meanwhile, the patch fails with a conflict instead of erasing
    /// that choice, and the retry looks at the new node.
    private func reschedule(_ claim: PersistentVolumeClaim, because reason: String) async throws {
        recorder.event(claim, .warning, "ProvisioningFailed", reason)
        var metadata: [String: JSONValue] = ["annotations": .object([Annotation.selectedNode: .null])]
        if let version = claim.metadata.resourceVersion { metadata["resourceVersion"] = .string(version) }
        _ = try await client.mergePatch(PersistentVolumeClaim.self, name: claim.metadata.name ?? "", namespace: claim.metadata.namespace,
                                        patch: .object(["metadata": .object(metadata)]))
        logger.info("selected node removed; the scheduler picks again", metadata: ["claim": "\(claim.key)", "reason": "\(reason)"])
    }
}
