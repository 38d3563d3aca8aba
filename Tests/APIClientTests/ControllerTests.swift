// The controller runner against the real API handler on an embedded store (in process): keys
// come from informers, failures come back with back-off, one key is never processed twice at
// once, cancellation stops everything.
import APIClient
import APIServerTesting
import ClusterAPI
import Foundation
import Logging
import Synchronization
import Testing

@Suite struct ControllerTests {
    static var quietLogger: Logger {
        var logger = Logger(label: "test.controller")
        logger.logLevel = .critical
        return logger
    }

    /// Records what sync saw, for the assertions.
    final class Recorder: Sendable {
        let calls = Mutex<[String: Int]>([:])
        let inFlight = Mutex<[String: Int]>([:])
        let maxConcurrentPerKey = Mutex(0)
        let maxConcurrent = Mutex(0)

        func enter(_ key: String) -> Int {
            let n = calls.withLock { $0[key, default: 0] += 1; return $0[key]! }
            let (perKey, total) = inFlight.withLock { flight -> (Int, Int) in
                flight[key, default: 0] += 1
                return (flight[key]!, flight.values.reduce(0, +))
            }
            maxConcurrentPerKey.withLock { $0 = max($0, perKey) }
            maxConcurrent.withLock { $0 = max($0, total) }
            return n
        }

        func leave(_ key: String) { inFlight.withLock { $0[key, default: 1] -= 1 } }
        func count(_ key: String) -> Int { calls.withLock { $0[key, default: 0] } }
    }

    @Test func labelsEveryNodeFromInformerEvents() async throws {
        try await InProcessAPIServer.with { server in
            let client = server.client()
            for i in 1...3 { _ = try await client.create(Node(metadata: ObjectMeta(name: "node-\(i)"))) }
            let informers = SharedInformers(client: client, resync: .seconds(300), logger: Self.quietLogger)
            let nodes = await informers.informer(Node.self)
            let controller = Controller<String>(name: "labeller", logger: Self.quietLogger) { name in
                guard var node = await nodes.get(name: name) else { return .done }
                if node.metadata.labels?["seen"] == "yes" { return .done }
                node.metadata.labels = (node.metadata.labels ?? [:]).merging(["seen": "yes"]) { $1 }
                _ = try await client.update(node)
                return .done
            }
            await controller.enqueue(from: nodes) { [$0.object.metadata.name ?? ""] }
            await informers.start()
            let running = Task { await controller.run() }
            defer { running.cancel() }
            // A node created while the controller runs is labelled too.
            _ = try await client.create(Node(metadata: ObjectMeta(name: "node-4")))
            let labelled = try await poll { try await client.list(Node.self).items } until: { items in
                items.count == 4 && items.allSatisfy { $0.metadata.labels?["seen"] == "yes" }
            }
            #expect(labelled.count == 4)
            running.cancel()
            await running.value
            await informers.stop()
        }
    }

    @Test func failuresComeBackWithBackoffAndSuccessForgetsIt() async throws {
        let recorder = Recorder()
        let queue = WorkQueue<String>(baseDelay: .milliseconds(20), maxDelay: .seconds(1))
        let controller = Controller<String>(name: "flaky", queue: queue, logger: Self.quietLogger) { key in
            defer { recorder.leave(key) }
            if recorder.enter(key) <= 3 { throw TestError.flaky }
            return .done
        }
        let running = Task { await controller.run() }
        defer { running.cancel() }
        let started = ContinuousClock.now
        await queue.add("a")
        _ = try await poll { recorder.count("a") } until: { $0 == 4 }
        let elapsed = ContinuousClock.now - started
        // Three failures wait 20 + 40 + 80 ms before the fourth try.
        #expect(elapsed >= .milliseconds(140), "back-off doubles: \(elapsed)")
        _ = try await poll { await queue.failureCount("a") } until: { $0 == 0 }
        #expect(await queue.failureCount("a") == 0, "success forgets the back-off")
        try await Task.sleep(for: .milliseconds(100))
        #expect(recorder.count("a") == 4, "a successful key is not retried")
    }

    @Test func retryAndRequeueResults() async throws {
        let recorder = Recorder()
        let queue = WorkQueue<String>(baseDelay: .milliseconds(10), maxDelay: .seconds(1))
        let controller = Controller<String>(name: "results", queue: queue, logger: Self.quietLogger) { key in
            defer { recorder.leave(key) }
            let n = recorder.enter(key)
            switch key {
            case "waiting": return n < 3 ? .retry : .done
            default: return n < 2 ? .requeue(after: .milliseconds(50)) : .done
            }
        }
        let running = Task { await controller.run() }
        defer { running.cancel() }
        await queue.add("waiting")
        await queue.add("timed")
        _ = try await poll { recorder.count("waiting") + recorder.count("timed") } until: { $0 == 5 }
        #expect(recorder.count("waiting") == 3)
        #expect(recorder.count("timed") == 2)
        #expect(await queue.failureCount("timed") == 0, "a requeue is not a failure")
    }

    @Test(arguments: [1, 4])
    func aKeyIsNeverProcessedTwiceAtOnce(workers: Int) async throws {
        let recorder = Recorder()
        let controller = Controller<String>(name: "concurrency", workers: workers, logger: Self.quietLogger) { key in
            _ = recorder.enter(key)
            try await Task.sleep(for: .milliseconds(5))
            recorder.leave(key)
            return .done
        }
        let running = Task { await controller.run() }
        defer { running.cancel() }
        for round in 0..<20 {
            for key in ["a", "b", "c", "d"] { await controller.queue.add(key) }
            if round % 5 == 0 { try await Task.sleep(for: .milliseconds(3)) }
        }
        _ = try await poll { await controller.queue.count } until: { $0 == 0 }
        try await Task.sleep(for: .milliseconds(50))
        #expect(recorder.maxConcurrentPerKey.withLock { $0 } == 1)
        #expect(recorder.maxConcurrent.withLock { $0 } <= workers)
        if workers > 1 { #expect(recorder.maxConcurrent.withLock { $0 } > 1, "several workers do work side by side") }
    }

    @Test(.timeLimit(.minutes(1)))
    func cancellationStopsTheRunner() async throws {
        let controller = Controller<String>(name: "idle", logger: Self.quietLogger) { _ in .done }
        let ran = Mutex(false)
        controller.addTask {
            ran.withLock { $0 = true }
            while !Task.isCancelled { try? await Task.sleep(for: .milliseconds(10)) }
        }
        let running = Task { await controller.run() }
        _ = try await poll { ran.withLock { $0 } } until: { $0 }
        running.cancel()
        await running.value
        #expect(await controller.queue.next() == nil, "the queue is shut down")
    }

    @Test func watchThroughTheInProcessTransport() async throws {
        try await InProcessAPIServer.with { server in
            let client = server.client()
            let list = try await client.list(Node.self)
            let watch = try await client.watch(Node.self, resourceVersion: list.metadata.resourceVersion)
            _ = try await client.create(Node(metadata: ObjectMeta(name: "watched")))
            var seen: String?
            for try await event in watch where event.kind == .added {
                seen = event.object?.metadata.name
                break
            }
            #expect(seen == "watched")
        }
    }

    enum TestError: Error { case flaky }
}

/// Polls `read` until `condition` holds (10 s at most) and returns the last value.
func poll<T>(_ read: () async throws -> T, until condition: (T) -> Bool) async throws -> T {
    let deadline = ContinuousClock.now + .seconds(10)
    var value = try await read()
    while !condition(value) && ContinuousClock.now < deadline {
        try await Task.sleep(for: .milliseconds(10))
        value = try await read()
    }
    return value
}
