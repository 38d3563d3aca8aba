// The arithmetic of Kubernetes' deployment controller (pkg/controller/deployment/util), pure
// functions over Deployments and ReplicaSets, tested alone.
//
// Rolling update bounds, for `replicas` R (percentages of R; surge rounded up, unavailable down;
// both 0 makes unavailable 1):
//
//     pods (all ReplicaSets)      ≤ R + maxSurge
//     available pods               ≥ R − maxUnavailable
//
// e.g. R = 10, maxSurge 25%, maxUnavailable 25%: surge ⌈2.5⌉ = 3, unavailable ⌊2.5⌋ = 2 —
// at most 13 pods, at least 8 available.
import ClusterAPI
import Foundation

enum DeploymentUtil {
    // MARK: Strategy

    static func isRollingUpdate(_ d: Deployment) -> Bool { d.spec.strategy?.type == "RollingUpdate" }

    static func replicas(_ d: Deployment) -> Int32 { d.spec.replicas ?? 1 }

    /// `ResolveFenceposts`: the absolute surge (rounded up) and unavailability (rounded down);
    /// when both come out 0 the unavailability is 1, so that a rollout can make progress.
    static func resolveFenceposts(surge: IntOrString?, unavailable: IntOrString?, desired: Int32) -> (surge: Int32, unavailable: Int32) {
        let surgeValue = Int32(clamping: (surge ?? .int(0)).scaled(total: Int(desired), roundUp: true) ?? 0)
        var unavailableValue = Int32(clamping: (unavailable ?? .int(0)).scaled(total: Int(desired), roundUp: false) ?? 0)
        if surgeValue == 0 && unavailableValue == 0 { unavailableValue = 1 }
        return (surgeValue, unavailableValue)
    }

    /// `MaxSurge`: 0 for Recreate.
    static func maxSurge(_ d: Deployment) -> Int32 {
        guard isRollingUpdate(d) else { return 0 }
        let rolling = d.spec.strategy?.rollingUpdate
        return resolveFenceposts(surge: rolling?.maxSurge, unavailable: rolling?.maxUnavailable, desired: replicas(d)).surge
    }

    /// `MaxUnavailable`: 0 for Recreate or no replicas, never more than the replicas.
    static func maxUnavailable(_ d: Deployment) -> Int32 {
        guard isRollingUpdate(d), replicas(d) > 0 else { return 0 }
        let rolling = d.spec.strategy?.rollingUpdate
        let unavailable = resolveFenceposts(surge: rolling?.maxSurge, unavailable: rolling?.maxUnavailable, desired: replicas(d)).unavailable
        return min(unavailable, replicas(d))
    }

    // MARK: Counting ReplicaSets

    static func specReplicas(_ rs: ReplicaSet) -> Int32 { rs.spec.replicas ?? 1 }

    static func active(_ sets: [ReplicaSet]) -> [ReplicaSet] { sets.filter { specReplicas($0) > 0 } }

    static func replicaCount(_ sets: [ReplicaSet]) -> Int32 { sets.reduce(0) { $0 + specReplicas($1) } }
    static func actualReplicaCount(_ sets: [ReplicaSet]) -> Int32 { sets.reduce(0) { $0 + $1.status.replicas } }
    static func readyReplicaCount(_ sets: [ReplicaSet]) -> Int32 { sets.reduce(0) { $0 + ($1.status.readyReplicas ?? 0) } }
    static func availableReplicaCount(_ sets: [ReplicaSet]) -> Int32 { sets.reduce(0) { $0 + ($1.status.availableReplicas ?? 0) } }

    /// `NewRSNewReplicas`: how far the new ReplicaSet may grow now. RollingUpdate: up to the
    /// replicas, without the pods of all ReplicaSets exceeding replicas + maxSurge; Recreate:
    /// the replicas. `existing` gives, per ReplicaSet, the pods counted against the surge.
    static func newReplicaSetReplicas(_ d: Deployment, all: [ReplicaSet], new: ReplicaSet,
                                      existing: (ReplicaSet) -> Int32 = specReplicas) -> Int32 {
        let desired = replicas(d)
        guard isRollingUpdate(d) else { return desired }
        let surge = Int32(clamping: (d.spec.strategy?.rollingUpdate?.maxSurge ?? .int(0)).scaled(total: Int(desired), roundUp: true) ?? 0)
        let current = all.reduce(0) { $0 + existing($1) }
        let maxTotal = desired + surge
        let newReplicas = specReplicas(new)
        if current >= maxTotal { return newReplicas }
        return newReplicas + min(maxTotal - current, desired - newReplicas)
    }

    /// `IsSaturated`: the new ReplicaSet has, wants and has available all the replicas.
    static func isSaturated(_ d: Deployment, _ rs: ReplicaSet?) -> Bool {
        guard let rs, let desired = annotatedInt(rs, DeploymentAnnotation.desiredReplicas) else { return false }
        return specReplicas(rs) == replicas(d) && desired == replicas(d) && (rs.status.availableReplicas ?? 0) == replicas(d)
    }

    /// `FindActiveOrLatest`: the only active ReplicaSet, the newest when none is active, nil
    /// when several are.
    static func activeOrLatest(new: ReplicaSet?, old: [ReplicaSet]) -> ReplicaSet? {
        let all = active(old + (new.map { [$0] } ?? []))
        switch all.count {
        case 0: return new ?? sortedByCreation(old).last
        case 1: return all[0]
        default: return nil
        }
    }

    // MARK: Proportional scaling

    /// `GetProportion`: this ReplicaSet's share of `toAdd` (negative: to remove), never more
    /// than what is left after `added`.
    static func proportion(_ rs: ReplicaSet, _ d: Deployment, toAdd: Int32, added: Int32) -> Int32 {
        guard specReplicas(rs) != 0, toAdd != 0, toAdd != added else { return 0 }
        let fraction = replicaSetFraction(rs, d)
        let allowed = toAdd - added
        return toAdd > 0 ? min(fraction, allowed) : max(fraction, allowed)
    }

    /// `getReplicaSetFraction`: its size scaled by (replicas + surge) over the max-replicas it
    /// was annotated with, rounded half away from zero, minus its size.
    static func replicaSetFraction(_ rs: ReplicaSet, _ d: Deployment) -> Int32 {
        if replicas(d) == 0 { return -specReplicas(rs) }
        let maxReplicas = replicas(d) + maxSurge(d)
        var before = annotatedInt(rs, DeploymentAnnotation.maxReplicas) ?? 0
        if before == 0 {
            before = d.status.replicas ?? 0
            if before == 0 { return 0 }
        }
        let size = Double(specReplicas(rs)) * Double(maxReplicas) / Double(before)
        return Int32(size.rounded(.toNearestOrAwayFromZero)) - specReplicas(rs)
    }

    // MARK: Annotations

    static func annotatedInt(_ rs: ReplicaSet, _ name: String) -> Int32? {
        rs.metadata.annotations?[name].flatMap { Int32($0) }
    }

    /// The revision annotation as a number (0 when absent, nil when not a number).
    static func revision(_ rs: ReplicaSet) -> Int64? {
        guard let text = rs.metadata.annotations?[DeploymentAnnotation.revision] else { return 0 }
        return Int64(text)
    }

    static func maxRevision(_ sets: [ReplicaSet]) -> Int64 { sets.compactMap(revision).max() ?? 0 }

    /// `SetReplicasAnnotations`; whether anything changed.
    @discardableResult
    static func setReplicasAnnotations(_ rs: inout ReplicaSet, desired: Int32, max: Int32) -> Bool {
        var annotations = rs.metadata.annotations ?? [:]
        let before = annotations
        annotations[DeploymentAnnotation.desiredReplicas] = String(desired)
        annotations[DeploymentAnnotation.maxReplicas] = String(max)
        rs.metadata.annotations = annotations
        return annotations != before
    }

    static func replicasAnnotationsNeedUpdate(_ rs: ReplicaSet, desired: Int32, max: Int32) -> Bool {
        rs.metadata.annotations?[DeploymentAnnotation.desiredReplicas] != String(desired)
            || rs.metadata.annotations?[DeploymentAnnotation.maxReplicas] != String(max)
    }

    /// `SetNewReplicaSetAnnotations`: the Deployment's annotations copied (but its own), the
    /// revision raised to `newRevision` (the revision it replaces kept in revision-history, at
    /// most `historyLimit` characters), and for a ReplicaSet about to be made the replica
    /// annotations. Whether anything changed.
    static func setNewReplicaSetAnnotations(_ d: Deployment, _ rs: inout ReplicaSet, newRevision: Int64, exists: Bool,
                                            historyLimit: Int = 2000) -> Bool {
        var annotations = rs.metadata.annotations ?? [:]
        var changed = false
        for (key, value) in d.metadata.annotations ?? [:] where !DeploymentAnnotation.notCopied.contains(key) && annotations[key] != value {
            annotations[key] = value
            changed = true
        }
        let oldText = annotations[DeploymentAnnotation.revision]
        let oldRevision: Int64
        if let oldText {
            guard let parsed = Int64(oldText) else {
                rs.metadata.annotations = annotations
                return false
            }
            oldRevision = parsed
        } else {
            oldRevision = 0
        }
        if oldRevision < newRevision {
            annotations[DeploymentAnnotation.revision] = String(newRevision)
            changed = true
            if let oldText {
                // Rolled back to this ReplicaSet: keep the revisions it had.
                let history = annotations[DeploymentAnnotation.revisionHistory] ?? ""
                if history.isEmpty {
                    annotations[DeploymentAnnotation.revisionHistory] = oldText
                } else {
                    var revisions = history.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
                    var total = history.count + oldText.count + 1
                    var start = 0
                    while total > historyLimit && start < revisions.count {
                        total -= revisions[start].count + 1
                        start += 1
                    }
                    if total <= historyLimit {
                        revisions = Array(revisions[start...]) + [oldText]
                        annotations[DeploymentAnnotation.revisionHistory] = revisions.joined(separator: ",")
                    }
                }
            }
        }
        rs.metadata.annotations = annotations
        if !exists {
            let desired = replicas(d)
            if setReplicasAnnotations(&rs, desired: desired, max: desired + maxSurge(d)) { changed = true }
        }
        return changed
    }

    /// `SetDeploymentRevision`; whether it changed.
    static func setDeploymentRevision(_ d: inout Deployment, _ revision: String) -> Bool {
        if d.metadata.annotations?[DeploymentAnnotation.revision] == revision { return false }
        var annotations = d.metadata.annotations ?? [:]
        annotations[DeploymentAnnotation.revision] = revision
        d.metadata.annotations = annotations
        return true
    }

    // MARK: Templates

    /// `EqualIgnoreHash`: the templates are the same but for the pod-template-hash label
    /// (absent and empty maps and lists count as equal, as in apimachinery's semantic equality).
    static func equalIgnoringHash(_ a: PodTemplateSpec, _ b: PodTemplateSpec) -> Bool {
        semantic(withoutHash(a)) == semantic(withoutHash(b))
    }

    static func withoutHash(_ template: PodTemplateSpec) -> PodTemplateSpec {
        var copy = template
        copy.metadata.labels?[DeploymentAnnotation.podTemplateHashLabel] = nil
        return copy
    }

    /// The template as JSON without nulls and empty objects and arrays.
    static func semantic(_ template: PodTemplateSpec) -> JSONValue {
        func prune(_ value: JSONValue) -> JSONValue? {
            switch value {
            case .null: return nil
            case .array(let items):
                let kept = items.map { prune($0) ?? .null }
                return kept.isEmpty ? nil : .array(kept)
            case .object(let members):
                var kept: [String: JSONValue] = [:]
                for (key, member) in members { if let pruned = prune(member) { kept[key] = pruned } }
                return kept.isEmpty ? nil : .object(kept)
            default: return value
            }
        }
        let encoded = (try? JSONValueEncoder().encode(template)) ?? .null
        return prune(encoded) ?? .object([:])
    }

    /// `ComputeHash` in spirit: FNV-1a (32 bits) of the template's canonical JSON (sorted keys),
    /// then of `collisionCount` (4 bytes, little-endian) when set, written as its decimal digits
    /// mapped onto "bcdfghjklmnpqrstvwxz2456789" (`rand.SafeEncodeString`: no vowels, no 0, 1, 3).
    /// Stable for a template; a new `collisionCount` gives another name when two templates collide.
    static func podTemplateHash(_ template: PodTemplateSpec, collisionCount: Int32?) -> String {
        var hash: UInt32 = 2_166_136_261
        func add<S: Sequence<UInt8>>(_ bytes: S) {
            for byte in bytes {
                hash ^= UInt32(byte)
                hash = hash &* 16_777_619
            }
        }
        add(((try? JSONValueEncoder().encode(template)) ?? .null).jsonData)
        if let collisionCount {
            let value = UInt32(bitPattern: collisionCount)
            add([UInt8(value & 0xff), UInt8((value >> 8) & 0xff), UInt8((value >> 16) & 0xff), UInt8(value >> 24)])
        }
        let alphabet = Array("bcdfghjklmnpqrstvwxz2456789")
        return String(String(hash).utf8.map { alphabet[Int($0) % alphabet.count] })
    }

    // MARK: Finding ReplicaSets

    /// Oldest first; ties by name (`ReplicaSetsByCreationTimestamp`).
    static func sortedByCreation(_ sets: [ReplicaSet]) -> [ReplicaSet] {
        sets.sorted { a, b in
            let x = a.metadata.creationTimestamp ?? .minimum, y = b.metadata.creationTimestamp ?? .minimum
            return x != y ? x < y : (a.metadata.name ?? "") < (b.metadata.name ?? "")
        }
    }

    /// Lowest revision first; ties by creation (`ReplicaSetsByRevision`).
    static func sortedByRevision(_ sets: [ReplicaSet]) -> [ReplicaSet] {
        let byCreation = sortedByCreation(sets)
        let order = Dictionary(uniqueKeysWithValues: byCreation.enumerated().map { ($1.metadata.uid ?? "\($0)", $0) })
        return sets.sorted { a, b in
            let x = revision(a) ?? 0, y = revision(b) ?? 0
            if x != y { return x < y }
            return order[a.metadata.uid ?? ""] ?? 0 < order[b.metadata.uid ?? ""] ?? 0
        }
    }

    /// Larger first; among equal sizes the older (`ReplicaSetsBySizeOlder`, for scaling down)
    /// or the newer (`ReplicaSetsBySizeNewer`, for scaling up) first.
    static func sortedBySize(_ sets: [ReplicaSet], newerFirst: Bool) -> [ReplicaSet] {
        let byCreation = sortedByCreation(sets)
        let rank = Dictionary(uniqueKeysWithValues: byCreation.enumerated().map { ($1.metadata.uid ?? "\($0)", $0) })
        return sets.sorted { a, b in
            let x = specReplicas(a), y = specReplicas(b)
            if x != y { return x > y }
            let ra = rank[a.metadata.uid ?? ""] ?? 0, rb = rank[b.metadata.uid ?? ""] ?? 0
            return newerFirst ? ra > rb : ra < rb
        }
    }

    /// `FindNewReplicaSet`: the oldest ReplicaSet whose template is the Deployment's.
    static func findNew(_ d: Deployment, _ sets: [ReplicaSet]) -> ReplicaSet? {
        sortedByCreation(sets).first { equalIgnoringHash($0.spec.template ?? PodTemplateSpec(), d.spec.template) }
    }

    /// `FindOldReplicaSets`: every other ReplicaSet.
    static func findOld(_ d: Deployment, _ sets: [ReplicaSet]) -> [ReplicaSet] {
        let new = findNew(d, sets)
        return sets.filter { $0.metadata.uid != new?.metadata.uid }
    }

    // MARK: Progress

    static func hasProgressDeadline(_ d: Deployment) -> Bool {
        guard let deadline = d.spec.progressDeadlineSeconds else { return false }
        return deadline != Int32.max
    }

    /// `DeploymentComplete`: every replica updated, available, no old one left, generation observed.
    static func isComplete(_ d: Deployment, _ status: DeploymentStatus) -> Bool {
        let desired = replicas(d)
        return (status.updatedReplicas ?? 0) == desired && (status.replicas ?? 0) == desired
            && (status.availableReplicas ?? 0) == desired && (status.observedGeneration ?? 0) >= (d.metadata.generation ?? 0)
    }

    /// `DeploymentProgressing`: more updated, ready or available pods, or fewer old ones, than
    /// the stored status says.
    static func isProgressing(_ d: Deployment, _ status: DeploymentStatus) -> Bool {
        let old = d.status
        let oldOld = (old.replicas ?? 0) - (old.updatedReplicas ?? 0)
        let newOld = (status.replicas ?? 0) - (status.updatedReplicas ?? 0)
        return (status.updatedReplicas ?? 0) > (old.updatedReplicas ?? 0) || newOld < oldOld
            || (status.readyReplicas ?? 0) > (old.readyReplicas ?? 0) || (status.availableReplicas ?? 0) > (old.availableReplicas ?? 0)
    }

    /// `DeploymentTimedOut`: the Progressing condition was last updated longer than the
    /// deadline ago (or already says so).
    static func hasTimedOut(_ d: Deployment, _ status: DeploymentStatus, now: Time) -> Bool {
        guard hasProgressDeadline(d), let condition = condition(status, "Progressing") else { return false }
        if condition.reason == DeploymentReason.newReplicaSetAvailable { return false }
        if condition.reason == DeploymentReason.progressDeadlineExceeded { return true }
        guard let from = condition.lastUpdateTime else { return false }
        return from.adding(seconds: Int64(d.spec.progressDeadlineSeconds ?? 600)) < now
    }

    // MARK: Conditions

    static func condition(_ status: DeploymentStatus, _ type: String) -> DeploymentCondition? {
        status.conditions?.first { $0.type == type }
    }

    static func newCondition(_ type: String, _ status: String, _ reason: String, _ message: String, now: Time) -> DeploymentCondition {
        DeploymentCondition(type: type, status: status, lastUpdateTime: now, lastTransitionTime: now, reason: reason, message: message)
    }

    /// `SetDeploymentCondition`: nothing when the same status and reason are there already; the
    /// transition time kept when only the reason changes.
    static func setCondition(_ status: inout DeploymentStatus, _ condition: DeploymentCondition) {
        var condition = condition
        if let current = self.condition(status, condition.type ?? "") {
            if current.status == condition.status && current.reason == condition.reason { return }
            if current.status == condition.status { condition.lastTransitionTime = current.lastTransitionTime }
        }
        status.conditions = (status.conditions ?? []).filter { $0.type != condition.type } + [condition]
    }

    static func removeCondition(_ status: inout DeploymentStatus, _ type: String) {
        guard status.conditions != nil else { return }
        status.conditions = status.conditions?.filter { $0.type != type }
        if status.conditions?.isEmpty == true { status.conditions = nil }
    }
}
