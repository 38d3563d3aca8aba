// `syncJob`: one pass over one Job — count its finished pods, decide whether it has failed or
// succeeded, create or delete pods, and write the status (JobController+Tracking.swift).
import APIClient
import ClusterAPI
import Foundation

/// What one sync learned about a Job (`syncJobCtx`).
struct JobSyncContext {
    var job: Job
    var key: String
    /// The pods it owns (after adoption and release).
    var pods: [Pod]
    var activePods: [Pod]
    var succeeded = 0
    var failed = 0
    var ready = 0
    var terminating = 0
    /// The condition the Job is headed for (an interim one first: SuccessCriteriaMet, FailureTarget).
    var finishedCondition: JobCondition?
    /// `uncountedTerminatedPods` as read at the start of the sync.
    var uncounted: (succeeded: Set<String>, failed: Set<String>)
    /// `uncountedTerminatedPods` as it will be written.
    var uncountedStatus: UncountedTerminatedPods
    /// Pods whose finalizer removal the cache has not shown yet: already counted.
    var expectedRemovals: Set<String>
    var newBackoff: JobBackoffRecord
    var previousSucceededIndexes = CompletedIndexes()
    var succeededIndexes = CompletedIndexes()

    var isIndexed: Bool { job.spec.completionMode == "Indexed" }
    var completions: Int? { job.spec.completions.map(Int.init) }
    var isSuspended: Bool { job.spec.suspend == true }
}

extension JobController {
    func sync(_ key: String) async throws -> SyncResult {
        guard await jobs.informer.hasSynced, await pods.hasSynced else { return .retry }
        guard let shared = await jobs.get(key) else {
            expectations.delete(key)
            finalizerExpectations.delete(key)
            backoff.remove(key)
            return .done
        }
        // Jobs another controller manages (`spec.managedBy`) are left to it.
        if let managedBy = shared.spec.managedBy, managedBy != JobConditions.managedByJobController { return .done }
        if JobConditions.isFinished(shared) {
            backoff.remove(key)
            return .done
        }
        let mode = shared.spec.completionMode ?? "NonIndexed"
        guard mode == "NonIndexed" || mode == "Indexed" else {
            recorder.event(shared, .warning, "UnknownCompletionMode", "Skipped Job sync because completion mode is unknown")
            return .done
        }
        // Expectations first, the pods after: a pod that lands in the cache after this check
        // only delays the next pass, never doubles a create; and a finalizer removal observed
        // after the uids are read is one the pods read next already show (the informer updates
        // its cache before it calls the handlers). Read the other way round, a removal observed
        // between the two reads left a pod that still showed its finalizer out of the expected
        // uids, and it was counted a second time.
        let satisfied = expectations.satisfied(key)
        let expectedRemovals = finalizerExpectations.uids(key)
        let owned = try await podsForJob(shared)
        let uncounted = UncountedTerminatedPods(shared.status.uncountedTerminatedPods)
        let active = owned.filter(JobPods.isActive)
        var context = JobSyncContext(
            job: shared, key: key, pods: owned, activePods: active, ready: active.filter(\.isReady).count,
            terminating: owned.filter(JobPods.isTerminating).count,
            uncounted: (Set(uncounted.succeeded), Set(uncounted.failed)), uncountedStatus: uncounted,
            expectedRemovals: expectedRemovals, newBackoff: JobBackoffRecord(key: key))
        let newSucceeded = uncountedFinishedPods(context, counted: context.uncounted.succeeded) { $0.status.phase == "Succeeded" }
        let newFailed = uncountedFinishedPods(context, counted: context.uncounted.failed) { JobPods.isFailed($0, shared) }
        context.succeeded = Int(shared.status.succeeded ?? 0) + newSucceeded.count + uncounted.succeeded.count
        context.failed = Int(shared.status.failed ?? 0) + newFailed.count + uncounted.failed.count
        let now = Time.now()
        if context.job.status.startTime == nil && !context.isSuspended { context.job.status.startTime = now }
        context.newBackoff = backoff.newRecord(key, succeeded: newSucceeded, failed: newFailed)

        context.finishedCondition = context.job.status.conditions?.first {
            $0.type == JobConditions.successCriteriaMet && $0.status == "True"
        }
        if context.finishedCondition == nil, let target = JobConditions.find(JobConditions.failureTarget, in: context.job),
           target.status == "True" {
            context.finishedCondition = JobConditions.make(JobConditions.failed, reason: target.reason ?? "", message: target.message ?? "",
                                                           now: now)
        }
        if context.finishedCondition == nil {
            if context.failed > Int(shared.spec.backoffLimit ?? Int32.max) || pastBackoffLimitOnFailure(context) {
                context.finishedCondition = JobConditions.make(JobConditions.failureTarget, reason: JobConditions.reasonBackoffLimitExceeded,
                                                               message: JobConditions.messageBackoffLimitExceeded, now: now)
            } else if let left = deadlineLeft(context.job), left <= .zero {
                context.finishedCondition = JobConditions.make(JobConditions.failureTarget, reason: JobConditions.reasonDeadlineExceeded,
                                                               message: JobConditions.messageDeadlineExceeded, now: now)
            } else if let left = deadlineLeft(context.job) {
                await controller.queue.add(key, after: left)
            }
        }
        if context.isIndexed, let completions = context.completions {
            context.previousSucceededIndexes = CompletedIndexes(parsing: shared.status.completedIndexes, completions: completions)
            let fresh = owned.compactMap { pod -> Int? in
                guard pod.status.phase == "Succeeded", JobPods.hasTrackingFinalizer(pod), let index = JobPods.completionIndex(pod),
                      index < completions else { return nil }
                return index
            }
            context.succeededIndexes = context.previousSucceededIndexes.adding(fresh)
            context.succeeded = context.succeededIndexes.total
        }

        var activeCount = active.count
        var manageError: (any Error)?
        var suspendChanged = false
        if context.finishedCondition != nil {
            // Decided: what still runs is stopped (and counted as failed once it terminates).
            let (deletedReady, deleted, error) = await deleteActivePods(context.job, context.activePods)
            if deleted != activeCount || !satisfied {
                // Not finished while pods may remain that the cache does not show yet.
                context.finishedCondition = nil
            }
            activeCount -= deleted
            context.terminating += deleted
            context.ready -= deletedReady
            manageError = error
        } else {
            var managed = false
            if satisfied && context.job.metadata.deletionTimestamp == nil {
                (activeCount, manageError) = await manageJob(&context)
                managed = true
            }
            let complete: Bool
            if let completions = context.completions {
                complete = context.succeeded >= completions && activeCount == 0
            } else {
                // A work queue: done once any pod succeeded and the others have finished.
                complete = context.succeeded > 0 && activeCount == 0
            }
            if complete {
                context.finishedCondition = JobConditions.make(JobConditions.successCriteriaMet, reason: JobConditions.reasonCompletionsReached,
                                                               message: JobConditions.messageCompletionsReached, now: now)
            } else if managed {
                var conditions = context.job.status.conditions ?? []
                if context.isSuspended {
                    if JobConditions.ensure(&conditions, JobConditions.suspended, status: "True", reason: "JobSuspended",
                                            message: "Job suspended", now: now) {
                        suspendChanged = true
                        recorder.event(context.job, .normal, "Suspended", "Job suspended")
                    }
                } else if JobConditions.ensure(&conditions, JobConditions.suspended, status: "False", reason: "JobResumed",
                                               message: "Job resumed", now: now) {
                    suspendChanged = true
                    recorder.event(context.job, .normal, "Resumed", "Job resumed")
                    // The deadline counts the time the Job is continuously active.
                    context.job.status.startTime = now
                }
                if suspendChanged { context.job.status.conditions = conditions }
            }
        }

        let status = context.job.status
        let needsUpdate = suspendChanged || activeCount != Int(status.active ?? 0) || Int32(context.ready) != status.ready
            || Int32(context.terminating) != status.terminating
        context.job.status.active = activeCount == 0 ? nil : Int32(activeCount)
        context.job.status.ready = Int32(context.ready)
        context.job.status.terminating = Int32(context.terminating)
        try await trackStatusAndRemoveFinalizers(&context, needsFlush: needsUpdate)
        if let manageError { throw manageError }
        return .done
    }

    /// `getValidPodsWithFilter`: pods that still carry the finalizer, are not in the uncounted
    /// list already, are not awaiting their finalizer's removal and (Indexed) have a valid index.
    func uncountedFinishedPods(_ context: JobSyncContext, counted: Set<String>, _ filter: (Pod) -> Bool) -> [Pod] {
        context.pods.filter { pod in
            let uid = pod.metadata.uid ?? ""
            guard JobPods.hasTrackingFinalizer(pod), !counted.contains(uid), !context.expectedRemovals.contains(uid) else { return false }
            if context.isIndexed {
                guard let index = JobPods.completionIndex(pod), index < context.completions ?? 0 else { return false }
            }
            return filter(pod)
        }
    }

    /// `pastBackoffLimitOnFailure`: with restartPolicy OnFailure the kubelet restarts failed
    /// containers in place, so their restarts (in pods still Pending or Running) are the failures.
    func pastBackoffLimitOnFailure(_ context: JobSyncContext) -> Bool {
        guard context.job.spec.template.spec.restartPolicy == "OnFailure" else { return false }
        let restarts = context.pods.filter { $0.status.phase == "Running" || $0.status.phase == "Pending" }
            .reduce(0) { $0 + JobPods.restartCount($1) }
        let limit = Int(context.job.spec.backoffLimit ?? Int32.max)
        return limit == 0 ? restarts > 0 : restarts >= limit
    }

    /// Time left before `activeDeadlineSeconds` (negative or zero: past it); nil without a
    /// deadline, before the start, or while suspended.
    func deadlineLeft(_ job: Job) -> Duration? {
        guard let deadline = job.spec.activeDeadlineSeconds, let start = job.status.startTime, job.spec.suspend != true else { return nil }
        return .seconds(deadline) - .seconds(Date().timeIntervalSince(start.date))
    }
}
