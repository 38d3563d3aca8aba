// APIClient's LeaderElector and EventRecorder against the real API handler.
import APIClient
import APIServerTesting
import ClusterAPI
import Logging
import Synchronization
import Testing

private func quietLogger() -> Logger {
    var logger = Logger(label: "test")
    logger.logLevel = .warning
    return logger
}

private func fastConfig(_ identity: String, leaseDuration: Duration = .milliseconds(1500)) -> LeaderElectionConfig {
    var config = LeaderElectionConfig(namespace: "kube-system", name: "test-lock", identity: identity)
    config.leaseDuration = leaseDuration
    config.renewDeadline = leaseDuration * 2 / 3
    config.retryPeriod = .milliseconds(200)
    return config
}

@Suite("Leader election and events", .timeLimit(.minutes(1)))
struct LeaderElectionAndEventTests {
    @Test("Only one of two candidates leads; a clean stop hands over at once")
    func handover() async throws {
        try await InProcessAPIServer.with { server in
            let client = server.client()
            let leading = Locked<[String]>([])
            // A long lease: a handover well under it can only come from the release.
            let a = LeaderElector(client: client, config: fastConfig("a", leaseDuration: .seconds(20)), logger: quietLogger())
            let b = LeaderElector(client: client, config: fastConfig("b", leaseDuration: .seconds(20)), logger: quietLogger())
            let runA = Task { await a.run { leading.withLock { $0.append("a") }; try? await Task.sleep(for: .seconds(60)) } }
            // a leads first (however loaded the machine), then b tries for six of its retry periods.
            let aLeads = ContinuousClock.now + .seconds(10)
            while !a.isLeader && ContinuousClock.now < aLeads { try await Task.sleep(for: .milliseconds(20)) }
            let runB = Task { await b.run { leading.withLock { $0.append("b") }; try? await Task.sleep(for: .seconds(60)) } }
            try await Task.sleep(for: .milliseconds(1200))
            #expect(leading.withLock { $0 } == ["a"])
            #expect(a.isLeader && !b.isLeader)
            let lease = try await client.get(Lease.self, name: "test-lock", namespace: "kube-system")
            #expect(lease.spec.holderIdentity == "a" && lease.spec.leaseDurationSeconds == 20)
            let stopped = ContinuousClock.now
            runA.cancel()
            _ = await runA.value
            let deadline = ContinuousClock.now + .seconds(15)
            while !b.isLeader && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            #expect(b.isLeader)
            // Released: b did not wait for the lease to expire.
            #expect(ContinuousClock.now - stopped < .seconds(15))
            let after = try await client.get(Lease.self, name: "test-lock", namespace: "kube-system")
            #expect(after.spec.holderIdentity == "b" && after.spec.leaseTransitions == 1)
            runB.cancel()
            _ = await runB.value
        }
    }

    @Test("A crashed leader's lease is taken only after leaseDuration of silence, judged locally")
    func expiry() async throws {
        try await InProcessAPIServer.with { server in
            let client = server.client()
            // A record written by a leader that then died (remote renewTime far in the future:
            // a skewed clock must not matter).
            var lease = Lease(metadata: ObjectMeta(name: "test-lock", namespace: "kube-system"))
            lease.spec = LeaseSpec(holderIdentity: "dead", leaseDurationSeconds: 1, acquireTime: MicroTime.now(),
                                   renewTime: MicroTime(Time(secondsSinceEpoch: Time.now().secondsSinceEpoch + 3600)), leaseTransitions: 4)
            _ = try await client.create(lease)
            let b = LeaderElector(client: client, config: fastConfig("b"), logger: quietLogger())
            let started = ContinuousClock.now
            let run = Task { await b.run { try? await Task.sleep(for: .seconds(60)) } }
            let deadline = ContinuousClock.now + .seconds(5)
            while !b.isLeader && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            #expect(b.isLeader)
            #expect(ContinuousClock.now - started >= .milliseconds(950))
            let after = try await client.get(Lease.self, name: "test-lock", namespace: "kube-system")
            #expect(after.spec.holderIdentity == "b" && after.spec.leaseTransitions == 5)
            run.cancel()
            _ = await run.value
        }
    }

    @Test("Losing the lease stops the work")
    func lossStopsWork() async throws {
        try await InProcessAPIServer.with { server in
            let client = server.client()
            let a = LeaderElector(client: client, config: fastConfig("a"), logger: quietLogger())
            let cancelled = Locked(false)
            let run = Task {
                await a.run {
                    await withTaskCancellationHandler { try? await Task.sleep(for: .seconds(60)) } onCancel: { cancelled.withLock { $0 = true } }
                }
            }
            let deadline = ContinuousClock.now + .seconds(3)
            while !a.isLeader && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            // Someone takes the lease behind its back.
            var lease = try await client.get(Lease.self, name: "test-lock", namespace: "kube-system")
            lease.spec.holderIdentity = "usurper"
            lease.spec.renewTime = MicroTime.now()
            _ = try await client.update(lease)
            let lost = await run.value
            #expect(lost)
            #expect(cancelled.withLock { $0 })
            #expect(!a.isLeader)
        }
    }

    @Test("Events: repeats patch count and lastTimestamp; many similar messages are combined")
    func eventAggregation() async throws {
        try await InProcessAPIServer.with { server in
            let client = server.client()
            var options = EventRecorder.Options()
            options.retryInterval = .milliseconds(50)
            let recorder = EventRecorder(client: client, component: "test-controller", host: "host-1", options: options, logger: quietLogger())
            let run = Task { await recorder.run() }
            var claim = PersistentVolumeClaim(metadata: ObjectMeta(name: "data", namespace: "default"))
            claim.spec.accessModes = ["ReadWriteOnce"]
            claim.spec.resources = VolumeResourceRequirements(requests: ["storage": try Quantity("1Gi")])
            claim = try await client.create(claim)
            for _ in 0..<3 { recorder.event(claim, .warning, "ProvisioningFailed", "same message") }
            for index in 0..<12 { recorder.event(claim, .normal, "Provisioning", "message \(index)") }
            var pv = PersistentVolume(metadata: ObjectMeta(name: "pv-1"))
            pv.metadata.uid = "u"
            recorder.event(pv, .normal, "VolumeDelete", "cluster-scoped")
            let deadline = ContinuousClock.now + .seconds(30)
            while recorder.pendingCount > 0 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            #expect(recorder.pendingCount == 0)
            let events = try await client.list(Event.self, namespace: "default").items
            let failed = events.filter { $0.reason == "ProvisioningFailed" }
            #expect(failed.count == 1 && failed.first?.count == 3 && failed.first?.type == "Warning")
            #expect(failed.first?.source?.component == "test-controller" && failed.first?.source?.host == "host-1")
            #expect(failed.first?.involvedObject.uid == claim.metadata.uid && failed.first?.involvedObject.kind == "PersistentVolumeClaim")
            let provisioning = events.filter { $0.reason == "Provisioning" }
            #expect(provisioning.filter { !($0.message ?? "").hasPrefix("(combined from similar events)") }.count == 9)
            let combined = provisioning.filter { ($0.message ?? "").hasPrefix("(combined from similar events): ") }
            #expect(combined.count == 1 && combined.first?.count == 3)
            #expect(events.contains { $0.reason == "VolumeDelete" && $0.involvedObject.name == "pv-1" })
            #expect(recorder.droppedCount == 0)
            recorder.finish()
            run.cancel()
            _ = await run.value
        }
    }
}

/// A value behind a lock that closures can share.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withLock<T: Sendable>(_ body: (inout Value) -> T) -> T { mutex.withLock { body(&$0) } }
}
