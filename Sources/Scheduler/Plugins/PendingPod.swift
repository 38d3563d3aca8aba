// A pod waiting to be scheduled, with what the filters read parsed once: its tolerations, node
// selector and node affinity. An affinity that cannot be read is a `SchedulingError`, reported
// on the pod (event and condition) rather than crashed on or silently ignored.
import ClusterAPI

/// A failure of a scheduling cycle that is not "no node fits": bad input, an API error.
struct SchedulingError: Error, CustomStringConvertible, Sendable {
    let description: String
    init(_ description: String) { self.description = description }
}

/// `preferredDuringSchedulingIgnoredDuringExecution` entries.
struct PreferredTerm: Sendable, Codable {
    var weight: Int32
    var preference: NodeSelectorTerm
}

struct PendingPod: Sendable {
    let info: PodInfo
    let tolerations: [Toleration]
    let nodeSelector: [String: String]
    /// `affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution`.
    let required: NodeSelector?
    let preferred: [PreferredTerm]
    /// `spec.nodeName` when set (NodeName's filter; a pending pod normally has none).
    let wantedNode: String?

    var pod: Pod { info.pod }

    init(_ pod: Pod) throws(SchedulingError) {
        info = PodInfo(pod)
        wantedNode = pod.spec.nodeName.flatMap { $0.isEmpty ? nil : $0 }
        tolerations = pod.spec.tolerations ?? []
        nodeSelector = pod.spec.nodeSelector ?? [:]
        var required: NodeSelector?
        var preferred: [PreferredTerm] = []
        if let affinity = pod.spec.affinity, let nodeAffinity = affinity["nodeAffinity"], !nodeAffinity.isNull {
            do {
                if let value = nodeAffinity["requiredDuringSchedulingIgnoredDuringExecution"], !value.isNull {
                    required = try value.decode(as: NodeSelector.self)
                }
                if let value = nodeAffinity["preferredDuringSchedulingIgnoredDuringExecution"], !value.isNull {
                    preferred = try value.decode(as: [PreferredTerm].self)
                }
            } catch {
                throw SchedulingError("spec.affinity.nodeAffinity: cannot be read: \(error)")
            }
            for term in required?.nodeSelectorTerms ?? [] { try Self.check(term, "requiredDuringSchedulingIgnoredDuringExecution") }
            for entry in preferred { try Self.check(entry.preference, "preferredDuringSchedulingIgnoredDuringExecution") }
        }
        self.required = required
        self.preferred = preferred
    }

    /// Upstream's `nodeaffinity.NewNodeSelector` checks: known operators, value counts, and
    /// `matchFields` only on `metadata.name`.
    private static func check(_ term: NodeSelectorTerm, _ field: String) throws(SchedulingError) {
        for requirement in term.matchExpressions ?? [] { try check(requirement, field, fields: false) }
        for requirement in term.matchFields ?? [] { try check(requirement, field, fields: true) }
    }

    private static func check(_ requirement: NodeSelectorRequirement, _ field: String, fields: Bool) throws(SchedulingError) {
        let values = requirement.values ?? []
        let path = "spec.affinity.nodeAffinity.\(field)"
        if fields {
            guard requirement.key == "metadata.name" else {
                throw SchedulingError("\(path): matchFields key \"\(requirement.key)\" is not supported; only metadata.name is")
            }
            guard requirement.`operator` == "In" || requirement.`operator` == "NotIn", values.count == 1 else {
                throw SchedulingError("\(path): matchFields on metadata.name takes In or NotIn with exactly one value")
            }
            return
        }
        switch requirement.`operator` {
        case "In", "NotIn":
            if values.isEmpty { throw SchedulingError("\(path): \(requirement.key) \(requirement.`operator`): values must be non-empty") }
        case "Exists", "DoesNotExist":
            if !values.isEmpty { throw SchedulingError("\(path): \(requirement.key) \(requirement.`operator`): values must be empty") }
        case "Gt", "Lt":
            if values.count != 1 || Int64(values[0]) == nil {
                throw SchedulingError("\(path): \(requirement.key) \(requirement.`operator`): needs exactly one integer value")
            }
        default:
            throw SchedulingError("\(path): \"\(requirement.`operator`)\" is not a valid node selector operator (In, NotIn, Exists, DoesNotExist, Gt, Lt)")
        }
    }
}

enum NodeSelectorMatch {
    /// Whether any term matches (an empty term matches nothing, as upstream).
    static func matches(_ selector: NodeSelector, _ node: NodeRecord) -> Bool {
        selector.nodeSelectorTerms.contains { matches($0, node) }
    }

    static func matches(_ term: NodeSelectorTerm, _ node: NodeRecord) -> Bool {
        let expressions = term.matchExpressions ?? []
        let fields = term.matchFields ?? []
        if expressions.isEmpty && fields.isEmpty { return false }
        for requirement in expressions where !matches(requirement, node.labels) { return false }
        for requirement in fields where !matches(requirement, ["metadata.name": node.name]) { return false }
        return true
    }

    static func matches(_ requirement: NodeSelectorRequirement, _ labels: [String: String]) -> Bool {
        let value = labels[requirement.key]
        let values = requirement.values ?? []
        switch requirement.`operator` {
        case "In": return value.map(values.contains) ?? false
        case "NotIn": return value.map { !values.contains($0) } ?? true
        case "Exists": return value != nil
        case "DoesNotExist": return value == nil
        case "Gt", "Lt":
            guard let value, let actual = Int64(value), values.count == 1, let bound = Int64(values[0]) else { return false }
            return requirement.`operator` == "Gt" ? actual > bound : actual < bound
        default: return false
        }
    }

    /// A StorageClass's `allowedTopologies`: any term whose every label requirement matches.
    static func matches(_ topologies: [TopologySelectorTerm], _ node: NodeRecord) -> Bool {
        if topologies.isEmpty { return true }
        let labels = node.labels
        return topologies.contains { term in
            (term.matchLabelExpressions ?? []).allSatisfy { requirement in
                labels[requirement.key].map(requirement.values.contains) ?? false
            }
        }
    }
}

enum Tolerations {
    /// `v1helper.ToleratesTaint`.
    static func tolerates(_ toleration: Toleration, _ taint: Taint) -> Bool {
        if let effect = toleration.effect, !effect.isEmpty, effect != taint.effect { return false }
        if let key = toleration.key, !key.isEmpty, key != taint.key { return false }
        switch toleration.`operator` ?? "Equal" {
        case "Exists": return true
        case "Equal", "": return (toleration.value ?? "") == (taint.value ?? "")
        default: return false
        }
    }

    static func tolerated(_ taint: Taint, by tolerations: [Toleration]) -> Bool {
        tolerations.contains { tolerates($0, taint) }
    }
}
