// The Deployment controller's strategies (pkg/controller/deployment/rolling.go, recreate.go) and
// its rollout status (progress.go).
//
// Two deliberate differences from upstream, both on the side of the bounds:
//  - scaling the new ReplicaSet up counts, for every ReplicaSet, the most of its spec, its status
//    and the active pods seen (`Pass.existingPods`), where upstream counts spec.replicas only: an
//    old ReplicaSet just scaled down still has its pods until its controller has removed them,
//    and upstream may create their replacements meanwhile, briefly exceeding maxSurge;
//  - scaling old ReplicaSets down counts at most spec.replicas available pods per ReplicaSet,
//    where upstream trusts status.availableReplicas, which still counts the pods of a
//    ReplicaSet just scaled down: a second scale-down in that window could go below
//    replicas − maxUnavailable.
import APIClient
import ClusterAPI

extension DeploymentController {
    // MARK: RollingUpdate

    /// `rolloutRolling`: the new ReplicaSet up if it may, else the old ones down if they may;
    /// once complete, old ReplicaSets beyond the history limit go.
    func rolloutRolling(_ d: inout Deployment, _ pass: Pass) async throws -> SyncResult {
        let (made, old) = try await newAndOld(&d, pass, create: true)
        guard let new = made else { throw WorkloadError("no new replica set for deployment \(d.namespacedName)") }
        if try await reconcileNew(d, new: new, pass) {
            return try await syncRolloutStatus(&d, pass, new: pass.current(new))
        }
        if try await reconcileOld(d, old: Util.active(old.map(pass.current)), new: pass.current(new), pass) {
            return try await syncRolloutStatus(&d, pass, new: pass.current(new))
        }
        if Util.isComplete(d, d.status) { try await cleanup(old.map(pass.current), d) }
        return try await syncRolloutStatus(&d, pass, new: pass.current(new))
    }

    /// `reconcileNewReplicaSet`: down to the replicas when above, else up within maxSurge.
    func reconcileNew(_ d: Deployment, new: ReplicaSet, _ pass: Pass) async throws -> Bool {
        let replicas = Util.replicas(d), current = Util.specReplicas(new)
        if current == replicas { return false }
        if current > replicas { return try await scale(new, to: replicas, d, pass) }
        let size = Util.newReplicaSetReplicas(d, all: pass.sets, new: new, existing: pass.existingPods)
        return try await scale(new, to: size, d, pass)
    }

    /// Available pods of `rs` for scaling down: never more than it wants.
    private static func availableForScaleDown(_ rs: ReplicaSet) -> Int32 {
        min(rs.status.availableReplicas ?? 0, Util.specReplicas(rs))
    }

    /// `reconcileOldReplicaSets`: as far as maxUnavailable allows, first the old pods that are
    /// not available, then available ones, oldest ReplicaSet first.
    func reconcileOld(_ d: Deployment, old: [ReplicaSet], new: ReplicaSet, _ pass: Pass) async throws -> Bool {
        if Util.replicaCount(old) == 0 { return false }
        let all = Util.replicaCount(pass.sets)
        let minAvailable = Util.replicas(d) - Util.maxUnavailable(d)
        let newUnavailable = Util.specReplicas(new) - Self.availableForScaleDown(new)
        let maxScaledDown = all - minAvailable - newUnavailable
        if maxScaledDown <= 0 { return false }
        let cleaned = try await cleanupUnhealthy(d, old: old, max: maxScaledDown, pass)
        let scaled = try await scaleDownOld(d, old: old.map(pass.current), pass)
        return cleaned + scaled > 0
    }

    /// `cleanupUnhealthyReplicas`: the unavailable part of each old ReplicaSet, oldest first,
    /// at most `max` in all.
    private func cleanupUnhealthy(_ d: Deployment, old: [ReplicaSet], max limit: Int32, _ pass: Pass) async throws -> Int32 {
        var total: Int32 = 0
        for rs in Util.sortedByCreation(old) {
            if total >= limit { break }
            let replicas = Util.specReplicas(rs), available = Self.availableForScaleDown(rs)
            if replicas == 0 || replicas == available { continue }
            let count = min(limit - total, replicas - available)
            try await scale(rs, to: replicas - count, d, pass)
            total += count
        }
        return total
    }

    /// `scaleDownOldReplicaSetsForRollingUpdate`: as many available old pods as stay above
    /// replicas − maxUnavailable, oldest ReplicaSet first.
    private func scaleDownOld(_ d: Deployment, old: [ReplicaSet], _ pass: Pass) async throws -> Int32 {
        let minAvailable = Util.replicas(d) - Util.maxUnavailable(d)
        let available = pass.sets.reduce(Int32(0)) { $0 + Self.availableForScaleDown($1) }
        if available <= minAvailable { return 0 }
        let target = available - minAvailable
        var total: Int32 = 0
        for rs in Util.sortedByCreation(old) {
            if total >= target { break }
            let replicas = Util.specReplicas(rs)
            if replicas == 0 { continue }
            let count = min(replicas, target - total)
            try await scale(rs, to: replicas - count, d, pass)
            total += count
        }
        return total
    }

    // MARK: Recreate

    /// `rolloutRecreate`: every old ReplicaSet to 0; once none of their pods is left (a
    /// terminating pod still counts), the new ReplicaSet — made only then — to the replicas.
    func rolloutRecreate(_ d: inout Deployment, _ pass: Pass) async throws -> SyncResult {
        var (new, old) = try await newAndOld(&d, pass, create: false)
        var scaledDown = false
        for rs in Util.active(old) where try await scale(rs, to: 0, d, pass) { scaledDown = true }
        if scaledDown { return try await syncRolloutStatus(&d, pass, new: new.map(pass.current)) }
        if Self.oldPodsRunning(new: new, old: old.map(pass.current), pass: pass) {
            return try await syncRolloutStatus(&d, pass, new: new.map(pass.current))
        }
        if new == nil { (new, old) = try await newAndOld(&d, pass, create: true) }
        guard let made = new else { throw WorkloadError("no new replica set for deployment \(d.namespacedName)") }
        try await scale(pass.current(made), to: Util.replicas(d), d, pass)
        if Util.isComplete(d, d.status) { try await cleanup(old.map(pass.current), d) }
        return try await syncRolloutStatus(&d, pass, new: pass.current(made))
    }

    /// `oldPodsRunning`: an old ReplicaSet still counts pods, or a pod of one is neither
    /// Succeeded nor Failed.
    static func oldPodsRunning(new: ReplicaSet?, old: [ReplicaSet], pass: Pass) -> Bool {
        if Util.actualReplicaCount(old) > 0 { return true }
        for (uid, pods) in pass.pods where uid != new?.metadata.uid {
            if pods.contains(where: { $0.status.phase != "Failed" && $0.status.phase != "Succeeded" }) { return true }
        }
        return false
    }

    // MARK: Progress

    /// `syncRolloutStatus`: the status, and the Progressing condition — NewReplicaSetAvailable
    /// once complete, ReplicaSetUpdated on any progress, ProgressDeadlineExceeded after
    /// progressDeadlineSeconds without — and the ReplicaSets' ReplicaFailure. When nothing
    /// changed, comes back when the deadline would pass.
    func syncRolloutStatus(_ d: inout Deployment, _ pass: Pass, new: ReplicaSet?) async throws -> SyncResult {
        let now = Time.now()
        var status = Self.calculateStatus(d, all: pass.sets, new: new, now: now)
        if !Util.hasProgressDeadline(d) { Util.removeCondition(&status, "Progressing") }
        let current = Util.condition(d.status, "Progressing")
        let completeBefore = status.replicas == status.updatedReplicas && current?.reason == DeploymentReason.newReplicaSetAvailable
        if Util.hasProgressDeadline(d) && !completeBefore {
            let name = d.metadata.name ?? ""
            if Util.isComplete(d, status) {
                let message = new.map { "ReplicaSet \"\($0.metadata.name ?? "")\" has successfully progressed." }
                    ?? "Deployment \"\(name)\" has successfully progressed."
                Util.setCondition(&status, Util.newCondition("Progressing", "True", DeploymentReason.newReplicaSetAvailable, message, now: now))
            } else if Util.isProgressing(d, status) {
                let message = new.map { "ReplicaSet \"\($0.metadata.name ?? "")\" is progressing." } ?? "Deployment \"\(name)\" is progressing."
                var condition = Util.newCondition("Progressing", "True", DeploymentReason.replicaSetUpdated, message, now: now)
                // Progress refreshes lastUpdateTime even when the reason stays.
                if let current {
                    if current.status == "True" { condition.lastTransitionTime = current.lastTransitionTime }
                    Util.removeCondition(&status, "Progressing")
                }
                Util.setCondition(&status, condition)
            } else if Util.hasTimedOut(d, status, now: now) {
                let message = new.map { "ReplicaSet \"\($0.metadata.name ?? "")\" has timed out progressing." }
                    ?? "Deployment \"\(name)\" has timed out progressing."
                Util.setCondition(&status, Util.newCondition("Progressing", "False", DeploymentReason.progressDeadlineExceeded, message, now: now))
            }
        }
        if let failure = Self.replicaFailure(pass.sets, new: new) {
            Util.setCondition(&status, failure)
        } else {
            Util.removeCondition(&status, "ReplicaFailure")
        }
        if status == d.status { return requeueForDeadline(d, status, now: now) }
        d.status = status
        d = try await writeStatus(d)
        return .done
    }

    /// The new ReplicaSet's ReplicaFailure condition, else any other's (`getReplicaFailures`).
    static func replicaFailure(_ sets: [ReplicaSet], new: ReplicaSet?) -> DeploymentCondition? {
        let ordered = (new.map { [$0] } ?? []) + sets
        for rs in ordered {
            if let c = rs.status.conditions?.first(where: { $0.type == "ReplicaFailure" }) {
                return DeploymentCondition(type: "ReplicaFailure", status: c.status, lastUpdateTime: c.lastTransitionTime,
                                           lastTransitionTime: c.lastTransitionTime, reason: c.reason, message: c.message)
            }
        }
        return nil
    }

    /// `requeueStuckDeployment`: a rollout without progress is looked at again when its
    /// deadline passes (a second after), or soon with back-off when it is about to.
    func requeueForDeadline(_ d: Deployment, _ status: DeploymentStatus, now: Time) -> SyncResult {
        guard Util.hasProgressDeadline(d), let current = Util.condition(d.status, "Progressing") else { return .done }
        if Util.isComplete(d, status) || current.reason == DeploymentReason.progressDeadlineExceeded { return .done }
        let last = current.lastUpdateTime ?? now
        let after = last.secondsSinceEpoch + Int64(d.spec.progressDeadlineSeconds ?? 600) - now.secondsSinceEpoch
        if after < 1 { return .retry }
        return .requeue(after: .seconds(after + 1))
    }
}
