// The TTL-after-finished controller: finished Jobs with a TTL are deleted, in the foreground,
// once it has passed — judged again on the live Job, whose TTL may have changed. The garbage
// collector runs beside it: a Foreground delete waits for it to remove the Job's pods.
import APIClient
import ClusterAPI
@testable import ControllerManager
import Foundation
import Testing

@Suite("TTL after finished", .serialized, .timeLimit(.minutes(2)))
struct TTLAfterFinishedTests {
    @Test("A finished Job is deleted ttlSecondsAfterFinished after it finished, Foreground, with its uid as precondition; one without a TTL stays")
    func deletesAfterTTL() async throws {
        try await withJobHarness([.job, .ttlAfterFinished, .garbageCollector]) { h in
            let short = try await h.createJob(makeJob("short", ttl: 1))
            _ = try await h.createJob(makeJob("kept"))
            for name in ["short", "kept"] {
                guard await h.eventually("a pod of \(name)", { try await h.activePods(of: name).count == 1 }) else { return }
                try await h.finish(try await h.activePods(of: name)[0])
            }
            await h.eventually("short Complete") { try await h.job("short").holds("Complete") }
            // When exactly is `expiry`'s to say (tested below); here, no wall-clock check: the
            // suites share two cores, and a loaded run took 4.9 s for a 1 s TTL.
            await h.eventually("short deleted", timeout: .seconds(20)) { !(await h.jobExists("short")) }
            let deletes = h.transport.requests("DELETE", "/jobs/short")
            #expect(deletes.count == 1)
            let body = try JSONValue(parsing: try #require(deletes.first?.body))
            #expect(body["propagationPolicy"]?.stringValue == "Foreground")
            #expect(body["preconditions"]?["uid"]?.stringValue == short.metadata.uid)
            await h.stays("kept stays", for: .milliseconds(1500)) { await h.jobExists("kept") }
        }
    }

    @Test("The TTL is read again before deleting: raised, the Job stays; set to 0, it goes at once")
    func ttlChanged() async throws {
        try await withJobHarness([.job, .ttlAfterFinished, .garbageCollector]) { h in
            _ = try await h.createJob(makeJob("later", ttl: 2))
            guard await h.eventually("a pod", { try await h.activePods(of: "later").count == 1 }) else { return }
            try await h.finish(try await h.activePods(of: "later")[0])
            await h.eventually("Complete") { try await h.job("later").holds("Complete") }
            try await h.modifyJob("later") { $0.spec.ttlSecondsAfterFinished = 3600 }
            await h.stays("a TTL raised to an hour keeps the Job", for: .milliseconds(3500)) { await h.jobExists("later") }
            try await h.modifyJob("later") { $0.spec.ttlSecondsAfterFinished = 0 }
            await h.eventually("deleted once the TTL is 0") { !(await h.jobExists("later")) }
        }
    }

    @Test("A failed Job is cleaned up too, from its Failed condition's time")
    func failedJob() async throws {
        try await withJobHarness([.job, .ttlAfterFinished, .garbageCollector]) { h in
            _ = try await h.createJob(makeJob("broken", backoffLimit: 0, ttl: 0))
            guard await h.eventually("a pod", { try await h.activePods(of: "broken").count == 1 }) else { return }
            try await h.finish(try await h.activePods(of: "broken")[0], exitCode: 2)
            await h.eventually("deleted after failing") { !(await h.jobExists("broken")) }
        }
    }

    @Test("Expiry: none without a TTL or before the Job finished; the time left; expired",
          arguments: [(ttl: Int32?.none, finishedAgo: Int64?.some(10), expected: "none"),
                      (ttl: 5, finishedAgo: nil, expected: "none"),
                      (ttl: 60, finishedAgo: 10, expected: "wait 50"),
                      (ttl: 10, finishedAgo: 10, expected: "expired"),
                      (ttl: 0, finishedAgo: 0, expected: "expired")])
    func expiry(ttl: Int32?, finishedAgo: Int64?, expected: String) throws {
        let now = Date(timeIntervalSince1970: 2_000_000)
        var job = makeJob("j", ttl: ttl)
        if let finishedAgo {
            let at = Time(now).adding(seconds: -finishedAgo)
            job.status.conditions = [JobCondition(type: "Complete", status: "True", lastProbeTime: at, lastTransitionTime: at)]
        }
        let text: String
        switch try TTLAfterFinishedController.expiry(job, now: now) {
        case .none: text = "none"
        case .expired: text = "expired"
        case .wait(let left): text = "wait \(left.components.seconds)"
        }
        #expect(text == expected)
    }
}

extension JobHarness {
    func jobExists(_ name: String) async -> Bool {
        do {
            _ = try await job(name)
            return true
        } catch let error as APIError where error.isNotFound {
            return false
        } catch {
            return true
        }
    }
}
