import Primitives
import Synchronization
import Testing

@Suite struct ConcurrencyGateTests {
    /// A gate's holders, counted: how many ran at once at most, and in which order they began.
    final class Probe: Sendable {
        let state = Mutex((now: 0, most: 0, order: [Int]()))
        func begin(_ index: Int) {
            state.withLock { state in
                state.now += 1
                state.most = max(state.most, state.now)
                state.order.append(index)
            }
        }
        func end() { state.withLock { $0.now -= 1 } }
    }

    final class Flag: Sendable {
        private let value = Mutex(false)
        var isSet: Bool { value.withLock { $0 } }
        func set() { value.withLock { $0 = true } }
    }

    /// Opens once; waiters before that are suspended until it does, waiters after it pass.
    final class Latch: Sendable {
        private let state = Mutex((open: false, waiters: [CheckedContinuation<Void, Never>]()))
        func wait() async {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state -> Bool in
                    if state.open { return true }
                    state.waiters.append(continuation)
                    return false
                }
                if now { continuation.resume() }
            }
        }
        func open() {
            let waiters = state.withLock { state in
                state.open = true
                defer { state.waiters = [] }
                return state.waiters
            }
            for waiter in waiters { waiter.resume() }
        }
    }

    /// Runs `count` tasks through `gate`, each asking for its turn once the one before it runs
    /// or waits; the bodies hold their turns until every task has asked.
    func runThrough(_ gate: ConcurrencyGate, count: Int, probe: Probe) async throws {
        let allAsked = Latch()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<count {
                group.addTask {
                    try await gate.run {
                        probe.begin(index)
                        await allAsked.wait()
                        try await Task.sleep(for: .milliseconds(1))
                        probe.end()
                    }
                }
                while gate.inUse + gate.waiting < index + 1 { await Task.yield() }
            }
            allAsked.open()
            try await group.waitForAll()
        }
    }

    @Test func atMostLimitRunAtOnce() async throws {
        let gate = ConcurrencyGate(limit: 3)
        let probe = Probe()
        try await runThrough(gate, count: 12, probe: probe)
        let (now, most, order) = probe.state.withLock { $0 }
        #expect(now == 0)
        #expect(most == 3)
        #expect(order.sorted() == Array(0..<12))
        #expect(gate.inUse == 0 && gate.waiting == 0)
    }

    @Test func turnsGoInTheOrderTheyWereAskedFor() async throws {
        let gate = ConcurrencyGate(limit: 1)
        let probe = Probe()
        try await runThrough(gate, count: 8, probe: probe)
        let (most, order) = probe.state.withLock { ($0.most, $0.order) }
        #expect(most == 1)
        #expect(order == Array(0..<8))
    }

    @Test func aBodyThatThrowsGivesItsTurnBack() async throws {
        struct Failure: Error {}
        let gate = ConcurrencyGate(limit: 1)
        await #expect(throws: Failure.self) { try await gate.run { throw Failure() } }
        #expect(gate.inUse == 0)
        let value = try await gate.run { 7 }
        #expect(value == 7)
    }

    @Test func aStuckBodyGivesItsTurnUpAfterItsTimeOnce() async throws {
        let gate = ConcurrencyGate(limit: 1)
        let (released, release) = AsyncStream<Void>.makeStream()
        let stuck = Task {
            try await gate.run(releasingAfter: .milliseconds(50)) {
                for await _ in released { break }   // runs until the test lets it go
            }
        }
        while gate.inUse == 0 { await Task.yield() }
        // The second turn begins while the first body still runs: its turn was given up.
        let second = Task {
            try await gate.run(releasingAfter: .seconds(30)) { gate.inUse }
        }
        let done = Flag()
        let watcher = Task { _ = try? await second.value; done.set() }
        let deadline = ContinuousClock.now + .seconds(10)
        while !done.isSet && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        #expect(done.isSet, "the second turn waited for the stuck body (its turn was not given up)")
        release.yield()
        release.finish()
        #expect(try await second.value == 1)
        await watcher.value
        try await stuck.value
        // The stuck body's end does not give back a turn a second time.
        #expect(gate.inUse == 0)
        try await gate.run { #expect(gate.inUse == 1) }
    }
}
