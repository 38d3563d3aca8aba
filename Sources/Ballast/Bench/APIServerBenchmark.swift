// `ballast bench apiserver`: N clients create, update and delete pods through `ballast apiserver`
// (HTTPS, keep-alive connections, the admin token) while M watchers follow the namespace; it
// reports requests/s and latency per phase, and how long each event took to reach the
// watchers. `--watchers 0,10,100` runs the phases once per count, each on a fresh API server.
// A list phase then times a list of `--list-pods` pods served at `resourceVersion=0` (what a
// watch cache answers) against one read from the store (`resourceVersionMatch=Exact`). The
// server runs on the embedded store and, with --compare-etcd, on a real etcd in the same run.
import APIClient
import ArgumentParser
import ClusterAPI
import EtcdAPI
import Foundation
import HTTPKit
import Synchronization

/// `--watchers 0,10,100`: the watcher counts of a sweep, in the order given.
struct WatcherSweep: ExpressibleByArgument, Sendable {
    var counts: [Int]

    init(_ counts: [Int]) { self.counts = counts }

    /// "0,10,100" (spaces allowed); nil for anything else, an empty list included.
    init?(argument: String) {
        let parts = argument.split(separator: ",", omittingEmptySubsequences: false)
        let counts = parts.compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !counts.isEmpty, counts.count == parts.count else { return nil }
        self.counts = counts
    }

    var defaultValueDescription: String { counts.map(String.init).joined(separator: ",") }
}

struct BenchAPIServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apiserver",
        abstract: "Pods created, updated and deleted through ballast apiserver while watchers follow them; lists from the cache and the store."
    )

    @Option(help: "Concurrent clients writing pods.")
    var clients: Int = 8

    @Option(help: "Concurrent watchers of the namespace: one count, or a comma-separated sweep (0,10,100) run one after the other, one table row per count.")
    var watchers = WatcherSweep([100])

    @Option(help: "Pods each phase creates, updates and deletes (shared among the clients).")
    var pods: Int = 2000

    @Option(help: "Pods created for the list phase (resourceVersion=0 against an Exact read from the store); 0 skips it.")
    var listPods: Int = 10_000

    @Option(help: "Write creates/s against watchers (one line per backend) to this SVG file.")
    var plot: String?

    @OptionGroup var etcd: CompareEtcdOptions
    @OptionGroup var logging: LoggingOptions
    var compareEtcd: Bool { etcd.compareEtcd }

    /// Lists of each kind in the list phase, after one unmeasured list of each.
    static let listRepetitions = 5

    func validate() throws {
        guard (1...256).contains(clients) else { throw ValidationError("--clients \(clients): expected 1 to 256") }
        for count in watchers.counts where !(0...1000).contains(count) {
            throw ValidationError("--watchers \(count): expected 0 to 1000")
        }
        guard (1...100_000).contains(pods) else { throw ValidationError("--pods \(pods): expected 1 to 100000") }
        guard (0...100_000).contains(listPods) else { throw ValidationError("--list-pods \(listPods): expected 0 to 100000") }
    }

    /// One run of the three phases: one backend, one watcher count.
    struct Outcome {
        var backend: String
        var watchers: Int
        var pods: Int
        var phases: [(name: String, seconds: Double, latency: LatencyHistogram)] = []
        var delivery = LatencyHistogram()
        var delivered = 0
        var expectedDeliveries = 0
        var serverCPUSeconds = 0.0
        /// This process's CPU over the three phases: the clients and the watchers' readers.
        var benchCPUSeconds = 0.0
    }

    /// The list phase of one backend: seconds per list, from the cache's answer
    /// (`resourceVersion=0`) and from the store (`resourceVersionMatch=Exact`).
    struct ListOutcome {
        var backend: String
        var pods: Int
        var bytes: Int
        var cached: [Double] = []
        var exact: [Double] = []
    }

    func run() async throws {
        print("ballast bench apiserver: \(pods) pods, \(clients) clients, watchers \(watchers.defaultValueDescription)"
            + (listPods > 0 ? ", lists of \(listPods) pods" : "") + "\n")
        var outcomes: [Outcome] = []
        var lists: [ListOutcome] = []
        let embedded = try await measure(backend: "embedded", etcd: nil)
        outcomes += embedded.outcomes
        lists += embedded.list.map { [$0] } ?? []
        if compareEtcd {
            let onEtcd = try await BenchServer.etcd().using { etcd in try await measure(backend: "etcd", etcd: etcd.endpoint) }
            outcomes += onEtcd.outcomes
            lists += onEtcd.list.map { [$0] } ?? []
        }
        print(APIServerBenchReport(outcomes: outcomes, lists: lists, settings: self).text())
        if let plot {
            try APIServerBenchReport(outcomes: outcomes, lists: lists, settings: self).svg().write(toFile: plot, atomically: true, encoding: .utf8)
            print("\ncreates/s against watchers written to \(plot)")
        }
    }

    /// Every watcher count on `backend` (a fresh API server each, in a namespace of its own so
    /// that one etcd serves them all), then the list phase on the last one.
    private func measure(backend: String, etcd: String?) async throws -> (outcomes: [Outcome], list: ListOutcome?) {
        var outcomes: [Outcome] = []
        var list: ListOutcome?
        for (index, count) in watchers.counts.enumerated() {
            let last = index == watchers.counts.count - 1
            progress("\(backend): \(count) watchers…")
            let (outcome, listed) = try await BenchServer.apiserver(etcd: etcd, logLevel: logging.logLevel ?? .warning).using { server in
                let outcome = try await measure(backend: backend, watchers: count, namespace: "bench-\(index)", server: server)
                guard last && listPods > 0 else { return (outcome, ListOutcome?.none) }
                progress("\(backend): lists of \(listPods) pods…")
                return (outcome, try await measureList(backend: backend, server: server))
            }
            outcomes.append(outcome)
            if let listed { list = listed }
        }
        return (outcomes, list)
    }

    private func progress(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    private func measure(backend: String, watchers: Int, namespace: String, server: BenchServer) async throws -> Outcome {
        let client = try KubeClient(try Connection.kubeconfig(at: server.directory + "/admin.kubeconfig"))
        _ = try await client.create(Namespace(metadata: ObjectMeta(name: namespace)))
        var outcome = Outcome(backend: backend, watchers: watchers, pods: pods)
        let acknowledged = AckTimes(pods: pods)
        let start = try await client.list(Pod.self, namespace: namespace).metadata.resourceVersion

        // Watchers: each counts ADDED, MODIFIED and DELETED events and their delivery latency.
        // Each reads its watch in place, on its connection's event loop (no task wake, copy or
        // allocation per chunk or line), and finds in each line only the event's type and the
        // pod's number: decoding every event into a Pod, or even splitting it into lines, would
        // make the watchers, not the server, the bottleneck of this machine.
        let expected = 3 * pods
        let kubeconfig = server.directory + "/admin.kubeconfig"
        let watches = try await withThrowingTaskGroup(of: WatchTally.self) { group in
            for _ in 0..<watchers {
                group.addTask {
                    let watchClient = try KubeClient(try Connection.kubeconfig(at: kubeconfig))
                    let tally = WatchTally(expected: expected, acknowledged: acknowledged)
                    let reading = try await watchClient.watchLinesInPlace(Pod.self, namespace: namespace, resourceVersion: start,
                                                                          bookmarks: false) { lines in tally.read(lines) }
                    tally.reading(reading)
                    return tally
                }
            }
            var tallies: [WatchTally] = []
            for try await tally in group { tallies.append(tally) }
            return tallies
        }

        let cpuBefore = server.cpuSeconds()
        let ownCPUBefore = ProcessInfoReader.cpuSeconds(pid: "self") ?? 0
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
                                _ = try await client.create(Self.pod(name, namespace: namespace))
                                acknowledged.record(.added, index)
                            case "update":
                                _ = try await client.mergePatch(Pod.self, name: name, namespace: namespace,
                                                                patch: ["metadata": ["labels": ["phase": "updated"]]])
                                acknowledged.record(.modified, index)
                            default:
                                try await client.delete(Pod.self, name: name, namespace: namespace)
                                acknowledged.record(.deleted, index)
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
        outcome.benchCPUSeconds = (ProcessInfoReader.cpuSeconds(pid: "self") ?? 0) - ownCPUBefore
        // Watchers get a few seconds to drain what is in flight.
        let drain = Task {
            try? await Task.sleep(for: .seconds(10))
            for watch in watches { watch.cancel() }
        }
        for watch in watches {
            await watch.finished()
            let (histogram, seen) = watch.result
            outcome.delivery.merge(histogram)
            outcome.delivered += seen
        }
        drain.cancel()
        outcome.expectedDeliveries = expected * watchers
        return outcome
    }

    static func pod(_ name: String, namespace: String) -> Pod {
        var pod = Pod(metadata: ObjectMeta(name: name, namespace: namespace, labels: ["app": "bench"]))
        pod.spec.containers = [Container(name: "app", image: "busybox")]
        return pod
    }

    /// Creates `listPods` pods, then lists them all, alternately at `resourceVersion=0` and at
    /// the revision after the creates with `resourceVersionMatch=Exact`, `listRepetitions` times
    /// each (after one unmeasured list of each). Bodies are read, not decoded.
    private func measureList(backend: String, server: BenchServer) async throws -> ListOutcome {
        let client = try KubeClient(try Connection.kubeconfig(at: server.directory + "/admin.kubeconfig"))
        let namespace = "bench-list"
        _ = try await client.create(Namespace(metadata: ObjectMeta(name: namespace)))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<clients {
                group.addTask {
                    for index in stride(from: worker, to: listPods, by: clients) {
                        _ = try await client.create(Self.pod("listed-\(index)", namespace: namespace))
                    }
                }
            }
            try await group.waitForAll()
        }
        let revision = try await client.list(Pod.self, namespace: namespace, limit: 1).metadata.resourceVersion ?? "0"
        let path = "/api/v1/namespaces/\(namespace)/pods"
        var outcome = ListOutcome(backend: backend, pods: listPods, bytes: 0)
        func timed(_ query: [String: String]) async throws -> (seconds: Double, bytes: Int) {
            let started = monotonicNanos()
            let response = try await client.send(.GET, path, query: query)
            guard response.status.code == 200 else {
                throw BenchError(description: "list \(query) answered \(response.status.code): \(String(decoding: response.body.prefix(300), as: UTF8.self))")
            }
            return (Double(monotonicNanos() - started) / 1e9, response.body.count)
        }
        let cached = ["resourceVersion": "0"], exact = ["resourceVersion": revision, "resourceVersionMatch": "Exact"]
        _ = try await timed(cached)
        _ = try await timed(exact)
        for _ in 0..<Self.listRepetitions {
            let fromCache = try await timed(cached)
            outcome.cached.append(fromCache.seconds)
            outcome.bytes = fromCache.bytes
            outcome.exact.append(try await timed(exact).seconds)
        }
        return outcome
    }
}

/// The three kinds of event the phases make, in the order of the phases.
enum BenchEventType: Int, CaseIterable {
    case added, modified, deleted

    /// The event and the pod's number (`pod-7`: 7) of a watch line, found by a byte scan: the
    /// event's `"type":"` near the line's end (the server writes the event's keys sorted, so
    /// the type follows the object), and the first `"name":"` after `"metadata":` (the pod's
    /// keys are sorted too, and its name is the first name there). Nil for any other line.
    static func parse(_ line: UnsafeRawBufferPointer) -> (type: BenchEventType, index: Int)? {
        guard let base = line.baseAddress else { return nil }
        /// The offset just after `marker` at or after `from`, found by `memchr` of its byte at
        /// `anchor` (one that is rare before it in the line: the first byte, a quote, is everywhere).
        func after(_ marker: StaticString, anchor: Int, from: Int) -> Int? {
            let length = marker.utf8CodeUnitCount
            var at = from
            while at + length <= line.count {
                guard let hit = memchr(base + at + anchor, Int32(marker.utf8Start[anchor]), line.count - at - length + 1) else { return nil }
                at = base.distance(to: UnsafeRawPointer(hit)) - anchor
                if memcmp(base + at, marker.utf8Start, length) == 0 { return at + length }
                at += 1
            }
            return nil
        }
        guard let typeStart = after(#","type":""#, anchor: 3, from: max(0, line.count - 32)), typeStart < line.count else { return nil }
        let type: BenchEventType
        switch line[typeStart] {
        case UInt8(ascii: "A"): type = .added
        case UInt8(ascii: "M"): type = .modified
        case UInt8(ascii: "D"): type = .deleted
        default: return nil
        }
        // `m` first appears in `"metadata"` (after `apiVersion` and `kind`); `-`, in the name,
        // after only the creation timestamp's two.
        guard let metadata = after(#""metadata":"#, anchor: 1, from: 0),
              var at = after(#""name":"pod-"#, anchor: 11, from: metadata) else { return nil }
        var index = 0
        let digitsStart = at
        while at < line.count, line[at] >= UInt8(ascii: "0"), line[at] <= UInt8(ascii: "9"), at - digitsStart < 9 {
            index = index * 10 + Int(line[at] - UInt8(ascii: "0"))
            at += 1
        }
        guard at > digitsStart, at < line.count, line[at] == UInt8(ascii: "\"") else { return nil }
        return (type, index)
    }
}

/// When each write was acknowledged to its client, by event type and pod number (0: not yet).
final class AckTimes: Sendable {
    private let pods: Int
    private let times: Mutex<[UInt64]>

    init(pods: Int) {
        self.pods = pods
        self.times = Mutex([UInt64](repeating: 0, count: BenchEventType.allCases.count * pods))
    }

    func record(_ type: BenchEventType, _ index: Int) {
        let now = monotonicNanos()
        times.withLock { $0[type.rawValue * pods + index] = now }
    }

    func time(of type: BenchEventType, _ index: Int) -> UInt64? {
        guard index < pods else { return nil }
        let time = times.withLock { $0[type.rawValue * pods + index] }
        return time == 0 ? nil : time
    }
}

/// One watcher of the benchmark: its lines are counted and timed where they arrive (on the
/// connection's event loop); it stops reading once it has seen every event.
final class WatchTally: Sendable {
    private struct State {
        var histogram = LatencyHistogram()
        var seen = 0
        var reading: HTTPStreamReading?
    }

    private let expected: Int
    private let acknowledged: AckTimes
    private let state = Mutex(State())

    init(expected: Int, acknowledged: AckTimes) {
        self.expected = expected
        self.acknowledged = acknowledged
    }

    /// Counts and times the events of `lines`, all read at one moment.
    func read(_ lines: WatchLineBytes) {
        let now = monotonicNanos()
        let done = state.withLock { s -> HTTPStreamReading? in
            guard s.seen < expected else { return nil }
            lines.forEachLine { line in
                guard s.seen < expected else { return }
                if let (type, index) = BenchEventType.parse(line), let acked = acknowledged.time(of: type, index) {
                    s.histogram.record(now > acked ? now - acked : 0)
                }
                s.seen += 1
            }
            return s.seen == expected ? s.reading : nil
        }
        done?.cancel()
    }

    /// The watch being read (once it has started): cancelled at once if it has already seen everything.
    func reading(_ reading: HTTPStreamReading) {
        let done = state.withLock { s -> Bool in
            s.reading = reading
            return s.seen >= expected
        }
        if done { reading.cancel() }
    }

    func cancel() { state.withLock { $0.reading }?.cancel() }

    /// Returns when the watch has ended (every event seen, cancelled, or closed by the server).
    func finished() async {
        guard let reading = state.withLock({ $0.reading }) else { return }
        try? await reading.finished()
    }

    var result: (LatencyHistogram, Int) { state.withLock { ($0.histogram, $0.seen) } }
}
