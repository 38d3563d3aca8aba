// Parallel scheduling never over-commits; unschedulable pods come back on the events that help
// them; the queue's backoff; the failure message's order.
import APIClient
import ClusterAPI
import Primitives
import Testing
@testable import Scheduler

@Suite("Parallel scheduling and the queue", .timeLimit(.minutes(3)))
struct ParallelAndQueueTests {
    @Test("100 pods onto room for exactly 100: none over-committed, none left behind")
    func hundredPods() async throws {
        try await withHarness(configure: { $0.parallelism = 16 }) { h in
            // 10 nodes × 1000m, pods of 100m: exactly 100 fit.
            for index in 0..<10 { try await h.add(makeNode("n\(index)", cpu: "1", memory: "64Gi")) }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<100 { group.addTask { try await h.add(makePod("p\(index)", cpu: "100m")) } }
                try await group.waitForAll()
            }
            let all = try await h.waitFor(timeout: .seconds(60)) {
                try await h.client.list(Pod.self, namespace: "default").items.allSatisfy { !($0.spec.nodeName ?? "").isEmpty }
            }
            #expect(all, "every pod bound")
            let pods = try await h.client.list(Pod.self, namespace: "default").items
            var perNode: [String: Int] = [:]
            for pod in pods { perNode[pod.spec.nodeName ?? "", default: 0] += 1 }
            #expect(perNode.count == 10 && perNode.values.allSatisfy { $0 == 10 }, "\(perNode)")
            // The 101st does not fit anywhere.
            try await h.add(makePod("extra", cpu: "100m"))
            let condition = try await h.unschedulable("extra", message: "0/10 nodes are available: 10 Insufficient cpu.")
            #expect(condition?.message == "0/10 nodes are available: 10 Insufficient cpu.")
        }
    }

    @Test("An unschedulable pod is scheduled when a node that fits it joins")
    func requeuedOnNodeAdd() async throws {
        try await withHarness { h in
            try await h.add(makeNode("small", cpu: "1"))
            try await h.add(makePod("p", cpu: "2"))
            #expect(try await h.unschedulable("p", message: "0/1 nodes are available: 1 Insufficient cpu.")?.message == "0/1 nodes are available: 1 Insufficient cpu.")
            try await h.add(makeNode("big", cpu: "8"))
            #expect(try await h.boundNode("p") == "big")
        }
    }

    @Test("A WFFC pod waits for its class, then is scheduled")
    func requeuedOnClassAdd() async throws {
        try await withHarness(stubBinder: true) { h in
            try await h.add(makeNode("n1"))
            try await h.add(makePVC("data", className: "late"))
            try await h.add(makePod("p", claims: ["data"]))
            #expect(try await h.unschedulable("p", message: "0/1 nodes are available: storageclass.storage.k8s.io \"late\" not found.")?.message == "0/1 nodes are available: storageclass.storage.k8s.io \"late\" not found.")
            try await h.add(makeClass("late"))
            #expect(try await h.boundNode("p") == "n1")
        }
    }

    @Test("Pods of another scheduler are left alone")
    func otherScheduler() async throws {
        try await withHarness { h in
            try await h.add(makeNode("n1"))
            try await h.add(makePod("mine"))
            try await h.add(makePod("theirs", schedulerName: "other-scheduler"))
            #expect(try await h.boundNode("mine") == "n1")
            try await Task.sleep(for: .milliseconds(500))
            #expect(try await h.pod("theirs").spec.nodeName ?? "" == "")
        }
    }

    @Test("Backoff: 1 s doubling to 10 s")
    func backoff() async {
        let queue = SchedulingQueue()
        var delays: [Duration] = []
        for attempts in 1...6 { delays.append(await queue.backoff(attempts: attempts)) }
        #expect(delays == [.seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(10), .seconds(10)])
    }

    @Test("An unschedulable pod moves only on an event; one failing during an event backs off")
    func queueMoves() async {
        let queue = SchedulingQueue(initialBackoff: .milliseconds(10), maxBackoff: .milliseconds(20))
        await queue.add("default/a")
        #expect(await queue.pop() == "default/a")
        await queue.unschedulable("default/a")
        #expect(await queue.counts.unschedulable == 1)
        try? await Task.sleep(for: .milliseconds(50))
        #expect(await queue.counts.unschedulable == 1, "no timer moves it")
        await queue.moveAll()
        #expect(await queue.pop() == "default/a")
        await queue.moveAll()           // an event while in flight
        await queue.unschedulable("default/a")
        #expect(await queue.counts.backoff == 1)
        #expect(await queue.pop() == "default/a")  // after the backoff
        await queue.shutDown()
        #expect(await queue.pop() == nil)
    }

    @Test("The informer's replay of a pod already bound by a cycle does not queue it again")
    func staleReplay() async throws {
        let cache = SchedulerCache(schedulerName: SchedulerNames.defaultScheduler)
        let queue = SchedulingQueue()
        cache.nodeChanged(makeNode("n1"))
        var pod = makePod("a", cpu: "1")
        pod.metadata.resourceVersion = "5"
        await SchedulerServer.podEvent(.added(pod), cache: cache, queue: queue)
        #expect(await queue.pop() == "default/a")
        #expect(cache.assume(try PendingPod(pod), on: "n1") != nil)
        await queue.remove("default/a")  // bound
        // The first list's ADDED, delivered late: the same version. Nothing moves.
        await SchedulerServer.podEvent(.added(pod), cache: cache, queue: queue)
        #expect(await queue.counts.active == 0)
        #expect(cache.snapshot().nodes["n1"]?.pods.count == 1)
        // The binding as the informer shows it, then a newer pending pod of the same name.
        var bound = pod
        bound.metadata.resourceVersion = "6"
        bound.spec.nodeName = "n1"
        await SchedulerServer.podEvent(.updated(old: pod, new: bound), cache: cache, queue: queue)
        #expect(await queue.counts.active == 0)
        await SchedulerServer.podEvent(.deleted(bound), cache: cache, queue: queue)
        var again = makePod("a", cpu: "1")
        again.metadata.resourceVersion = "9"
        await SchedulerServer.podEvent(.added(again), cache: cache, queue: queue)
        #expect(await queue.counts.active == 1)
        await queue.shutDown()
    }

    @Test("A pod whose claim the caches do not show yet is tried again soon, once; then it backs off")
    func waitingForAnObject() async {
        let queue = SchedulingQueue(initialBackoff: .seconds(30), maxBackoff: .seconds(30), objectWait: .milliseconds(20))
        await queue.add("default/a")
        #expect(await queue.pop() == "default/a")
        await queue.unschedulable("default/a", waitingForObject: true)
        #expect(await queue.counts.backoff == 1, "not left for an event that may already have come")
        let started = ContinuousClock.now
        #expect(await queue.pop() == "default/a")
        #expect(started.duration(to: .now) < .seconds(10), "the short wait, not the 30 s backoff")
        await queue.unschedulable("default/a", waitingForObject: true)  // still missing: a real failure now
        await queue.moveAll()
        #expect(await queue.counts.backoff == 1)
        try? await Task.sleep(for: .milliseconds(100))
        #expect(await queue.counts.backoff == 1, "backing off for 30 s")
        #expect(await queue.backoff(attempts: 1) == .seconds(30))
        await queue.shutDown()
    }

    @Test("The failure message counts reasons per node and sorts them as strings")
    func fitErrorMessage() {
        var error = FitError(nodeCount: 12)
        for index in 0..<10 { error.nodeReasons["x\(index)"] = ["Insufficient cpu"] }
        error.nodeReasons["y"] = ["node(s) had volume node affinity conflict"]
        error.nodeReasons["z"] = ["Insufficient cpu", "Insufficient memory"]
        #expect(error.message == "0/12 nodes are available: 1 Insufficient memory, 1 node(s) had volume node affinity conflict, 11 Insufficient cpu.")
        #expect(FitError(nodeCount: 3, preFilterMessage: "pod has unbound immediate PersistentVolumeClaims").message
            == "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims.")
    }

    @Test("Equal scores are broken by the seed, deterministically")
    func seededTieBreak() throws {
        var state = ClusterState()
        for name in ["n1", "n2", "n3", "n4"] { state.setNode(makeNode(name)) }
        let pod = try PendingPod(makePod("p"))
        func picks(_ seed: UInt64) -> [String] {
            var random = SplitMix64(seed: seed)
            return (0..<8).map { _ in
                guard case .node(let name, _) = Algorithm.decide(pod, state, random: { Int(random.next() % UInt64($0)) }) else { return "" }
                return name
            }
        }
        #expect(picks(1) == picks(1))
        #expect(Set(picks(1)).count > 1, "ties spread over the nodes")
    }
}
