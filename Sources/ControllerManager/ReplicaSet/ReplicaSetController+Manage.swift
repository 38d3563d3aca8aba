// The writes of the ReplicaSet controller: pods created from the template in slow-start batches,
// surplus pods deleted in the ranked order, and the status.
import APIClient
import ClusterAPI
import Foundation

extension ReplicaSetController {
    /// Creates or deletes the difference between `pods` and `spec.replicas` (`manageReplicas`).
    func manageReplicas(_ pods: [Pod], _ rs: ReplicaSet, key: String) async throws {
        let uid = rs.metadata.uid ?? ""
        let diff = pods.count - Int(rs.spec.replicas ?? 1)
        if diff < 0 {
            let count = min(-diff, burst)
            expectations.expectCreations(key, uid: uid, count: count)
            logger.debug("too few replicas; creating", metadata: ["replicaset": "\(key)", "need": "\(rs.spec.replicas ?? 1)", "creating": "\(count)"])
            let (successes, failure) = await Self.slowStartBatch(count: count, initialBatchSize: 1) { try await self.createPod(rs) }
            // The informer will never show the pods that failed or were not attempted.
            for _ in 0..<(count - successes) { expectations.creationObserved(key, uid: uid) }
            if let failure { throw failure }
        } else if diff > 0 {
            let count = min(diff, burst)
            let related = await relatedPods(rs)
            let victims = Self.podsToDelete(pods, related: related, count: count)
            expectations.expectDeletions(key, uid: uid, pods: victims.map(\.namespacedName))
            logger.debug("too many replicas; deleting", metadata: ["replicaset": "\(key)", "need": "\(rs.spec.replicas ?? 1)", "deleting": "\(count)"])
            let failures = await withTaskGroup(of: (any Error)?.self) { group in
                for pod in victims {
                    group.addTask {
                        do {
                            if try await self.deletePod(pod, of: rs) { return nil }
                            // Already gone: the informer may have shown that before the expectation.
                            self.expectations.deletionObserved(key, uid: uid, pod: pod.namespacedName)
                            return nil
                        } catch {
                            // The informer will not show this deletion.
                            self.expectations.deletionObserved(key, uid: uid, pod: pod.namespacedName)
                            return error
                        }
                    }
                }
                var failures: [any Error] = []
                for await failure in group { if let failure { failures.append(failure) } }
                return failures
            }
            if let first = failures.first { throw first }
        }
    }

    /// Calls `operation` `count` times: batches of 1, 2, 4… run concurrently; a batch with a
    /// failure ends the whole (the rest are never attempted: a quota or a refusal would fail
    /// them all, and their events would flood). Returns the successes and the first failure.
    static func slowStartBatch(count: Int, initialBatchSize: Int,
                               _ operation: @escaping @Sendable () async throws -> Void) async -> (Int, (any Error)?) {
        var remaining = count
        var successes = 0
        var batch = min(remaining, initialBatchSize)
        while batch > 0 {
            let size = batch
            let failures = await withTaskGroup(of: (any Error)?.self) { group in
                for _ in 0..<size {
                    group.addTask {
                        do {
                            try await operation()
                            return nil
                        } catch { return error }
                    }
                }
                var failures: [any Error] = []
                for await failure in group { if let failure { failures.append(failure) } }
                return failures
            }
            successes += size - failures.count
            if let first = failures.first { return (successes, first) }
            remaining -= size
            batch = min(2 * size, remaining)
        }
        return (successes, nil)
    }

    /// One pod from the template, controlled by `rs` (`GetPodFromTemplate`, `CreatePodsWithControllerRef`).
    func createPod(_ rs: ReplicaSet) async throws {
        let pod = try Self.pod(from: rs)
        do {
            let created = try await client.create(pod)
            recorder.event(rs, .normal, "SuccessfulCreate", "Created pod: \(created.metadata.name ?? "")")
        } catch {
            recorder.event(rs, .warning, "FailedCreate", "Error creating: \(apiMessage(error))")
            throw error
        }
    }

    static func pod(from rs: ReplicaSet) throws -> Pod {
        let template = rs.spec.template ?? PodTemplateSpec()
        let labels = template.metadata.labels ?? [:]
        if labels.isEmpty { throw WorkloadError("unable to create pods, no labels") }
        let name = rs.metadata.name ?? ""
        let ref = OwnerReference(apiVersion: ReplicaSet.defaultAPIVersion, kind: ReplicaSet.defaultKind, name: name,
                                 uid: rs.metadata.uid ?? "", controller: true, blockOwnerDeletion: true)
        var pod = Pod(metadata: ObjectMeta(generateName: name + "-", namespace: rs.metadata.namespace, labels: labels,
                                           annotations: template.metadata.annotations, ownerReferences: [ref],
                                           finalizers: template.metadata.finalizers))
        pod.spec = template.spec
        return pod
    }

    /// Deletes one pod, only the one that was ranked (its uid as a precondition); false when it
    /// was already gone (a 409 on the uid precondition: gone, and a namesake made since).
    func deletePod(_ pod: Pod, of rs: ReplicaSet) async throws -> Bool {
        let name = pod.metadata.name ?? ""
        do {
            try await client.delete(Pod.self, name: name, namespace: pod.metadata.namespace,
                                    options: DeleteOptions(preconditionUID: pod.metadata.uid))
        } catch let error as APIError where error.isNotFound || error.code == 409 {
            return false
        } catch {
            recorder.event(rs, .warning, "FailedDelete", "Error deleting: \(apiMessage(error))")
            throw error
        }
        recorder.event(rs, .normal, "SuccessfulDelete", "Deleted pod: \(name)")
        return true
    }

    /// Pods of every ReplicaSet controlled by the same owner as `rs` (its Deployment's other
    /// ReplicaSets), or only its own when it has no owner (`getIndirectlyRelatedPods`).
    func relatedPods(_ rs: ReplicaSet) async -> [Pod] {
        let family: [ReplicaSet]
        if let owner = rs.controllerRef {
            family = await replicaSets.byIndex(Self.namespaceIndex, rs.metadata.namespace ?? "")
                .filter { $0.controllerRef?.uid == owner.uid }
        } else {
            family = [rs]
        }
        var seen: Set<String> = []
        var related: [Pod] = []
        for member in family {
            for pod in await pods.byIndex(Self.controllerIndex, member.metadata.uid ?? "") where seen.insert(pod.metadata.uid ?? "").inserted {
                related.append(pod)
            }
        }
        return related
    }

    /// The first `count` of `pods` in deletion order (`getPodsToDelete`).
    static func podsToDelete(_ pods: [Pod], related: [Pod], count: Int, now: Time = .now()) -> [Pod] {
        if count >= pods.count { return pods }
        return Array(RankedPods(pods, related: related, now: now).sorted().prefix(count))
    }

    // MARK: Status

    /// Replicas, fully labelled, ready and available counts of `pods`, and the ReplicaFailure
    /// condition set (on a failed create or delete) or cleared (`calculateStatus`).
    static func calculateStatus(_ rs: ReplicaSet, pods: [Pod], manageError: (any Error)?, now: Time = .now()) -> ReplicaSetStatus {
        var status = rs.status
        let templateLabels = rs.spec.template?.metadata.labels ?? [:]
        var fullyLabeled: Int32 = 0, ready: Int32 = 0, available: Int32 = 0
        for pod in pods {
            let labels = pod.metadata.labels ?? [:]
            if templateLabels.allSatisfy({ labels[$0.key] == $0.value }) { fullyLabeled += 1 }
            if pod.isReady {
                ready += 1
                if pod.isAvailable(minReadySeconds: rs.spec.minReadySeconds ?? 0, now: now) { available += 1 }
            }
        }
        let failure = status.conditions?.first { $0.type == "ReplicaFailure" }
        if let manageError, failure == nil {
            let diff = pods.count - Int(rs.spec.replicas ?? 1)
            let reason = diff < 0 ? "FailedCreate" : diff > 0 ? "FailedDelete" : ""
            status.conditions = (status.conditions ?? []) + [ReplicaSetCondition(type: "ReplicaFailure", status: "True", lastTransitionTime: now,
                                                                                  reason: reason, message: apiMessage(manageError))]
        } else if manageError == nil, failure != nil {
            status.conditions = status.conditions?.filter { $0.type != "ReplicaFailure" }
            if status.conditions?.isEmpty == true { status.conditions = nil }
        }
        status.replicas = Int32(pods.count)
        status.fullyLabeledReplicas = fullyLabeled == 0 ? nil : fullyLabeled
        status.readyReplicas = ready == 0 ? nil : ready
        status.availableReplicas = available == 0 ? nil : available
        return status
    }

    /// Writes `status` with the observed generation unless nothing changed; on a conflict the
    /// ReplicaSet is read again and the write tried once more (`updateReplicaSetStatus`).
    func updateStatus(_ rs: ReplicaSet, _ status: ReplicaSetStatus) async throws -> ReplicaSet {
        var status = status
        status.observedGeneration = rs.metadata.generation
        if rs.status == status { return rs }
        var copy = rs
        copy.status = status
        do {
            return try await client.updateStatus(copy)
        } catch let error as APIError where error.isConflict {
            var fresh = try await client.get(ReplicaSet.self, name: rs.metadata.name ?? "", namespace: rs.metadata.namespace)
            guard fresh.metadata.uid == rs.metadata.uid else { throw error }
            // Still the generation this sync worked from: a newer one is not observed yet.
            fresh.status = status
            return try await client.updateStatus(fresh)
        }
    }
}
