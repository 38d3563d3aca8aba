// Issue 18's control-plane priority: the in-flight seats shared among priority levels, with a
// bounded FIFO queue per level. The limiter alone (no I/O), then through the handler.
import Foundation
import HTTPKit
import Synchronization
import Testing
@testable import APIServer

@Suite struct PriorityAndFairnessTests {
    typealias Limiter = InflightLimiter

    @Test func levelsOfBallastsUsers() {
        #expect(PriorityLevel.of(UserInfo(name: "admin", groups: ["system:masters"])) == .exempt)
        #expect(PriorityLevel.of(UserInfo(name: "system:node:a", groups: ["system:nodes"])) == .system)
        #expect(PriorityLevel.of(UserInfo(name: "system:kube-scheduler")) == .system)
        #expect(PriorityLevel.of(UserInfo(name: "system:kube-controller-manager")) == .system)
        #expect(PriorityLevel.of(UserInfo(name: "system:cloud-controller-manager")) == .system)
        #expect(PriorityLevel.of(UserInfo(name: "alice", groups: ["devs"])) == .workload)
        // A name alone does not make a node: the group does.
        #expect(PriorityLevel.of(UserInfo(name: "system:node:a")) == .workload)
    }

    @Test(arguments: [(0, 0), (1, 0), (2, 1), (3, 1), (6, 2), (200, 67), (400, 134)])
    func systemKeepsAThird(limit: Int, reserved: Int) {
        #expect(Limiter.reserved(limit) == reserved)
    }

    @Test func aBulkClientFillingTheWorkloadLevelDoesNotStarveTheSystem() async throws {
        let limiter = Limiter(readOnly: 6, mutating: 3)
        // The workload's 4 read-only seats, then its queue.
        var held: [Limiter.Seat] = []
        for _ in 0..<4 { held.append(try await limiter.acquire(.readOnly, .workload)) }
        let queued = Task { try await limiter.acquire(.readOnly, .workload) }
        #expect(await eventually { limiter.waiting(.workload) == 1 })
        // The system's reserved seats are free for it at once.
        let started = ContinuousClock.now
        let system = [try await limiter.acquire(.readOnly, .system), try await limiter.acquire(.readOnly, .system)]
        #expect(started.duration(to: .now) < .milliseconds(100))
        #expect(limiter.current.readOnly == 6)
        // Mutating seats are counted apart.
        let write = try await limiter.acquire(.mutating, .workload)
        limiter.release(write)
        // A freed system seat is not the workload's: the workload still waits.
        limiter.release(system[0])
        #expect(limiter.waiting(.workload) == 1 && limiter.current.readOnly == 5)
        // A freed workload seat goes to the workload's queue.
        limiter.release(held.removeFirst())
        held.append(try await queued.value)
        #expect(limiter.waiting(.workload) == 0)
        for seat in held + [system[1]] { limiter.release(seat) }
        #expect(limiter.current.readOnly == 0 && limiter.current.mutating == 0)
    }

    @Test func theSystemBorrowsFreeWorkloadSeatsAndIsServedFirst() async throws {
        let limiter = Limiter(readOnly: 3, mutating: 1)
        // reserved(3) == 1: the system may take all three when the workload does not use them.
        let system = [try await limiter.acquire(.readOnly, .system), try await limiter.acquire(.readOnly, .system),
                      try await limiter.acquire(.readOnly, .system)]
        let workload = Task { try await limiter.acquire(.readOnly, .workload) }
        #expect(await eventually { limiter.waiting(.workload) == 1 })
        let next = Task { try await limiter.acquire(.readOnly, .system) }
        #expect(await eventually { limiter.waiting(.system) == 1 })
        // The freed seat goes to the system's queue, the next one to the workload's.
        limiter.release(system[0])
        let served = try await next.value
        #expect(limiter.waiting(.workload) == 1)
        limiter.release(system[1])
        let alsoServed = try await workload.value
        for seat in [system[2], served, alsoServed] { limiter.release(seat) }
        #expect(limiter.current.readOnly == 0)
    }

    @Test func queuedRequestsAreServedInOrderAsSeatsFree() async throws {
        let limiter = Limiter(readOnly: 1, mutating: 1)
        let first = try await limiter.acquire(.mutating, .workload)
        let order = ServedOrder()
        var waiters: [Task<Void, any Error>] = []
        for index in 0..<5 {
            waiters.append(Task {
                let seat = try await limiter.acquire(.mutating, .workload)
                order.indices.withLock { $0.append(index) }
                limiter.release(seat)
            })
            #expect(await eventually { limiter.waiting(.workload) == index + 1 })
        }
        #expect(order.indices.withLock { $0 }.isEmpty)
        limiter.release(first)
        for waiter in waiters { try await waiter.value }
        #expect(order.indices.withLock { $0 } == [0, 1, 2, 3, 4])
        #expect(limiter.current.mutating == 0 && limiter.waiting(.workload) == 0)
    }

    @Test func aFullQueueOrAnExpiredWaitIsRefused() async throws {
        let limiter = Limiter(readOnly: 1, mutating: 1, queue: InflightQueueLimits(length: 2, wait: .seconds(30)))
        let seat = try await limiter.acquire(.readOnly, .workload)
        let queued = [Task { try await limiter.acquire(.readOnly, .workload) }, Task { try await limiter.acquire(.readOnly, .workload) }]
        #expect(await eventually { limiter.waiting(.workload) == 2 })
        let started = ContinuousClock.now
        await #expect(throws: Limiter.Rejection.queueFull) { try await limiter.acquire(.readOnly, .workload) }
        #expect(started.duration(to: .now) < .milliseconds(100))
        // The request's own timeout bounds its wait when shorter than the queue's.
        for task in queued { task.cancel() }
        let waitStart = ContinuousClock.now
        await #expect(throws: Limiter.Rejection.timeOut) { try await limiter.acquire(.readOnly, .workload, timeout: .milliseconds(200)) }
        #expect(waitStart.duration(to: .now) >= .milliseconds(200))
        #expect(waitStart.duration(to: .now) < .seconds(5))
        limiter.release(seat)
        #expect(limiter.current.readOnly == 0 && limiter.waiting(.workload) == 0)
        let text = limiter.metricsText()
        #expect(text.contains(#"apiserver_flowcontrol_rejected_requests_total{priority_level="workload",reason="queue-full"} 1"#))
        #expect(text.contains(#"apiserver_flowcontrol_rejected_requests_total{priority_level="workload",reason="time-out"} 1"#))
        #expect(text.contains(#"apiserver_flowcontrol_rejected_requests_total{priority_level="workload",reason="cancelled"} 2"#))
        #expect(text.contains(#"apiserver_dropped_requests_total{request_kind="readOnly"} 4"#))
    }

    @Test func aCancelledWaiterFreesItsSlotAndTakesNoSeat() async throws {
        let limiter = Limiter(readOnly: 1, mutating: 1, queue: InflightQueueLimits(length: 1, wait: .seconds(30)))
        let seat = try await limiter.acquire(.readOnly, .system)
        let waiter = Task { try await limiter.acquire(.readOnly, .system) }
        #expect(await eventually { limiter.waiting(.system) == 1 })
        waiter.cancel()
        await #expect(throws: Limiter.Rejection.cancelled) { try await waiter.value }
        #expect(limiter.waiting(.system) == 0)
        // Its slot is free: another request can wait, and gets the seat when it frees.
        let next = Task { try await limiter.acquire(.readOnly, .system) }
        #expect(await eventually { limiter.waiting(.system) == 1 })
        limiter.release(seat)
        limiter.release(try await next.value)
        #expect(limiter.current.readOnly == 0)
        // A task cancelled before it asks is refused without waiting.
        let held = try await limiter.acquire(.readOnly, .system)
        let early = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await limiter.acquire(.readOnly, .system)
        }
        await #expect(throws: Limiter.Rejection.cancelled) { try await early.value }
        limiter.release(held)
        #expect(limiter.current.readOnly == 0 && limiter.waiting(.system) == 0)
    }

    @Test func limitsOfZeroMeanNoLimit() async throws {
        let limiter = Limiter(readOnly: 0, mutating: 0, queue: InflightQueueLimits(length: 0))
        var seats: [Limiter.Seat] = []
        for index in 0..<1000 { seats.append(try await limiter.acquire(index.isMultiple(of: 2) ? .readOnly : .mutating, .workload)) }
        #expect(limiter.current.readOnly == 500 && limiter.current.mutating == 500)
        for seat in seats { limiter.release(seat) }
        #expect(limiter.current.readOnly == 0 && limiter.current.mutating == 0)
    }

    /// Requests that come, give up and finish at random, in parallel: no seat and no queue
    /// slot is left over, whoever wins each race between serving, time-out and cancellation.
    @Test func noSeatLeaksUnderChurn() async throws {
        let limiter = Limiter(readOnly: 4, mutating: 2, queue: InflightQueueLimits(length: 8, wait: .milliseconds(30)))
        await withTaskGroup(of: Void.self) { group in
            for index in 0..<400 {
                let kind: Limiter.Kind = index % 3 == 0 ? .mutating : .readOnly
                let level: PriorityLevel = index % 4 == 0 ? .system : .workload
                let task = Task {
                    guard let seat = try? await limiter.acquire(kind, level) else { return }
                    try? await Task.sleep(for: .milliseconds(Int.random(in: 0...5)))
                    limiter.release(seat)
                }
                group.addTask {
                    if index % 5 == 0 {
                        try? await Task.sleep(for: .milliseconds(Int.random(in: 0...3)))
                        task.cancel()
                    }
                    await task.value
                }
            }
        }
        #expect(limiter.current.readOnly == 0 && limiter.current.mutating == 0)
        #expect(limiter.waiting(.system) == 0 && limiter.waiting(.workload) == 0)
    }
}

/// The order in which waiters got their seats.
private final class ServedOrder: Sendable {
    let indices = Mutex<[Int]>([])
}

@Suite(.serialized) struct PriorityAndFairnessHandlerTests {
    static func get(_ f: HandlerFixture, _ token: String) async -> HTTPResponse {
        await f.handler.handle(HTTPRequest(method: .GET, uri: "/api/v1/pods", headers: ["Authorization": "Bearer \(token)"], body: Data()))
    }

    @Test func aBulkClientDoesNotGetTheNodeRefusedAndWaitsItselfThen429() async throws {
        try await withFixture(make: {
            try await HandlerFixture(maxRequestsInflight: 3, maxMutatingRequestsInflight: 3,
                                     inflightQueue: InflightQueueLimits(length: 1, wait: .milliseconds(300)))
        }) { f in
            // A bulk client (alice) holds the workload's two read-only seats.
            let bulk = [try await f.handler.inflight.acquire(.readOnly, .workload), try await f.handler.inflight.acquire(.readOnly, .workload)]
            // The kubelet is served on the system's seat. Queued behind alice it would get 429
            // once its wait ran out, since nothing frees her seats (no wall-clock check: suites
            // share the cores).
            #expect(await Self.get(f, HandlerFixture.nodeToken).status == .ok)
            // Alice's next request waits in her level's queue; one more finds it full: 429 at once.
            let waiting = Task { await Self.get(f, HandlerFixture.userToken) }
            #expect(await eventually { f.handler.inflight.waiting(.workload) == 1 })
            let full = await Self.get(f, HandlerFixture.userToken)
            #expect(full.status == .tooManyRequests && full.headers.first(name: "Retry-After") == "1")
            // The waiting one runs out of time: 429 too.
            let timedOut = await waiting.value
            #expect(timedOut.status == .tooManyRequests && timedOut.headers.first(name: "Retry-After") == "1")
            // Served when a seat frees within the wait (alice may only read discovery: 403 past the seat).
            let served = Task { await Self.get(f, HandlerFixture.userToken) }
            #expect(await eventually { f.handler.inflight.waiting(.workload) == 1 })
            f.handler.inflight.release(bulk[0])
            #expect(await served.value.status == .forbidden)
            f.handler.inflight.release(bulk[1])
            #expect(f.handler.inflight.current.readOnly == 0 && f.handler.inflight.waiting(.workload) == 0)
            let metrics = await f.request(.GET, "/metrics")
            let text = metrics.body.stringValue ?? ""
            #expect(text.contains(#"apiserver_flowcontrol_rejected_requests_total{priority_level="workload",reason="queue-full"} 1"#))
            #expect(text.contains(#"apiserver_flowcontrol_rejected_requests_total{priority_level="workload",reason="time-out"} 1"#))
            #expect(text.contains(#"apiserver_flowcontrol_rejected_requests_total{priority_level="system",reason="queue-full"} 0"#))
            #expect(text.contains(#"apiserver_flowcontrol_current_inqueue_requests{priority_level="workload"} 0"#))
            #expect(text.contains(#"apiserver_current_inflight_requests{request_kind="readOnly"} 0"#))
            // The embedded store's WAL syncs (the fixture's store is one).
            for name in ["ballast_lsm_wal_syncs_total ", "ballast_lsm_wal_sync_seconds_total ", "ballast_lsm_wal_sync_max_seconds "] {
                #expect(text.contains("\n" + name), "\(name)missing from /metrics")
            }
        }
    }
}
