// `trackJobStatusAndRemoveFinalizers`: counting finished pods exactly once, across crashes.
//
//   1. finished pods with the finalizer → their uids into status.uncountedTerminatedPods; the
//      interim condition (SuccessCriteriaMet, FailureTarget) with them; status written
//   2. their finalizers removed (the pods may now be deleted by anyone)
//   3. uids whose pod no longer has the finalizer → out of the list, into succeeded/failed
//   4. no uid left uncounted, no pod terminating → Complete or Failed; status written
//
// After a crash anywhere, a pod is either still finalized (1 again), or listed without a
// finalizer (3 counts it) — never counted twice: a listed uid is skipped by step 1.
import APIClient
import ClusterAPI
import Foundation

extension JobController {
    func trackStatusAndRemoveFinalizers(_ context: inout JobSyncContext, needsFlush: Bool) async throws {
        var needsFlush = needsFlush
        var finishing: [Pod] = []
        var newSucceededIndexes: [Int] = []
        if context.isIndexed {
            context.pods.sort { (JobPods.completionIndex($0) ?? -1) < (JobPods.completionIndex($1) ?? -1) }
        }
        var withFinalizer = Set(context.pods.filter {
            JobPods.hasTrackingFinalizer($0) && !context.expectedRemovals.contains($0.metadata.uid ?? "")
        }.compactMap(\.metadata.uid))
        if countUncounted(&context, withFinalizer: withFinalizer) { needsFlush = true }
        var reachedMax = false
        let completions = context.completions ?? 0
        for pod in context.pods {
            let uid = pod.metadata.uid ?? ""
            // Pods without the finalizer were counted by an earlier pass.
            guard JobPods.hasTrackingFinalizer(pod), !context.expectedRemovals.contains(uid) else { continue }
            let failed = JobPods.isFailed(pod, context.job)
            // The finalizer goes once the pod has finished, or the Job is decided or deleted.
            guard context.job.metadata.deletionTimestamp != nil || context.finishedCondition != nil
                    || pod.status.phase == "Succeeded" || failed else { continue }
            finishing.append(pod)
            if pod.status.phase == "Succeeded" && !context.uncounted.failed.contains(uid) {
                if context.isIndexed {
                    // The index is enough to count a success once.
                    if let index = JobPods.completionIndex(pod), index < completions, !context.previousSucceededIndexes.contains(index) {
                        newSucceededIndexes.append(index)
                        needsFlush = true
                    }
                } else if !context.uncounted.succeeded.contains(uid) {
                    needsFlush = true
                    context.uncountedStatus.succeeded.append(uid)
                }
            } else if failed || (context.finishedCondition.map { $0.type != JobConditions.successCriteriaMet } ?? false) {
                // Once the Job is decided (not as a success), every pod that did not succeed failed.
                let validIndex = JobPods.completionIndex(pod).map { $0 < completions } ?? false
                if !context.uncounted.failed.contains(uid) && (!context.isIndexed || validIndex) {
                    needsFlush = true
                    context.uncountedStatus.failed.append(uid)
                }
            }
            if newSucceededIndexes.count + context.uncountedStatus.succeeded.count + context.uncountedStatus.failed.count >= Self.maxUncountedPods {
                // The status stays small (uids ~40 bytes each) and one big Job does not starve
                // the others; the rest waits for the next pass.
                reachedMax = true
                break
            }
        }
        if context.isIndexed {
            context.succeededIndexes = context.succeededIndexes.adding(newSucceededIndexes)
            let text = context.succeededIndexes.description
            if text != (context.job.status.completedIndexes ?? "") { needsFlush = true }
            context.job.status.succeeded = Self.nonZero(context.succeededIndexes.total)
            context.job.status.completedIndexes = text
        }
        let now = Time.now()
        if let condition = context.finishedCondition, condition.type == JobConditions.failureTarget {
            // The reason is recorded before the finalizers go; Failed follows once they have.
            context.job.status.conditions = (context.job.status.conditions ?? []) + [condition]
            needsFlush = true
            context.finishedCondition = JobConditions.make(JobConditions.failed, reason: condition.reason ?? "", message: condition.message ?? "", now: now)
        }
        if let condition = context.finishedCondition, condition.type == JobConditions.successCriteriaMet {
            if JobConditions.find(JobConditions.successCriteriaMet, in: context.job)?.status != "True" {
                context.job.status.conditions = (context.job.status.conditions ?? []) + [condition]
                needsFlush = true
            }
            context.finishedCondition = JobConditions.make(JobConditions.complete, reason: condition.reason ?? "", message: condition.message ?? "", now: now)
        }

        needsFlush = try await flushUncountedAndRemoveFinalizers(&context, finishing, withFinalizer: &withFinalizer, needsFlush: needsFlush)
        let finished = !reachedMax && enactFinished(&context, now: now)
        if finished { needsFlush = true }
        if needsFlush {
            try await writeStatus(&context)
            if finished { recordFinished(context) }
        }
    }

    /// Writes the status (with `uncountedStatus`), then the back-off record it implies; moves
    /// finalizers off the finishing pods; moves their uids into the counters. Returns whether
    /// the status still has changes to write.
    private func flushUncountedAndRemoveFinalizers(_ context: inout JobSyncContext, _ finishing: [Pod], withFinalizer: inout Set<String>,
                                                   needsFlush: Bool) async throws -> Bool {
        var needsFlush = needsFlush
        if needsFlush {
            try await writeStatus(&context)
            backoff.update(context.newBackoff)
            needsFlush = false
        }
        var removalError: (any Error)?
        if !finishing.isEmpty {
            finalizerExpectations.expect(context.key, uids: finishing.compactMap(\.metadata.uid))
            let key = context.key
            let results = await withTaskGroup(of: (uid: String, error: (any Error)?).self) { group in
                for pod in finishing {
                    group.addTask {
                        do {
                            try await JobRequests.removeTrackingFinalizer(self.client, pod)
                            return (pod.metadata.uid ?? "", nil)
                        } catch let error as APIError where error.isNotFound {
                            return (pod.metadata.uid ?? "", nil)
                        } catch {
                            // No update will show this removal.
                            self.finalizerExpectations.observed(key, uid: pod.metadata.uid ?? "")
                            return (pod.metadata.uid ?? "", error)
                        }
                    }
                }
                var results: [(uid: String, error: (any Error)?)] = []
                for await result in group { results.append(result) }
                return results
            }
            for result in results {
                if let error = result.error {
                    removalError = removalError ?? error
                } else {
                    withFinalizer.remove(result.uid)
                }
            }
        }
        if countUncounted(&context, withFinalizer: withFinalizer) { needsFlush = true }
        if let removalError {
            // Some finalizers stay: write what was counted, then retry the rest.
            if needsFlush { try await writeStatus(&context) }
            throw removalError
        }
        return needsFlush
    }

    /// `cleanUncountedPodsWithoutFinalizers`: listed uids whose pod lost its finalizer (or is
    /// gone) move into `succeeded`/`failed`. Returns whether anything moved.
    private func countUncounted(_ context: inout JobSyncContext, withFinalizer: Set<String>) -> Bool {
        var changed = false
        let succeeded = context.uncountedStatus.succeeded.filter(withFinalizer.contains)
        if succeeded.count != context.uncountedStatus.succeeded.count {
            changed = true
            context.job.status.succeeded = Self.nonZero(Int(context.job.status.succeeded ?? 0) + context.uncountedStatus.succeeded.count - succeeded.count)
            context.uncountedStatus.succeeded = succeeded
        }
        let failed = context.uncountedStatus.failed.filter(withFinalizer.contains)
        if failed.count != context.uncountedStatus.failed.count {
            changed = true
            context.job.status.failed = Self.nonZero(Int(context.job.status.failed ?? 0) + context.uncountedStatus.failed.count - failed.count)
            context.uncountedStatus.failed = failed
        }
        return changed
    }

    /// `enactJobFinished`: Complete or Failed once no pod is left uncounted or terminating.
    private func enactFinished(_ context: inout JobSyncContext, now: Time) -> Bool {
        guard let condition = context.finishedCondition, context.uncountedStatus.isEmpty, context.terminating == 0 else { return false }
        var conditions = context.job.status.conditions ?? []
        JobConditions.ensure(&conditions, condition.type ?? "", status: "True", reason: condition.reason ?? "", message: condition.message ?? "",
                             now: now)
        context.job.status.conditions = conditions
        if condition.type == JobConditions.complete {
            context.job.status.completionTime = conditions.first { $0.type == JobConditions.complete }?.lastTransitionTime ?? now
        }
        return true
    }

    /// `recordJobFinished`: the events of a finished Job.
    private func recordFinished(_ context: JobSyncContext) {
        guard let condition = context.finishedCondition else { return }
        let job = context.job
        if condition.type == JobConditions.complete {
            if let completions = job.spec.completions, (job.status.succeeded ?? 0) > completions {
                recorder.event(job, .warning, "TooManySucceededPods", "Too many succeeded pods running after completion count reached")
            }
            recorder.event(job, .normal, "Completed", "Job completed")
        } else {
            recorder.event(job, .warning, condition.reason ?? "", condition.message ?? "")
        }
        logger.info("job finished", metadata: ["job": "\(context.key)", "condition": "\(condition.type ?? "")", "reason": "\(condition.reason ?? "")",
                                               "succeeded": "\(job.status.succeeded ?? 0)", "failed": "\(job.status.failed ?? 0)"])
    }

    /// The status subresource written with the resourceVersion read: a Job changed meanwhile
    /// (or a stale cache) is a 409 and the sync starts over.
    private func writeStatus(_ context: inout JobSyncContext) async throws {
        context.job.status.uncountedTerminatedPods = context.uncountedStatus.json
        let written = try await client.updateStatus(context.job)
        jobs.record(written)
        context.job = written
    }

    /// Counters are omitted when zero, as the API writes them.
    static func nonZero(_ value: Int) -> Int32? { value == 0 ? nil : Int32(value) }
}
