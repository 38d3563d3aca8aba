import Synchronization

/// The deadlines of the requests being served, kept by one watcher task for all of them.
///
/// A request's work runs as an immediate task (on the request's own thread until it first
/// waits), registered here with its deadline; the watcher sleeps until the earliest deadline,
/// cancels the work of every request past its own, and that request answers 504 as
/// Kubernetes' timeout filter does. Each request used to run its work and a `Task.sleep` as two
/// child tasks of a group: two task starts, a dispatch timer armed and cancelled, and a thread
/// woken for each, per request. Now a request costs a lock, one task, and no timer: requests
/// carry nearly the same timeout, so a new deadline is almost never earlier than the one the
/// watcher sleeps until, which is the only case that wakes it.
final class RequestDeadlines: Sendable {
    private struct Entry {
        let deadline: ContinuousClock.Instant
        let cancel: @Sendable () -> Void
        var expired = false
    }

    private struct State {
        var entries: [Int: Entry] = [:]
        var nextID = 0
        /// When the running watcher wakes next; nil when none runs.
        var wake: ContinuousClock.Instant?
        var watcher: Task<Void, Never>?
        /// Tells the current watcher from one that was replaced.
        var generation = 0
        var stopped = false
    }

    private let state = Mutex(State())

    /// Requests registered now (for tests).
    var count: Int { state.withLock { $0.entries.count } }

    /// Runs `body` and returns its answer, or throws 504 Timeout once `limit` has passed (its work
    /// cancelled; the 504 is sent when the work has ended, as before). Cancelling the caller
    /// cancels the work.
    func run<T: Sendable>(limit: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let deadline = ContinuousClock.now + limit
        let work = Task.immediate { try await body() }
        let id = state.withLock { s -> Int in
            s.nextID += 1
            s.entries[s.nextID] = Entry(deadline: deadline, cancel: { work.cancel() })
            if !s.stopped && s.wake.map({ deadline < $0 }) ?? true { startWatcher(&s, wake: deadline) }
            return s.nextID
        }
        let result = await withTaskCancellationHandler { await work.result } onCancel: { work.cancel() }
        let expired = state.withLock { $0.entries.removeValue(forKey: id)?.expired ?? false }
        if expired {
            throw APIError(.timeout, "Timeout: request did not complete within requested timeout - context deadline exceeded")
        }
        return try result.get()
    }

    /// Stops the watcher (the server is going away); requests still running keep no deadline.
    func stop() {
        let watcher = state.withLock { s in
            s.stopped = true
            s.generation += 1
            s.wake = nil
            defer { s.watcher = nil }
            return s.watcher
        }
        watcher?.cancel()
    }

    /// Replaces the watcher by one that first wakes at `wake`.
    private func startWatcher(_ s: inout State, wake: ContinuousClock.Instant) {
        s.watcher?.cancel()
        s.generation += 1
        s.wake = wake
        let generation = s.generation
        s.watcher = Task { [weak self] in await self?.watch(generation: generation, first: wake) }
    }

    private func watch(generation: Int, first: ContinuousClock.Instant) async {
        var wake = first
        while true {
            do {
                try await Task.sleep(until: wake, clock: .continuous)
            } catch {
                return  // replaced or stopped
            }
            let (due, next) = state.withLock { s -> ([@Sendable () -> Void], ContinuousClock.Instant?) in
                guard s.generation == generation else { return ([], nil) }
                let now = ContinuousClock.now
                var due: [@Sendable () -> Void] = []
                var next: ContinuousClock.Instant?
                for (id, entry) in s.entries where !entry.expired {
                    if entry.deadline <= now {
                        s.entries[id]?.expired = true
                        due.append(entry.cancel)
                    } else if next.map({ entry.deadline < $0 }) ?? true {
                        next = entry.deadline
                    }
                }
                s.wake = next
                if next == nil { s.watcher = nil }
                return (due, next)
            }
            for cancel in due { cancel() }
            guard let next else { return }
            wake = next
        }
    }

    deinit { state.withLock { $0.watcher?.cancel() } }
}
