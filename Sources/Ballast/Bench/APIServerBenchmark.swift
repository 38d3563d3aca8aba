// `ballast bench apiserver`: N clients create, update and delete pods through `ballast apiserver`
// (HTTPS, keep-alive connections, the admin token) while M watchers follow the namespace; it
// reports requests/s and latency per phase, and how long each event took to reach the
// watchers. The server runs on the embedded store and, with --compare-etcd, on a real etcd in
// the same run.
import APIClient
import ArgumentParser
import ClusterAPI
import EtcdAPI
import Foundation
import Synchronization

struct BenchAPIServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apiserver",
        abstract: "Pods created, updated and deleted through ballast apiserver while watchers follow them."
    )

    @Option(help: "Concurrent clients writing pods.")
    var clients: Int = 8

    @Option(help: "Concurrent watchers of the namespace.")
    var watchers: Int = 100

    @Option(help: "Pods each phase creates, updates and deletes (shared among the clients).")
    var pods: Int = 2000

    @OptionGroup var etcd: CompareEtcdOptions
    @OptionGroup var logging: LoggingOptions
    var compareEtcd: Bool { etcd.compareEtcd }

    func validate() throws {
        guard (1...256).contains(clients) else { throw ValidationError("--clients \(clients): expected 1 to 256") }
        guard (0...1000).contains(watchers) else { throw ValidationError("--watchers \(watchers): expected 0 to 1000") }
        guard (1...100_000).contains(pods) else { throw ValidationError("--pods \(pods): expected 1 to 100000") }
    }

    struct Outcome {
        var backend: String
        var phases: [(name: String, seconds: Double, latency: LatencyHistogram)] = []
        var delivery = LatencyHistogram()
        var delivered = 0
        var expectedDeliveries = 0
        var serverCPUSeconds = 0.0
    }

    func run() async throws {
        print("ballast bench apiserver: \(pods) pods, \(clients) clients, \(watchers) watchers\n")
        var outcomes: [Outcome] = []
        outcomes.append(try await measure(backend: "embedded", etcd: nil))
        if compareEtcd {
            outcomes.append(try await BenchServer.etcd().using { etcd in try await measure(backend: "etcd", etcd: etcd.endpoint) })
        }
        var table = TextTable([("backend", .left), ("phase", .left), ("requests/s", .right), ("p50 ms", .right), ("p99 ms", .right),
                               ("seconds", .right)])
        for outcome in outcomes {
            for phase in outcome.phases {
                table.append([outcome.backend, phase.name, grouped(Double(pods) / phase.seconds),
                              fixed((phase.latency.percentile(0.5) ?? 0) / 1e6, 2), fixed((phase.latency.percentile(0.99) ?? 0) / 1e6, 2),
                              fixed(phase.seconds, 2)])
            }
        }
        print(table.render())
        var watch = TextTable([("backend", .left), ("events delivered", .right), ("delivery p50 ms", .right), ("delivery p99 ms", .right),
                               ("server CPU s", .right), ("server CPU µs/request", .right)])
        for outcome in outcomes {
            watch.append([outcome.backend, "\(grouped(outcome.delivered))/\(grouped(outcome.expectedDeliveries))",
                          fixed((outcome.delivery.percentile(0.5) ?? 0) / 1e6, 2), fixed((outcome.delivery.percentile(0.99) ?? 0) / 1e6, 2),
                          fixed(outcome.serverCPUSeconds, 2), fixed(outcome.serverCPUSeconds * 1e6 / Double(3 * pods), 0)])
        }
        print("\n" + watch.render())
        print("\ndelivery: from the moment a write was acknowledged to its client to the moment a watcher read its event.")
    }

    private func measure(backend: String, etcd: String?) async throws -> Outcome {
        try await BenchServer.apiserver(etcd: etcd, logLevel: logging.logLevel ?? .warning).using { server in
            try await measure(backend: backend, server: server)
        }
    }

    private func measure(backend: String, server: BenchServer) async throws -> Outcome {
        let client = try KubeClient(try Connection.kubeconfig(at: server.directory + "/admin.kubeconfig"))
        _ = try await client.create(Namespace(metadata: ObjectMeta(name: "bench")))
        var outcome = Outcome(backend: backend)
        let acknowledged = AckTimes()
        let start = try await client.list(Pod.self, namespace: "bench").metadata.resourceVersion

        // Watchers: each counts ADDED, MODIFIED and DELETED events and their delivery latency.
        let expected = 3 * pods
        let kubeconfig = server.directory + "/admin.kubeconfig"
        let watchTasks = try await withThrowingTaskGroup(of: Task<(LatencyHistogram, Int), Never>.self) { group in
            for _ in 0..<watchers {
                group.addTask {
                    let watchClient = try KubeClient(try Connection.kubeconfig(at: kubeconfig))
                    // Raw lines: decoding every event into a Pod would make the watchers, not the
                    // server, the bottleneck of this machine.
                    let lines = try await watchClient.watchLines(Pod.self, namespace: "bench", resourceVersion: start, bookmarks: false)
                    return Task {
                        var histogram = LatencyHistogram()
                        var seen = 0
                        do {
                            for try await line in lines {
                                let now = monotonicNanos()
                                if let key = Self.eventKey(line), let acked = acknowledged.time(of: key) {
                                    histogram.record(now > acked ? now - acked : 0)
                                }
                                seen += 1
                                if seen == expected { break }
                            }
                        } catch {}
                        return (histogram, seen)
                    }
                }
            }
            var tasks: [Task<(LatencyHistogram, Int), Never>] = []
            for try await task in group { tasks.append(task) }
            return tasks
        }

        let cpuBefore = server.cpuSeconds()
        for phase in ["create", "update", "delete"] {
            let started = monotonicNanos()
            let histogram = try await withThrowingTaskGroup(of: LatencyHistogram.self) { group in
                for worker in 0..<clients {
                    group.addTask {
                        var histogram = LatencyHistogram()
                        for index in stride(from: worker, to: pods, by: clients) {
                            let name = "pod-\(index)"
                            let before = monotonicNanos()
                            switch phase {
                            case "create":
                                var pod = Pod(metadata: ObjectMeta(name: name, namespace: "bench", labels: ["app": "bench"]))
                                pod.spec.containers = [Container(name: "app", image: "busybox")]
                                _ = try await client.create(pod)
                                acknowledged.record("ADDED \(name)")
                            case "update":
                                _ = try await client.mergePatch(Pod.self, name: name, namespace: "bench",
                                                                patch: ["metadata": ["labels": ["phase": "updated"]]])
                                acknowledged.record("MODIFIED \(name)")
                            default:
                                try await client.delete(Pod.self, name: name, namespace: "bench")
                                acknowledged.record("DELETED \(name)")
                            }
                            histogram.record(monotonicNanos() - before)
                        }
                        return histogram
                    }
                }
                var merged = LatencyHistogram()
                for try await histogram in group { merged.merge(histogram) }
                return merged
            }
            outcome.phases.append((phase, Double(monotonicNanos() - started) / 1e9, histogram))
        }
        outcome.serverCPUSeconds = server.cpuSeconds() - cpuBefore
        // Watchers get a few seconds to drain what is in flight.
        let drain = Task {
            try? await Task.sleep(for: .seconds(10))
            for task in watchTasks { task.cancel() }
        }
        for task in watchTasks {
            let (histogram, seen) = await task.value
            outcome.delivery.merge(histogram)
            outcome.delivered += seen
        }
        drain.cancel()
        outcome.expectedDeliveries = expected * watchers
        return outcome
    }
}

extension BenchAPIServerCommand {
    /// "ADDED pod-7" from a watch line, by finding `"type":"` and the first `"name":"` after
    /// `"metadata":` (the server writes keys sorted, and the pod's name is the first name there).
    static func eventKey(_ line: Data) -> String? {
        func value(after marker: String, from start: Data.Index) -> (String, Data.Index)? {
            guard let range = line.range(of: Data(marker.utf8), in: start..<line.endIndex),
                  let end = line[range.upperBound...].firstIndex(of: UInt8(ascii: "\"")) else { return nil }
            return (String(decoding: line[range.upperBound..<end], as: UTF8.self), end)
        }
        guard let (type, _) = value(after: "\"type\":\"", from: line.startIndex),
              let metadata = line.range(of: Data("\"metadata\":".utf8)),
              let (name, _) = value(after: "\"name\":\"", from: metadata.upperBound) else { return nil }
        return type + " " + name
    }
}

/// When each write was acknowledged, by "EVENT name".
private final class AckTimes: Sendable {
    private let times = Mutex<[String: UInt64]>([:])

    func record(_ key: String) {
        let now = monotonicNanos()
        times.withLock { $0[key] = now }
    }

    func time(of key: String) -> UInt64? { times.withLock { $0[key] } }
}
