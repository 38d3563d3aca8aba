// The informers' events: each updates the cache, and those that can make an unschedulable pod
// fit move the unschedulable pods on (upstream's cluster events: a node added or changed in a
// way that matters, a PV, PVC, StorageClass or CSINode added or changed, a placed pod gone).
// Resyncs only repair the cache.
import APIClient
import ClusterAPI

struct Streams: Sendable {
    var pods: AsyncStream<InformerEvent<Pod>>
    var nodes: AsyncStream<InformerEvent<Node>>
    var claims: AsyncStream<InformerEvent<PersistentVolumeClaim>>
    var volumes: AsyncStream<InformerEvent<PersistentVolume>>
    var classes: AsyncStream<InformerEvent<StorageClass>>
    var csiNodes: AsyncStream<InformerEvent<CSINode>>
    var attachments: AsyncStream<InformerEvent<VolumeAttachment>>
}

extension SchedulerServer {
    static func consume(_ streams: Streams, cache: SchedulerCache, queue: SchedulingQueue) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await event in streams.pods { await podEvent(event, cache: cache, queue: queue) }
            }
            group.addTask {
                for await event in streams.nodes {
                    switch event {
                    case .added(let node):
                        cache.nodeChanged(node)
                        await queue.moveAll()
                    case .updated(let old, let new):
                        cache.nodeChanged(new)
                        if nodeChangeMatters(old, new) { await queue.moveAll() }
                    case .resync(let node): cache.nodeChanged(node)
                    case .deleted(let node): cache.nodeDeleted(node)
                    }
                }
            }
            group.addTask {
                for await event in streams.claims {
                    if case .deleted(let claim) = event { cache.claimDeleted(claim) } else { cache.claimChanged(event.object) }
                    if event.movesPods { await queue.moveAll() }
                }
            }
            group.addTask {
                for await event in streams.volumes {
                    if case .deleted(let volume) = event { cache.volumeDeleted(volume) } else { cache.volumeChanged(event.object) }
                    if event.movesPods { await queue.moveAll() }
                }
            }
            group.addTask {
                for await event in streams.classes {
                    if case .deleted = event { cache.classChanged(event.object, deleted: true) } else { cache.classChanged(event.object) }
                    if event.movesPods { await queue.moveAll() }
                }
            }
            group.addTask {
                for await event in streams.csiNodes {
                    if case .deleted = event { cache.csiNodeChanged(event.object, deleted: true) } else { cache.csiNodeChanged(event.object) }
                    if event.movesPods { await queue.moveAll() }
                }
            }
            group.addTask {
                for await event in streams.attachments {
                    if case .deleted = event { cache.attachmentChanged(event.object, deleted: true) } else { cache.attachmentChanged(event.object) }
                }
            }
        }
    }

    static func podEvent(_ event: InformerEvent<Pod>, cache: SchedulerCache, queue: SchedulingQueue) async {
        let key = PodInfo.key(of: event.object)
        switch event {
        case .added(let pod):
            if cache.isStale(pod) { return }
            if cache.podChanged(pod) { await queue.add(key) } else { await queue.remove(key) }
        case .resync(let pod):
            _ = cache.podChanged(pod)
        case .updated(let old, let new):
            if cache.isStale(new) { return }
            let wasPlaced = !(old.spec.nodeName ?? "").isEmpty && old.status.phase != "Succeeded" && old.status.phase != "Failed"
            if cache.podChanged(new) {
                // Only a change of what scheduling reads (not our own status writes) retries it.
                if old.spec != new.spec || old.metadata.labels != new.metadata.labels { await queue.add(key) }
            } else {
                await queue.remove(key)
                let nowTerminal = new.status.phase == "Succeeded" || new.status.phase == "Failed"
                if wasPlaced && nowTerminal { await queue.moveAll() }
            }
        case .deleted(let pod):
            cache.podDeleted(pod)
            await queue.remove(key)
            if !(pod.spec.nodeName ?? "").isEmpty { await queue.moveAll() }
        }
    }

    /// A node change that can make a pod fit: schedulability, labels, taints, allocatable, readiness.
    static func nodeChangeMatters(_ old: Node, _ new: Node) -> Bool {
        if old.spec.unschedulable != new.spec.unschedulable || old.spec.taints != new.spec.taints { return true }
        if old.metadata.labels != new.metadata.labels || old.status.allocatable != new.status.allocatable { return true }
        func ready(_ node: Node) -> String? { node.status.conditions?.first { $0.type == "Ready" }?.status }
        return ready(old) != ready(new)
    }
}

extension InformerEvent {
    /// Added or updated: a change that may help unschedulable pods.
    var movesPods: Bool {
        switch self {
        case .added, .updated: true
        case .deleted, .resync: false
        }
    }
}
