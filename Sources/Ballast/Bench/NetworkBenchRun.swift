// The steps of `ballast bench network` (NetworkBenchmark.swift): the cluster, the two pods and
// the server thread, the Services, the timed changes, the traffic, and the tear-down.
//
// Why Services without selector, with slices the bench writes, rather than selector Services
// over pods: what is measured is kube-proxy's part — an API object changed → the rule in the
// kernel — at 1,000 Services. Selector Services would add the EndpointSlice controller's work
// (and 1,000 real pods' worth of kubelet work) to the growth without changing what a proxy
// does with a slice; written directly, each change is one API write whose acknowledgment the
// clock starts from. The endpoints are real: every slice names the server pod.
import APIClient
import ClusterAPI
import EtcdAPI
import Foundation
import HostSystem
import KubeProxy
import Logging

final class NetworkBenchRun: @unchecked Sendable {
    struct Settings {
        var nodes: Int
        var services: Int
        var changes: Int
        var requests: Int
        var logLevel: String
    }

    /// Ranges of its own, beside the tests' (198.18.128.0/17, 198.19.128.0/17), `bench e2e`'s
    /// (198.18.64.0/18, 198.19.64.0/18) and those a default cluster routes elsewhere.
    static let clusterCIDR = "198.18.32.0/19"
    static let serviceCIDR = "198.19.32.0/19"
    static let namespace = "bench-net"
    /// Where the server threads listen in the server pod: the Services' endpoints, and the
    /// port the traffic reaches through the pod IP; the ClusterIP traffic (the `target`
    /// Service) reaches a second listener on the next port, so that the two paths' connections
    /// never share a server-side 4-tuple (a port the client reuses would otherwise meet the
    /// other path's TIME_WAIT, in the server and in conntrack).
    static let serverPort: UInt16 = 9000
    static let targetPort: UInt16 = 9001

    let root: String
    let suffix: String
    let settings: Settings
    let logger: Logger
    let stop = StopFlag()
    var cluster: DetachedUp { DetachedUp(root: root) }
    var data: String { cluster.data }
    private var client: KubeClient!
    private var started = false
    private var servers: [PodTCPServer] = []
    private var watcher: RuleWatcher?

    init(root: String, suffix: String, settings: Settings, logger: Logger) {
        self.root = root
        self.suffix = suffix
        self.settings = settings
        self.logger = logger
    }

    func measure() async throws -> NetworkBenchResult {
        var result = NetworkBenchResult()
        result.upSeconds = try await startCluster()
        guard let spec = try ClusterSpec.read(dataDir: data) else { throw BenchFailure("ballast up left no cluster.json in \(data)") }
        let tag = try spec.network.tag
        let tables = (1...settings.nodes).map { Ruleset.tableName(tag: tag, node: "node-\($0)") }
        result.proxies = tables.count
        _ = try await client.create(Namespace(metadata: ObjectMeta(name: Self.namespace)))
        let serverPod = try await runPod("server", node: "node-2")
        let clientPod = try await runPod("client", node: "node-1")
        for port in [Self.serverPort, Self.targetPort] {
            servers.append(try await PodTCPServer.start(netns: netns(serverPod.pod, node: "node-2"), port: port))
        }

        // Grow.
        let proxyCPU = { self.kubeProxyCPU() }
        var cpu = proxyCPU()
        var start = ContinuousClock.now
        let services = try await grow(endpoint: serverPod.ip)
        try await waitInPlace(names: Set(services.keys), tables: tables)
        result.growSeconds = (ContinuousClock.now - start).seconds
        result.growCPU = proxyCPU() - cpu
        progress("")

        // Timed changes.
        let watcher = RuleWatcher(tables: tables)
        self.watcher = watcher
        try await watcher.start(probe: Ruleset.tableName(tag: tag, node: "bench-probe"))
        try await Task.sleep(for: .seconds(1))
        cpu = proxyCPU()
        start = ContinuousClock.now
        try await timeChanges(services: services, endpoints: [serverPod.ip, clientPod.ip], watcher: watcher, into: &result)
        result.changesSeconds = (ContinuousClock.now - start).seconds
        result.changesCPU = proxyCPU() - cpu
        await watcher.stop()
        progress("")

        // Traffic: the pod's address and the ClusterIP of `target` (one of the Services).
        guard let target = services["target"] else { throw BenchFailure("the Service target was not created") }
        progress("requests: \(settings.requests) to \(serverPod.ip):\(Self.serverPort) and to \(target):80, alternated…")
        let traffic = try await PodTCPClient.run(netns: netns(clientPod.pod, node: "node-1"),
                                                 targets: [.init(label: "pod IP", address: serverPod.ip, port: Self.serverPort),
                                                           .init(label: "ClusterIP", address: target, port: 80)],
                                                 count: settings.requests, warmup: min(200, settings.requests / 10), stop: stop)
        progress("")
        result.podIP = traffic.latencies[0]
        result.clusterIP = traffic.latencies[1]
        result.failures = (traffic.failures[0], traffic.failures[1])
        result.served = servers.reduce(0) { $0 + $1.served }
        // A path that fails is not measured: its failures would be fast and flatter it.
        if traffic.failures.reduce(0, +) * 100 > settings.requests {
            throw BenchFailure("\(traffic.failures[0]) requests to the pod IP and \(traffic.failures[1]) to the ClusterIP failed; the first: \(traffic.firstFailure ?? "")")
        }
        for server in servers { await server.stop() }
        return result
    }

    // MARK: Cluster

    private func startCluster() async throws -> Double {
        progress("ballast up: starting \(settings.nodes) nodes…")
        started = true
        let (elapsed, client) = try await cluster.start(
            nodes: settings.nodes, cgroupRoot: "/ballast/bench-network-" + suffix, logLevel: settings.logLevel,
            ["--volumes-dir", root + "/volumes", "--zones", "1",
             "--cluster-cidr", Self.clusterCIDR, "--service-cluster-ip-range", Self.serviceCIDR])
        self.client = client
        progress("")
        return elapsed
    }

    func keepLogs() { cluster.keepLogs() }

    /// The server thread and `nft monitor` stopped, then `ballast down --purge` and a sweep.
    func tearDown(removeDirectory: Bool) async {
        stop.raise()
        for server in servers { await server.stop() }
        await watcher?.stop()
        if started { await cluster.down() }
        await HostCleanup.sweep(root, removeDirectory: removeDirectory)
    }

    /// kube-proxy CPU seconds so far, every node's, with the nft processes they waited for.
    private func kubeProxyCPU() -> Double {
        (1...settings.nodes).reduce(0) { total, index in
            let pidFile = data + "/logs/kube-proxy-node-\(index).pid"
            guard let pid = (try? String(contentsOfFile: pidFile, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) else { return total }
            return total + (ProcessInfoReader.cpuSeconds(pid: pid, includingChildren: true) ?? 0)
        }
    }

    // MARK: Pods

    /// A busybox pod sleeping on `node`, once Running with an address.
    private func runPod(_ name: String, node: String) async throws -> (pod: Pod, ip: String) {
        progress("pod \(name) on \(node)…")
        var pod = Pod(metadata: ObjectMeta(name: name, namespace: Self.namespace))
        var container = Container(name: "c", image: "busybox")
        container.command = ["sh", "-c", "exec sleep 36000"]
        pod.spec.containers = [container]
        pod.spec.nodeSelector = ["kubernetes.io/hostname": node]
        pod.spec.terminationGracePeriodSeconds = 1
        _ = try await client.create(pod)
        let deadline = ContinuousClock.now + .seconds(120)
        while true {
            if let seen = try? await client.get(Pod.self, name: name, namespace: Self.namespace), KubeletBenchRun.isRunning(seen),
               let ip = seen.status.podIP, !ip.isEmpty {
                progress("")
                return (seen, ip)
            }
            guard ContinuousClock.now < deadline else { throw BenchFailure("pod \(Self.namespace)/\(name) was not Running on \(node) within 120 s; logs in \(root)/logs") }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// The pod's network namespace, as its kubelet pinned it.
    private func netns(_ pod: Pod, node: String) throws -> String {
        let path = data + "/nodes/\(node)/kubelet/pods/\(pod.metadata.uid ?? "")/sandbox/net"
        guard FileManager.default.fileExists(atPath: path) else { throw BenchFailure("no network namespace at \(path) for pod \(pod.metadata.name ?? "")") }
        return path
    }

    // MARK: Services

    private func service(_ name: String) -> ClusterAPI.Service {
        ClusterAPI.Service(metadata: ObjectMeta(name: name, namespace: Self.namespace), spec: [
            "type": "ClusterIP", "ports": [["protocol": "TCP", "port": 80, "targetPort": .number(Double(port(of: name)))]],
        ])
    }

    /// The endpoints' port of Service `name`.
    private func port(of name: String) -> UInt16 { name == "target" ? Self.targetPort : Self.serverPort }

    private func slice(_ name: String, endpoints: [String]) -> EndpointSlice {
        EndpointSlice(metadata: ObjectMeta(name: name + "-bench", namespace: Self.namespace, labels: [
                          "kubernetes.io/service-name": name, "endpointslice.kubernetes.io/managed-by": "ballast-bench",
                      ]),
                      addressType: "IPv4",
                      endpoints: endpoints.map { Endpoint(addresses: [$0], conditions: EndpointConditions(ready: true, serving: true, terminating: false)) },
                      ports: [EndpointPort(name: "", protocol: "TCP", port: Int32(port(of: name)))])
    }

    /// `target` and s-0 … s-(N-2) (N Services in all), each with its slice naming `endpoint`,
    /// 16 writes in flight; Service name → ClusterIP.
    private func grow(endpoint: String) async throws -> [String: String] {
        let names = ["target"] + (0..<(settings.services - 1)).map { "s-\($0)" }
        let client = self.client!
        var addresses: [String: String] = [:]
        try await withThrowingTaskGroup(of: (String, String).self) { group in
            var next = 0
            func add() {
                let name = names[next]
                next += 1
                group.addTask {
                    _ = try await client.create(self.slice(name, endpoints: [endpoint]))
                    let created = try await client.create(self.service(name))
                    guard let ip = created.spec?["clusterIP"]?.stringValue else { throw BenchFailure("Service \(name) has no ClusterIP") }
                    return (name, ip)
                }
            }
            while next < min(16, names.count) { add() }
            for try await (name, ip) in group {
                addresses[name] = ip
                if addresses.count % 50 == 0 { progress("Services created: \(addresses.count)/\(names.count)") }
                if stop.isRaised { throw CancellationError() }
                if next < names.count { add() }
            }
        }
        return addresses
    }

    /// Until every proxy's `service-ips` map holds each of `names`.
    private func waitInPlace(names: Set<String>, tables: [String]) async throws {
        let deadline = ContinuousClock.now + .seconds(300)
        for table in tables {
            while true {
                let listed = try await SystemCommand.run(["nft", "list", "map", "ip", table, "service-ips"], timeout: .seconds(60))
                let present = Self.ourServices(in: listed.stdout)
                progress("Services in \(table): \(present.intersection(names).count)/\(names.count)")
                if names.isSubset(of: present) { break }
                guard ContinuousClock.now < deadline else {
                    throw BenchFailure("only \(present.intersection(names).count) of \(names.count) Services in table ip \(table) after 300 s; logs in \(root)/logs")
                }
                try await Task.sleep(for: .milliseconds(500))
            }
        }
    }

    /// The names of the Services of the bench's namespace in an `nft list map … service-ips`.
    static func ourServices(in listing: String) -> Set<String> {
        let marker = ": goto svc-\(namespace)/"
        var names: Set<String> = []
        for piece in listing.split(whereSeparator: { $0 == "," || $0 == "{" || $0 == "\n" }) {
            guard let range = piece.range(of: marker) else { continue }
            let rest = piece[range.upperBound...]
            if let slash = rest.firstIndex(of: "/") { names.insert(String(rest[..<slash])) }
        }
        return names
    }

    /// `settings.changes` rounds of: a Service created (its slice written just before), a
    /// slice's endpoints changed (one added, or taken away again), the new Service deleted.
    private func timeChanges(services: [String: String], endpoints: [String], watcher: RuleWatcher, into result: inout NetworkBenchResult) async throws {
        let client = self.client!
        let changed = services.keys.filter { $0 != "target" }.sorted()
        var slices: [String: EndpointSlice] = [:]
        for round in 0..<settings.changes {
            if stop.isRaised { throw CancellationError() }
            progress("timed changes: round \(round + 1)/\(settings.changes)")
            // Create.
            let name = "x-\(round)"
            _ = try await client.create(slice(name, endpoints: [endpoints[0]]))
            try await Task.sleep(for: .milliseconds(100))
            var since = ContinuousClock.now
            let created = try await client.create(service(name))
            var acked = ContinuousClock.now
            guard let ip = created.spec?["clusterIP"]?.stringValue else { throw BenchFailure("Service \(name) has no ClusterIP") }
            let element = "service-ips { \(ip) . tcp . 80 : goto svc-\(Self.namespace)/\(name)/tcp/p80 }"
            var id = await watcher.expect("add element", element, since: since)
            result.created.append((try await watcher.wait(id, timeout: .seconds(30), what: "Service \(name) created") - acked).seconds)
            try await Task.sleep(for: .milliseconds(50))

            // Endpoints: the next Service's slice gains the second endpoint, or loses it.
            if !changed.isEmpty {
                let target = changed[round % changed.count]
                var current: EndpointSlice
                if let known = slices[target] {
                    current = known
                } else {
                    current = try await client.get(EndpointSlice.self, name: target + "-bench", namespace: Self.namespace)
                }
                let adding = current.endpoints.count == 1
                current.endpoints = (adding ? endpoints : [endpoints[0]]).map {
                    Endpoint(addresses: [$0], conditions: EndpointConditions(ready: true, serving: true, terminating: false))
                }
                since = ContinuousClock.now
                slices[target] = try await client.update(current)
                acked = ContinuousClock.now
                id = await watcher.expect("add rule", "svc-\(Self.namespace)/\(target)/tcp/p80 numgen random mod \(adding ? 2 : 1) vmap", since: since)
                result.endpointsChanged.append((try await watcher.wait(id, timeout: .seconds(30), what: "Service \(target)'s endpoints changed") - acked).seconds)
                try await Task.sleep(for: .milliseconds(50))
            }

            // Delete.
            since = ContinuousClock.now
            try await client.delete(ClusterAPI.Service.self, name: name, namespace: Self.namespace)
            acked = ContinuousClock.now
            id = await watcher.expect("delete element", element, since: since)
            result.deleted.append((try await watcher.wait(id, timeout: .seconds(30), what: "Service \(name) deleted") - acked).seconds)
            try await client.delete(EndpointSlice.self, name: name + "-bench", namespace: Self.namespace)
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    func progress(_ line: String) {
        FileHandle.standardError.write(Data("\r\u{1B}[K\(line)".utf8))
    }
}
