import ClusterAPI
import Foundation
import Synchronization

/// The callbacks that end every open watch at shutdown.
final class WatchShutdown: Sendable {
    private struct State {
        var next = 0
        var stopped = false
        var callbacks: [Int: @Sendable () -> Void] = [:]
    }

    private let state = Mutex(State())

    /// Registers `stop`; it runs at once when the server is already stopping.
    func register(_ stop: @escaping @Sendable () -> Void) -> Int {
        let (token, stopped) = state.withLock { s -> (Int, Bool) in
            s.next += 1
            s.callbacks[s.next] = stop
            return (s.next, s.stopped)
        }
        if stopped { stop() }
        return token
    }

    func unregister(_ token: Int) {
        _ = state.withLock { $0.callbacks.removeValue(forKey: token) }
    }

    /// Whether `shutdown()` has run (the server is stopping: `/readyz` fails).
    var isStopped: Bool { state.withLock { $0.stopped } }

    func shutdown() {
        let callbacks = state.withLock { s -> [@Sendable () -> Void] in
            s.stopped = true
            return Array(s.callbacks.values)
        }
        for stop in callbacks { stop() }
    }
}

/// Events expire after an hour, as with Kubernetes' `--event-ttl=1h`: they are written
/// under a store lease, one lease shared by the events of each minute.
final class EventLeases: Sendable {
    static let ttl: Int64 = 3600

    private let store: ObjectStore
    private let current = Mutex<(id: Int64, granted: Date)?>(nil)

    init(store: ObjectStore) { self.store = store }

    func lease() async throws(APIError) -> Int64 {
        let now = Date()
        if let c = current.withLock({ $0 }), now.timeIntervalSince(c.granted) < 60 { return c.id }
        let id = try await store.call { try await store.kv.grantLease(ttl: Self.ttl + 60) }
        current.withLock { $0 = (id, now) }
        return id
    }
}
