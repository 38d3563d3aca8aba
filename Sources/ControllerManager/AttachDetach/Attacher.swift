// The attacher: external-attacher's job (csi_handler.go), built in, for the VolumeAttachments
// whose `spec.attacher` is this driver.
//
// | VolumeAttachment                      | action                                                          |
// |---------------------------------------|-----------------------------------------------------------------|
// | new, or attachError                   | finalizer `external-attacher/<driver>` on the PV, then on the VA; node id from CSINode; annotation csi.alpha.kubernetes.io/node-id; ControllerPublishVolume |
// |   published                           | status.attached = true, attachmentMetadata = publish_context, attachError cleared |
// |   failed                              | status.attachError {time, message}; retried with back-off       |
// |   PV missing or being deleted         | status.attachError                                              |
// | attached, finalizer present           | nothing, once this process has published it itself; before that (at start) ControllerPublishVolume again, and attachmentMetadata updated if the device changed (a machine that restarted gives the disk another device) |
// | deleted (deletionTimestamp), finalizer | ControllerUnpublishVolume, then the finalizer removed (with attached = false) |
// |   failed                              | status.detachError; retried                                     |
//
// A PV keeps the attacher's finalizer while any VolumeAttachment names it; it is removed once
// the PV is being deleted and none does.
import APIClient
import ClusterAPI
import CSIProto
import Foundation
import Logging
import Synchronization

final class Attacher: Sendable {
    let driver: String
    let finalizer: String
    let client: KubeClient
    let csi: any CSIPlugin
    let attachments: Informer<VolumeAttachment>
    let volumes: Informer<PersistentVolume>
    let csiNodes: Informer<CSINode>
    let logger: Logger
    /// The attachments (by uid) this process has published: an attached one it has not is
    /// published again once, so that its publish context is the device of now.
    private let published = Mutex<Set<String>>([])
    let controller: Controller<String>
    let volumeController: Controller<String>

    init(driver: String, client: KubeClient, csi: any CSIPlugin, attachments: Informer<VolumeAttachment>,
         volumes: Informer<PersistentVolume>, csiNodes: Informer<CSINode>, workers: Int, logger: Logger) async {
        self.driver = driver
        self.finalizer = Finalizer.attacher(driver)
        self.client = client
        self.csi = csi
        self.attachments = attachments
        self.volumes = volumes
        self.csiNodes = csiNodes
        self.logger = logger
        let box = LateBound<Attacher>()
        controller = Controller(name: "csi-attacher", workers: workers, logger: logger) { name in
            guard let attacher = box.value else { return .done }
            return try await attacher.sync(name)
        }
        volumeController = Controller(name: "csi-attacher-pv", workers: 1, logger: logger) { name in
            guard let attacher = box.value else { return .done }
            return try await attacher.syncVolume(name)
        }
        box.value = self
        let driver = self.driver
        await controller.enqueue(from: attachments) { event in
            if case .deleted = event { return [] }
            return event.object.spec.attacher == driver ? [event.object.metadata.name ?? ""] : []
        }
        await volumeController.enqueue(from: volumes) { event in
            if case .deleted = event { return [] }
            return event.object.metadata.deletionTimestamp != nil ? [event.object.metadata.name ?? ""] : []
        }
        await volumeController.enqueue(from: attachments) { event in
            if case .deleted(let attachment) = event, let name = attachment.spec.source.persistentVolumeName { return [name] }
            return []
        }
    }

    func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.controller.run() }
            group.addTask { await self.volumeController.run() }
        }
    }

    func sync(_ name: String) async throws -> SyncResult {
        guard let attachment = await attachments.get(name: name), attachment.spec.attacher == driver else { return .done }
        if attachment.metadata.deletionTimestamp != nil {
            try await detach(attachment)
        } else {
            try await attach(attachment)
        }
        return .done
    }

    // MARK: Attach

    private func attach(_ attachment: VolumeAttachment) async throws {
        let uid = attachment.metadata.uid ?? ""
        if attachment.status?.attached == true && (attachment.metadata.finalizers ?? []).contains(finalizer)
            && published.withLock({ $0.contains(uid) }) { return }
        let pvName = attachment.spec.source.persistentVolumeName ?? ""
        var found = await volumes.get(name: pvName)
        if found == nil { found = try? await client.get(PersistentVolume.self, name: pvName) }
        guard let volume = found else { try await attachFailed(attachment, "persistentvolume \"\(pvName)\" not found") }
        if volume.metadata.deletionTimestamp != nil {
            try await attachFailed(attachment, "PersistentVolume \"\(pvName)\" is marked for deletion")
        }
        guard let source = volume.spec.csi else { try await attachFailed(attachment, "PersistentVolume \"\(pvName)\" is not a CSI volume") }
        _ = try await client.addFinalizer(finalizer, to: volume)
        var current = try await client.addFinalizer(finalizer, to: attachment)
        let node = attachment.spec.nodeName
        guard let csiNode = await csiNodes.get(name: node) else {
            try await attachFailed(current, "csinode.storage.k8s.io \"\(node)\" not found")
        }
        guard let nodeID = csiNode.spec.drivers.first(where: { $0.name == driver })?.nodeID, !nodeID.isEmpty else {
            try await attachFailed(current, "CSINode \(node) does not contain driver \(driver)")
        }
        if current.metadata.annotations?[Annotation.csiNodeID] != nodeID {
            var annotated = current
            annotated.metadata.annotations = (annotated.metadata.annotations ?? [:]).merging([Annotation.csiNodeID: nodeID]) { $1 }
            current = try await client.update(annotated)
        }
        let context: [String: String]
        do {
            context = try await csi.controllerPublishVolume(.with {
                $0.volumeID = source.volumeHandle
                $0.nodeID = nodeID
                $0.volumeCapability = Self.capability(volume)
                $0.readonly = source.readOnly ?? false
                $0.volumeContext = source.volumeAttributes ?? [:]
            }).publishContext
        } catch {
            try await attachFailed(current, CSIError(error).description)
        }
        let status = VolumeAttachmentStatus(attached: true, attachmentMetadata: context.isEmpty ? nil : context)
        if current.status != status {
            var attached = current
            attached.status = status
            _ = try await client.updateStatus(attached)
            logger.info("attached", metadata: ["attachment": "\(current.metadata.name ?? "")", "volume": "\(pvName)", "node": "\(node)"])
        }
        published.withLock { _ = $0.insert(uid) }
    }

    /// Records the failure in `status.attachError` and throws it (the queue retries).
    private func attachFailed(_ attachment: VolumeAttachment, _ message: String) async throws -> Never {
        await recordError(attachment, ["attached": false, "attachError": try JSONValue(encoding: VolumeError(time: Time.now(), message: message))])
        throw BinderError(message)
    }

    /// Writes an attach or detach error into the attachment's status with a merge patch, as
    /// external-attacher does: an update carries the resourceVersion this sync read (often the
    /// informer's, a write behind), so a 409 would lose the error, and with it the
    /// `FailedAttachVolume` event the attach/detach controller writes from it, whenever the retry
    /// that follows succeeds. Best effort: the error is thrown to the queue either way.
    private func recordError(_ attachment: VolumeAttachment, _ status: [String: JSONValue]) async {
        let name = attachment.metadata.name ?? ""
        do {
            _ = try await client.mergePatch(VolumeAttachment.self, name: name, patch: ["status": .object(status)], subresource: "status")
        } catch {
            logger.info("could not record the error in the attachment's status", metadata: ["attachment": "\(name)", "error": "\(error)"])
        }
    }

    // MARK: Detach

    private func detach(_ attachment: VolumeAttachment) async throws {
        guard (attachment.metadata.finalizers ?? []).contains(finalizer) else { return }
        let pvName = attachment.spec.source.persistentVolumeName ?? ""
        var volume = await volumes.get(name: pvName)
        if volume == nil {
            // The PV keeps this attacher's finalizer while the attachment exists: make sure it is
            // really gone before detaching nothing.
            do {
                volume = try await client.get(PersistentVolume.self, name: pvName)
            } catch let error as APIError where error.isNotFound {}
        }
        var nodeID = attachment.metadata.annotations?[Annotation.csiNodeID]
        if nodeID == nil {
            nodeID = await csiNodes.get(name: attachment.spec.nodeName)?.spec.drivers.first(where: { $0.name == driver })?.nodeID
        }
        if let handle = volume?.spec.csi?.volumeHandle, let nodeID {
            do {
                _ = try await csi.controllerUnpublishVolume(.with {
                    $0.volumeID = handle
                    $0.nodeID = nodeID
                })
            } catch {
                let message = CSIError(error).description
                await recordError(attachment, ["detachError": try JSONValue(encoding: VolumeError(time: Time.now(), message: message))])
                throw BinderError(message)
            }
        }
        // Unpublished (or nothing to unpublish: its volume or node is gone): let it go.
        var detached = attachment
        if detached.status?.attached == true {
            detached.status?.attached = false
            detached.status?.attachmentMetadata = nil
            if let written = try? await client.updateStatus(detached) { detached = written }
        }
        _ = try await client.removeFinalizer(finalizer, from: detached)
        logger.info("detached", metadata: ["attachment": "\(attachment.metadata.name ?? "")", "volume": "\(pvName)",
                                           "node": "\(attachment.spec.nodeName)"])
    }

    /// Drops the PV's finalizer once it is being deleted and no attachment names it.
    func syncVolume(_ name: String) async throws -> SyncResult {
        guard let volume = await volumes.get(name: name), volume.metadata.deletionTimestamp != nil,
              (volume.metadata.finalizers ?? []).contains(finalizer) else { return .done }
        if await attachments.list().contains(where: { $0.spec.source.persistentVolumeName == name }) { return .done }
        _ = try await client.removeFinalizer(finalizer, from: volume)
        return .done
    }

    /// The capability a PV is published with: its volume mode, file system and first access mode.
    static func capability(_ volume: PersistentVolume) -> Csi_V1_VolumeCapability {
        VolumeRequest.capabilities(accessModes: [volume.spec.accessModes?.first ?? "ReadWriteOnce"], volumeMode: volume.volumeMode,
                                   fsType: volume.spec.csi?.fsType ?? "", mountOptions: volume.spec.mountOptions ?? [])[0]
    }
}
