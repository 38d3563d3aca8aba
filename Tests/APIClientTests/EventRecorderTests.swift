// EventRecorder's writer against the real API handler, through a transport that holds each event
// write a little (so writes overlap, as they do against a busy API server) and counts the
// event writes in flight at the server's door: how many at once while the component says it is
// busy and while it is idle, that every event is written, and that each object's events land in
// the order they were recorded.
import APIClient
import APIServerTesting
import ClusterAPI
import Foundation
import HTTPKit
import Logging
import Synchronization
import Testing

/// Event creates seen by the server: in flight now, the most at once while busy and while idle.
private final class EventWriteProbe: Sendable {
    private struct State {
        var inFlight = 0
        var maxBusy = 0
        var maxIdle = 0
        var busy = false
    }
    private let state = Mutex(State())

    var busy: Bool {
        get { state.withLock { $0.busy } }
        set { state.withLock { $0.busy = newValue } }
    }
    var maxBusy: Int { state.withLock { $0.maxBusy } }
    var maxIdle: Int { state.withLock { $0.maxIdle } }

    func resetMaxima() { state.withLock { $0.maxBusy = 0; $0.maxIdle = 0 } }

    func enter() {
        state.withLock {
            $0.inFlight += 1
            if $0.busy { $0.maxBusy = max($0.maxBusy, $0.inFlight) } else { $0.maxIdle = max($0.maxIdle, $0.inFlight) }
        }
    }

    func leave() { state.withLock { $0.inFlight -= 1 } }
}

private func quietLogger() -> Logger {
    var logger = Logger(label: "test")
    logger.logLevel = .critical
    return logger
}

@Suite("Event recorder writes", .timeLimit(.minutes(1)))
struct EventRecorderTests {
    /// A client of `server` whose event creates pass through `probe` and take at least `hold`.
    private func probedClient(_ server: InProcessAPIServer, _ probe: EventWriteProbe, hold: Duration = .milliseconds(4)) -> KubeClient {
        let handler = server.handler
        return KubeClient(server.client().connection, transport: HandlerTransport { request in
            guard request.method == .POST, request.path.hasSuffix("/events") else { return await handler.handle(request) }
            probe.enter()
            try? await Task.sleep(for: hold)
            let response = await handler.handle(request)
            probe.leave()
            return response
        })
    }

    private func waitWritten(_ recorder: EventRecorder) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while recorder.pendingCount > 0 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(recorder.pendingCount == 0)
    }

    /// `pods` pods, `steps` events each, recorded pod by pod round robin (step 0 of every pod,
    /// then step 1…): every object has events queued behind one another.
    private func record(_ recorder: EventRecorder, batch: String, pods: Int, steps: Int) {
        for step in 0..<steps {
            for pod in 0..<pods {
                let reference = ObjectReference(kind: "Pod", namespace: "default", name: "\(batch)-\(pod)", uid: "uid-\(batch)-\(pod)", apiVersion: "v1")
                recorder.event(reference: reference, .normal, "Step", "step \(step)")
            }
        }
    }

    /// Every pod of `batch` has its `steps` events, created in the order recorded.
    private func expectInOrder(_ client: KubeClient, batch: String, pods: Int, steps: Int) async throws {
        let events = try await client.list(Event.self, namespace: "default").items.filter { ($0.involvedObject.name ?? "").hasPrefix("\(batch)-") }
        #expect(events.count == pods * steps)
        for pod in 0..<pods {
            let mine = events.filter { $0.involvedObject.name == "\(batch)-\(pod)" }
                .sorted { Int($0.metadata.resourceVersion ?? "") ?? 0 < Int($1.metadata.resourceVersion ?? "") ?? 0 }
            #expect(mine.map { $0.message ?? "" } == (0..<steps).map { "step \($0)" }, "events of \(batch)-\(pod) out of order")
        }
    }

    @Test("While the component is busy one event is written at a time, when idle up to concurrentWrites; all land, in order per object")
    func yieldsToTheComponent() async throws {
        try await InProcessAPIServer.with { server in
            let probe = EventWriteProbe()
            let client = probedClient(server, probe)
            var options = EventRecorder.Options()
            options.concurrentWrites = 8
            options.writesWhileBusy = 1
            options.retryInterval = .milliseconds(50)
            let recorder = EventRecorder(client: client, component: "test-scheduler", host: "host-1", options: options,
                                         logger: quietLogger(), busy: { probe.busy })
            let run = Task { await recorder.run() }
            defer { run.cancel() }

            // Busy: 60 events of 20 pods, never more than one write at the server.
            probe.busy = true
            record(recorder, batch: "busy", pods: 20, steps: 3)
            try await waitWritten(recorder)
            #expect(probe.maxBusy == 1)
            #expect(recorder.maxInFlightCount == 1)
            try await expectInOrder(client, batch: "busy", pods: 20, steps: 3)

            // Idle: the same again goes up to 8 at once, never more.
            probe.busy = false
            probe.resetMaxima()
            record(recorder, batch: "idle", pods: 20, steps: 3)
            try await waitWritten(recorder)
            #expect(probe.maxIdle > 1 && probe.maxIdle <= 8, "idle writes in flight at most: \(probe.maxIdle)")
            #expect(recorder.maxInFlightCount <= 8)
            try await expectInOrder(client, batch: "idle", pods: 20, steps: 3)

            // A queue built while busy catches up in parallel as soon as the component is idle.
            probe.busy = true
            probe.resetMaxima()
            record(recorder, batch: "catchup", pods: 50, steps: 2)
            let deadline = ContinuousClock.now + .seconds(20)
            while recorder.writtenCount < 120 + 10 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
            #expect(probe.maxBusy == 1)
            #expect(recorder.pendingCount > 0, "the busy writer should still have events waiting")
            probe.busy = false
            try await waitWritten(recorder)
            #expect(probe.maxIdle > 1, "the waiting events were not written in parallel once idle")
            try await expectInOrder(client, batch: "catchup", pods: 50, steps: 2)
            #expect(recorder.writtenCount == 220)
            #expect(recorder.droppedCount == 0)
            recorder.finish()
            _ = await run.value
        }
    }

    @Test("With holdWhileBusy, events wait while the component is busy: until it is idle, or until they have waited the hold")
    func holdsWhileBusy() async throws {
        try await InProcessAPIServer.with { server in
            let probe = EventWriteProbe()
            let client = probedClient(server, probe, hold: .zero)
            func recorder(hold: Duration, busy: @escaping @Sendable () -> Bool) -> EventRecorder {
                var options = EventRecorder.Options()
                options.holdWhileBusy = hold
                options.busyPollInterval = .milliseconds(5)
                return EventRecorder(client: client, component: "test-kubelet", host: "node-1", options: options,
                                     logger: quietLogger(), busy: busy)
            }

            // Busy: nothing is written while it lasts (a hold of a minute is not reached here).
            let held = recorder(hold: .seconds(60), busy: { probe.busy })
            let heldRun = Task { await held.run() }
            defer { heldRun.cancel() }
            probe.busy = true
            record(held, batch: "held", pods: 4, steps: 2)
            try await Task.sleep(for: .milliseconds(300))
            #expect(held.writtenCount == 0, "events were written while the component was busy")
            #expect(held.pendingCount == 8)
            // Idle: all of them, in order.
            probe.busy = false
            try await waitWritten(held)
            try await expectInOrder(client, batch: "held", pods: 4, steps: 2)
            held.finish()
            _ = await heldRun.value

            // Busy for good: the events wait the hold, then are written all the same.
            let bounded = recorder(hold: .seconds(2), busy: { true })
            let boundedRun = Task { await bounded.run() }
            defer { boundedRun.cancel() }
            let recorded = ContinuousClock.now
            record(bounded, batch: "bounded", pods: 3, steps: 1)
            try await Task.sleep(for: .milliseconds(100))
            #expect(bounded.writtenCount == 0, "an event was written before its hold was over")
            try await waitWritten(bounded)
            #expect(ContinuousClock.now - recorded >= .seconds(2))
            try await expectInOrder(client, batch: "bounded", pods: 3, steps: 1)
            bounded.finish()
            _ = await boundedRun.value
        }
    }

    @Test("A full buffer drops new events, counts them and keeps writing the rest")
    func fullBufferDropsAndCounts() async throws {
        try await InProcessAPIServer.with { server in
            let probe = EventWriteProbe()
            let client = probedClient(server, probe, hold: .milliseconds(20))
            var options = EventRecorder.Options()
            options.bufferSize = 5
            options.writesWhileBusy = 1
            let recorder = EventRecorder(client: client, component: "test-scheduler", host: "host-1", options: options,
                                         logger: quietLogger(), busy: { true })
            let run = Task { await recorder.run() }
            defer { run.cancel() }
            // The writer takes one event to write and 5 wait; the rest of 20 recorded at once
            // cannot be kept.
            record(recorder, batch: "full", pods: 20, steps: 1)
            try await waitWritten(recorder)
            #expect(recorder.droppedCount > 0)
            #expect(recorder.writtenCount + recorder.droppedCount == 20)
            let written = try await client.list(Event.self, namespace: "default").items.count
            #expect(written == recorder.writtenCount)
            recorder.finish()
            _ = await run.value
        }
    }
}
