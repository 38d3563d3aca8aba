// `ballast bench e2e`: the whole path as users drive it, on a cluster of `ballast up` (this
// binary, on temporary dirs, free ports and a cgroup root of its own): the time `up` takes to
// N Ready nodes; StatefulSet-style pods, each with a WaitForFirstConsumer claim of its own,
// created at a steady rate, created → Running split into stages (node selected, volume
// provisioned, claim Bound, scheduled, attachment created, disk attached, staged, published,
// Running) from watches and the mount table; then pods moved to
// another node of their zone (delete → the new pod Running). Beside them the floor measured in
// the same run: the kernel's part of a volume's life done directly (sparse file, losetup, mkfs,
// mount, bind mount, as `bench provision`) plus the cloud's injected create and attach latencies.
import APIClient
import ArgumentParser
import ClusterAPI
import CloudProvider
import EtcdAPI
import Foundation
import HostSystem
import Kubelet
import Logging

struct BenchE2ECommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "e2e",
        abstract: "`ballast up` to Ready nodes, pods with a fresh WaitForFirstConsumer claim each created → Running by stage, pods moved between nodes; beside the kernel's floor."
    )

    @Option(help: "Nodes of the cluster (pods move between nodes of one zone).")
    var nodes: Int = 3

    @Option(help: "Zones the nodes are spread over.")
    var zones: Int = 2

    @Option(help: "Pods, each with a claim of its own.")
    var pods: Int = 50

    @Option(help: "Pod (and claim) creations per second.")
    var rate: Double = 5

    @Option(help: "Pods moved to another node of their zone, one after another (0: none).")
    var moves: Int = 5

    @Option(help: "Replicas of the StatefulSets scaled from 0, one OrderedReady and one Parallel, after the pods (0: none).")
    var statefulsetReplicas = 30

    @Flag(help: "Also snapshot a 1 GiB claim with 512 MiB written and restore each snapshot (created → readyToUse, restore → Running), beside a cp --reflink=auto of its backing file.")
    var snapshots = false

    @Option(help: "Snapshots taken and restored with --snapshots.")
    var snapshotRuns = 5

    @Option(help: "Size of each claim (bytes, or with Mi, Gi).")
    var size = ByteCount(64 << 20)

    @Option(help: "Volumes attachable per node (default: room for every pod, every move and one StatefulSet, at least 16).")
    var attachLimit: Int?

    @Option(help: "The cloud's latencies (ballast up --cloud-latency).")
    var latency: String = UpCommand.defaultLatency

    @Option(help: "Write SVG charts to this directory: e2e-stages.svg (latency CDFs per stage, with the floor) and e2e-running.svg (pods Running over time).")
    var plot: String?

    @Flag(help: "Print the results as one JSON object (for CI) instead of tables.")
    var json = false

    @Option(help: "Working directory (a new /tmp/ballast-bench-e2e-* by default); kept when given, with the components' logs in <dir>/logs; the cluster purged either way.")
    var dir: String?

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard (1...10).contains(nodes) else { throw ValidationError("--nodes \(nodes): expected 1 to 10") }
        guard (1...min(nodes, 26)).contains(zones) else { throw ValidationError("--zones \(zones): expected 1 to --nodes") }
        guard (1...500).contains(pods) else { throw ValidationError("--pods \(pods): expected 1 to 500") }
        guard rate > 0, rate.isFinite, rate <= 100 else { throw ValidationError("--rate \(rate): expected more than 0, at most 100 per second") }
        guard (1...50).contains(snapshotRuns) else { throw ValidationError("--snapshot-runs \(snapshotRuns): expected 1 to 50") }
        guard (0...pods).contains(moves) else { throw ValidationError("--moves \(moves): expected 0 to --pods") }
        if let attachLimit, !(1...256).contains(attachLimit) { throw ValidationError("--attach-limit \(attachLimit): expected 1 to 256") }
        guard size.bytes >= 16 << 20 else { throw ValidationError("--size \(size): expected at least 16Mi (an ext4 file system)") }
        do { _ = try SimulatorConfiguration.parseLatencies(latency) } catch { throw ValidationError("--latency \(latency): \(error)") }
        if moves > 0 && nodes <= zones {
            throw ValidationError("--moves \(moves) needs a zone with two nodes: use more --nodes than --zones, or --moves 0")
        }
        var missing: [String] = []
        if getuid() != 0 { missing.append("root") }
        if !FileManager.default.fileExists(atPath: "/dev/loop-control") { missing.append("/dev/loop-control") }
        for tool in ["runc", "losetup", "mkfs.ext4"] where !FileManager.default.isExecutableFile(atPath: SystemCommand.resolve(tool)) {
            missing.append(tool)
        }
        guard missing.isEmpty else {
            throw ValidationError("bench e2e needs \(missing.joined(separator: ", ")): it runs a whole cluster with `ballast up` (make deps)")
        }
    }

    func run() async throws {
        let suffix = String(UUID().uuidString.prefix(6).lowercased())
        let root = dir.map { URL(fileURLWithPath: $0).standardizedFileURL.path } ?? "/tmp/ballast-bench-e2e-" + suffix
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let logger = logging.logger("ballast.bench", defaultLevel: .warning)
        // Every pod's disk must find a node with a free attach slot, moved ones and the first
        // StatefulSet's replicas included (the bare pods still run then): the default 16 leaves
        // no room for 50 pods on 3 nodes.
        let limit = attachLimit ?? min(256, max(16, (pods + statefulsetReplicas + nodes - 1) / nodes + moves + 4))
        let settings = E2EBenchRun.Settings(nodes: nodes, zones: zones, pods: pods, rate: rate, moves: moves,
                                            statefulSetReplicas: statefulsetReplicas, snapshotRuns: snapshots ? snapshotRuns : 0, size: size.bytes,
                                            attachLimit: limit, latency: latency, logLevel: logging.logLevel?.rawValue ?? "warning")
        if !json {
            print("ballast bench e2e: ballast up with \(nodes) nodes in \(zones) zone\(zones == 1 ? "" : "s"), \(pods) pods with a fresh \(size) claim each at \(fixed(rate, 1))/s, \(moves) moves; cloud latency \(latency); in \(root)\n")
        }
        let run = E2EBenchRun(root: root, suffix: suffix, settings: settings, logger: logger)
        let work = Task { try await run.measure() }
        let interrupt = InterruptHandler { _ in
            FileHandle.standardError.write(Data("\ninterrupted: stopping the cluster and removing what it made…\n".utf8))
            work.cancel()
        }
        let outcome = await work.result
        // A failed run, or one in a directory given, keeps the components' logs (the purge
        // removes the data dir).
        let failed: Bool
        if case .failure = outcome, !work.isCancelled { failed = true } else { failed = false }
        if failed || dir != nil { run.keepLogs() }
        await run.tearDown(removeDirectory: dir == nil && !failed)
        interrupt.cancel()
        let result: E2EBenchResult
        do {
            result = try outcome.get()
        } catch where work.isCancelled {
            throw ExitCode(130)
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(result.summary(settings)), as: UTF8.self))
        } else {
            print(result.report(settings))
            print("")
            print(result.targets(settings))
        }
        if let plot {
            try FileManager.default.createDirectory(atPath: plot, withIntermediateDirectories: true)
            try result.stagesSVG().write(toFile: plot + "/e2e-stages.svg", atomically: true, encoding: .utf8)
            try result.runningSVG().write(toFile: plot + "/e2e-running.svg", atomically: true, encoding: .utf8)
            FileHandle.standardError.write(Data("charts written to \(plot)/e2e-stages.svg and \(plot)/e2e-running.svg\n".utf8))
        }
    }
}

/// Latencies in seconds.
struct E2EBenchResult {
    /// `ballast up --detach` started → returned (every node Ready with its CSINode).
    var upSeconds = 0.0
    /// Per pod, from the creation of its claim and pod: each stage first seen.
    var stages: [(name: String, values: [Double])] = []
    /// Per pod: created → Running, and when it was seen Running since the first creation.
    var running: [Double] = []
    var runningAt: [Double] = []
    /// Per pod: when it was created, since the first creation.
    var createdAt: [Double] = []
    /// Per move: the old pod's delete → the new pod Running on another node.
    var moves: [Double] = []
    /// StatefulSets scaled from 0 (OrderedReady, then Parallel).
    var statefulSets: [StatefulSetScaleResult] = []
    /// With --snapshots: snapshot and restore times, and the copy floor.
    var snapshots: SnapshotBenchResult?
    /// CPU seconds each kind of component spent while the pods started, by kind (every
    /// node's kubelet counted as "kubelet"), with the tools they ran and waited for.
    var cpu: [(component: String, seconds: Double)] = []
    /// Of the machine's CPU time while the pods started, the part busy, and the cores.
    var machineBusy: Double?
    var cores = 1
    /// Kernel work done directly, plus the cloud's create + attach latencies.
    var floor: [Double] = []
    var floorCloudLatency = 0.0

    static func percentile(_ values: [Double], _ q: Double) -> Double? { ControllersBenchResult.percentile(values, q) }

    struct Summary: Encodable {
        struct Distribution: Encodable {
            var count: Int
            var p50Seconds: Double?
            var p99Seconds: Double?
        }
        var nodes: Int
        var pods: Int
        var rate: Double
        var upToReadySeconds: Double
        var createdToRunning: Distribution
        var stages: [String: Distribution]
        var move: Distribution
        /// Per pod management policy: scale → all Ready, and each replica's created → Running.
        var statefulSets: [String: StatefulSetSummary]
        var snapshots: SnapshotBenchResult.Summary?
        var floor: Distribution
        var floorCloudLatencySeconds: Double
        struct StatefulSetSummary: Encodable {
            var replicas: Int
            var allReadySeconds: Double
            var perReplica: Distribution
        }
        /// CPU seconds per pod of each kind of component while the pods started.
        var cpuPerPodSeconds: [String: Double]
        /// The part of the machine's CPU time that was busy meanwhile.
        var machineBusy: Double?
        var targets: [String: Bool]
    }

    func distribution(_ values: [Double]) -> Summary.Distribution {
        .init(count: values.count, p50Seconds: Self.percentile(values, 0.5), p99Seconds: Self.percentile(values, 0.99))
    }

    func summary(_ settings: E2EBenchRun.Settings) -> Summary {
        Summary(nodes: settings.nodes, pods: settings.pods, rate: settings.rate, upToReadySeconds: upSeconds,
                createdToRunning: distribution(running),
                stages: Dictionary(stages.map { ($0.name, distribution($0.values)) }, uniquingKeysWith: { first, _ in first }),
                move: distribution(moves),
                statefulSets: Dictionary(statefulSets.map { ($0.policy, Summary.StatefulSetSummary(replicas: $0.replicas, allReadySeconds: $0.allReadySeconds,
                                                                                            perReplica: distribution($0.perReplica))) },
                                         uniquingKeysWith: { first, _ in first }),
                snapshots: snapshots.map { .init(createdToReadyToUse: distribution($0.readyToUse), restoreToRunning: distribution($0.restoreRunning),
                                                 copyFloor: distribution($0.copyFloor)) },
                floor: distribution(floor), floorCloudLatencySeconds: floorCloudLatency,
                cpuPerPodSeconds: running.isEmpty ? [:] : Dictionary(cpu.map { ($0.component, $0.seconds / Double(running.count)) },
                                                                     uniquingKeysWith: { first, _ in first }),
                machineBusy: machineBusy,
                targets: Dictionary(targetRows(settings).map { ($0.name, $0.met) }, uniquingKeysWith: { first, _ in first }))
    }

    func report(_ settings: E2EBenchRun.Settings) -> String {
        var table = TextTable([("measurement", .left), ("count", .right), ("p50", .right), ("p99", .right)])
        table.append(["ballast up → \(settings.nodes) nodes Ready", "1", milliseconds(upSeconds), ""])
        table.append(["pod + fresh claim: created → Running", "\(running.count)", milliseconds(Self.percentile(running, 0.5)),
                      milliseconds(Self.percentile(running, 0.99))])
        for stage in stages {
            table.append(["  created → \(stage.name)", "\(stage.values.count)", milliseconds(Self.percentile(stage.values, 0.5)),
                          milliseconds(Self.percentile(stage.values, 0.99))])
        }
        table.append(["floor: kernel work + cloud create and attach", "\(floor.count)", milliseconds(Self.percentile(floor, 0.5)),
                      milliseconds(Self.percentile(floor, 0.99))])
        if !moves.isEmpty {
            table.append(["pod moved to another node: delete → Running", "\(moves.count)", milliseconds(Self.percentile(moves, 0.5)),
                          milliseconds(Self.percentile(moves, 0.99))])
        }
        for set in statefulSets {
            table.append(["StatefulSet \(set.policy) 0→\(set.replicas): scale → all Ready", "1", milliseconds(set.allReadySeconds), ""])
            table.append(["  per replica: created → Running", "\(set.perReplica.count)", milliseconds(Self.percentile(set.perReplica, 0.5)),
                          milliseconds(Self.percentile(set.perReplica, 0.99))])
        }
        for row in snapshots?.rows() ?? [] { table.append(row) }
        var cpuLine = ""
        if !cpu.isEmpty, !running.isEmpty {
            let perPod = cpu.map { "\($0.component) \(milliseconds($0.seconds / Double(running.count)))" }
            cpuLine = "\nCPU per pod while the pods started (with the tools each ran): " + perPod.joined(separator: ", ")
                + (machineBusy.map { "; the machine was busy \(fixed($0 * 100, 0)) % of its \(cores) cores" } ?? "") + "."
        }
        return table.render() + cpuLine + "\nfloor: a sparse file, losetup, mkfs.ext4, mount, bind mount, done directly in this run, plus the cloud's create and attach latencies (\(milliseconds(floorCloudLatency)));"
            + "\nstages are first seen by watches (claim's selected-node annotation, its PersistentVolume, claim Bound, pod bound to a node, VolumeAttachment created and attached, pod Running) and by asking the kernel every 5 ms whether the volume's staging and publish paths are mount points (staged, published)."
    }

    /// The issue's targets: up to 3 Ready nodes ≤ 10 s; created → Running p99 ≤ 5 s; p50 ≤ 2× the floor's p50.
    func targetRows(_ settings: E2EBenchRun.Settings) -> [(name: String, limit: Double?, value: Double?, met: Bool)] {
        let p99 = Self.percentile(running, 0.99), p50 = Self.percentile(running, 0.5), floor50 = Self.percentile(floor, 0.5)
        func row(_ name: String, _ limit: Double?, _ value: Double?) -> (String, Double?, Double?, Bool) {
            (name, limit, value, value.flatMap { v in limit.map { v <= $0 } } ?? false)
        }
        return [row("up to Ready nodes ≤ 10 s", 10, upSeconds),
                row("created → Running p99 ≤ 5 s", 5, p99),
                row("created → Running p50 ≤ 2× the floor's p50", floor50.map { $0 * 2 }, p50)]
    }

    func targets(_ settings: E2EBenchRun.Settings) -> String {
        var table = TextTable([("target", .left), ("limit", .right), ("this run", .right), ("", .left)])
        for row in targetRows(settings) {
            table.append([row.name, milliseconds(row.limit), milliseconds(row.value), verdict(row.value, atMost: row.limit)])
        }
        var text = table.render()
        if settings.nodes != 3 || settings.pods != 50 || settings.rate != 5 {
            text += "\n(the targets are defined at --nodes 3 --pods 50 --rate 5; this run used --nodes \(settings.nodes) --pods \(settings.pods) --rate \(fixed(settings.rate, 1)))"
        }
        return text
    }

    func stagesSVG() -> String {
        let series = stages.map { (label: $0.name, values: $0.values, dashed: false) }
            + [(label: "Running", values: running, dashed: false), (label: "floor", values: floor, dashed: true)]
        return LatencyCDFPlot.overlaid(title: "pod with a fresh claim: created → each stage (CDF), beside the floor", series: series)
    }

    func runningSVG() -> String {
        let floor50 = Self.percentile(floor, 0.5) ?? 0
        return LatencyCDFPlot.overTime(title: "pods Running over time (since the first creation)",
                                       series: [("Running", runningAt.sorted()), ("created", createdAt.sorted()),
                                                ("created + floor p50", createdAt.map { $0 + floor50 }.sorted())], unit: "pods")
    }
}

final class E2EBenchRun: @unchecked Sendable {
    struct Settings {
        var nodes: Int
        var zones: Int
        var pods: Int
        var rate: Double
        var moves: Int
        var statefulSetReplicas: Int
        /// Snapshots taken and restored (0: no snapshot phase).
        var snapshotRuns: Int
        var size: Int64
        var attachLimit: Int
        var latency: String
        var logLevel: String
    }

    let root: String
    let suffix: String
    let settings: Settings
    let logger: Logger
    var cluster: DetachedUp { DetachedUp(root: root) }
    var data: String { cluster.data }
    var volumes: String { root + "/volumes" }
    var client: KubeClient!
    private var started = false

    init(root: String, suffix: String, settings: Settings, logger: Logger) {
        self.root = root
        self.suffix = suffix
        self.settings = settings
        self.logger = logger
    }

    func measure() async throws -> E2EBenchResult {
        var result = E2EBenchResult()
        let latencies = try SimulatorConfiguration.parseLatencies(settings.latency)
        result.floorCloudLatency = ((latencies[.create] ?? .zero) + (latencies[.attach] ?? .zero)).seconds
        result.floor = try await measureFloor(count: min(settings.pods, 10), cloudLatency: result.floorCloudLatency)
        result.upSeconds = try await startCluster()
        try await measurePods(into: &result)
        if settings.moves > 0 { result.moves = try await measureMoves() }
        if settings.statefulSetReplicas > 0 {
            for policy in ["OrderedReady", "Parallel"] {
                result.statefulSets.append(try await measureStatefulSet(policy: policy, replicas: settings.statefulSetReplicas))
            }
        }
        if settings.snapshotRuns > 0 { result.snapshots = try await measureSnapshots(runs: settings.snapshotRuns) }
        return result
    }

    // MARK: Floor

    /// `count` volumes' kernel work done directly, one after another (then undone), each plus
    /// the cloud's latencies.
    private func measureFloor(count: Int, cloudLatency: Double) async throws -> [Double] {
        var values: [Double] = []
        let directory = root + "/floor"
        for index in 0..<count {
            progress("floor: volume \(index + 1)/\(count) (file, losetup, mkfs.ext4, mount, bind mount)")
            let staging = directory + "/staging-\(index)", target = directory + "/target-\(index)", file = directory + "/disk-\(index).img"
            for path in [staging, target] { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
            let start = ContinuousClock.now
            let device = try await DirectVolume.setUp(file, bytes: settings.size, staging: staging, target: target)
            values.append((ContinuousClock.now - start).seconds + cloudLatency)
            _ = try await SystemCommand.check(["umount", target])
            _ = try await SystemCommand.check(["umount", staging])
            _ = try await SystemCommand.check(["losetup", "--detach", device])
            unlink(file)
        }
        progress("")
        return values
    }

    // MARK: Cluster

    /// `ballast up --detach`; how long until it said the cluster is ready.
    private func startCluster() async throws -> Double {
        progress("ballast up: starting \(settings.nodes) nodes…")
        started = true
        let (elapsed, client) = try await cluster.start(
            nodes: settings.nodes, cgroupRoot: "/ballast/bench-e2e-" + suffix, logLevel: settings.logLevel,
            ["--volumes-dir", volumes, "--zones", "\(settings.zones)", "--cloud-latency", settings.latency,
             "--attach-limit", "\(settings.attachLimit)",
             // Ranges of its own, beside the tests' (198.18.128.0/17) and a default cluster's.
             "--cluster-cidr", "198.18.64.0/18", "--service-cluster-ip-range", "198.19.64.0/18"])
        self.client = client
        progress("")
        return elapsed
    }

    func keepLogs() { cluster.keepLogs() }

    func tearDown(removeDirectory: Bool) async {
        if started { await cluster.down() }
        await HostCleanup.sweep(root, removeDirectory: removeDirectory)
    }

    // MARK: Pods

    private func pod(_ name: String, claim: String, node: String? = nil) -> Pod {
        var pod = Pod(metadata: ObjectMeta(name: name, namespace: "default", labels: ["app": "bench-e2e"]))
        var container = Container(name: "app", image: "busybox")
        container.command = ["sh", "-c", "exec sleep 3600"]
        container.volumeMounts = [VolumeMount(name: "data", mountPath: "/data")]
        pod.spec.containers = [container]
        pod.spec.volumes = [Volume(name: "data", persistentVolumeClaim: PersistentVolumeClaimVolumeSource(claimName: claim))]
        pod.spec.terminationGracePeriodSeconds = 1
        if let node { pod.spec.nodeSelector = ["kubernetes.io/hostname": node] }
        return pod
    }

    private func measurePods(into result: inout E2EBenchResult) async throws {
        let data = self.data
        let watcher = StageWatcher(client: client) { node in data + "/nodes/\(node)/kubelet" }
        let watching = Task { await watcher.run() }
        defer { watching.cancel() }
        try await Task.sleep(for: .milliseconds(300))
        let count = settings.pods
        let size = settings.size
        let client = self.client!
        let cpuBefore = CPUSample(data: data)
        let firstCreation = ContinuousClock.now
        let creations = Task {
            try await BenchCluster.paced(count: count, rate: settings.rate) { index -> ContinuousClock.Instant in
                var claim = PersistentVolumeClaim(metadata: ObjectMeta(name: "data-web-\(index)", namespace: "default"))
                claim.spec.accessModes = ["ReadWriteOnce"]
                claim.spec.resources = VolumeResourceRequirements(requests: ["storage": Quantity(size, format: .binarySI)])
                let created = ContinuousClock.now
                _ = try await client.create(claim)
                _ = try await client.create(self.pod("web-\(index)", claim: "data-web-\(index)"))
                return created
            }
        }
        let deadline = ContinuousClock.now + .seconds(180) + .seconds(Double(count) / settings.rate)
        var shown = -1
        while true {
            let running = await watcher.running.count
            if running != shown {
                progress("pods Running: \(running)/\(count)")
                shown = running
            }
            if running >= count { break }
            guard ContinuousClock.now < deadline else {
                let pending = try await client.list(Pod.self, namespace: "default").items.filter { !KubeletBenchRun.isRunning($0) }.map { pod in
                    let why = pod.status.conditions?.first { $0.status == "False" && $0.message != nil }?.message.map { ": " + $0 } ?? ""
                    return "\(pod.metadata.name ?? "") (\(pod.status.phase ?? "no status")\(why))"
                }
                throw BenchFailure("only \(running) of \(count) pods Running in time; not running: \(pending.prefix(10).joined(separator: ", ")); logs in \(root)/logs")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        progress("")
        let cpuAfter = CPUSample(data: data)
        result.cpu = cpuAfter.components.keys.sorted().map { ($0, cpuAfter.components[$0]! - (cpuBefore.components[$0] ?? 0)) }
            .sorted { $0.seconds > $1.seconds }
        if let before = cpuBefore.machine, let after = cpuAfter.machine, after.total > before.total {
            result.machineBusy = (after.busy - before.busy) / (after.total - before.total)
        }
        result.cores = ProcessInfo.processInfo.activeProcessorCount
        let created = try await creations.value
        let seen = await watcher.snapshot()
        var claims: [String: PersistentVolumeClaim] = [:]
        for claim in try await client.list(PersistentVolumeClaim.self, namespace: "default").items { claims[claim.metadata.name ?? ""] = claim }
        var stages: [String: [Double]] = [:]
        for index in 0..<count {
            let name = "web-\(index)", start = created[index]
            func record(_ stage: String, _ instant: ContinuousClock.Instant?) {
                if let instant { stages[stage, default: []].append((instant - start).seconds) }
            }
            let pv = claims["data-web-\(index)"]?.spec.volumeName ?? ""
            record("node selected", seen.selected["data-web-\(index)"])
            record("volume provisioned", seen.provisioned["data-web-\(index)"])
            record("claim Bound", seen.bound["data-web-\(index)"])
            record("scheduled", seen.scheduled[name])
            record("attachment created", seen.attaching[pv])
            record("attached", seen.attached[pv])
            record("staged", seen.staged[pv])
            record("published", seen.published[pv])
            result.createdAt.append((start - firstCreation).seconds)
            if let running = seen.running[name] {
                result.running.append((running - start).seconds)
                result.runningAt.append((running - firstCreation).seconds)
            }
        }
        result.stages = ["node selected", "volume provisioned", "claim Bound", "scheduled", "attachment created", "attached", "staged",
                         "published"].map { ($0, stages[$0] ?? []) }
    }

    // MARK: Moves

    /// Pods moved one after another to another node of their zone: delete, then the same pod
    /// (same claim) pinned to the other node; delete requested → the new pod Running.
    private func measureMoves() async throws -> [Double] {
        let client = self.client!
        var zoneOf: [String: String] = [:]
        for node in try await client.list(Node.self).items {
            zoneOf[node.metadata.name ?? ""] = node.metadata.labels?["topology.kubernetes.io/zone"]
        }
        var values: [Double] = []
        let pods = try await client.list(Pod.self, namespace: "default").items.sorted { ($0.metadata.name ?? "") < ($1.metadata.name ?? "") }
        for pod in pods where values.count < settings.moves {
            guard let name = pod.metadata.name, let node = pod.spec.nodeName, let zone = zoneOf[node],
                  let claim = pod.spec.volumes?.first?.persistentVolumeClaim?.claimName,
                  let target = zoneOf.keys.sorted().first(where: { $0 != node && zoneOf[$0] == zone }) else { continue }
            progress("moving \(name) from \(node) to \(target) (\(values.count + 1)/\(settings.moves))…")
            let start = ContinuousClock.now
            _ = try await client.delete(Pod.self, name: name, namespace: "default", options: DeleteOptions(preconditionUID: pod.metadata.uid))
            let deadline = ContinuousClock.now + .seconds(120)
            while (try? await client.get(Pod.self, name: name, namespace: "default")) != nil {
                guard ContinuousClock.now < deadline else { throw BenchFailure("\(name) was not deleted within 120 s; logs in \(root)/logs") }
                try await Task.sleep(for: .milliseconds(20))
            }
            _ = try await client.create(self.pod(name, claim: claim, node: target))
            while true {
                if let moved = try? await client.get(Pod.self, name: name, namespace: "default"), KubeletBenchRun.isRunning(moved) { break }
                guard ContinuousClock.now < deadline else {
                    let events = (try? await client.list(Event.self, namespace: "default").items) ?? []
                    let said = events.filter { $0.involvedObject.name == name && $0.type == "Warning" }.suffix(3).map { "\($0.reason ?? ""): \($0.message ?? "")" }
                    throw BenchFailure("\(name) did not run on \(target) within 120 s (\(said.joined(separator: "; "))); logs in \(root)/logs")
                }
                try await Task.sleep(for: .milliseconds(20))
            }
            values.append((ContinuousClock.now - start).seconds)
        }
        progress("")
        return values
    }

    func progress(_ line: String) {
        FileHandle.standardError.write(Data("\r\u{1B}[K\(line)".utf8))
    }
}

/// CPU seconds so far of a cluster's components (their pid files in `DATA_DIR/logs`, with the
/// tools they ran), of its container shims (with the runtime they ran), of this benchmark, and
/// of the machine.
struct CPUSample {
    var components: [String: Double] = [:]
    var machine: (busy: Double, total: Double, iowait: Double)?

    init(data: String) {
        let logs = data + "/logs"
        for file in (try? FileManager.default.contentsOfDirectory(atPath: logs)) ?? [] where file.hasSuffix(".pid") {
            guard let pid = (try? String(contentsOfFile: logs + "/" + file, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines),
                  let seconds = ProcessInfoReader.cpuSeconds(pid: pid, includingChildren: true) else { continue }
            // kubelet-node-2 → kubelet, csi-node-2 → csi-node.
            let name = String(file.dropLast(4))
            let kind = name.hasPrefix("kubelet-") ? "kubelet" : name.hasPrefix("csi-node-") ? "csi-node" : name
            components[kind, default: 0] += seconds
        }
        for pid in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] where pid.allSatisfy(\.isNumber) {
            guard let command = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"),
                  let text = String(bytes: command.map { $0 == 0 ? 32 : $0 }, encoding: .utf8),
                  text.split(separator: " ").first?.hasSuffix("/" + OCIRuntime.shimName) == true, text.contains(data + "/"),
                  let seconds = ProcessInfoReader.cpuSeconds(pid: pid, includingChildren: true) else { continue }
            components["container shims", default: 0] += seconds
        }
        // This process too: its watches and mount-table polling share the machine.
        components["bench e2e (watching)"] = ProcessInfoReader.cpuSeconds(pid: "self")
        machine = ProcessInfoReader.machineCPUSeconds()
    }
}

/// When each pod, claim, attachment and mount first reached its stage: pods bound to a node and
/// Running, claims Bound, VolumeAttachments attached (watches); a volume's staging mount and its
/// pod's publish mount (their paths, known from the objects, asked of the kernel every 5 ms:
/// reading the whole mount table that often cost the machine more than any component).
actor StageWatcher {
    struct Seen {
        /// By claim name: the scheduler chose the claim's node (WaitForFirstConsumer).
        var selected: [String: ContinuousClock.Instant] = [:]
        /// By claim name: its PersistentVolume exists.
        var provisioned: [String: ContinuousClock.Instant] = [:]
        var scheduled: [String: ContinuousClock.Instant] = [:]
        /// By PersistentVolume name: the VolumeAttachment exists.
        var attaching: [String: ContinuousClock.Instant] = [:]
        var running: [String: ContinuousClock.Instant] = [:]
        var bound: [String: ContinuousClock.Instant] = [:]
        var attached: [String: ContinuousClock.Instant] = [:]
        /// By PersistentVolume name.
        var staged: [String: ContinuousClock.Instant] = [:]
        /// By PersistentVolume name.
        var published: [String: ContinuousClock.Instant] = [:]
    }

    let client: KubeClient
    /// The kubelet root directory of a node.
    let kubeletRoot: @Sendable (String) -> String
    private var seen = Seen()
    /// What the mount paths are made of: a claim's volume, a volume's handle and node, a pod's
    /// uid, node and claim.
    private var claimVolume: [String: String] = [:]
    private var volumeHandle: [String: String] = [:]
    private var volumeNode: [String: String] = [:]
    private var pods: [String: (uid: String, node: String, claim: String)] = [:]

    init(client: KubeClient, kubeletRoot: @escaping @Sendable (String) -> String) {
        self.client = client
        self.kubeletRoot = kubeletRoot
    }

    var running: [String: ContinuousClock.Instant] { seen.running }
    func snapshot() -> Seen { seen }

    func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.watch(Pod.self) { pod, now in await self.sawPod(pod, now) } }
            group.addTask { await self.watch(PersistentVolumeClaim.self) { claim, now in await self.sawClaim(claim, now) } }
            group.addTask { await self.watch(VolumeAttachment.self) { attachment, now in await self.sawAttachment(attachment, now) } }
            group.addTask { await self.watch(PersistentVolume.self) { volume, now in await self.sawVolume(volume, now) } }
            group.addTask { await self.pollMounts() }
        }
    }

    private func watch<T: APIObject>(_ type: T.Type, _ handle: @escaping @Sendable (T, ContinuousClock.Instant) async -> Void) async {
        while !Task.isCancelled {
            do {
                for try await event in try await client.watch(type) {
                    if let object = event.object { await handle(object, .now) }
                }
            } catch {
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    private func sawPod(_ pod: Pod, _ now: ContinuousClock.Instant) {
        guard let name = pod.metadata.name else { return }
        if let node = pod.spec.nodeName, !node.isEmpty {
            if seen.scheduled[name] == nil { seen.scheduled[name] = now }
            if let claim = pod.spec.volumes?.first?.persistentVolumeClaim?.claimName { pods[name] = (pod.metadata.uid ?? "", node, claim) }
        }
        if KubeletBenchRun.isRunning(pod), seen.running[name] == nil { seen.running[name] = now }
    }

    private func sawClaim(_ claim: PersistentVolumeClaim, _ now: ContinuousClock.Instant) {
        guard let name = claim.metadata.name else { return }
        if claim.metadata.annotations?["volume.kubernetes.io/selected-node"] != nil, seen.selected[name] == nil { seen.selected[name] = now }
        if claim.status.phase == "Bound", seen.bound[name] == nil { seen.bound[name] = now }
        if let volume = claim.spec.volumeName, !volume.isEmpty { claimVolume[name] = volume }
    }

    private func sawVolume(_ volume: PersistentVolume, _ now: ContinuousClock.Instant) {
        if let claim = volume.spec.claimRef?.name, seen.provisioned[claim] == nil { seen.provisioned[claim] = now }
        if let name = volume.metadata.name, let handle = volume.spec.csi?.volumeHandle { volumeHandle[name] = handle }
    }

    private func sawAttachment(_ attachment: VolumeAttachment, _ now: ContinuousClock.Instant) {
        guard let volume = attachment.spec.source.persistentVolumeName else { return }
        if seen.attaching[volume] == nil { seen.attaching[volume] = now }
        volumeNode[volume] = attachment.spec.nodeName
        if attachment.status?.attached == true, seen.attached[volume] == nil { seen.attached[volume] = now }
    }

    /// The mounts still awaited: a volume's staging path once it is attached, its pod's publish
    /// path once the pod is on a node.
    private func awaited() -> [(path: String, volume: String, staging: Bool)] {
        var paths: [(String, String, Bool)] = []
        for (volume, node) in volumeNode where seen.staged[volume] == nil && seen.attached[volume] != nil {
            guard let handle = volumeHandle[volume] else { continue }
            paths.append((VolumePaths(root: kubeletRoot(node)).csiStaging(driver: UpCluster.driver, handle: handle), volume, true))
        }
        for pod in pods.values {
            guard let volume = claimVolume[pod.claim], seen.published[volume] == nil, seen.attached[volume] != nil else { continue }
            paths.append((VolumePaths(root: kubeletRoot(pod.node)).csiPublish(pod: pod.uid, pv: volume), volume, false))
        }
        return paths
    }

    private func pollMounts() async {
        let mounter = SystemMounter()
        while !Task.isCancelled {
            let now = ContinuousClock.now
            for candidate in awaited() where mounter.isMountPoint(candidate.path) {
                if candidate.staging { seen.staged[candidate.volume] = now } else { seen.published[candidate.volume] = now }
            }
            try? await Task.sleep(for: .milliseconds(5))
        }
    }
}
