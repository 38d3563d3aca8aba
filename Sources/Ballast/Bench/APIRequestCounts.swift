// The API server's request counters, read by the benchmarks that count requests per pod.
import APIClient
import Foundation

enum APIRequestCounts {
    /// `apiserver_request_total` of the API server's `/metrics`, summed by "VERB resource" (a
    /// binding counts as `CREATE pods`); non-resource paths (`/metrics` itself) are left out.
    static func read(_ client: KubeClient) async throws -> [String: Double] {
        try await scrape(client).requests
    }

    /// The embedded store's WAL syncs so far (`ballast_lsm_wal_sync*`; zero when the API
    /// server runs on an external etcd).
    struct WALSyncs: Sendable, Equatable {
        var count: Double = 0
        var seconds: Double = 0
        /// The longest since the store opened.
        var maxSeconds: Double = 0

        /// The syncs from `earlier` to these (the longest: still since the store opened).
        func since(_ earlier: WALSyncs) -> WALSyncs {
            WALSyncs(count: count - earlier.count, seconds: seconds - earlier.seconds, maxSeconds: maxSeconds)
        }
    }

    /// The requests (as `read`) and the WAL syncs, from one `/metrics`.
    static func scrape(_ client: KubeClient) async throws -> (requests: [String: Double], walSyncs: WALSyncs) {
        let response = try await client.send(.GET, "/metrics")
        guard response.status.code == 200 else { throw BenchFailure("the API server's /metrics answered HTTP \(response.status.code)") }
        var requests: [String: Double] = [:]
        var syncs = WALSyncs()
        let lines = String(decoding: response.body, as: UTF8.self).split(separator: "\n")
        for line in lines where line.hasPrefix("ballast_lsm_wal_sync") {
            let parts = line.split(separator: " ")
            guard parts.count == 2, let value = Double(parts[1]) else { continue }
            switch parts[0] {
            case "ballast_lsm_wal_syncs_total": syncs.count = value
            case "ballast_lsm_wal_sync_seconds_total": syncs.seconds = value
            case "ballast_lsm_wal_sync_max_seconds": syncs.maxSeconds = value
            default: break
            }
        }
        for line in lines where line.hasPrefix("apiserver_request_total{") {
            func label(_ name: String) -> String {
                guard let range = line.range(of: name + "=\"") else { return "" }
                return String(line[range.upperBound...].prefix { $0 != "\"" })
            }
            guard let value = line.split(separator: " ").last.flatMap({ Double($0) }) else { continue }
            let resource = label("resource")
            guard !resource.isEmpty else { continue }
            requests["\(label("verb")) \(resource)", default: 0] += value
        }
        return (requests, syncs)
    }
}
