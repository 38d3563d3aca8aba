// The attach/detach controller (kube-controller-manager's "attachdetach"): makes the
// VolumeAttachments match the pods. Desired: the CSI volumes of the pods bound to a node (one
// the attach/detach controller manages) and not terminated. Actual: the VolumeAttachments, and
// what it reports in `node.status.volumesAttached`. One key per volume, so that the operations
// on one volume are serialized across nodes; every pass detaches before it attaches.
//
// A pass decides from the informer's VolumeAttachments overlaid with the ones this controller
// created that the informer has not shown yet (`State.created`), and adds each one it creates to
// its own view before looking at the next node: otherwise two pods on two nodes wanting an
// unattached ReadWriteOnce volume in one pass — or a pass that runs before the informer shows
// the attachment the previous one made — would each get a VolumeAttachment.
//
// | volume on node N                                   | action                                              |
// |----------------------------------------------------|-----------------------------------------------------|
// | wanted, no VolumeAttachment                        | create `csi-<sha256(handle+driver+node)>`           |
// |   RWO, attached or attaching elsewhere             | FailedAttachVolume "Multi-Attach error …" on the pods |
// | wanted, attached                                   | listed in N's volumesAttached; SuccessfulAttachVolume |
// | wanted, attachError                                | FailedAttachVolume "AttachVolume.Attach failed …"   |
// | not wanted, N lists it in volumesInUse             | wait (the kubelet is unmounting)                    |
// |   N unhealthy for longer than --max-wait-for-unmount, or N tainted out-of-service | detach anyway |
// | not wanted, not in use                             | drop from volumesAttached, delete the VolumeAttachment |
import APIClient
import ClusterAPI
import Crypto
import Foundation
import Logging
import Synchronization

/// `csi-<hex sha256(volume handle + driver + node)>`, the name Kubernetes gives the
/// VolumeAttachment of a CSI volume on a node (csi_attacher.go `getAttachmentName`).
public func volumeAttachmentName(handle: String, driver: String, node: String) -> String {
    "csi-" + SHA256.hash(data: Data((handle + driver + node).utf8)).map { String(format: "%02x", $0) }.joined()
}

final class AttachDetachController: Sendable {
    let client: KubeClient
    let pods: Informer<Pod>
    let nodes: Informer<Node>
    let claims: Informer<PersistentVolumeClaim>
    let volumes: Informer<PersistentVolume>
    let attachments: Informer<VolumeAttachment>
    let drivers: Informer<CSIDriver>
    let recorder: EventRecorder
    let maxWaitForUnmount: Duration
    let logger: Logger
    let controller: Controller<String>
    let statusWriter: NodeStatusWriter
    let state = Mutex(State())

    struct State {
        /// claim "ns/name" → its volume, for mapping pod events to volume keys.
        var claimVolumes: [String: String] = [:]
        /// node → volumes with an attachment there, for mapping node events to volume keys.
        var nodeVolumes: [String: Set<String>] = [:]
        /// attachment name → when its detach was first wanted.
        var detachWanted: [String: ContinuousClock.Instant] = [:]
        /// attachment name → the last state reported in events ("attached" or the error).
        var reported: [String: String] = [:]
        /// attachment name → the last `attachError` the informer delivered: an error the
        /// attacher overwrites by its next attempt before a sync reads the attachment is still
        /// reported (as the reconciler's operation, which watches the attachment, reports it).
        var seenErrors: [String: String] = [:]
        /// "volume|node" pairs whose Multi-Attach error was reported.
        var multiAttachReported: Set<String> = []
        /// attachment name → an attachment this controller created that the informer may not
        /// show yet (dropped once it does, once it is seen deleted, or once the API server says
        /// it is gone).
        var created: [String: Created] = [:]
    }

    struct Created {
        var attachment: VolumeAttachment
        var at: ContinuousClock.Instant
    }

    /// How long a created attachment the informer still does not show is trusted before the
    /// API server is asked whether it still exists.
    static let createdConfirmAfter: Duration = .seconds(5)

    struct Informers {
        var pods: Informer<Pod>
        var nodes: Informer<Node>
        var claims: Informer<PersistentVolumeClaim>
        var volumes: Informer<PersistentVolume>
        var attachments: Informer<VolumeAttachment>
        var drivers: Informer<CSIDriver>
    }

    init(client: KubeClient, informers: Informers, recorder: EventRecorder, maxWaitForUnmount: Duration, logger: Logger) async {
        self.client = client
        pods = informers.pods
        nodes = informers.nodes
        claims = informers.claims
        volumes = informers.volumes
        attachments = informers.attachments
        drivers = informers.drivers
        self.recorder = recorder
        self.maxWaitForUnmount = maxWaitForUnmount
        self.logger = logger
        statusWriter = NodeStatusWriter(client: client, nodes: informers.nodes, volumes: informers.volumes,
                                        attachments: informers.attachments, logger: logger)
        let box = LateBound<AttachDetachController>()
        controller = Controller(name: "attachdetach", workers: 8, logger: logger) { name in
            guard let controller = box.value else { return .done }
            return try await controller.sync(name)
        }
        box.value = self
        let shared = self
        await controller.enqueue(from: informers.volumes) { [$0.object.metadata.name ?? ""] }
        await controller.enqueue(from: informers.claims) { event in
            let claim = event.object
            let key = "\(claim.metadata.namespace ?? "")/\(claim.metadata.name ?? "")"
            let name = claim.spec.volumeName ?? ""
            shared.state.withLock {
                if case .deleted = event { $0.claimVolumes[key] = nil } else if !name.isEmpty { $0.claimVolumes[key] = name }
            }
            return name.isEmpty ? [] : [name]
        }
        await controller.enqueue(from: informers.pods) { event in
            var pods = [event.object]
            if case .updated(let old, _) = event { pods.append(old) }
            return shared.state.withLock { state in
                Array(Set(pods.flatMap { pod in
                    pod.claimNames.compactMap { state.claimVolumes["\(pod.metadata.namespace ?? "")/\($0)"] }
                }))
            }
        }
        await controller.enqueue(from: informers.attachments) { event in
            let attachment = event.object
            guard let name = attachment.spec.source.persistentVolumeName else { return [] }
            shared.state.withLock {
                if case .deleted = event {
                    $0.nodeVolumes[attachment.spec.nodeName]?.remove(name)
                    $0.reported[attachment.metadata.name ?? ""] = nil
                    $0.seenErrors[attachment.metadata.name ?? ""] = nil
                    $0.detachWanted[attachment.metadata.name ?? ""] = nil
                    if let mine = $0.created[attachment.metadata.name ?? ""], mine.attachment.metadata.uid == attachment.metadata.uid {
                        $0.created[attachment.metadata.name ?? ""] = nil
                    }
                } else {
                    $0.nodeVolumes[attachment.spec.nodeName, default: []].insert(name)
                    if let error = attachment.status?.attachError?.message { $0.seenErrors[attachment.metadata.name ?? ""] = error }
                }
            }
            return [name]
        }
        await controller.enqueue(from: informers.nodes) { event in
            shared.state.withLock { Array($0.nodeVolumes[event.object.metadata.name ?? ""] ?? []) }
        }
    }

    func run() async { await controller.run() }

    static func attachmentName(handle: String, driver: String, node: String) -> String {
        volumeAttachmentName(handle: handle, driver: driver, node: node)
    }

    // MARK: Sync

    func sync(_ volumeName: String) async throws -> SyncResult {
        let volume = await volumes.get(name: volumeName)
        let desired = await desiredNodes(volume)
        var existing = try await currentAttachments(of: volumeName)
        var requeue: Duration?

        // Detach first.
        for attachment in existing where desired[attachment.spec.nodeName] == nil && attachment.metadata.deletionTimestamp == nil {
            if let wait = try await detach(attachment, volume) { requeue = min(requeue ?? wait, wait) }
        }
        // Then attach.
        guard let volume, let csi = volume.spec.csi else { return requeue.map { .requeue(after: $0) } ?? .done }
        let multiAttach = AccessModes.allowsMultiAttach(volume.spec.accessModes ?? [])
        for (node, pods) in desired.sorted(by: { $0.key < $1.key }) {
            if let attachment = existing.first(where: { $0.spec.nodeName == node && $0.metadata.deletionTimestamp == nil }) {
                try await report(attachment, volume: volume, pods: pods)
                continue
            }
            // Attached, attaching or still detaching elsewhere (a deleted attachment holds the
            // volume until the attacher has unpublished it).
            let elsewhere = existing.filter { $0.spec.nodeName != node }
            if !multiAttach && !elsewhere.isEmpty {
                await reportMultiAttach(volume: volume, node: node, pods: pods, otherNodes: Set(elsewhere.map(\.spec.nodeName)))
                continue
            }
            let name = Self.attachmentName(handle: csi.volumeHandle, driver: csi.driver, node: node)
            let attachment = VolumeAttachment(metadata: ObjectMeta(name: name),
                                              spec: VolumeAttachmentSpec(attacher: csi.driver,
                                                                         source: VolumeAttachmentSource(persistentVolumeName: volumeName),
                                                                         nodeName: node))
            clearMultiAttach(volume: volumeName)
            do {
                let written = try await client.create(attachment)
                state.withLock { $0.created[name] = Created(attachment: written, at: .now) }
                existing.append(written)
                logger.info("attaching", metadata: ["volume": "\(volumeName)", "node": "\(node)", "attachment": "\(name)"])
            } catch let error as APIError where error.isAlreadyExists {
                // Made by an earlier pass whose answer was lost, or still being deleted: it is
                // there all the same, and the informer shows it soon.
                existing.append(attachment)
            }
        }
        return requeue.map { .requeue(after: $0) } ?? .done
    }

    static func version(_ object: VolumeAttachment) -> Int64 { Int64(object.metadata.resourceVersion ?? "") ?? 0 }

    /// The volume's attachments: the informer's, and those this controller created that the
    /// informer does not show yet (one it has not confirmed for a while is looked up).
    private func currentAttachments(of volumeName: String) async throws -> [VolumeAttachment] {
        let all = await attachments.list()
        let seen = Dictionary(all.map { ($0.metadata.name ?? "", $0) }, uniquingKeysWith: { first, _ in first })
        let pending = state.withLock { state -> [Created] in
            for (name, mine) in state.created {
                // The informer has caught up: it shows this object, or a later one of the same name.
                if let shown = seen[name], shown.metadata.uid == mine.attachment.metadata.uid
                    || Self.version(shown) >= Self.version(mine.attachment) {
                    state.created[name] = nil
                }
            }
            return state.created.values.filter { $0.attachment.spec.source.persistentVolumeName == volumeName }
        }
        var result = all.filter { $0.spec.source.persistentVolumeName == volumeName }
        for mine in pending {
            let name = mine.attachment.metadata.name ?? ""
            if ContinuousClock.now - mine.at > Self.createdConfirmAfter {
                do {
                    let live = try await client.get(VolumeAttachment.self, name: name)
                    state.withLock { $0.created[name] = Created(attachment: live, at: .now) }
                    result.append(live)
                } catch let error as APIError where error.isNotFound {
                    state.withLock { state in
                        if state.created[name]?.attachment.metadata.uid == mine.attachment.metadata.uid { state.created[name] = nil }
                    }
                }
                continue
            }
            result.append(mine.attachment)
        }
        return result
    }

    /// Nodes that need the volume, with the pods that need it there.
    private func desiredNodes(_ volume: PersistentVolume?) async -> [String: [Pod]] {
        guard let volume, let csi = volume.spec.csi, let name = volume.metadata.name else { return [:] }
        if let driver = await drivers.get(name: csi.driver), driver.spec.attachRequired == false { return [:] }
        let boundClaims = await claims.list().filter { $0.spec.volumeName == name && $0.status.phase == "Bound" }
        guard !boundClaims.isEmpty else { return [:] }
        let claimKeys = Set(boundClaims.map(\.key))
        var desired: [String: [Pod]] = [:]
        for pod in await pods.list() {
            guard let node = pod.spec.nodeName, !node.isEmpty, !pod.isTerminated else { continue }
            guard pod.claimNames.contains(where: { claimKeys.contains("\(pod.metadata.namespace ?? "")/\($0)") }) else { continue }
            guard let object = await nodes.get(name: node),
                  object.metadata.annotations?[Annotation.controllerManagedAttachDetach] == "true" else { continue }
            desired[node, default: []].append(pod)
        }
        return desired
    }

    /// Detaches unless the node still uses the volume; returns how long to wait when it does.
    private func detach(_ attachment: VolumeAttachment, _ volume: PersistentVolume?) async throws -> Duration? {
        let name = attachment.metadata.name ?? ""
        let nodeName = attachment.spec.nodeName
        let unique = volume?.uniqueVolumeName ?? ""
        var node = await nodes.get(name: nodeName)
        if let cached = node, !(cached.status.volumesInUse ?? []).contains(unique) {
            // The informer may lag behind the kubelet's latest report (it marks a volume in use
            // before staging it): a detach is decided on a fresh read of the node.
            if let fresh = try? await client.get(Node.self, name: nodeName) { node = fresh }
        }
        let wantedSince = state.withLock { state in
            if let since = state.detachWanted[name] { return since }
            state.detachWanted[name] = .now
            return ContinuousClock.Instant.now
        }
        if let node, (node.status.volumesInUse ?? []).contains(unique) {
            let elapsed = ContinuousClock.now - wantedSince
            let healthy = node.readyStatus == "True"
            let outOfService = node.hasTaint(Taint.outOfService)
            if outOfService {
                logger.warning("detaching a volume still in use: the node is out of service",
                               metadata: ["volume": "\(volume?.metadata.name ?? "")", "node": "\(nodeName)"])
            } else if !healthy && elapsed > maxWaitForUnmount {
                logger.warning("node is unhealthy and the volume has been mounted longer than --max-wait-for-unmount; detaching it forcibly",
                               metadata: ["volume": "\(volume?.metadata.name ?? "")", "node": "\(nodeName)", "waited": "\(elapsed)"])
            } else {
                logger.debug("cannot detach: the volume is still mounted", metadata: ["volume": "\(volume?.metadata.name ?? "")", "node": "\(nodeName)"])
                return healthy ? nil : max(.milliseconds(100), maxWaitForUnmount - elapsed + .milliseconds(50))
            }
        }
        // Stop reporting it attached before it goes, so the node never uses a detaching volume.
        try await statusWriter.update(nodeName, excluding: [attachment.metadata.uid ?? ""])
        do {
            let left = try await client.delete(VolumeAttachment.self, name: name, options: DeleteOptions(preconditionUID: attachment.metadata.uid))
            if let left {
                // Held by the attacher's finalizer until it has unpublished: still counts as attached.
                state.withLock { state in if state.created[name] != nil { state.created[name] = Created(attachment: left, at: .now) } }
            } else {
                state.withLock { state in if state.created[name]?.attachment.metadata.uid == attachment.metadata.uid { state.created[name] = nil } }
            }
            logger.info("detaching", metadata: ["volume": "\(volume?.metadata.name ?? "")", "node": "\(nodeName)", "attachment": "\(name)"])
        } catch let error as APIError where error.isNotFound {}
        return nil
    }
}
