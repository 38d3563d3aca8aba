// The API server's request counters, read by the benchmarks that count requests per pod.
import APIClient
import Foundation

enum APIRequestCounts {
    /// `apiserver_request_total` of the API server's `/metrics`, summed by "VERB resource" (a
    /// binding counts as `CREATE pods`); non-resource paths (`/metrics` itself) are left out.
    static func read(_ client: KubeClient) async throws -> [String: Double] {
        let response = try await client.send(.GET, "/metrics")
        guard response.status.code == 200 else { throw BenchFailure("the API server's /metrics answered HTTP \(response.status.code)") }
        var requests: [String: Double] = [:]
        for line in String(decoding: response.body, as: UTF8.self).split(separator: "\n") where line.hasPrefix("apiserver_request_total{") {
            func label(_ name: String) -> String {
                guard let range = line.range(of: name + "=\"") else { return "" }
                return String(line[range.upperBound...].prefix { $0 != "\"" })
            }
            guard let value = line.split(separator: " ").last.flatMap({ Double($0) }) else { continue }
            let resource = label("resource")
            guard !resource.isEmpty else { continue }
            requests["\(label("verb")) \(resource)", default: 0] += value
        }
        return requests
    }
}
