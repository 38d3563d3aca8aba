// The Job controller against the real API handler: pods run by no kubelet, finished by the test.
import APIClient
import ClusterAPI
import ControllerManager
import Foundation
import Synchronization
import Testing

@Suite("Job controller", .serialized, .timeLimit(.minutes(3)))
struct JobControllerTests {
    @Test("completions 5, parallelism 2: never more than 2 pods at once, Complete after 5 successes")
    func completionsWithParallelism() async throws {
        try await withJobHarness { h in
            let created = try await h.createJob(makeJob("pi", completions: 5, parallelism: 2))
            // Watch the pods from the side: the most that ever run at once.
            let most = Mutex(0)
            let monitor = Task {
                while !Task.isCancelled {
                    if let active = try? await h.activePods(of: "pi") { most.withLock { $0 = max($0, active.count) } }
                    try? await Task.sleep(for: .milliseconds(5))
                }
            }
            defer { monitor.cancel() }
            var finished = 0
            while finished < 5 {
                let want = min(2, 5 - finished)
                guard await h.eventually("\(want) active pods", { try await h.activePods(of: "pi").count == want }) else { return }
                try await h.finish(try await h.activePods(of: "pi")[0])
                finished += 1
            }
            await h.eventually("the Job Complete") { try await h.job("pi").holds("Complete") }
            monitor.cancel()
            #expect(most.withLock { $0 } <= 2)
            let job = try await h.job("pi")
            #expect(job.status.succeeded == 5 && job.status.failed == nil && job.status.active == nil)
            #expect(job.status.ready == 0 && job.status.terminating == 0)
            #expect(UncountedJSON.isEmpty(job.status.uncountedTerminatedPods))
            let success = try #require(job.condition("SuccessCriteriaMet"))
            let complete = try #require(job.condition("Complete"))
            #expect(success.status == "True" && success.reason == "CompletionsReached")
            #expect(complete.reason == "CompletionsReached" && complete.message == "Reached expected number of succeeded pods")
            #expect(job.status.completionTime == complete.lastTransitionTime && job.status.startTime != nil)
            // Indices of the conditions: the interim one first, as 1.32 writes them.
            #expect(job.status.conditions?.map(\.type) == ["SuccessCriteriaMet", "Complete"])
            let pods = try await h.pods(of: "pi")
            #expect(pods.count == 5)
            for pod in pods {
                #expect(pod.metadata.generateName == "pi-" && pod.metadata.name?.hasPrefix("pi-") == true)
                #expect(pod.metadata.labels?["batch.kubernetes.io/job-name"] == "pi" && pod.metadata.labels?["job-name"] == "pi")
                #expect(pod.metadata.labels?["batch.kubernetes.io/controller-uid"] == created.metadata.uid)
                let ref = try #require(pod.metadata.ownerReferences?.first)
                #expect(ref.kind == "Job" && ref.apiVersion == "batch/v1" && ref.uid == created.metadata.uid)
                #expect(ref.controller == true && ref.blockOwnerDeletion == true)
                #expect(!(pod.metadata.finalizers ?? []).contains("batch.kubernetes.io/job-tracking"), "a counted pod kept its finalizer")
            }
            await h.eventually("events SuccessfulCreate and Completed") {
                let created = await h.hasEvent("pi", reason: "SuccessfulCreate", containing: "Created pod: pi-")
                let completed = await h.hasEvent("pi", reason: "Completed", containing: "Job completed")
                return created && completed
            }
            let source = try await h.events("pi").first { $0.reason == "Completed" }?.source?.component
            #expect(source == "job-controller")
        }
    }

    @Test("A pod carries the tracking finalizer until it is counted")
    func trackingFinalizer() async throws {
        try await withJobHarness { h in
            _ = try await h.createJob(makeJob("one"))
            guard await h.eventually("a pod", { try await h.activePods(of: "one").count == 1 }) else { return }
            let pod = try await h.activePods(of: "one")[0]
            #expect(pod.metadata.finalizers == ["batch.kubernetes.io/job-tracking"])
            await h.eventually("status.active 1") { try await h.job("one").status.active == 1 }
            try await h.finish(pod)
            await h.eventually("Complete") { try await h.job("one").holds("Complete") }
            let after = try await h.client.get(Pod.self, name: pod.metadata.name ?? "", namespace: "default")
            #expect((after.metadata.finalizers ?? []).isEmpty && after.status.phase == "Succeeded")
        }
    }

    @Test("Work queue (no completions, parallelism 3): no pod after the first success; Complete when all have finished")
    func workQueue() async throws {
        try await withJobHarness { h in
            _ = try await h.createJob(makeJob("queue", completions: nil, parallelism: 3))
            guard await h.eventually("3 pods", { try await h.activePods(of: "queue").count == 3 }) else { return }
            let pods = try await h.activePods(of: "queue")
            try await h.finish(pods[0])
            await h.eventually("one success counted") { try await h.job("queue").status.succeeded == 1 }
            await h.stays("no replacement, not complete") {
                let job = try await h.job("queue")
                return try await h.pods(of: "queue").count == 3 && !job.holds("Complete") && !job.holds("SuccessCriteriaMet")
            }
            #expect(try await h.job("queue").status.active == 2)
            try await h.finish(pods[1])
            try await h.finish(pods[2])
            await h.eventually("Complete") { try await h.job("queue").holds("Complete") }
            let job = try await h.job("queue")
            #expect(job.status.succeeded == 3 && job.status.failed == nil)
            #expect(try await h.pods(of: "queue").count == 3)
        }
    }

    @Test("backoffLimit 1: a failed pod is replaced; the second failure fails the Job (BackoffLimitExceeded), the running pod deleted")
    func backoffLimitExceeded() async throws {
        try await withJobHarness { h in
            _ = try await h.createJob(makeJob("flaky", completions: 3, parallelism: 2, backoffLimit: 1))
            guard await h.eventually("2 pods", { try await h.activePods(of: "flaky").count == 2 }) else { return }
            let first = try await h.activePods(of: "flaky")
            try await h.finish(first[0], exitCode: 1)
            guard await h.eventually("a replacement", {
                let active = try await h.activePods(of: "flaky").count, failed = try await h.job("flaky").status.failed
                return active == 2 && failed == 1
            }) else { return }
            #expect(!(try await h.job("flaky")).holds("FailureTarget"))
            let replacement = try #require(try await h.activePods(of: "flaky").first { $0.metadata.uid != first[1].metadata.uid })
            try await h.finish(first[1], exitCode: 1)
            await h.eventually("Failed") { try await h.job("flaky").holds("Failed") }
            let job = try await h.job("flaky")
            let target = try #require(job.condition("FailureTarget"))
            let failed = try #require(job.condition("Failed"))
            #expect(target.reason == "BackoffLimitExceeded" && failed.reason == "BackoffLimitExceeded")
            #expect(failed.message == "Job has reached the specified backoff limit")
            #expect(job.status.conditions?.map(\.type) == ["FailureTarget", "Failed"])
            // The two failures, and the pod that still ran when the Job failed.
            #expect(job.status.failed == 3 && job.status.succeeded == nil && job.status.active == nil)
            #expect(job.status.completionTime == nil)
            #expect(await !h.exists(replacement), "the pod still running when the Job failed was not deleted")
            #expect(try await h.activePods(of: "flaky").isEmpty)
            await h.eventually("event BackoffLimitExceeded and SuccessfulDelete") {
                let failed = await h.hasEvent("flaky", reason: "BackoffLimitExceeded", containing: "Job has reached the specified backoff limit")
                let deleted = await h.hasEvent("flaky", reason: "SuccessfulDelete", containing: replacement.metadata.name ?? "?")
                return failed && deleted
            }
            await h.stays("no new pod after the failure", for: .milliseconds(500)) { try await h.activePods(of: "flaky").isEmpty }
        }
    }

    @Test("restartPolicy OnFailure: container restarts count against backoffLimit")
    func onFailureRestarts() async throws {
        try await withJobHarness { h in
            _ = try await h.createJob(makeJob("restarts", backoffLimit: 2, restartPolicy: "OnFailure"))
            guard await h.eventually("a pod", { try await h.activePods(of: "restarts").count == 1 }) else { return }
            let pod = try await h.activePods(of: "restarts")[0]
            try await h.run(pod, restarts: 1)
            await h.stays("one restart is not enough", for: .milliseconds(500)) { try await !h.job("restarts").holds("FailureTarget") }
            try await h.run(pod, restarts: 2)
            await h.eventually("Failed, BackoffLimitExceeded") {
                let job = try await h.job("restarts")
                return job.holds("Failed") && job.condition("Failed")?.reason == "BackoffLimitExceeded"
            }
            #expect(await !h.exists(pod))
        }
    }

    @Test("activeDeadlineSeconds: Failed with DeadlineExceeded, the active pods deleted")
    func activeDeadline() async throws {
        try await withJobHarness { h in
            // The deadline is set once both pods exist (the field may change on a running Job):
            // created with it, the Job could fail before a loaded machine let the test see them.
            _ = try await h.createJob(makeJob("slow", completions: 3, parallelism: 2))
            guard await h.eventually("2 pods", { try await h.activePods(of: "slow").count == 2 }) else { return }
            let pods = try await h.activePods(of: "slow")
            try await h.run(pods[0])
            try await h.modifyJob("slow") { $0.spec.activeDeadlineSeconds = 1 }
            await h.eventually("Failed", timeout: .seconds(10)) { try await h.job("slow").holds("Failed") }
            let job = try await h.job("slow")
            #expect(job.condition("Failed")?.reason == "DeadlineExceeded")
            #expect(job.condition("Failed")?.message == "Job was active longer than specified deadline")
            #expect(job.condition("FailureTarget")?.reason == "DeadlineExceeded")
            #expect(job.status.failed == 2 && job.status.active == nil && job.status.ready == 0)
            for pod in pods { #expect(await !h.exists(pod)) }
            await h.eventually("event DeadlineExceeded") {
                await h.hasEvent("slow", reason: "DeadlineExceeded", containing: "Job was active longer than specified deadline")
            }
        }
    }

    @Test("suspend: no pods while suspended; resume creates them and resets startTime; suspending again deletes them")
    func suspendResume() async throws {
        try await withJobHarness { h in
            _ = try await h.createJob(makeJob("later", completions: 2, parallelism: 2, suspend: true))
            await h.eventually("Suspended") { try await h.job("later").condition("Suspended")?.reason == "JobSuspended" }
            await h.stays("no pods while suspended", for: .milliseconds(800)) { try await h.pods(of: "later").isEmpty }
            #expect(try await h.job("later").status.startTime == nil)
            await h.eventually("event Suspended") { await h.hasEvent("later", reason: "Suspended", containing: "Job suspended") }

            try await h.modifyJob("later") { $0.spec.suspend = false }
            guard await h.eventually("2 pods after resume", { try await h.activePods(of: "later").count == 2 }) else { return }
            await h.eventually("Suspended False, JobResumed, startTime") {
                let job = try await h.job("later")
                let condition = job.condition("Suspended")
                return condition?.status == "False" && condition?.reason == "JobResumed" && job.status.startTime != nil
            }
            await h.eventually("event Resumed") { await h.hasEvent("later", reason: "Resumed", containing: "Job resumed") }

            let running = try await h.activePods(of: "later")
            try await h.modifyJob("later") { $0.spec.suspend = true }
            await h.eventually("the pods deleted, active 0") {
                let job = try await h.job("later")
                return try await h.pods(of: "later").isEmpty && job.status.active == nil && job.holds("Suspended")
            }
            #expect(try await h.job("later").status.failed == nil, "pods deleted by a suspension were counted as failures")
            for pod in running { #expect(await !h.exists(pod)) }

            try await h.modifyJob("later") { $0.spec.suspend = false }
            guard await h.eventually("2 pods again", { try await h.activePods(of: "later").count == 2 }) else { return }
            for pod in try await h.activePods(of: "later") { try await h.finish(pod) }
            await h.eventually("Complete") { try await h.job("later").holds("Complete") }
            #expect(try await h.job("later").status.succeeded == 2)
        }
    }

    @Test("parallelism changed on a running Job: more pods, then fewer (the extra one deleted, not counted as failed)")
    func parallelismChange() async throws {
        try await withJobHarness { h in
            _ = try await h.createJob(makeJob("elastic", completions: 6, parallelism: 1))
            guard await h.eventually("1 pod", { try await h.activePods(of: "elastic").count == 1 }) else { return }
            try await h.modifyJob("elastic") { $0.spec.parallelism = 3 }
            guard await h.eventually("3 pods", { try await h.activePods(of: "elastic").count == 3 }) else { return }
            await h.eventually("status.active 3") { try await h.job("elastic").status.active == 3 }
            try await h.modifyJob("elastic") { $0.spec.parallelism = 2 }
            guard await h.eventually("2 pods", { try await h.activePods(of: "elastic").count == 2 }) else { return }
            await h.eventually("event SuccessfulDelete") { await h.hasEvent("elastic", reason: "SuccessfulDelete", containing: "Deleted pod: elastic-") }
            await h.stays("still 2", for: .milliseconds(500)) { try await h.activePods(of: "elastic").count == 2 }
            var finished = 0
            while finished < 6 {
                guard await h.eventually("an active pod", { try await !h.activePods(of: "elastic").isEmpty }) else { return }
                #expect(try await h.activePods(of: "elastic").count <= 2)
                try await h.finish(try await h.activePods(of: "elastic")[0])
                finished += 1
                await h.eventually("\(finished) counted") { try await h.job("elastic").status.succeeded == Int32(finished) }
            }
            await h.eventually("Complete") { try await h.job("elastic").holds("Complete") }
            let job = try await h.job("elastic")
            #expect(job.status.succeeded == 6 && job.status.failed == nil)
        }
    }

    @Test("Indexed: one pod per index with its annotation, label, hostname and JOB_COMPLETION_INDEX; a failed index runs again")
    func indexed() async throws {
        try await withJobHarness { h in
            _ = try await h.createJob(makeJob("shards", completions: 3, parallelism: 3, indexed: true))
            guard await h.eventually("3 pods", { try await h.activePods(of: "shards").count == 3 }) else { return }
            var byIndex: [String: Pod] = [:]
            for pod in try await h.activePods(of: "shards") {
                let index = try #require(pod.metadata.annotations?["batch.kubernetes.io/job-completion-index"])
                #expect(pod.metadata.labels?["batch.kubernetes.io/job-completion-index"] == index)
                #expect(pod.spec.hostname == "shards-\(index)" && pod.metadata.name?.hasPrefix("shards-\(index)-") == true)
                let env = pod.spec.containers[0].env?.first { $0.name == "JOB_COMPLETION_INDEX" }
                #expect(env?.valueFrom?["fieldRef"]?["fieldPath"]?.stringValue == "metadata.annotations['batch.kubernetes.io/job-completion-index']")
                byIndex[index] = pod
            }
            #expect(byIndex.keys.sorted() == ["0", "1", "2"])
            try await h.finish(byIndex["0"]!)
            try await h.finish(byIndex["1"]!, exitCode: 1)
            await h.eventually("index 0 completed, index 1 running again") {
                let job = try await h.job("shards")
                let again = try await h.activePods(of: "shards").filter { $0.metadata.annotations?["batch.kubernetes.io/job-completion-index"] == "1" }
                return job.status.completedIndexes == "0" && job.status.failed == 1 && again.count == 1
            }
            for pod in try await h.activePods(of: "shards") { try await h.finish(pod) }
            await h.eventually("Complete") { try await h.job("shards").holds("Complete") }
            let job = try await h.job("shards")
            #expect(job.status.completedIndexes == "0-2" && job.status.succeeded == 3 && job.status.failed == 1)
        }
    }
}

extension JobHarness {
    /// Reads the Job, changes it and writes it back, again on a 409.
    func modifyJob(_ name: String, _ change: (inout Job) -> Void) async throws {
        for attempt in 1... {
            var job = try await self.job(name)
            change(&job)
            do {
                _ = try await client.update(job)
                return
            } catch let error as APIError where error.isConflict && attempt < 20 {
                continue
            }
        }
    }

    func exists(_ pod: Pod) async -> Bool {
        do {
            _ = try await client.get(Pod.self, name: pod.metadata.name ?? "", namespace: pod.metadata.namespace)
            return true
        } catch let error as APIError where error.isNotFound {
            return false
        } catch {
            return true
        }
    }
}

/// `status.uncountedTerminatedPods` as the tests read it.
enum UncountedJSON {
    static func uids(_ json: JSONValue?, _ list: String) -> [String] { (json?[list]?.arrayValue ?? []).compactMap(\.stringValue) }
    static func isEmpty(_ json: JSONValue?) -> Bool { uids(json, "succeeded").isEmpty && uids(json, "failed").isEmpty }
}
