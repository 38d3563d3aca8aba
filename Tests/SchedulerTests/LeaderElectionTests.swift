// Two schedulers with leader election on one API server: only the holder of
// `kube-system/ballast-scheduler` schedules, and a clean stop hands over at once.
import APIClient
import APIServerTesting
import ClusterAPI
import Logging
import Scheduler
import Testing

@Suite("Scheduler leader election", .timeLimit(.minutes(1)))
struct LeaderElectionTests {
    private func makeScheduler(_ client: KubeClient, _ identity: String) -> SchedulerServer {
        var configuration = SchedulerConfiguration()
        configuration.leaderElection = LeaderElectionConfig(name: "ballast-scheduler", identity: identity)
        configuration.leaderElection.leaseDuration = .milliseconds(1500)
        configuration.leaderElection.renewDeadline = .milliseconds(1000)
        configuration.leaderElection.retryPeriod = .milliseconds(200)
        configuration.initialBackoff = .milliseconds(50)
        var logger = Logger(label: "test.scheduler.\(identity)")
        logger.logLevel = .warning
        return SchedulerServer(client: client, configuration: configuration, logger: logger)
    }

    @Test("Only the leader schedules; when it stops, the other takes over")
    func handover() async throws {
        try await InProcessAPIServer.with { server in
            let client = server.client()
            let a = makeScheduler(client, "a")
            let b = makeScheduler(client, "b")
            let runA = Task { try await a.run() }
            try await Task.sleep(for: .milliseconds(300))
            let runB = Task { try await b.run() }
            var node = try await client.create(makeNode("n1"))
            node.status = makeNode("n1").status
            _ = try await client.updateStatus(node)
            _ = try await client.create(makePod("first"))
            let first = await waitFor { (try? await client.get(Pod.self, name: "first", namespace: "default").spec.nodeName) == "n1" }
            #expect(first)
            #expect(a.isRunning && !b.isRunning)
            // The leader's term began (caches synced) before it bound the pod; the waiting one has none.
            #expect(a.schedulingSince.map { $0 < .now } == true && b.schedulingSince == nil)
            let lease = try await client.get(Lease.self, name: "ballast-scheduler", namespace: "kube-system")
            #expect(lease.spec.holderIdentity == "a")
            runA.cancel()
            _ = await runA.result
            #expect(a.schedulingSince == nil)
            _ = try await client.create(makePod("second"))
            let second = await waitFor { (try? await client.get(Pod.self, name: "second", namespace: "default").spec.nodeName) == "n1" }
            #expect(second)
            // The count moves just after the binding returns, which a reader may see first.
            #expect(await waitFor { b.isRunning && b.scheduledCount == 1 && a.scheduledCount == 1 })
            runB.cancel()
            _ = await runB.result
        }
    }

    private func waitFor(_ condition: () async -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(15)
        while ContinuousClock.now < deadline {
            if await condition() { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return false
    }
}
