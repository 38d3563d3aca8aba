// The scheduler's cache: `ClusterState` behind a lock, fed by the informers' events, plus the
// pods waiting for this scheduler. Assumed pods count on their node from the moment a cycle
// chooses it until the informer shows the binding (or the binding fails and they are
// forgotten). Every change to volumes or claims wakes the binding cycles waiting in PreBind.
import ClusterAPI
import Synchronization

final class SchedulerCache: Sendable {
    let schedulerName: String
    private let state = Mutex(ClusterState())
    /// Pods of this scheduler without a node, by key.
    private let pending = Mutex([String: Pod]())
    /// Wakes the PreBind waits when claims or volumes change.
    let volumeChanges = ChangeSignal()

    init(schedulerName: String) {
        self.schedulerName = schedulerName
    }

    /// A copy of the state (copy-on-write: cheap until either side changes).
    func snapshot() -> ClusterState { state.withLock { $0 } }

    func pendingPod(_ key: String) -> Pod? { pending.withLock { $0[key] } }

    // MARK: Pods

    /// Whether `pod` waits for this scheduler.
    func isPending(_ pod: Pod) -> Bool {
        (pod.spec.nodeName ?? "").isEmpty && (pod.spec.schedulerName ?? SchedulerNames.defaultScheduler) == schedulerName
            && pod.metadata.deletionTimestamp == nil && pod.status.phase != "Succeeded" && pod.status.phase != "Failed"
            && (pod.spec.schedulingGates ?? []).isEmpty
    }

    /// A pod was added or changed. Returns whether it now waits for this scheduler.
    @discardableResult
    func podChanged(_ pod: Pod) -> Bool {
        let info = PodInfo(pod)
        if isPending(pod) {
            pending.withLock { $0[info.key] = pod }
            return true
        }
        pending.withLock { $0[info.key] = nil }
        state.withLock { state in
            if info.nodeName.isEmpty {
                // Our own status write on an assumed pod, before the binding shows: keep it.
                if !state.assumed.contains(info.key) { state.unplace(info.key) }
                return
            }
            // A terminal pod frees its node (place() drops it); one being deleted still holds it.
            state.place(info)
        }
        return false
    }

    func podDeleted(_ pod: Pod) {
        let key = PodInfo(pod).key
        pending.withLock { $0[key] = nil }
        state.withLock { $0.unplace(key) }
    }

    /// Places `pod` on `node` before the binding is written, with its volume reservations.
    /// Fails (nil) when the node no longer fits it in the current state.
    func assume(_ pod: PendingPod, on node: String) -> VolumePlan? {
        state.withLock { state in
            guard let plan = Algorithm.recheck(pod, node: node, state) else { return nil }
            var info = pod.info
            info.nodeName = node
            state.place(info)
            state.assumed.insert(info.key)
            for (claim, volume) in plan.staticBindings {
                state.reserve(VolumeReservation(claimKey: claim, volume: volume, node: node, podKey: info.key))
            }
            for claim in plan.provisions { state.reserve(VolumeReservation(claimKey: claim, volume: nil, node: node, podKey: info.key)) }
            return plan
        }
    }

    /// The binding failed: the pod and its reservations are no longer counted.
    func forget(_ podKey: String) {
        state.withLock { state in
            if state.assumed.contains(podKey) { state.unplace(podKey) }
            state.releaseReservations(of: podKey)
        }
    }

    /// PreBind finished: the claims are bound and the informers show it.
    func releaseReservations(of podKey: String) {
        state.withLock { $0.releaseReservations(of: podKey) }
    }

    // MARK: Other objects

    func nodeChanged(_ node: Node) { state.withLock { $0.setNode(node) } }
    func nodeDeleted(_ node: Node) { state.withLock { $0.removeNode(node.metadata.name ?? "") } }

    func claimChanged(_ claim: PersistentVolumeClaim) {
        state.withLock { $0.claims[claim.cacheKey] = claim }
        volumeChanges.fire()
    }

    func claimDeleted(_ claim: PersistentVolumeClaim) {
        state.withLock { $0.claims[claim.cacheKey] = nil }
        volumeChanges.fire()
    }

    func volumeChanged(_ volume: PersistentVolume) {
        state.withLock { $0.volumes[volume.metadata.name ?? ""] = volume }
        volumeChanges.fire()
    }

    func volumeDeleted(_ volume: PersistentVolume) {
        state.withLock { $0.volumes[volume.metadata.name ?? ""] = nil }
        volumeChanges.fire()
    }

    func classChanged(_ storageClass: StorageClass, deleted: Bool = false) {
        state.withLock { $0.classes[storageClass.metadata.name ?? ""] = deleted ? nil : storageClass }
    }

    func csiNodeChanged(_ csiNode: CSINode, deleted: Bool = false) {
        state.withLock { $0.csiNodes[csiNode.metadata.name ?? ""] = deleted ? nil : csiNode }
    }

    func attachmentChanged(_ attachment: VolumeAttachment, deleted: Bool = false) {
        let name = attachment.metadata.name ?? ""
        state.withLock { state in
            if deleted || attachment.status?.attached != true || attachment.spec.source.persistentVolumeName == nil {
                state.attachments[name] = nil
            } else {
                state.attachments[name] = (attachment.spec.source.persistentVolumeName!, attachment.spec.nodeName)
            }
        }
    }
}

/// A broadcast "something changed" that waiters can sleep on with a bound: the PreBind wait is
/// woken by the watch, not by polling.
final class ChangeSignal: Sendable {
    private struct State {
        var generation: UInt64 = 0
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextID: UInt64 = 0
    }
    private let state = Mutex(State())

    var generation: UInt64 { state.withLock { $0.generation } }

    func fire() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.generation += 1
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once the generation moved past `generation`, after `timeout`, or on cancellation.
    func wait(since generation: UInt64, timeout: Duration) async {
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withTaskCancellationHandler {
                    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                        let resumeNow = self.state.withLock { state -> Bool in
                            if state.generation != generation || Task.isCancelled { return true }
                            state.waiters[id] = continuation
                            return false
                        }
                        if resumeNow { continuation.resume() }
                    }
                } onCancel: {
                    self.state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
                }
            }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
    }
}
