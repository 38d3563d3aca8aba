// The node-local filters of kube-scheduler's default profile, in its order, each answering the
// reasons a node does not fit with upstream's words (pkg/scheduler/framework/plugins):
// NodeUnschedulable, NodeName, TaintToleration, NodeAffinity (+ nodeSelector),
// NodeResourcesFit, NodePorts. The volume filters follow in VolumeFilters.swift.
import ClusterAPI

enum Reason {
    static let unschedulable = "node(s) were unschedulable"
    static let nodeName = "node(s) didn't match the requested node name"
    static func untoleratedTaint(_ taint: Taint) -> String { "node(s) had untolerated taint {\(taint.key): \(taint.value ?? "")}" }
    static let nodeAffinity = "node(s) didn't match Pod's node affinity/selector"
    static let tooManyPods = "Too many pods"
    static func insufficient(_ resource: String) -> String { "Insufficient \(resource)" }
    static let nodePorts = "node(s) didn't have free ports for the requested pod ports"
    static let readWriteOncePod = "node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode"
    static let unboundImmediate = "pod has unbound immediate PersistentVolumeClaims"
    static let volumeNodeConflict = "node(s) had volume node affinity conflict"
    static let volumeBindConflict = "node(s) didn't find available persistent volumes to bind"
    static let volumeNotExist = "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)"
    static let maxVolumeCount = "node(s) exceed max volume count"
}

enum NodeFilters {
    /// NodeUnschedulable: `spec.unschedulable` unless the pod tolerates
    /// `node.kubernetes.io/unschedulable:NoSchedule`.
    static func unschedulable(_ pod: PendingPod, _ node: NodeRecord) -> [String] {
        guard node.unschedulable else { return [] }
        let taint = Taint(key: SchedulerNames.unschedulableTaint, effect: "NoSchedule")
        return Tolerations.tolerated(taint, by: pod.tolerations) ? [] : [Reason.unschedulable]
    }

    /// NodeName: a pod that names a node fits only there.
    static func nodeName(_ pod: PendingPod, _ node: NodeRecord) -> [String] {
        guard let wanted = pod.wantedNode else { return [] }
        return wanted == node.name ? [] : [Reason.nodeName]
    }

    /// TaintToleration: the first NoSchedule or NoExecute taint the pod does not tolerate.
    static func taints(_ pod: PendingPod, _ node: NodeRecord) -> [String] {
        for taint in node.schedulingTaints {
            if !Tolerations.tolerated(taint, by: pod.tolerations) { return [Reason.untoleratedTaint(taint)] }
        }
        return []
    }

    /// NodeAffinity: `nodeSelector` labels, and the required node affinity terms.
    static func affinity(_ pod: PendingPod, _ node: NodeRecord) -> [String] {
        for (key, value) in pod.nodeSelector where node.labels[key] != value { return [Reason.nodeAffinity] }
        if let required = pod.required, !NodeSelectorMatch.matches(required, node) { return [Reason.nodeAffinity] }
        return []
    }

    /// NodeResourcesFit: the pod's requests against allocatable minus what the node's pods
    /// request; the pod count against `allocatable.pods`. Every shortfall is a reason.
    static func resources(_ pod: PendingPod, _ info: NodeInfo) -> [String] {
        var reasons: [String] = []
        if Int64(info.pods.count) + 1 > info.allowedPodNumber { reasons.append(Reason.tooManyPods) }
        let request = pod.info.requests
        if request.isZero { return reasons }
        let allocatable = info.allocatable
        let requested = info.requested
        if request.milliCPU > 0 && request.milliCPU > allocatable.milliCPU - requested.milliCPU {
            reasons.append(Reason.insufficient("cpu"))
        }
        if request.memory > 0 && request.memory > allocatable.memory - requested.memory {
            reasons.append(Reason.insufficient("memory"))
        }
        if request.ephemeralStorage > 0 && request.ephemeralStorage > allocatable.ephemeralStorage - requested.ephemeralStorage {
            reasons.append(Reason.insufficient("ephemeral-storage"))
        }
        // Extended resources in name order (most pods have none: no sort per node).
        for name in request.scalar.isEmpty ? [] : request.scalar.keys.sorted() {
            let wanted = request.scalar[name]!
            if wanted > 0 && wanted > (allocatable.scalar[name] ?? 0) - (requested.scalar[name] ?? 0) {
                reasons.append(Reason.insufficient(name))
            }
        }
        return reasons
    }

    /// NodePorts: a host port another pod on the node already uses.
    static func ports(_ pod: PendingPod, _ info: NodeInfo) -> [String] {
        guard !pod.info.hostPorts.isEmpty else { return [] }
        for other in info.pods.values where other.key != pod.info.key {
            for used in other.hostPorts where pod.info.hostPorts.contains(where: { $0.conflicts(with: used) }) {
                return [Reason.nodePorts]
            }
        }
        return []
    }
}
