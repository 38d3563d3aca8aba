// `manageJob`: as many active pods as the Job wants — min(parallelism, completions left), or
// parallelism for a work queue until its first success — created from the template (after the
// failure back-off), the least advanced deleted when there are too many, all deleted while
// suspended.
import APIClient
import ClusterAPI
import Foundation

extension JobController {
    /// Creates or deletes pods; returns the active count after it, and the first error (the
    /// status is written before it is thrown).
    func manageJob(_ context: inout JobSyncContext) async -> (active: Int, error: (any Error)?) {
        let job = context.job, key = context.key
        let uid = job.metadata.uid ?? ""
        let active = context.activePods.count
        let parallelism = Int(job.spec.parallelism ?? 1)

        if context.isSuspended {
            let doomed = Self.activePodsForRemoval(job, context.activePods, atLeast: active)
            expectations.expectDeletions(context.key, uid: uid, doomed.count)
            let (removedReady, removed, error) = await deleteJobPods(job, key: context.key, doomed)
            context.terminating += removed
            context.ready -= removedReady
            return (active - removed, error)
        }

        var wantActive: Int
        if let completions = context.completions {
            wantActive = max(0, min(completions - context.succeeded, parallelism))
        } else {
            // A work queue: parallelism until one pod succeeded, then whatever still runs.
            wantActive = context.succeeded > 0 ? active : parallelism
        }

        var doomed = Self.activePodsForRemoval(job, context.activePods, atLeast: max(0, active - wantActive))
        if doomed.count > Self.maxPodCreateDeletePerSync { doomed = Array(doomed.prefix(Self.maxPodCreateDeletePerSync)) }
        if !doomed.isEmpty {
            expectations.expectDeletions(context.key, uid: uid, doomed.count)
            logger.debug("too many pods running for job", metadata: ["job": "\(context.key)", "deleting": "\(doomed.count)", "target": "\(wantActive)"])
            let (removedReady, removed, error) = await deleteJobPods(job, key: context.key, doomed)
            context.terminating += removed
            context.ready -= removedReady
            // Deleting and creating in one pass is never done: deletion first.
            return (active - removed, error)
        }

        // Pods being deleted are replaced at once, unless only failed pods may be replaced.
        let terminating = JobPods.onlyReplaceFailedPods(job) ? context.terminating : 0
        var diff = wantActive - terminating - active
        guard diff > 0 else { return (active, nil) }
        let wait = context.newBackoff.remaining(base: options.podFailureBackoff, cap: options.podFailureBackoffMax, now: Date())
        if wait > .zero {
            await controller.queue.add(context.key, after: wait)
            return (active, nil)
        }
        diff = min(diff, Self.maxPodCreateDeletePerSync)
        var indexes: [Int] = []
        if context.isIndexed {
            indexes = Self.firstPendingIndexes(context, count: diff)
            diff = indexes.count
            guard diff > 0 else { return (active, nil) }
        }

        expectations.expectCreations(context.key, uid: uid, diff)
        logger.debug("too few pods running for job", metadata: ["job": "\(context.key)", "need": "\(wantActive)", "creating": "\(diff)"])
        var indexedTemplate = job.spec.template
        if context.isIndexed { Self.addCompletionIndexEnvironment(&indexedTemplate) }
        let template = indexedTemplate
        // Slow start, as pkg/controller does: batches of 1, 2, 4… so that a Job whose pods all
        // fail to be created (a quota, a bad template) sends one request, not hundreds.
        var created = 0, firstError: (any Error)?
        var batch = 1
        var remaining = diff
        while remaining > 0 {
            let size = min(batch, remaining)
            let batchIndexes: [Int?] = context.isIndexed ? indexes[(diff - remaining)..<(diff - remaining + size)].map { Optional($0) } : Array(repeating: nil, count: size)
            let results = await withTaskGroup(of: (any Error)?.self) { group in
                for index in batchIndexes {
                    group.addTask { await self.createPod(job, key: key, template: template, index: index) }
                }
                var errors: [any Error] = []
                for await error in group { if let error { errors.append(error) } }
                return errors
            }
            created += size - results.count
            remaining -= size
            if let error = results.first {
                firstError = firstError ?? error
                // The pods never attempted will not be seen either.
                for _ in 0..<remaining { expectations.creationObserved(context.key, uid: uid) }
                break
            }
            batch *= 2
        }
        return (active + created, firstError)
    }

    /// Creates one pod from `template`; nil on success (the failure is an event and the
    /// expectation lowered otherwise).
    private func createPod(_ job: Job, key: String, template: PodTemplateSpec, index: Int?) async -> (any Error)? {
        let name = job.metadata.name ?? ""
        var pod = Pod(metadata: ObjectMeta(generateName: index.map { Self.generateName(name, index: $0) } ?? "\(name)-", namespace: job.metadata.namespace,
                                           labels: template.metadata.labels, annotations: template.metadata.annotations,
                                           ownerReferences: [OwnerReference(apiVersion: Job.defaultAPIVersion, kind: Job.defaultKind, name: name,
                                                                            uid: job.metadata.uid ?? "", controller: true, blockOwnerDeletion: true)],
                                           finalizers: (template.metadata.finalizers ?? []).filter { $0 != Finalizer.jobTracking } + [Finalizer.jobTracking]))
        pod.spec = template.spec
        if let index {
            pod.metadata.annotations = (pod.metadata.annotations ?? [:]).merging([Annotation.jobCompletionIndex: "\(index)"]) { $1 }
            pod.metadata.labels = (pod.metadata.labels ?? [:]).merging([Annotation.jobCompletionIndex: "\(index)"]) { $1 }
            pod.spec.hostname = "\(name)-\(index)"
        }
        do {
            let created = try await client.create(pod)
            recorder.event(job, .normal, "SuccessfulCreate", "Created pod: \(created.metadata.name ?? "")")
            return nil
        } catch {
            expectations.creationObserved(key, uid: job.metadata.uid ?? "")
            if let error = error as? APIError, error.code == 403, (error.statusMessage ?? "").contains("is being terminated") {
                // The namespace is going away: every further create fails the same way.
                return nil
            }
            recorder.event(job, .warning, "FailedCreate", "Error creating: \(error)")
            return error
        }
    }

    /// `podGenerateNameWithIndex`: "<job>-<index>-", the name cut so that the index survives
    /// the API server's 58-character limit on generated prefixes.
    static func generateName(_ job: String, index: Int) -> String {
        let suffix = "-\(index)-"
        let limit = 58
        return job.count + suffix.count > limit ? String(job.prefix(limit - suffix.count)) + suffix : job + suffix
    }

    /// `deleteJobPods`: pods the Job no longer wants (too many, or suspended) — finalizer
    /// removed first (they are not failures), then deleted. Returns how many ready and how many
    /// in all were deleted, and the first error.
    func deleteJobPods(_ job: Job, key: String, _ pods: [Pod]) async -> (ready: Int, deleted: Int, error: (any Error)?) {
        await withTaskGroup(of: (ready: Bool, error: (any Error)?).self) { group in
            for pod in pods {
                group.addTask {
                    do {
                        try await JobRequests.removeTrackingFinalizer(self.client, pod)
                        try await self.deletePod(job, pod)
                        return (pod.isReady, nil)
                    } catch {
                        // The informer will not show this deletion.
                        self.expectations.deletionObserved(key, uid: job.metadata.uid ?? "")
                        if let error = error as? APIError, error.isNotFound { return (pod.isReady, nil) }
                        self.logger.info("failed to delete a pod of a job", metadata: ["job": "\(key)", "pod": "\(JobPods.key(pod))", "error": "\(error)"])
                        return (false, error)
                    }
                }
            }
            var ready = 0, deleted = 0
            var first: (any Error)?
            for await result in group {
                if let error = result.error {
                    first = first ?? error
                } else {
                    deleted += 1
                    if result.ready { ready += 1 }
                }
            }
            return (ready, deleted, first)
        }
    }

    /// `deleteActivePods`: the pods of a Job that failed or succeeded are deleted with their
    /// finalizers kept, so that each is counted (as failed) once it terminates.
    func deleteActivePods(_ job: Job, _ pods: [Pod]) async -> (ready: Int, deleted: Int, error: (any Error)?) {
        await withTaskGroup(of: (ready: Bool, error: (any Error)?).self) { group in
            for pod in pods {
                group.addTask {
                    do {
                        try await self.deletePod(job, pod)
                    } catch let error as APIError where error.isNotFound {
                    } catch {
                        return (false, error)
                    }
                    return (pod.isReady, nil)
                }
            }
            var ready = 0, deleted = 0
            var first: (any Error)?
            for await result in group {
                if let error = result.error {
                    first = first ?? error
                } else {
                    deleted += 1
                    if result.ready { ready += 1 }
                }
            }
            return (ready, deleted, first)
        }
    }

    /// `RealPodControl.DeletePod`: a plain delete and its event.
    private func deletePod(_ job: Job, _ pod: Pod) async throws {
        do {
            try await client.delete(Pod.self, name: pod.metadata.name ?? "", namespace: pod.metadata.namespace,
                                    options: DeleteOptions(preconditionUID: pod.metadata.uid))
            recorder.event(job, .normal, "SuccessfulDelete", "Deleted pod: \(pod.metadata.name ?? "")")
        } catch let error as APIError where error.isNotFound {
            throw error
        } catch {
            recorder.event(job, .warning, "FailedDelete", "Error deleting: \(error)")
            throw error
        }
    }

    // MARK: Choosing pods

    /// `activePodsForRemoval`: for Indexed Jobs the pods without a valid index and all but the
    /// most advanced of each repeated index first; then, to reach `atLeast`, the least
    /// advanced of the rest (unscheduled, pending, not ready, newer first).
    static func activePodsForRemoval(_ job: Job, _ pods: [Pod], atLeast: Int) -> [Pod] {
        var remove: [Pod] = [], left = pods
        if job.spec.completionMode == "Indexed" {
            (remove, left) = duplicatedIndexPods(pods, completions: Int(job.spec.completions ?? 0))
        }
        if remove.count < atLeast {
            left.sort(by: JobPods.deletionOrder)
            remove += left.prefix(atLeast - remove.count)
        }
        return remove
    }

    /// `appendDuplicatedIndexPodsForRemoval`: pods with no index or one out of range, and the
    /// extra pods of an index run more than once (the most advanced is kept).
    static func duplicatedIndexPods(_ pods: [Pod], completions: Int) -> (remove: [Pod], left: [Pod]) {
        var remove: [Pod] = [], left: [Pod] = []
        var byIndex: [Int: [Pod]] = [:]
        for pod in pods {
            guard let index = JobPods.completionIndex(pod), index < completions else {
                remove.append(pod)
                continue
            }
            byIndex[index, default: []].append(pod)
        }
        for index in byIndex.keys.sorted() {
            let group = byIndex[index]!.sorted(by: JobPods.deletionOrder)
            remove += group.dropLast()
            left.append(group.last!)
        }
        return (remove, left)
    }

    /// `firstPendingIndexes`: the lowest `count` indexes neither succeeded nor running.
    static func firstPendingIndexes(_ context: JobSyncContext, count: Int) -> [Int] {
        guard count > 0, let completions = context.completions else { return [] }
        let running = Set(context.activePods.compactMap(JobPods.completionIndex))
        var result: [Int] = []
        var candidate = 0
        while candidate < completions && result.count < count {
            if !running.contains(candidate) && !context.succeededIndexes.contains(candidate) { result.append(candidate) }
            candidate += 1
        }
        return result
    }

    /// `addCompletionIndexEnvVariables`: JOB_COMPLETION_INDEX from the pod's annotation, in
    /// every container that does not set it.
    static func addCompletionIndexEnvironment(_ template: inout PodTemplateSpec) {
        let variable = EnvVar(name: "JOB_COMPLETION_INDEX",
                              valueFrom: ["fieldRef": ["fieldPath": .string("metadata.annotations['\(Annotation.jobCompletionIndex)']")]])
        func add(_ containers: inout [Container]) {
            for i in containers.indices where !(containers[i].env ?? []).contains(where: { $0.name == variable.name }) {
                containers[i].env = (containers[i].env ?? []) + [variable]
            }
        }
        add(&template.spec.containers)
        if var initContainers = template.spec.initContainers {
            add(&initContainers)
            template.spec.initContainers = initContainers
        }
    }
}

extension APIError {
    /// The Status message of an error answer.
    fileprivate var statusMessage: String? { if case .status(_, let status) = self { status.message } else { nil } }
}
