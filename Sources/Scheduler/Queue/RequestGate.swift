// At most `limit` API writes of the binding cycles at once; the others wait their turn,
// suspended (no thread is blocked). With the pods of a burst every binding cycle would otherwise
// send at once, and each request beyond the client's kept-alive connections opens (and then
// closes) a TLS connection of its own: the handshakes cost both processes more CPU than the
// bindings. client-go bounds a scheduler's requests by QPS instead; the cycles themselves stay
// unbounded (a WaitForFirstConsumer pod waiting for its disk holds no turn).
import Synchronization

final class RequestGate: Sendable {
    let limit: Int
    private struct State {
        var inUse = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
        var head = 0
    }
    private let state = Mutex(State())

    init(limit: Int) { self.limit = max(limit, 1) }

    /// Runs `body` once fewer than `limit` others run.
    func run<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        await enter()
        defer { leave() }
        return try await body()
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
