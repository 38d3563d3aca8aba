// At most `limit` turns at once; the others wait for theirs in order, suspended (no thread is
// blocked). A turn ends when its body returns or throws — or, with `run(releasingAfter:_:)`, when
// that much time has passed, whichever comes first: a body stuck for good (a runtime hanging on
// a dead mount) then stops holding up everyone behind it, though it goes on running.
//
// Used where a burst would otherwise start everything at once and the extra concurrency only
// costs: the scheduler's API writes (each request beyond the client's kept-alive connections
// opens a TLS connection of its own), the kubelet's container starts (dozens of runtime
// processes on two cores spend their CPU switching between each other).
import Synchronization

/// At most `limit` bodies run at once; callers beyond it wait for a turn, first come first
/// served, suspended. A caller cancelled while it waits still takes its turn and runs its body
/// (a gate only orders work; the body decides what cancellation means).
package final class ConcurrencyGate: Sendable {
    /// Turns that may be taken at once (at least 1).
    package let limit: Int
    private struct State {
        var inUse = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
        var head = 0
    }
    private let state = Mutex(State())

    package init(limit: Int) { self.limit = max(limit, 1) }

    /// Turns taken now.
    package var inUse: Int { state.withLock { $0.inUse } }
    /// Callers waiting for a turn now.
    package var waiting: Int { state.withLock { $0.waiters.count - $0.head } }

    /// Runs `body` in a turn of its own: once fewer than `limit` others run.
    package func run<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        await enter()
        defer { leave() }
        return try await body()
    }

    /// Runs `body` in a turn that ends when it returns or throws, or once `duration` has passed,
    /// whichever is first.
    package func run<T: Sendable>(releasingAfter duration: Duration, _ body: () async throws -> T) async throws -> T {
        await enter()
        let turn = Turn(self)
        let timer = Task {
            guard (try? await Task.sleep(for: duration)) != nil else { return }
            turn.end()
        }
        defer {
            timer.cancel()
            turn.end()
        }
        return try await body()
    }

    /// One turn, ended once however many times `end` is called.
    private final class Turn: Sendable {
        let gate: ConcurrencyGate
        let ended = Mutex(false)
        init(_ gate: ConcurrencyGate) { self.gate = gate }
        func end() {
            if ended.withLock({ ended in defer { ended = true }; return !ended }) { gate.leave() }
        }
    }

    private func enter() async {
        let entered = state.withLock { state -> Bool in
            guard state.inUse < limit else { return false }
            state.inUse += 1
            return true
        }
        if entered { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state -> Bool in
                if state.inUse < limit {
                    state.inUse += 1
                    return true
                }
                state.waiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    /// Hands the turn to the first waiter, if any (it keeps `inUse` as it is).
    private func leave() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard state.head < state.waiters.count else {
                state.inUse -= 1
                state.waiters.removeAll(keepingCapacity: true)
                state.head = 0
                return nil
            }
            let waiter = state.waiters[state.head]
            state.head += 1
            if state.head > 1024 && state.head * 2 > state.waiters.count {
                state.waiters.removeFirst(state.head)
                state.head = 0
            }
            return waiter
        }
        next?.resume()
    }
}
