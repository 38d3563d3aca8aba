// What the attach/detach controller tells pods and nodes: node.status.volumesAttached, and
// events on the pods waiting for a volume, in the attach/detach reconciler's words.
import APIClient
import ClusterAPI
import Logging

extension AttachDetachController {
    /// An attachment that exists for a wanted volume: listed on its node once attached; an
    /// event on the waiting pods when it attached or failed (once per outcome).
    func report(_ attachment: VolumeAttachment, volume: PersistentVolume, pods: [Pod]) async throws {
        let name = attachment.metadata.name ?? ""
        let volumeName = volume.metadata.name ?? ""
        var outcome: String?
        if attachment.status?.attached == true {
            try await statusWriter.update(attachment.spec.nodeName, excluding: [])
            outcome = "attached"
        } else if let error = attachment.status?.attachError?.message {
            outcome = error
        }
        // An error seen by the informer but already overwritten by a later attempt: reported
        // before what the attachment says now.
        let missed = state.withLock { state -> String? in
            guard let error = state.seenErrors.removeValue(forKey: name), error != outcome, state.reported[name] != error else { return nil }
            state.reported[name] = error
            return error
        }
        if let missed {
            for pod in pods {
                recorder.event(pod, .warning, "FailedAttachVolume", "AttachVolume.Attach failed for volume \"\(volumeName)\" : \(missed)")
            }
        }
        guard let outcome else { return }
        let changed = state.withLock { state in
            if state.reported[name] == outcome { return false }
            state.reported[name] = outcome
            state.detachWanted[name] = nil
            return true
        }
        guard changed else { return }
        for pod in pods {
            if outcome == "attached" {
                recorder.event(pod, .normal, "SuccessfulAttachVolume", "AttachVolume.Attach succeeded for volume \"\(volumeName)\" ")
            } else {
                recorder.event(pod, .warning, "FailedAttachVolume", "AttachVolume.Attach failed for volume \"\(volumeName)\" : \(outcome)")
            }
        }
    }

    /// The reconciler's reportMultiAttachError: the pods on the other nodes by name when they
    /// are in the waiting pod's namespace, counted otherwise; once per volume and node.
    func reportMultiAttach(volume: PersistentVolume, node: String, pods: [Pod], otherNodes: Set<String>) async {
        let volumeName = volume.metadata.name ?? ""
        let first = state.withLock { $0.multiAttachReported.insert("\(volumeName)|\(node)").inserted }
        guard first else { return }
        let claimNames = Set(await claims.list().filter { $0.spec.volumeName == volumeName }.map(\.key))
        let users = await self.pods.list().filter { pod in
            guard let podNode = pod.spec.nodeName, otherNodes.contains(podNode), !pod.isTerminated else { return false }
            return pod.claimNames.contains { claimNames.contains("\(pod.metadata.namespace ?? "")/\($0)") }
        }
        for pod in pods {
            let message: String
            if users.isEmpty {
                message = "Volume is already exclusively attached to one node and can't be attached to another"
            } else {
                let local = users.filter { $0.metadata.namespace == pod.metadata.namespace }.map { $0.metadata.name ?? "" }
                let others = users.count - local.count
                if local.isEmpty {
                    message = "Volume is already used by \(others) pod(s) in different namespaces"
                } else {
                    message = "Volume is already used by pod(s) \(local.joined(separator: ", "))"
                        + (others > 0 ? " and \(others) pod(s) in different namespaces" : "")
                }
            }
            recorder.event(pod, .warning, "FailedAttachVolume", "Multi-Attach error for volume \"\(volumeName)\" \(message)")
        }
        logger.info("multi-attach refused", metadata: ["volume": "\(volumeName)", "node": "\(node)", "attachedTo": "\(otherNodes.sorted())"])
    }

    /// Forgets a reported Multi-Attach error once the volume is free (so a later one is reported).
    func clearMultiAttach(volume: String) {
        state.withLock { state in state.multiAttachReported = state.multiAttachReported.filter { !$0.hasPrefix(volume + "|") } }
    }
}

/// Writes `node.status.volumesAttached` from the attached VolumeAttachments, one node at a
/// time (the attach/detach controller's node status updater).
actor NodeStatusWriter {
    let client: KubeClient
    let nodes: Informer<Node>
    let volumes: Informer<PersistentVolume>
    let attachments: Informer<VolumeAttachment>
    let logger: Logger
    /// What was last written per node, so an unchanged list is not written again.
    private var written: [String: [AttachedVolume]] = [:]
    /// Uids of attachments being detached: never listed again (a new attachment of the same
    /// name has another uid).
    private var detaching: Set<String> = []

    init(client: KubeClient, nodes: Informer<Node>, volumes: Informer<PersistentVolume>, attachments: Informer<VolumeAttachment>, logger: Logger) {
        self.client = client
        self.nodes = nodes
        self.volumes = volumes
        self.attachments = attachments
        self.logger = logger
    }

    /// Recomputes and writes the list of `node`, leaving out `excluding` (uids of attachments about to go).
    func update(_ node: String, excluding: Set<String>) async throws {
        detaching.formUnion(excluding)
        guard let current = await nodes.get(name: node) else { return }
        let all = await attachments.list()
        detaching.formIntersection(Set(all.compactMap(\.metadata.uid)).union(excluding))
        var list: [AttachedVolume] = []
        for attachment in all where attachment.spec.nodeName == node {
            guard attachment.status?.attached == true, attachment.metadata.deletionTimestamp == nil,
                  !detaching.contains(attachment.metadata.uid ?? ""),
                  let volumeName = attachment.spec.source.persistentVolumeName,
                  let unique = await volumes.get(name: volumeName)?.uniqueVolumeName else { continue }
            list.append(AttachedVolume(name: unique, devicePath: attachment.status?.attachmentMetadata?["devicePath"] ?? ""))
        }
        list.sort { $0.name < $1.name }
        let now = (current.status.volumesAttached ?? []).sorted { $0.name < $1.name }
        if list == now && written[node] == list { return }
        if written[node] == list && list.map(\.name) == now.map(\.name) { return }
        let entries: [JSONValue] = list.map { .object(["name": .string($0.name), "devicePath": .string($0.devicePath)]) }
        _ = try await client.mergePatch(Node.self, name: node, patch: ["status": ["volumesAttached": .array(entries)]], subresource: "status")
        written[node] = list
    }
}
