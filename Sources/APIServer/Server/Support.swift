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

/// Prometheus counters of the API server (`/metrics`).
public final class APIMetrics: Sendable {
    private struct Counters {
        var requests: [String: Int] = [:]
        var durationSum: [String: Double] = [:]
        var durationCount: [String: Int] = [:]
        var watches = 0
    }

    private let counters = Mutex(Counters())

    public init() {}

    func record(verb: String, resource: String, code: Int, seconds: Double) {
        let requestKey = "verb=\"\(verb.uppercased())\",resource=\"\(resource)\",code=\"\(code)\""
        let durationKey = "verb=\"\(verb.uppercased())\",resource=\"\(resource)\""
        counters.withLock {
            $0.requests[requestKey, default: 0] += 1
            $0.durationSum[durationKey, default: 0] += seconds
            $0.durationCount[durationKey, default: 0] += 1
        }
    }

    func watchStarted() { counters.withLock { $0.watches += 1 } }
    func watchEnded() { counters.withLock { $0.watches -= 1 } }

    /// The Prometheus text exposition.
    public func render() -> String {
        let c = counters.withLock { $0 }
        var out = "# HELP apiserver_request_total Requests by verb, resource and HTTP code.\n# TYPE apiserver_request_total counter\n"
        for (k, v) in c.requests.sorted(by: { $0.key < $1.key }) { out += "apiserver_request_total{\(k)} \(v)\n" }
        out += "# HELP apiserver_request_duration_seconds Time to answer requests (watches: until the stream opened).\n# TYPE apiserver_request_duration_seconds summary\n"
        for (k, v) in c.durationSum.sorted(by: { $0.key < $1.key }) {
            out += "apiserver_request_duration_seconds_sum{\(k)} \(v)\n"
            out += "apiserver_request_duration_seconds_count{\(k)} \(c.durationCount[k] ?? 0)\n"
        }
        out += "# HELP apiserver_registered_watchers Open watch streams.\n# TYPE apiserver_registered_watchers gauge\napiserver_registered_watchers \(c.watches)\n"
        return out
    }
}
