import ClusterAPI
import Foundation
import HTTPKit
import MVCCStore
import NIOHTTP1

/// A store that can say it is unhealthy even while it answers reads: the embedded engine
/// turns read-only for good after an EIO or ENOSPC, and only a restart recovers it.
///
/// Until the store reports its own health through `KeyValueStore`, a store conforms here;
/// one that does not is judged by whether it answers a read (its current revision).
public protocol StoreHealthReporting: Sendable {
    /// nil when the store serves reads and writes; otherwise why not and what to do.
    func healthProblem() async -> String?
}

/// Kubernetes' health endpoints: `/healthz` and `/livez` run `ping` and `etcd`; `/readyz`
/// also `etcd-readiness` and `shutdown`. A passing check prints `ok` (or, with `?verbose`,
/// one `[+]name ok` line per check); a failing one is 503 listing every check with the
/// reason of the failed ones, as kube-apiserver prints them. `/healthz/etcd` runs one check;
/// `?exclude=name` skips one.
struct HealthChecks: Sendable {
    struct Check: Sendable {
        let name: String
        let run: @Sendable () async -> String?
    }

    let store: ObjectStore
    let shuttingDown: @Sendable () -> Bool
    /// Longest a store check may take (kube-apiserver's `--etcd-healthcheck-timeout`, 2 s).
    var timeout: Duration = .seconds(2)

    func checks(for endpoint: String) -> [Check] {
        let store = self.store
        let timeout = self.timeout
        var checks = [
            Check(name: "ping") { nil },
            Check(name: "etcd") { await Self.storeProblem(store, timeout: timeout) },
        ]
        if endpoint == "readyz" {
            checks.append(Check(name: "etcd-readiness") { await Self.readProblem(store, timeout: timeout) })
            let shuttingDown = self.shuttingDown
            checks.append(Check(name: "shutdown") { shuttingDown() ? "process is shutting down" : nil })
        }
        return checks
    }

    /// Answers `/{endpoint}` or `/{endpoint}/{check}`; nil when there is no such check.
    func respond(endpoint: String, check: String?, query: [String: String]) async -> HTTPResponse? {
        let all = checks(for: endpoint)
        if let check {
            guard let one = all.first(where: { $0.name == check }) else { return nil }
            if let problem = await one.run() { return Self.text("internal server error: \(problem)\n", status: .serviceUnavailable) }
            return Self.text("ok")
        }
        let excluded = Set((query["exclude"] ?? "").split(separator: ",").map(String.init))
        var lines: [String] = []
        var failed = false
        for c in all {
            if excluded.contains(c.name) {
                lines.append("[+]\(c.name) excluded: ok")
            } else if let problem = await c.run() {
                lines.append("[-]\(c.name) failed: \(problem)")
                failed = true
            } else {
                lines.append("[+]\(c.name) ok")
            }
        }
        if failed {
            return Self.text(lines.joined(separator: "\n") + "\n\(endpoint) check failed\n", status: .serviceUnavailable)
        }
        if query["verbose"] != nil {
            return Self.text(lines.joined(separator: "\n") + "\n\(endpoint) check passed\n")
        }
        return Self.text("ok")
    }

    static func text(_ body: String, status: HTTPResponseStatus = .ok) -> HTTPResponse {
        HTTPResponse(status: status, headers: ["Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff"],
                     body: Data(body.utf8))
    }

    /// The store's own report when it gives one, else whether it answers a read.
    static func storeProblem(_ store: ObjectStore, timeout: Duration) async -> String? {
        if let reporting = store.kv as? any StoreHealthReporting {
            return await within(timeout) { await reporting.healthProblem() } ?? "the store did not answer its health check within \(timeout)"
        }
        return await readProblem(store, timeout: timeout)
    }

    /// Whether the store answers a read (its current revision) in time.
    static func readProblem(_ store: ObjectStore, timeout: Duration) async -> String? {
        let answer: String?? = await within(timeout) { () async -> String? in
            do throws(APIError) {
                _ = try await store.currentRevision()
                return nil
            } catch {
                return error.message
            }
        }
        guard let answer else { return "the store did not answer a read within \(timeout)" }
        return answer
    }

    /// `body`'s result, or nil when it takes longer than `limit` (it is then cancelled).
    static func within<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async -> T) async -> T? {
        await withTaskGroup(of: T?.self) { group in
            group.addTask { await body() }
            group.addTask {
                try? await Task.sleep(for: limit)
                return nil
            }
            defer { group.cancelAll() }
            return await group.next() ?? nil
        }
    }
}
