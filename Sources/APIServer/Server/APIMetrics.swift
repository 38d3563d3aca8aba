import Synchronization

/// Prometheus metrics of the API server (`/metrics`, admin only).
///
/// Every label value comes from a closed set or from the server's own registry, never from
/// the request as sent: verbs are Kubernetes' verbs (or the HTTP method, for non-resource
/// paths, from a fixed list), resources are registered resources (anything else is
/// `unknown`), and unauthenticated requests are counted under one fixed label set whatever
/// their path. The number of series is therefore bounded by the registry, not by clients,
/// and values are escaped as the text format requires all the same.
public final class APIMetrics: Sendable {
    struct Series: Hashable, Comparable {
        var verb: String
        var resource: String
        var code: Int

        static func < (a: Series, b: Series) -> Bool { (a.verb, a.resource, a.code) < (b.verb, b.resource, b.code) }
    }

    private struct Counters {
        var requests: [Series: Int] = [:]
        var durationSum: [Series: Double] = [:]
        var durationCount: [Series: Int] = [:]
        var watches = 0
        var terminatedWatchers: [String: Int] = [:]
    }

    private let counters = Mutex(Counters())

    public init() {}

    /// The resource label of requests that did not authenticate.
    static let unauthenticatedResource = "unauthenticated"
    /// The resource label of paths that name no registered resource.
    static let unknownResource = "unknown"
    /// Verbs kept as labels; anything else is `OTHER`.
    static let verbs: Set<String> = [
        "GET", "LIST", "WATCH", "CREATE", "UPDATE", "PATCH", "DELETE", "DELETECOLLECTION", "HEAD", "POST", "PUT", "OPTIONS",
        "CONNECT",
    ]

    static func cleanVerb(_ verb: String) -> String {
        let upper = verb.uppercased()
        return verbs.contains(upper) ? upper : "OTHER"
    }

    /// Counts one answered request. `resource` must already be a registered resource, "" (a
    /// non-resource path), `unknownResource` or `unauthenticatedResource`.
    func record(verb: String, resource: String, code: Int, seconds: Double) {
        let series = Series(verb: Self.cleanVerb(verb), resource: resource, code: code)
        var duration = series
        duration.code = 0
        counters.withLock {
            $0.requests[series, default: 0] += 1
            $0.durationSum[duration, default: 0] += seconds
            $0.durationCount[duration, default: 0] += 1
        }
    }

    func watchStarted() { counters.withLock { $0.watches += 1 } }
    func watchEnded() { counters.withLock { $0.watches -= 1 } }
    func watchTerminated(resource: String) { counters.withLock { $0.terminatedWatchers[resource, default: 0] += 1 } }

    /// A label value as the text exposition format writes it: `\`, `"` and newlines escaped.
    static func escape(_ value: String) -> String {
        var out = ""
        out.reserveCapacity(value.utf8.count)
        for ch in value.unicodeScalars {
            switch ch {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(ch)
            }
        }
        return out
    }

    /// The Prometheus text exposition.
    public func render() -> String {
        let c = counters.withLock { $0 }
        func labels(_ s: Series, code: Bool) -> String {
            var text = "verb=\"\(Self.escape(s.verb))\",resource=\"\(Self.escape(s.resource))\""
            if code { text += ",code=\"\(s.code)\"" }
            return text
        }
        var out = "# HELP apiserver_request_total Requests by verb, resource and HTTP code.\n# TYPE apiserver_request_total counter\n"
        for (k, v) in c.requests.sorted(by: { $0.key < $1.key }) { out += "apiserver_request_total{\(labels(k, code: true))} \(v)\n" }
        out += "# HELP apiserver_request_duration_seconds Time to answer requests (watches: until the stream opened).\n# TYPE apiserver_request_duration_seconds summary\n"
        for (k, v) in c.durationSum.sorted(by: { $0.key < $1.key }) {
            out += "apiserver_request_duration_seconds_sum{\(labels(k, code: false))} \(v)\n"
            out += "apiserver_request_duration_seconds_count{\(labels(k, code: false))} \(c.durationCount[k] ?? 0)\n"
        }
        out += "# HELP apiserver_registered_watchers Open watch streams.\n# TYPE apiserver_registered_watchers gauge\napiserver_registered_watchers \(c.watches)\n"
        out += "# HELP apiserver_terminated_watchers_total Watches closed because their client did not read fast enough.\n# TYPE apiserver_terminated_watchers_total counter\n"
        for (k, v) in c.terminatedWatchers.sorted(by: { $0.key < $1.key }) {
            out += "apiserver_terminated_watchers_total{resource=\"\(Self.escape(k))\"} \(v)\n"
        }
        return out
    }
}
