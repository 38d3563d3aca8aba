// The scheduler's cache: `ClusterState` behind a lock, fed by the informers' events, plus the
// pods waiting for this scheduler. Assumed pods count on their node from the moment a cycle
// chooses it until the informer shows the binding (or the binding fails and they are
// forgotten). Every change to volumes or claims wakes the binding cycles waiting in PreBind.
import ClusterAPI
import Synchronization

final class SchedulerCache: Sendable {
    let schedulerName: String
    private let guarded = Mutex(Guarded())
    /// The state the cycles copy, and the bookkeeping they do not read.
    private struct Guarded {
        var state = ClusterState()
        var placements = Placements()
    }
    /// Pods of this scheduler without a node, by key.
    private let pending = Mutex([String: Pod]())
    /// Wakes the PreBind waits when their claims, or the volumes that name them, change.
    let claimChanges = ClaimSignal()

    init(schedulerName: String) {
        self.schedulerName = schedulerName
    }

    /// A copy of the state (copy-on-write: cheap until either side changes).
    func snapshot() -> ClusterState { guarded.withLock { $0.state } }

    /// Reads the current state under the lock, without copying it (a few lookups: a copy held
    /// across the reader's awaits would make every change meanwhile copy what changed).
    func read<R: Sendable>(_ body: (ClusterState) throws -> R) throws -> R {
        try guarded.withLock { guarded throws -> R in try body(guarded.state) }
    }

    func read<R: Sendable>(_ body: (ClusterState) -> R) -> R {
        guarded.withLock { guarded -> R in body(guarded.state) }
    }

    func pendingPod(_ key: String) -> Pod? { pending.withLock { $0[key] } }

    // MARK: Pods

    /// Whether `pod` waits for this scheduler.
    func isPending(_ pod: Pod) -> Bool {
        (pod.spec.nodeName ?? "").isEmpty && (pod.spec.schedulerName ?? SchedulerNames.defaultScheduler) == schedulerName
            && pod.metadata.deletionTimestamp == nil && pod.status.phase != "Succeeded" && pod.status.phase != "Failed"
            && (pod.spec.schedulingGates ?? []).isEmpty
    }

    /// Whether `pod` is a version the cache already has, or an older one: the informer's replay
    /// of its first list (already applied) arriving after a cycle bound the pod. Applying it
    /// would queue the pod again: a second cycle, a refused binding, the pod briefly counted on
    /// no node.
    func isStale(_ pod: Pod) -> Bool {
        guard let incoming = Int64(pod.metadata.resourceVersion ?? "") else { return false }
        let key = PodInfo.key(of: pod)
        let known = pending.withLock { $0[key]?.metadata.resourceVersion }
            ?? guarded.withLock { $0.placements.placed[key]?.pod.metadata.resourceVersion }
        guard let known, let version = Int64(known) else { return false }
        return incoming <= version
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
        guarded.withLock { guarded in
            if info.nodeName.isEmpty {
                // Our own status write on an assumed pod, before the binding shows: keep it.
                if !guarded.placements.assumed.contains(info.key) { guarded.placements.unplace(info.key, in: &guarded.state) }
                return
            }
            // A terminal pod frees its node (place() drops it); one being deleted still holds it.
            guarded.placements.place(info, in: &guarded.state)
        }
        return false
    }

    func podDeleted(_ pod: Pod) {
        let key = PodInfo.key(of: pod)
        pending.withLock { $0[key] = nil }
        guarded.withLock { $0.placements.unplace(key, in: &$0.state) }
    }

    /// Places `pod` on `node` before the binding is written, with its volume reservations.
    /// Fails (nil) when the node no longer fits it in the current state.
    func assume(_ pod: PendingPod, on node: String) -> VolumePlan? {
        guarded.withLock { guarded in
            guard let plan = Algorithm.recheck(pod, node: node, guarded.state) else { return nil }
            var info = pod.info
            info.nodeName = node
            guarded.placements.place(info, in: &guarded.state)
            guarded.placements.assumed.insert(info.key)
            for (claim, volume) in plan.staticBindings {
                guarded.state.reserve(VolumeReservation(claimKey: claim, volume: volume, node: node, podKey: info.key))
            }
            for claim in plan.provisions {
                guarded.state.reserve(VolumeReservation(claimKey: claim, volume: nil, node: node, podKey: info.key))
            }
            return plan
        }
    }

    /// The binding failed: the pod and its reservations are no longer counted.
    func forget(_ podKey: String) {
        guarded.withLock { guarded in
            if guarded.placements.assumed.contains(podKey) { guarded.placements.unplace(podKey, in: &guarded.state) }
            guarded.state.releaseReservations(of: podKey)
        }
    }

    /// PreBind finished: the claims are bound and the informers show it.
    func releaseReservations(of podKey: String) {
        guarded.withLock { $0.state.releaseReservations(of: podKey) }
    }

    // MARK: Other objects

    func nodeChanged(_ node: Node) { guarded.withLock { $0.state.setNode(node) } }
    func nodeDeleted(_ node: Node) { guarded.withLock { $0.state.removeNode(node.metadata.name ?? "") } }

    func claimChanged(_ claim: PersistentVolumeClaim) {
        guarded.withLock { $0.state.claims[claim.cacheKey] = claim }
        claimChanges.fire(claim.cacheKey)
    }

    func claimDeleted(_ claim: PersistentVolumeClaim) {
        guarded.withLock { $0.state.claims[claim.cacheKey] = nil }
        claimChanges.fire(claim.cacheKey)
    }

    func volumeChanged(_ volume: PersistentVolume) {
        let old = guarded.withLock { guarded -> PersistentVolume? in
            defer { guarded.state.setVolume(volume) }
            return guarded.state.volumes[volume.metadata.name ?? ""]
        }
        for claim in Set([old?.claimKey, volume.claimKey].compactMap { $0 }) { claimChanges.fire(claim) }
    }

    func volumeDeleted(_ volume: PersistentVolume) {
        guarded.withLock { $0.state.removeVolume(volume.metadata.name ?? "") }
        if let claim = volume.claimKey { claimChanges.fire(claim) }
    }

    func classChanged(_ storageClass: StorageClass, deleted: Bool = false) {
        guarded.withLock { $0.state.classes[storageClass.metadata.name ?? ""] = deleted ? nil : storageClass }
    }

    func csiNodeChanged(_ csiNode: CSINode, deleted: Bool = false) {
        guarded.withLock { $0.state.setCSINode(csiNode.metadata.name ?? "", deleted ? nil : csiNode) }
    }

    func attachmentChanged(_ attachment: VolumeAttachment, deleted: Bool = false) {
        let name = attachment.metadata.name ?? ""
        guarded.withLock { guarded in
            if deleted || attachment.status?.attached != true || attachment.spec.source.persistentVolumeName == nil {
                guarded.state.attachments[name] = nil
            } else {
                guarded.state.attachments[name] = (attachment.spec.source.persistentVolumeName!, attachment.spec.nodeName)
            }
        }
    }
}

/// "This claim changed", per claim key ("namespace/name"), that PreBind waits on with a bound:
/// woken by the watch, not by polling, and only for its own claims — one PV or claim event wakes
/// the one binding cycle it concerns, not all of them (with thousands waiting, a broadcast made
/// every event cost as many re-checks).
final class ClaimSignal: Sendable {
    private struct State {
        var generations: [String: UInt64] = [:]
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var byKey: [String: Set<UInt64>] = [:]
        var keysOf: [UInt64: [String]] = [:]
        var nextID: UInt64 = 0

        mutating func remove(_ id: UInt64) -> CheckedContinuation<Void, Never>? {
            for key in keysOf.removeValue(forKey: id) ?? [] {
                byKey[key]?.remove(id)
                if byKey[key]?.isEmpty == true { byKey[key] = nil }
            }
            return waiters.removeValue(forKey: id)
        }
    }
    private let state = Mutex(State())

    /// A number that changes whenever one of `keys` changes.
    func generation(_ keys: [String]) -> UInt64 {
        state.withLock { state in keys.reduce(0) { $0 &+ (state.generations[$1] ?? 0) } }
    }

    func fire(_ key: String) {
        let woken = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.generations[key, default: 0] &+= 1
            return (state.byKey[key] ?? []).compactMap { state.remove($0) }
        }
        for waiter in woken { waiter.resume() }
    }

    /// Returns once one of `keys` changed after `generation` was read, after `timeout`, or on
    /// cancellation.
    func wait(for keys: [String], since generation: UInt64, timeout: Duration) async {
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withTaskCancellationHandler {
                    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                        let resumeNow = self.state.withLock { state -> Bool in
                            let current = keys.reduce(UInt64(0)) { $0 &+ (state.generations[$1] ?? 0) }
                            if current != generation || Task.isCancelled { return true }
                            state.waiters[id] = continuation
                            state.keysOf[id] = keys
                            for key in keys { state.byKey[key, default: []].insert(id) }
                            return false
                        }
                        if resumeNow { continuation.resume() }
                    }
                } onCancel: {
                    self.state.withLock { $0.remove(id) }?.resume()
                }
            }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
    }
}
