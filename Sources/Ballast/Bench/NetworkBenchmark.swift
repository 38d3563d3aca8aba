// `ballast bench network`: Services on a cluster of `ballast up` (this binary, on temporary dirs,
// free ports, a cgroup root and network ranges of its own), two measurements in one run:
//
// 1. Rule programming at scale: the cluster grows to N Services (1,000 by default), each
//    without selector and with an EndpointSlice the bench writes (pointing at a real pod);
//    then changes are made one at a time — a Service created, an EndpointSlice's endpoints
//    changed, a Service deleted — each timed from the API server's acknowledgment of the write
//    to the moment the kernel reports the rule in every node proxy's nftables table
//    (`nft monitor`, RuleWatcher). kube-proxy's CPU (with the nft it ran) beside them.
// 2. Traffic: short TCP exchanges, a new connection each, from a client pod on node-1 to a
//    server pod on node-2, against the pod's IP (the floor: the same pods, bridges and host
//    routes without a Service) and against a ClusterIP in front of it (the DNAT and conntrack
//    path, its Service one of the N in the proxies' maps), alternated request by request.
//    Client and server are threads of this process in the pods' network namespaces.
import APIClient
import ArgumentParser
import ClusterAPI
import EtcdAPI
import Foundation
import HostSystem
import KubeProxy
import Logging

struct BenchNetworkCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "network",
        abstract: "Service rule programming latency (API write → rule in every kube-proxy's nftables table) at 1,000 Services, and TCP requests through a ClusterIP beside the same pod-to-pod path."
    )

    @Option(help: "Nodes of the cluster (client on node-1, server on node-2).")
    var nodes: Int = 2

    @Option(help: "Services (each with an EndpointSlice) in the cluster while changes are timed.")
    var services: Int = 1000

    @Option(help: "Changes timed of each kind (Service create, endpoint change, Service delete).")
    var changes: Int = 50

    @Option(help: "TCP exchanges (a new connection each) to the pod IP and as many to the ClusterIP.")
    var requests: Int = 5000

    @Option(help: "Write an SVG chart (latency CDFs of the rule changes, and of the requests beside the pod-to-pod floor) to this file.")
    var plot: String?

    @Option(help: "Working directory (a new /tmp/ballast-bench-network-* by default); kept when given, with the components' logs in <dir>/logs; the cluster purged either way.")
    var dir: String?

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard (2...10).contains(nodes) else { throw ValidationError("--nodes \(nodes): expected 2 to 10 (the client and the server pods are on two nodes)") }
        guard (1...5000).contains(services) else { throw ValidationError("--services \(services): expected 1 to 5000") }
        guard (1...500).contains(changes) else { throw ValidationError("--changes \(changes): expected 1 to 500") }
        guard (100...1_000_000).contains(requests) else { throw ValidationError("--requests \(requests): expected 100 to 1000000") }
        var missing: [String] = []
        if getuid() != 0 { missing.append("root") }
        for tool in ["runc", "nft", "ip"] where !FileManager.default.isExecutableFile(atPath: SystemCommand.resolve(tool)) {
            missing.append(tool)
        }
        guard missing.isEmpty else {
            throw ValidationError("bench network needs \(missing.joined(separator: ", ")): it runs a cluster with `ballast up` (pod networks, kube-proxy's nftables tables) and enters its pods' network namespaces; run it as root after `make deps`")
        }
    }

    func run() async throws {
        let suffix = String(UUID().uuidString.prefix(6).lowercased())
        let root = dir.map { URL(fileURLWithPath: $0).standardizedFileURL.path } ?? "/tmp/ballast-bench-network-" + suffix
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let logger = logging.logger("ballast.bench", defaultLevel: .warning)
        let settings = NetworkBenchRun.Settings(nodes: nodes, services: services, changes: changes, requests: requests,
                                                logLevel: logging.logLevel?.rawValue ?? "warning")
        print("ballast bench network: ballast up with \(nodes) nodes (pods \(NetworkBenchRun.clusterCIDR), Services \(NetworkBenchRun.serviceCIDR)), \(grouped(Double(services))) Services, \(changes) timed changes of each kind, \(grouped(Double(requests))) requests per path; in \(root)\n")
        let run = NetworkBenchRun(root: root, suffix: suffix, settings: settings, logger: logger)
        let work = Task { try await run.measure() }
        let interrupt = InterruptHandler { _ in
            FileHandle.standardError.write(Data("\ninterrupted: stopping the cluster and removing what it made…\n".utf8))
            run.stop.raise()
            work.cancel()
        }
        let outcome = await work.result
        let failed: Bool
        if case .failure = outcome, !work.isCancelled { failed = true } else { failed = false }
        if failed || dir != nil { run.keepLogs() }
        await run.tearDown(removeDirectory: dir == nil && !failed)
        interrupt.cancel()
        let result: NetworkBenchResult
        do {
            result = try outcome.get()
        } catch where work.isCancelled {
            throw ExitCode(130)
        }
        print(result.report(settings))
        print("")
        print(result.targets(settings))
        if let plot {
            try result.svg().write(toFile: plot, atomically: true, encoding: .utf8)
            FileHandle.standardError.write(Data("chart written to \(plot)\n".utf8))
        }
    }
}

/// Latencies in seconds.
struct NetworkBenchResult {
    var upSeconds = 0.0
    /// Creating the Services and slices → every one in every proxy's table.
    var growSeconds = 0.0
    /// kube-proxy CPU seconds (every proxy, with the nft it ran) while growing, and while the
    /// timed changes were made.
    var growCPU = 0.0
    var changesCPU = 0.0
    var changesSeconds = 0.0
    var proxies = 0
    /// API write acknowledged → in every proxy's table.
    var created: [Double] = []
    var endpointsChanged: [Double] = []
    var deleted: [Double] = []
    /// Per exchange: to the pod's IP (the floor) and to the ClusterIP.
    var podIP: [Double] = []
    var clusterIP: [Double] = []
    var failures = (podIP: 0, clusterIP: 0)
    var served = 0

    static func percentile(_ values: [Double], _ q: Double) -> Double? { ControllersBenchResult.percentile(values, q) }

    var changes: [Double] { created + endpointsChanged + deleted }

    /// Exchanges per second on one path: its count over the time spent on it.
    static func rate(_ values: [Double]) -> Double? {
        let total = values.reduce(0, +)
        return total > 0 ? Double(values.count) / total : nil
    }

    /// ClusterIP time per exchange over the pod IP's (means of all exchanges).
    var overheadAll: Double? {
        guard let pod = Self.rate(podIP), let service = Self.rate(clusterIP) else { return nil }
        return pod / service
    }

    /// The overhead the target bounds: the ClusterIP's median time per exchange over the pod
    /// IP's. The median, not the mean: on this shared 2-core machine more than one exchange in a
    /// hundred waits milliseconds for a core (other processes), and those stalls move the means
    /// of 100 µs exchanges by tens of percent either way from run to run (`overheadAll`, printed
    /// beside it), while the DNAT's cost moves every exchange, the median with them.
    var overhead: Double? {
        guard let pod = Self.percentile(podIP, 0.5), let service = Self.percentile(clusterIP, 0.5) else { return nil }
        return service / pod
    }

    func report(_ settings: NetworkBenchRun.Settings) -> String {
        var rules = TextTable([("rule programming (API ack → rule in every proxy's table)", .left), ("count", .right), ("p50", .right), ("p99", .right), ("max", .right)])
        rules.append(["ballast up → \(settings.nodes) nodes Ready", "1", milliseconds(upSeconds), "", ""])
        rules.append(["grow to \(grouped(Double(settings.services))) Services + slices → all in place", "1", milliseconds(growSeconds), "", ""])
        for (name, values) in [("Service created (slice written before)", created), ("EndpointSlice endpoint added/removed", endpointsChanged),
                               ("Service deleted", deleted), ("all changes", changes)] {
            rules.append([name + " at \(grouped(Double(settings.services))) Services", "\(values.count)", milliseconds(Self.percentile(values, 0.5)),
                          milliseconds(Self.percentile(values, 0.99)), milliseconds(values.max())])
        }
        let cpu = "kube-proxy CPU (\(proxies) proxies, with the nft processes they ran): \(fixed(growCPU, 2)) s while growing (\(milliseconds(growCPU / Double(max(settings.services, 1)))) per Service), "
            + "\(fixed(changesCPU, 2)) s for the \(changes.count) timed changes (\(milliseconds(changes.isEmpty ? nil : changesCPU / Double(changes.count))) per change, in \(fixed(changesSeconds, 1)) s)."

        var traffic = TextTable([("TCP request, new connection each (node-1 pod → node-2 pod)", .left), ("count", .right), ("req/s", .right), ("p50", .right), ("p99", .right), ("failed", .right)])
        traffic.append(["pod IP (floor)", "\(podIP.count)", Self.rate(podIP).map { grouped($0) } ?? "-", microsecondsText(Self.percentile(podIP, 0.5)),
                        microsecondsText(Self.percentile(podIP, 0.99)), "\(failures.podIP)"])
        traffic.append(["ClusterIP (kube-proxy DNAT)", "\(clusterIP.count)", Self.rate(clusterIP).map { grouped($0) } ?? "-", microsecondsText(Self.percentile(clusterIP, 0.5)),
                        microsecondsText(Self.percentile(clusterIP, 0.99)), "\(failures.clusterIP)"])
        let p50 = Self.percentile(clusterIP, 0.5).flatMap { c in Self.percentile(podIP, 0.5).map { c / $0 } }
        let p99 = Self.percentile(clusterIP, 0.99).flatMap { c in Self.percentile(podIP, 0.99).map { c / $0 } }
        traffic.append(["ClusterIP / pod IP (time per request)", "", ratio(overheadAll, suffix: "×"), ratio(p50, suffix: "×"), ratio(p99, suffix: "×"), ""])
        return rules.render() + "\n" + cpu + "\nin place: the kernel's netlink report (`nft monitor`) of the Service's element added to / deleted from each proxy's service-ips map, or of its chain rewritten with the new endpoints.\n\n"
            + traffic.render()
            + "\nclient and server: threads of this benchmark in the two pods' network namespaces (setns), one exchange at a time, the two paths alternated request by request; the server answered \(grouped(Double(served))) connections."
    }

    func targetRows() -> [(name: String, limit: String, value: String, verdict: String)] {
        let p99 = Self.percentile(changes, 0.99)
        return [("rule programming p99 ≤ 1 s at 1,000 Services", "1000.0 ms", milliseconds(p99), verdict(p99, atMost: 1)),
                ("ClusterIP overhead ≤ 1.2× pod-to-pod (median time per request)", "1.20×", ratio(overhead, suffix: "×"),
                 verdict(overhead, atMost: 1.2))]
    }

    func targets(_ settings: NetworkBenchRun.Settings) -> String {
        var table = TextTable([("target", .left), ("limit", .right), ("this run", .right), ("", .left)])
        for row in targetRows() { table.append([row.name, row.limit, row.value, row.verdict]) }
        var text = table.render()
        if settings.services != 1000 { text += "\n(the programming target is defined at --services 1000; this run used --services \(settings.services))" }
        return text
    }

    func svg() -> String {
        LatencyCDFPlot.svg([("Service created → rule in place", created, []), ("endpoints changed → rule in place", endpointsChanged, []),
                            ("Service deleted → rule gone", deleted, []), ("TCP request: ClusterIP vs pod IP", clusterIP, podIP)],
                           measured: "measured (ClusterIP)", floor: "pod-to-pod floor")
    }
}

/// A latency in µs from seconds: "153.2 µs", or "-".
func microsecondsText(_ seconds: Double?) -> String {
    seconds.map { fixed($0 * 1e6, 1) + " µs" } ?? "-"
}
