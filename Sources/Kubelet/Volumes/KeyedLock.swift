// One holder at a time per key (a volume's unique name), waiting without blocking a thread:
// the volume manager's calls on one volume are serialised, as Kubernetes' operation executor
// keeps one operation per volume in flight.

actor KeyedLock {
    private var held: Set<String> = []
    private var waiters: [String: [CheckedContinuation<Void, Never>]] = [:]

    func lock(_ key: String) async {
        if !held.contains(key) {
            held.insert(key)
            return
        }
        await withCheckedContinuation { waiters[key, default: []].append($0) }
    }

    func unlock(_ key: String) {
        if var queue = waiters[key], !queue.isEmpty {
            let next = queue.removeFirst()
            waiters[key] = queue.isEmpty ? nil : queue
            next.resume()   // the key stays held, now by the next waiter
        } else {
            held.remove(key)
        }
    }

    /// Runs `body` holding `key`, on the caller's actor.
    func with<T: Sendable>(_ key: String, isolation: isolated (any Actor)? = #isolation,
                                       _ body: () async throws -> T) async throws -> T {
        await lock(key)
        do {
            let result = try await body()
            await unlock(key)
            return result
        } catch {
            await unlock(key)
            throw error
        }
    }
}
