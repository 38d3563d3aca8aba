// Counting that survives what real clusters do to a controller: a pod watch that lags behind
// its own writes, a crash while pods finish and are deleted, a crash between the two status
// writes of the finalizer protocol. And the arithmetic underneath, table by table.
import APIClient
import ClusterAPI
@testable import ControllerManager
import Foundation
import Testing

@Suite("Job controller: tracking across lag and restarts", .serialized, .timeLimit(.minutes(3)))
struct JobTrackingTests {
    @Test("A lagging pod watch causes no extra pods (expectations)")
    func laggingWatch() async throws {
        try await withJobHarness { h in
            h.transport.holdPodWatch = true
            _ = try await h.createJob(makeJob("lag", completions: 3, parallelism: 3))
            guard await h.eventually("3 pods in the API server", { try await h.pods(of: "lag").count == 3 }) else { return }
            // The controller sees none of them, and resyncs every second meanwhile.
            await h.stays("still 3 pods while the watch lags", for: .milliseconds(2500)) { try await h.pods(of: "lag").count == 3 }
            h.transport.holdPodWatch = false
            await h.eventually("status.active 3") { try await h.job("lag").status.active == 3 }
            for pod in try await h.pods(of: "lag") { try await h.finish(pod) }
            await h.eventually("Complete") { try await h.job("lag").holds("Complete") }
            #expect(try await h.pods(of: "lag").count == 3)
            #expect(try await h.job("lag").status.succeeded == 3)
        }
    }

    @Test("Controller down while pods finish and are deleted: nothing lost, nothing counted twice")
    func restartLosesNothing() async throws {
        try await withJobHarness { h in
            _ = try await h.createJob(makeJob("batch", completions: 4, parallelism: 2, backoffLimit: 3))
            guard await h.eventually("2 pods", { try await h.activePods(of: "batch").count == 2 }) else { return }
            let pods = try await h.activePods(of: "batch")
            await h.stopManager()
            // While no controller runs: one pod succeeds and one fails, and both are deleted
            // (by a user, by pod GC). The finalizer keeps them until they are counted.
            try await h.finish(pods[0])
            try await h.finish(pods[1], exitCode: 1)
            for pod in pods {
                try await h.client.delete(Pod.self, name: pod.metadata.name ?? "", namespace: "default", options: DeleteOptions())
                #expect(await h.exists(pod), "a finished, uncounted pod went before the controller counted it")
            }
            await h.restartManager()
            await h.eventually("1 succeeded, 1 failed counted; both pods gone") {
                let job = try await h.job("batch")
                let first = await h.exists(pods[0]), second = await h.exists(pods[1])
                return job.status.succeeded == 1 && job.status.failed == 1 && !first && !second
            }
            var finished = 1
            while finished < 4 {
                guard await h.eventually("an active pod", { try await !h.activePods(of: "batch").isEmpty }) else { return }
                try await h.finish(try await h.activePods(of: "batch")[0])
                finished += 1
            }
            await h.eventually("Complete") { try await h.job("batch").holds("Complete") }
            let job = try await h.job("batch")
            #expect(job.status.succeeded == 4 && job.status.failed == 1)
        }
    }

    @Test("Crash between the two status writes: the uids in uncountedTerminatedPods are counted once after a restart")
    func crashWithUncountedPods() async throws {
        try await withJobHarness { h in
            _ = try await h.createJob(makeJob("twice", completions: 3, parallelism: 2))
            guard await h.eventually("2 pods", { try await h.activePods(of: "twice").count == 2 }) else { return }
            let pods = try await h.activePods(of: "twice")
            // Finalizer removals fail: the controller gets as far as the first write.
            h.transport.failPodPatches = true
            for pod in pods { try await h.finish(pod) }
            await h.eventually("both uids listed as uncounted, none counted") {
                let job = try await h.job("twice")
                return Set(UncountedJSON.uids(job.status.uncountedTerminatedPods, "succeeded")) == Set(pods.compactMap(\.metadata.uid))
                    && job.status.succeeded == nil
            }
            await h.stopManager()
            h.transport.failPodPatches = false
            await h.restartManager()
            await h.eventually("2 succeeded, the list empty") {
                let job = try await h.job("twice")
                return job.status.succeeded == 2 && UncountedJSON.isEmpty(job.status.uncountedTerminatedPods)
            }
            await h.stays("counted once", for: .milliseconds(800)) { try await h.job("twice").status.succeeded == 2 }
            for pod in pods {
                let after = try await h.client.get(Pod.self, name: pod.metadata.name ?? "", namespace: "default")
                #expect((after.metadata.finalizers ?? []).isEmpty)
            }
            guard await h.eventually("the third pod", { try await h.activePods(of: "twice").count == 1 }) else { return }
            try await h.finish(try await h.activePods(of: "twice")[0])
            await h.eventually("Complete") { try await h.job("twice").holds("Complete") }
            #expect(try await h.job("twice").status.succeeded == 3)
        }
    }

    @Test("An orphan pod the selector matches is adopted (owner reference and finalizer added) and counted")
    func adoption() async throws {
        try await withJobHarness { h in
            var job = makeJob("adopter", completions: 1)
            job.spec.manualSelector = true
            job.spec.selector = LabelSelectorSpec(matchLabels: ["app": "adopter"])
            job.spec.template.metadata.labels = ["app": "adopter"]
            // A pod that already ran to success before its Job existed.
            var orphan = Pod(metadata: ObjectMeta(name: "stray", namespace: "default", labels: ["app": "adopter"]))
            orphan.spec = job.spec.template.spec
            try await h.finish(try await h.client.create(orphan))
            let created = try await h.createJob(job)
            await h.eventually("Complete from the adopted pod") { try await h.job("adopter").holds("Complete") }
            let adopted = try await h.client.get(Pod.self, name: "stray", namespace: "default")
            #expect(adopted.metadata.ownerReferences?.first?.uid == created.metadata.uid)
            #expect(adopted.metadata.ownerReferences?.first?.controller == true)
            #expect((adopted.metadata.finalizers ?? []).isEmpty, "the finalizer added at adoption stayed after the count")
            #expect(try await h.job("adopter").status.succeeded == 1)
            #expect(try await h.pods(of: "adopter").count == 1)
        }
    }

    // MARK: The arithmetic

    @Test("Back-off: 10 s doubling per failure since the last success, capped, counted from the last failure",
          arguments: [
              (failures: 0, elapsed: 0.0, expected: 0.0),
              (failures: 1, elapsed: 0.0, expected: 10.0),
              (failures: 1, elapsed: 4.0, expected: 6.0),
              (failures: 2, elapsed: 0.0, expected: 20.0),
              (failures: 3, elapsed: 0.0, expected: 40.0),
              (failures: 6, elapsed: 0.0, expected: 320.0),
              (failures: 7, elapsed: 0.0, expected: 360.0),
              (failures: 30, elapsed: 100.0, expected: 260.0),
              (failures: 2, elapsed: 25.0, expected: 0.0),
          ])
    func backoffDelay(failures: Int, elapsed: Double, expected: Double) {
        let now = Date(timeIntervalSince1970: 1_000_000)
        let record = JobBackoffRecord(key: "default/j", failuresAfterLastSuccess: failures, lastFailureTime: now.addingTimeInterval(-elapsed))
        let left = record.remaining(base: .seconds(10), cap: .seconds(360), now: now)
        #expect(abs(Double(left.components.seconds) + Double(left.components.attoseconds) / 1e18 - expected) < 0.001)
    }

    @Test("Back-off record: failures add up, a success resets, failures after the last success still count")
    func backoffRecord() {
        let t = { (s: Double) in Date(timeIntervalSince1970: s) }
        let empty = JobBackoffRecord(key: "k")
        let one = JobBackoffStore.advance(empty, succeeded: [], failed: [t(10)])
        #expect(one.failuresAfterLastSuccess == 1 && one.lastFailureTime == t(10))
        let three = JobBackoffStore.advance(one, succeeded: [], failed: [t(30), t(20)])
        #expect(three.failuresAfterLastSuccess == 3 && three.lastFailureTime == t(30))
        #expect(JobBackoffStore.advance(three, succeeded: [t(40)], failed: []) == JobBackoffRecord(key: "k"))
        let after = JobBackoffStore.advance(three, succeeded: [t(40)], failed: [t(35), t(45), t(50)])
        #expect(after.failuresAfterLastSuccess == 2 && after.lastFailureTime == t(50))
        #expect(JobBackoffStore.advance(three, succeeded: [], failed: []) == three)
    }

    @Test("completedIndexes: parsed within completions, merged and printed as intervals",
          arguments: [
              (text: "", completions: 5, adding: [Int](), expected: "", total: 0),
              (text: "0,2-3", completions: 5, adding: [1], expected: "0-3", total: 4),
              (text: "1,7-9", completions: 8, adding: [3], expected: "1,3,7", total: 3),
              (text: "x,2,4-3,6", completions: 10, adding: [5, 5], expected: "2,5-6", total: 3),
              (text: "", completions: 4, adding: [3, 0, 1], expected: "0-1,3", total: 3),
          ])
    func completedIndexes(text: String, completions: Int, adding: [Int], expected: String, total: Int) {
        let indexes = CompletedIndexes(parsing: text, completions: completions).adding(adding)
        #expect(indexes.description == expected && indexes.total == total)
    }

    @Test("uncountedTerminatedPods round-trips, written as {} when empty")
    func uncountedJSON() throws {
        #expect(UncountedTerminatedPods().json == .object([:]))
        let parsed = UncountedTerminatedPods(try JSONValue(parsing: Data(#"{"succeeded":["a","b"],"failed":["c"]}"#.utf8)))
        #expect(parsed == UncountedTerminatedPods(succeeded: ["a", "b"], failed: ["c"]))
        #expect(UncountedTerminatedPods(parsed.json) == parsed)
        #expect(UncountedTerminatedPods(nil).isEmpty)
    }
}
