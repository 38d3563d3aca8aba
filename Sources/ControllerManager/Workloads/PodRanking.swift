// What workload controllers read from a pod (pkg/api/v1/pod and pkg/controller/controller_utils.go):
// active, ready, available after minReadySeconds, and the order in which a ReplicaSet scaling down
// gives its pods up (`ActivePodsWithRanks`, with the PodDeletionCost and LogarithmicScaleDown
// features on, as they are by default in Kubernetes 1.32). The first pods of the order go first:
//
//  1. unassigned < assigned                       (no node yet costs nothing to remove)
//  2. Pending < Unknown < Running
//  3. not ready < ready
//  4. lower `controller.kubernetes.io/pod-deletion-cost` < higher
//  5. more pods of the same owner family on its node < fewer (spread what is left)
//  6. ready for less time < longer — compared in powers of two of the age, ties broken by uid
//  7. more container restarts < fewer
//  8. created later < earlier — again in powers of two, ties by uid
import ClusterAPI
import Foundation

extension Pod {
    /// `IsPodActive`: not Succeeded, not Failed, not being deleted.
    var isActive: Bool {
        status.phase != "Succeeded" && status.phase != "Failed" && metadata.deletionTimestamp == nil
    }

    var readyCondition: PodCondition? { status.conditions?.first { $0.type == "Ready" } }

    /// `IsPodReady`: the Ready condition is True.
    var isReady: Bool { readyCondition?.status == "True" }

    /// `IsPodAvailable`: ready, and for at least `minReadySeconds` by the Ready condition's
    /// transition time.
    func isAvailable(minReadySeconds: Int32, now: Time) -> Bool {
        guard isReady else { return false }
        if minReadySeconds <= 0 { return true }
        guard let since = readyCondition?.lastTransitionTime else { return false }
        return since.adding(seconds: Int64(minReadySeconds)) < now
    }

    /// `controller.kubernetes.io/pod-deletion-cost` (0 when absent or not a 32-bit number).
    var deletionCost: Int32 { metadata.annotations?["controller.kubernetes.io/pod-deletion-cost"].flatMap { Int32($0) } ?? 0 }

    /// The highest restart count of its regular containers, and of its restartable (sidecar)
    /// init containers.
    var maxRestarts: (regular: Int64, sidecar: Int64) {
        let regular = (status.containerStatuses ?? []).compactMap { $0["restartCount"]?.int64Value }.max() ?? 0
        let sidecars = Set((spec.initContainers ?? []).filter { $0.restartPolicy == "Always" }.map(\.name))
        let sidecar = (status.initContainerStatuses ?? []).filter { sidecars.contains($0["name"]?.stringValue ?? "") }
            .compactMap { $0["restartCount"]?.int64Value }.max() ?? 0
        return (regular, sidecar)
    }
}

/// Pods with their rank (how many active pods of the owner's family share their node), sorted
/// so that the first ones are the first to delete.
struct RankedPods {
    var pods: [Pod]
    var ranks: [Int]
    var now: Time

    /// Ranks `pods` by the active pods of `related` on the same node (`getPodsRankedByRelatedPodsOnSameNode`).
    init(_ pods: [Pod], related: [Pod], now: Time = .now()) {
        var onNode: [String: Int] = [:]
        for pod in related where pod.isActive { onNode[pod.spec.nodeName ?? "", default: 0] += 1 }
        self.pods = pods
        ranks = pods.map { onNode[$0.spec.nodeName ?? ""] ?? 0 }
        self.now = now
    }

    /// The pods, deletion order first.
    func sorted() -> [Pod] {
        let order = pods.indices.sorted { less($0, $1) }
        return order.map { pods[$0] }
    }

    static let phaseOrdinal: [String: Int] = ["Pending": 0, "Unknown": 1, "Running": 2]

    func less(_ i: Int, _ j: Int) -> Bool {
        let a = pods[i], b = pods[j]
        let nodeA = a.spec.nodeName ?? "", nodeB = b.spec.nodeName ?? ""
        if nodeA != nodeB && (nodeA.isEmpty || nodeB.isEmpty) { return nodeA.isEmpty }
        let phaseA = Self.phaseOrdinal[a.status.phase ?? ""] ?? 0, phaseB = Self.phaseOrdinal[b.status.phase ?? ""] ?? 0
        if phaseA != phaseB { return phaseA < phaseB }
        if a.isReady != b.isReady { return !a.isReady }
        if a.deletionCost != b.deletionCost { return a.deletionCost < b.deletionCost }
        if ranks[i] != ranks[j] { return ranks[i] > ranks[j] }
        if a.isReady && b.isReady {
            let readyA = a.readyCondition?.lastTransitionTime, readyB = b.readyCondition?.lastTransitionTime
            if readyA != readyB { return logarithmicLess(readyA, readyB, a, b) }
        }
        let restartsA = a.maxRestarts, restartsB = b.maxRestarts
        if restartsA.regular != restartsB.regular { return restartsA.regular > restartsB.regular }
        if restartsA.sidecar != restartsB.sidecar { return restartsA.sidecar > restartsB.sidecar }
        let createdA = a.metadata.creationTimestamp, createdB = b.metadata.creationTimestamp
        if createdA != createdB { return logarithmicLess(createdA, createdB, a, b) }
        return false
    }

    /// Newer first, comparing ages in whole powers of two (`logarithmicRankDiff`); a missing
    /// time first; equal ranks by uid.
    private func logarithmicLess(_ x: Time?, _ y: Time?, _ a: Pod, _ b: Pod) -> Bool {
        guard let x, let y else { return x == nil }
        let rank = Self.logRank(x, now) - Self.logRank(y, now)
        if rank == 0 { return (a.metadata.uid ?? "") < (b.metadata.uid ?? "") }
        return rank < 0
    }

    /// ⌊log2(age in nanoseconds)⌋, -1 for a time not in the past.
    static func logRank(_ time: Time, _ now: Time) -> Int {
        let seconds = now.secondsSinceEpoch - time.secondsSinceEpoch
        guard seconds > 0 else { return -1 }
        return Int(log2(Double(seconds) * 1e9))
    }
}
