// One scheduling decision over a state copy: PreFilter (VolumeRestrictions, VolumeBinding),
// Filter on every node (the plugins in upstream's order; a node stops at its first failing
// plugin), Score the feasible nodes, pick the best with a seeded tie-break. No I/O, no awaits:
// tested alone and run in parallel by the workers on their own copies.
import ClusterAPI

/// Why no node fits: upstream's `FitError`, printed as `0/N nodes are available: …`.
struct FitError: Sendable, Equatable {
    var nodeCount: Int
    /// A PreFilter's rejection (the same for every node: printed alone).
    var preFilterMessage: String?
    /// The reasons each node failed with.
    var nodeReasons: [String: [String]] = [:]
    /// The PreFilter rejected the pod only because its claim or class is not in the caches.
    var waitingForObject = false

    /// "0/3 nodes are available: 1 node(s) had volume node affinity conflict, 2 node(s) exceed max
    /// volume count." — each reason with the number of nodes that gave it, sorted as strings.
    var message: String {
        var text = "0/\(nodeCount) nodes are available:"
        if let preFilterMessage {
            text += " \(preFilterMessage)."
        } else {
            var counts: [String: Int] = [:]
            for reasons in nodeReasons.values { for reason in reasons { counts[reason, default: 0] += 1 } }
            let parts = counts.map { "\($0.value) \($0.key)" }.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
            if !parts.isEmpty { text += " " + parts.joined(separator: ", ") + "." }
        }
        return text
    }
}

enum Decision: Sendable {
    case node(String, VolumePlan)
    case unschedulable(FitError)
}

/// The weights of the scores summed per node.
struct ScoreWeights: Sendable {
    var leastAllocated = 1
    var nodeAffinity = 2
    /// Prefer the node a ReadWriteOnce volume of the pod is attached to (kubernetes#103305).
    var volumeAttached = 10
}

enum Algorithm {
    static func decide(_ pod: PendingPod, _ state: ClusterState, weights: ScoreWeights = ScoreWeights(),
                       percentageOfNodesToScore: Int = 0, random: (Int) -> Int) -> Decision {
        let names = state.nodeNames
        if let message = VolumeFilters.restrictionsPreFilter(pod, state) {
            return .unschedulable(FitError(nodeCount: names.count, preFilterMessage: message))
        }
        let volumes: PodVolumes
        switch VolumeFilters.bindingPreFilter(pod, state) {
        case .reject(let message, let missing):
            return .unschedulable(FitError(nodeCount: names.count, preFilterMessage: message, waitingForObject: missing))
        case .ok(let found): volumes = found
        }
        var feasible: [(name: String, info: NodeInfo, plan: VolumePlan)] = []
        var failures: [String: [String]] = [:]
        // As upstream, stop once enough feasible nodes are found (percentageOfNodesToScore's
        // adaptive default), starting at a random node so that every node gets its turn.
        let wanted = feasibleNodesToFind(names.count, percentage: percentageOfNodesToScore)
        let start = names.isEmpty ? 0 : random(names.count)
        for offset in names.indices {
            if feasible.count >= wanted { break }
            let name = names[(start + offset) % names.count]
            let info = state.nodes[name]!
            switch filter(pod, volumes, info, state) {
            case .success(let plan): feasible.append((name, info, plan))
            case .failure(let reasons): failures[name] = reasons.reasons
            }
        }
        guard !feasible.isEmpty else { return .unschedulable(FitError(nodeCount: names.count, nodeReasons: failures)) }
        if feasible.count == 1 { return .node(feasible[0].name, feasible[0].plan) }
        // Scored on the NodeInfos the filters read: looking each up again by name was a third
        // of the lookups of a cycle (`bench scheduler` profile).
        let scores = score(pod, volumes, feasible.map { ($0.name, $0.info) }, state, weights)
        let best = scores.max()!
        let top = feasible.indices.filter { scores[$0] == best }
        let pick = top[top.count == 1 ? 0 : random(top.count)]
        return .node(feasible[pick].name, feasible[pick].plan)
    }

    /// kube-scheduler's `numFeasibleNodesToFind`: every node below 100 or at 100%; otherwise
    /// `percentage` of them (0: adaptive, 50% less 1% per 125 nodes, at least 5%), and never
    /// fewer than 100.
    static func feasibleNodesToFind(_ count: Int, percentage configured: Int = 0) -> Int {
        if count < 100 || configured >= 100 { return count }
        let percentage = configured > 0 ? configured : max(50 - count / 125, 5)
        return max(count * percentage / 100, 100)
    }

    struct Reasons: Error { var reasons: [String] }

    /// Every filter on one node, in upstream's order.
    static func filter(_ pod: PendingPod, _ volumes: PodVolumes, _ info: NodeInfo, _ state: ClusterState) -> Result<VolumePlan, Reasons> {
        guard let record = info.record else { return .failure(Reasons(reasons: ["node(s) not found"])) }
        // One after the other, stopping at the first that fails (no array of plugins per node:
        // this runs for hundreds of nodes per pod). They read the Node's record, never the Node:
        // a copy of it costs more than most filters.
        var reasons = NodeFilters.unschedulable(pod, record)
        if reasons.isEmpty { reasons = NodeFilters.nodeName(pod, record) }
        if reasons.isEmpty { reasons = NodeFilters.taints(pod, record) }
        if reasons.isEmpty { reasons = NodeFilters.affinity(pod, record) }
        if reasons.isEmpty { reasons = NodeFilters.resources(pod, info) }
        if reasons.isEmpty { reasons = NodeFilters.ports(pod, info) }
        if !reasons.isEmpty { return .failure(Reasons(reasons: reasons)) }
        let binding = VolumeFilters.bindingFilter(pod, volumes, record, state)
        if !binding.reasons.isEmpty { return .failure(Reasons(reasons: binding.reasons)) }
        let limits = VolumeFilters.volumeLimits(pod, info, state)
        if !limits.isEmpty { return .failure(Reasons(reasons: limits)) }
        return .success(binding.plan)
    }

    /// Re-runs PreFilter and the filters for `node` against the current state: how an assume
    /// makes sure that what a cycle decided on its copy still holds.
    static func recheck(_ pod: PendingPod, node: String, _ state: ClusterState) -> VolumePlan? {
        if VolumeFilters.restrictionsPreFilter(pod, state) != nil { return nil }
        guard case .ok(let volumes) = VolumeFilters.bindingPreFilter(pod, state), let info = state.nodes[node] else { return nil }
        if case .success(let plan) = filter(pod, volumes, info, state) { return plan }
        return nil
    }

    // MARK: Scores

    static func score(_ pod: PendingPod, _ volumes: PodVolumes, _ nodes: [(name: String, info: NodeInfo)], _ state: ClusterState,
                      _ weights: ScoreWeights) -> [Int] {
        // Preferred node affinity (most pods have none: no node is looked at for it).
        var affinity = pod.preferred.isEmpty ? Array(repeating: 0, count: nodes.count) : nodes.map { node -> Int in
            guard let record = node.info.record else { return 0 }
            return pod.preferred.reduce(0) { $0 + (NodeSelectorMatch.matches($1.preference, record) ? Int($1.weight) : 0) }
        }
        if let top = affinity.max(), top > 0 { affinity = affinity.map { $0 * 100 / top } }
        // ReadWriteOnce volumes of the pod that are attached somewhere.
        let rwo = volumes.bound.compactMap { $0.volume }.filter { volume in
            let modes = volume.spec.accessModes ?? []
            return !modes.contains("ReadWriteMany") && !modes.contains("ReadOnlyMany")
        }.compactMap(\.metadata.name)
        var attachedNodes: [String: Int] = [:]
        if !rwo.isEmpty {
            let wanted = Set(rwo)
            for attachment in state.attachments.values where wanted.contains(attachment.volume) {
                attachedNodes[attachment.node, default: 0] += 1
            }
        }
        return nodes.indices.map { index in
            let least = leastAllocated(pod, nodes[index].info)
            let attached = rwo.isEmpty ? 0 : (attachedNodes[nodes[index].name] ?? 0) * 100 / rwo.count
            return least * weights.leastAllocated + affinity[index] * weights.nodeAffinity + attached * weights.volumeAttached
        }
    }

    /// NodeResourcesFit's LeastAllocated: the free share of CPU and memory after the pod, 0–100.
    static func leastAllocated(_ pod: PendingPod, _ info: NodeInfo) -> Int {
        let allocatable = info.allocatable
        func free(_ capacity: Int64, _ requested: Int64) -> Int64 {
            guard capacity > 0, requested <= capacity else { return 0 }
            return (capacity - requested) * 100 / capacity
        }
        let cpu = free(allocatable.milliCPU, info.nonZeroCPU + pod.info.nonZeroCPU)
        let memory = free(allocatable.memory, info.nonZeroMemory + pod.info.nonZeroMemory)
        return Int((cpu + memory) / 2)
    }
}
