// `ballast bench scheduler`: scheduler_perf's shape on this machine. A real `ballast apiserver`
// (embedded store) per workload; fake Nodes and CSINodes written by the benchmark (no kubelets);
// the scheduler (`SchedulerServer`) in this process. Workloads: `basic` (pods with requests),
// `csi-pvs` (each pod with a pre-bound CSI PV, attach limit 39 per node), `wffc` (each pod with an
// unbound WaitForFirstConsumer claim; a stub in this process answers provisioning).
//
// Three timed phases per workload, in one API server:
//   floor  — pods created first (untimed), then bound directly with `POST pods/{name}/binding`,
//            32 at a time, no decision: the API server's own bind throughput;
//   burst  — as many pods created first (untimed, the same way), then the scheduler started:
//            pods/s from the moment it is ready to schedule (informers synced, their first
//            lists applied) to the last binding seen, comparable with the floor, which also
//            starts with everything in place; the time to get ready is reported beside it;
//   stream — as many pods again created 32 at a time while it runs: pods/s from the first
//            creation to the last binding seen, and per-pod latency (creation to binding seen).
// The floor and burst phases also count the API server's requests per pod (its /metrics) and
// the CPU per pod of the API server and of this process (the scheduler and the benchmark).
import APIClient
import ArgumentParser
import ClusterAPI
import EtcdAPI
import Foundation
import Logging
import Scheduler
import Synchronization

struct BenchSchedulerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scheduler",
        abstract: "Pods scheduled per second and per-pod latency (basic, csi-pvs, wffc), beside the API server's own bind throughput."
    )

    @Option(help: "Fake nodes.")
    var nodes: Int = 500

    @Option(help: "Pods per workload.")
    var pods: Int = 2000

    @Option(help: "Workloads, comma-separated: basic, csi-pvs, wffc.")
    var workloads: String = "basic,csi-pvs,wffc"

    @Option(help: "The scheduler's --parallelism.")
    var parallelism: Int = 16

    @Option(help: "Event writes in flight while the scheduler is idle (default: the scheduler's, 8).")
    var eventWrites: Int?

    @Option(help: "Event writes in flight while pods are being scheduled or bound (default: the scheduler's, 1).")
    var eventWritesBusy: Int?

    @Option(help: "Write pods scheduled over time to this SVG file.")
    var plot: String?

    @Option(help: "Working directory (a new /tmp/ballast-bench-sched-* by default; removed at the end).")
    var dir: String?

    @OptionGroup var logging: LoggingOptions

    static let known = ["basic", "csi-pvs", "wffc"]

    func validate() throws {
        guard (1...5000).contains(nodes) else { throw ValidationError("--nodes \(nodes): expected 1 to 5000") }
        guard (1...20000).contains(pods) else { throw ValidationError("--pods \(pods): expected 1 to 20000") }
        for (flag, value) in [("--event-writes", eventWrites), ("--event-writes-busy", eventWritesBusy)] {
            if let value, !(1...64).contains(value) { throw ValidationError("\(flag) \(value): expected 1 to 64") }
        }
        for name in selected where !Self.known.contains(name) {
            throw ValidationError("--workloads: \"\(name)\" is not one of \(Self.known.joined(separator: ", "))")
        }
    }

    var selected: [String] { workloads.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }

    func run() async throws {
        let root = dir ?? "/tmp/ballast-bench-sched-" + UUID().uuidString.prefix(6).lowercased()
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let logger = logging.logger("ballast.bench", defaultLevel: .warning)
        var events = SchedulerConfiguration().events
        if let eventWrites { events.concurrentWrites = eventWrites }
        if let eventWritesBusy { events.writesWhileBusy = eventWritesBusy }
        print("ballast bench scheduler: \(nodes) nodes, \(pods) pods per workload, parallelism \(parallelism), "
              + "event writes \(events.writesWhileBusy) while busy / \(events.concurrentWrites) idle, in \(root)\n")
        var results: [SchedulerBenchResult] = []
        for workload in selected {
            let run = SchedulerBenchRun(root: "\(root)/\(workload)", workload: workload, nodes: nodes, pods: pods,
                                        parallelism: parallelism, events: events, logger: logger)
            do {
                results.append(try await run.run())
            } catch {
                await run.stop()
                throw error
            }
            await run.stop()
        }
        if dir == nil { try? FileManager.default.removeItem(atPath: root) }
        print(SchedulerBenchResult.report(results, nodes: nodes, pods: pods))
        if let plot {
            try SchedulerBenchResult.svg(results).write(toFile: plot, atomically: true, encoding: .utf8)
            print("\npods scheduled over time written to \(plot)")
        }
    }
}

/// What one timed phase cost: the API server's requests and the CPU of both processes, per pod.
struct PhaseCost {
    var pods: Int
    /// Requests by "VERB resource" (a binding counts as `CREATE pods`), per pod.
    var requests: [String: Double] = [:]
    var apiserverCPUms = 0.0
    var benchCPUms = 0.0

    var summary: String {
        let parts = requests.filter { $0.value >= 0.05 }.sorted { $0.key < $1.key }.map { "\($0.key) \(fixed($0.value, 2))" }
        return parts.joined(separator: ", ")
    }
}

struct SchedulerBenchResult {
    var workload: String
    /// Burst: pods created first; from the scheduler's readiness (informers synced, first lists
    /// applied) to the last binding seen.
    var podsPerSecond: Double
    /// Burst: seconds from the scheduler's start to its readiness (its informers' lists).
    var syncSeconds: Double
    /// Burst, to the last `Scheduled` event written instead of the last binding (nil: not every
    /// event was written within 30 s of the last binding).
    var withEventsPerSecond: Double?
    /// Stream: pods created while it runs; from the first creation to the last binding seen.
    var streamPodsPerSecond: Double
    /// Stream: creation to binding seen, per pod.
    var latencies: [Double]
    var floorPerSecond: Double
    /// Seconds from the scheduler's start (burst) and from the first creation (stream) at which
    /// each pod was seen bound, in order.
    var boundTimes: [Double]
    var streamBoundTimes: [Double]
    var floorCost: PhaseCost
    var burstCost: PhaseCost
    /// Pods bound directly with a `Scheduled` event each (no decision, no scheduler running):
    /// what the API server pays for the requests a scheduled pod makes, without the decision.
    var announcedFloorCost: PhaseCost

    static func percentile(_ values: [Double], _ q: Double) -> Double? {
        ControllersBenchResult.percentile(values, q)
    }

    static func report(_ results: [SchedulerBenchResult], nodes: Int, pods: Int) -> String {
        var table = TextTable([("workload", .left), ("ready after", .right), ("pods/s", .right), ("bind floor/s", .right), ("vs floor", .right),
                               ("with events/s", .right), ("streamed pods/s", .right), ("p50", .right), ("p99", .right), ("target", .left), ("met", .left)])
        for result in results {
            let ratio = result.floorPerSecond > 0 ? result.podsPerSecond / result.floorPerSecond : 0
            let target: Double = result.workload == "basic" ? 300 : result.workload == "csi-pvs" ? 100 : 0
            let met = result.podsPerSecond >= target && ratio >= 0.5
            table.append([result.workload, fixed(result.syncSeconds * 1000, 1) + " ms", fixed(result.podsPerSecond, 1), fixed(result.floorPerSecond, 1), fixed(ratio, 2) + "×",
                          result.withEventsPerSecond.map { fixed($0, 1) } ?? "-", fixed(result.streamPodsPerSecond, 1),
                          percentile(result.latencies, 0.5).map { fixed($0 * 1000, 1) + " ms" } ?? "-",
                          percentile(result.latencies, 0.99).map { fixed($0 * 1000, 1) + " ms" } ?? "-",
                          target > 0 ? "≥ \(Int(target)) pods/s, ≥ 0.5× floor" : "≥ 0.5× floor", met ? "yes" : "NO"])
        }
        var text = table.render()
        text += "\nready after: from the scheduler's start to its first cycle (informers listed and synced, caches filled);"
        text += "\npods/s: pods created first, from then to the last binding seen (the floor's pods are created first too,"
        text += "\nand it times its bindings alone); with events: to the last Scheduled event written instead (\"-\": not"
        text += "\nall within 30 s);"
        text += "\nstreamed: created 32 at a time while it runs, p50/p99 from creation to binding seen.\n\n"
        var costs = TextTable([("phase", .left), ("API requests per pod", .left), ("apiserver CPU/pod", .right), ("bench process CPU/pod", .right)])
        for result in results {
            for (phase, cost) in [("\(result.workload) floor", result.floorCost), ("\(result.workload) floor + event", result.announcedFloorCost),
                                  ("\(result.workload) scheduled", result.burstCost)] {
                costs.append([phase, cost.summary, fixed(cost.apiserverCPUms, 3) + " ms", fixed(cost.benchCPUms, 3) + " ms"])
            }
        }
        text += costs.render()
        text += "\n(bench process: the scheduler and the benchmark's own clients and watchers; a binding counts as CREATE pods)"
        if nodes != 500 || pods != 2000 {
            text += "\n(the targets are defined at --nodes 500 --pods 2000; this run used --nodes \(nodes) --pods \(pods))"
        }
        return text
    }

    static func svg(_ results: [SchedulerBenchResult]) -> String {
        LatencyCDFPlot.overTime(title: "pods scheduled over time",
                                series: results.flatMap { [($0.workload, $0.boundTimes), ($0.workload + " (streamed)", $0.streamBoundTimes)] },
                                unit: "pods")
    }
}

/// One workload on a fresh API server.
final class SchedulerBenchRun: @unchecked Sendable {
    let root: String
    let workload: String
    let nodeCount: Int
    let podCount: Int
    let parallelism: Int
    /// The scheduler's event recorder options (and the floor + event phase's).
    let events: EventRecorder.Options
    let logger: Logger
    private var apiserver: BenchProcess?
    private var client: KubeClient!
    private var tasks: [Task<Void, Never>] = []
    let driver = "loop.csi.ballast.dev"

    init(root: String, workload: String, nodes: Int, pods: Int, parallelism: Int, events: EventRecorder.Options, logger: Logger) {
        self.events = events
        self.root = root
        self.workload = workload
        nodeCount = nodes
        podCount = pods
        self.parallelism = parallelism
        self.logger = logger
    }

    func stop() async {
        for task in tasks { task.cancel() }
        for task in tasks { await task.value }
        tasks.removeAll()
        await apiserver?.stop()
        apiserver = nil
    }

    func run() async throws -> SchedulerBenchResult {
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        try await startAPIServer()
        print("[\(workload)] nodes…")
        try await concurrently(nodeCount, width: 16) { index in try await self.makeNode(index) }
        print("[\(workload)] floor: \(podCount) pods bound directly…")
        let (floor, floorCost) = try await measureFloor()
        print("[\(workload)] storage objects…")
        try await makeStorage()
        // The watcher reads only each pod's name and node: it measures, and its decoding of
        // whole pods (as much as the scheduler's own pod informer) was charged to the scheduler.
        let watcher = PodWatcher(client: client, namespace: "default", prefix: "pod-", fieldSelector: "spec.nodeName!=",
                                 project: PodWatcher.nameAndNode)
        tasks.append(Task { await watcher.run() })
        print("[\(workload)] burst: \(podCount) pods created, then scheduled…")
        try await concurrently(podCount, width: 32) { index in _ = try await self.client.create(self.makePod(index, batch: "b")) }
        try await Task.sleep(for: .milliseconds(200))
        var configuration = SchedulerConfiguration()
        configuration.leaderElect = false
        configuration.parallelism = parallelism
        configuration.seed = 42
        configuration.events = events
        var schedulerLogger = Logger(label: "ballast.scheduler")
        schedulerLogger.logLevel = logger.logLevel == .warning ? .error : logger.logLevel
        let scheduler = SchedulerServer(client: client, configuration: configuration, logger: schedulerLogger)
        if workload == "wffc" { tasks.append(Task { await self.stubProvisioner() }) }
        let before = try await costSample()
        let start = ContinuousClock.now
        let running = Task { _ = try? await scheduler.run() }
        tasks.append(running)
        try await waitBound(watcher, prefix: "pod-b-", count: podCount, phase: "burst")
        let burst = await watcher.seenTimes(prefix: "pod-b-")
        let burstLast = burst.values.max() ?? start
        // Timed from the first cycle, as the floor is from its first binding: the informers'
        // lists before it are the scheduler's start, reported as "ready after".
        let ready = scheduler.schedulingSince ?? start
        // Requests per pod include the Scheduled events, written after the bindings.
        let eventsDone = try await settleEvents(since: before, count: podCount)
        let burstCost = cost(from: before, to: try await costSample(), pods: podCount)

        print("[\(workload)] stream: \(podCount) pods created while it runs…")
        let streamStart = ContinuousClock.now
        let created = LockedInstants()
        try await concurrently(podCount, width: 32) { index in
            _ = try await self.client.create(self.makePod(self.podCount + index, batch: "s"))
            created.set("pod-s-\(self.podCount + index)", .now)
        }
        try await waitBound(watcher, prefix: "pod-s-", count: podCount, phase: "stream")
        let stream = await watcher.seenTimes(prefix: "pod-s-")
        let streamLast = stream.values.max() ?? streamStart
        running.cancel()
        await running.value
        print("[\(workload)] floor + event: \(podCount) pods bound directly, each with its Scheduled event…")
        let announcedCost = try await measureAnnouncedFloor()
        let createdAt = created.all
        let latencies = stream.compactMap { name, at in createdAt[name].map { max((at - $0).seconds, 0) } }
        return SchedulerBenchResult(workload: workload, podsPerSecond: Double(podCount) / max((burstLast - ready).seconds, 0.001),
                                    syncSeconds: (ready - start).seconds,
                                    withEventsPerSecond: eventsDone.map { Double(podCount) / max(($0 - ready).seconds, 0.001) },
                                    streamPodsPerSecond: Double(podCount) / max((streamLast - streamStart).seconds, 0.001),
                                    latencies: latencies, floorPerSecond: floor,
                                    boundTimes: burst.values.map { ($0 - start).seconds }.sorted(),
                                    streamBoundTimes: stream.values.map { ($0 - streamStart).seconds }.sorted(),
                                    floorCost: floorCost, burstCost: burstCost, announcedFloorCost: announcedCost)
    }

    private func waitBound(_ watcher: PodWatcher, prefix: String, count: Int, phase: String) async throws {
        let deadline = ContinuousClock.now + .seconds(600)
        while await watcher.count(prefix: prefix) < count {
            guard ContinuousClock.now < deadline else {
                throw BenchFailure("\(workload) \(phase): only \(await watcher.count(prefix: prefix)) of \(count) pods bound after 10 minutes")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// The API server's request counters ("VERB resource" → count) and both processes' CPU.
    struct CostSample {
        var requests: [String: Double]
        var apiserverCPU: Double
        var benchCPU: Double
    }

    private func costSample() async throws -> CostSample {
        let requests = try await APIRequestCounts.read(client)
        return CostSample(requests: requests, apiserverCPU: apiserver?.cpuSeconds ?? 0,
                          benchCPU: ProcessInfoReader.cpuSeconds(pid: "self") ?? 0)
    }

    private func cost(from before: CostSample, to after: CostSample, pods: Int) -> PhaseCost {
        var cost = PhaseCost(pods: pods)
        let n = Double(max(pods, 1))
        for (key, value) in after.requests where key != "GET " && !key.hasSuffix(" ") {
            let delta = value - (before.requests[key] ?? 0)
            if delta > 0 { cost.requests[key] = delta / n }
        }
        cost.apiserverCPUms = (after.apiserverCPU - before.apiserverCPU) * 1000 / n
        cost.benchCPUms = (after.benchCPU - before.benchCPU) * 1000 / n
        return cost
    }

    /// Waits (at most 30 s) until `count` events were created since `before`, and returns
    /// when (to 50 ms; nil: not all within 30 s): the scheduler writes its `Scheduled` events in
    /// the background, after the bindings.
    private func settleEvents(since before: CostSample, count: Int) async throws -> ContinuousClock.Instant? {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            let now = try await costSample()
            if (now.requests["CREATE events"] ?? 0) - (before.requests["CREATE events"] ?? 0) >= Double(count) { return .now }
            try await Task.sleep(for: .milliseconds(50))
        }
        return nil
    }

    private func startAPIServer() async throws {
        let port = BenchCluster.freePort()
        let process = try BenchProcess("apiserver", arguments: ["apiserver", "--data-dir", root + "/api", "--secure-port", "\(port)",
                                                                "--bind-address", "127.0.0.1", "--log-level", "warning"],
                                       log: root + "/apiserver.log")
        apiserver = process
        let kubeconfig = root + "/api/admin.kubeconfig"
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline, process.isRunning {
            if FileManager.default.fileExists(atPath: kubeconfig), let client = try? KubeClient(try Connection.kubeconfig(at: kubeconfig)),
               (try? await client.send(.GET, "/readyz"))?.status.code == 200 {
                self.client = client
                return
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw BenchFailure("the API server did not become ready: see \(root)/apiserver.log")
    }

    private func makeNode(_ index: Int) async throws {
        let name = "node-\(index)"
        let zone = "zone-\(index % 3)"
        var node = Node(metadata: ObjectMeta(name: name, labels: ["topology.kubernetes.io/zone": zone, "kubernetes.io/hostname": name]))
        let resources = ["cpu": try Quantity("32"), "memory": try Quantity("128Gi"), "pods": try Quantity("110")]
        let created = try await client.create(node)
        node = created
        node.status.capacity = resources
        node.status.allocatable = resources
        node.status.conditions = [NodeCondition(type: "Ready", status: "True", lastHeartbeatTime: Time.now(), lastTransitionTime: Time.now())]
        _ = try await client.updateStatus(node)
        _ = try await client.create(CSINode(metadata: ObjectMeta(name: name), spec: CSINodeSpec(drivers: [
            CSINodeDriver(name: driver, nodeID: name, topologyKeys: ["topology.kubernetes.io/zone"], allocatable: VolumeNodeResources(count: 39)),
        ])))
    }

    /// Pods of no scheduler, bound straight to nodes round robin: what the API server can do alone.
    private func measureFloor() async throws -> (Double, PhaseCost) {
        try await concurrently(podCount, width: 32) { index in
            var pod = Pod(metadata: ObjectMeta(name: "floor-\(index)", namespace: "default"))
            pod.spec.containers = [Container(name: "app", image: "busybox")]
            pod.spec.schedulerName = "bench-floor"
            _ = try await self.client.create(pod)
        }
        let before = try await costSample()
        let start = ContinuousClock.now
        try await concurrently(podCount, width: 32) { index in
            try await self.client.bind(pod: "floor-\(index)", namespace: "default", uid: nil, to: "node-\(index % self.nodeCount)")
        }
        let rate = Double(podCount) / max((ContinuousClock.now - start).seconds, 0.001)
        return (rate, cost(from: before, to: try await costSample(), pods: podCount))
    }

    /// The floor's bindings, each followed by the `Scheduled` event the scheduler writes, through
    /// an EventRecorder with the scheduler's options; the scheduler is stopped and the benchmark's
    /// watcher still runs, as in the burst. Its cost per pod, beside the burst's, is what the
    /// decision and the scheduler's own watches cost.
    private func measureAnnouncedFloor() async throws -> PhaseCost {
        try await concurrently(podCount, width: 32) { index in
            var pod = Pod(metadata: ObjectMeta(name: "announced-\(index)", namespace: "default"))
            pod.spec.containers = [Container(name: "app", image: "busybox")]
            pod.spec.schedulerName = "bench-floor"
            _ = try await self.client.create(pod)
        }
        // Busy while bindings remain, as the scheduler is while pods are being placed.
        let remaining = LockedCount(podCount)
        let recorder = EventRecorder(client: client, component: "bench-floor", options: events, logger: logger,
                                     busy: { remaining.value > 0 })
        let writer = Task { await recorder.run() }
        let before = try await costSample()
        try await concurrently(podCount, width: 32) { index in
            let node = "node-\(index % self.nodeCount)"
            try await self.client.bind(pod: "announced-\(index)", namespace: "default", uid: nil, to: node)
            recorder.event(reference: ObjectReference(kind: "Pod", namespace: "default", name: "announced-\(index)", apiVersion: "v1"),
                           .normal, "Scheduled", "Successfully assigned default/announced-\(index) to \(node)")
            remaining.add(-1)
        }
        _ = try await settleEvents(since: before, count: podCount)
        recorder.finish()
        await writer.value
        return cost(from: before, to: try await costSample(), pods: podCount)
    }

    private func makeStorage() async throws {
        switch workload {
        case "csi-pvs":
            try await concurrently(2 * podCount, width: 16) { index in
                var claim = PersistentVolumeClaim(metadata: ObjectMeta(name: "claim-\(index)", namespace: "default",
                                                                       annotations: [SchedulerNames.bindCompleted: "yes"]))
                claim.spec.accessModes = ["ReadWriteOnce"]
                claim.spec.resources = VolumeResourceRequirements(requests: ["storage": try Quantity("1Gi")])
                claim.spec.storageClassName = ""
                claim.spec.volumeName = "pv-\(index)"
                let created = try await self.client.create(claim)
                var volume = PersistentVolume(metadata: ObjectMeta(name: "pv-\(index)"))
                volume.spec.capacity = ["storage": try Quantity("1Gi")]
                volume.spec.accessModes = ["ReadWriteOnce"]
                volume.spec.storageClassName = ""
                volume.spec.persistentVolumeReclaimPolicy = "Retain"
                volume.spec.csi = CSIPersistentVolumeSource(driver: self.driver, volumeHandle: "disk-\(index)")
                volume.spec.claimRef = ObjectReference(kind: "PersistentVolumeClaim", namespace: "default", name: "claim-\(index)",
                                                       uid: created.metadata.uid, apiVersion: "v1")
                _ = try await self.client.create(volume)
            }
        case "wffc":
            _ = try await client.create(StorageClass(metadata: ObjectMeta(name: "wffc"), provisioner: driver, reclaimPolicy: "Delete",
                                                     volumeBindingMode: "WaitForFirstConsumer"))
            try await concurrently(2 * podCount, width: 16) { index in
                var claim = PersistentVolumeClaim(metadata: ObjectMeta(name: "claim-\(index)", namespace: "default"))
                claim.spec.accessModes = ["ReadWriteOnce"]
                claim.spec.resources = VolumeResourceRequirements(requests: ["storage": try Quantity("1Gi")])
                claim.spec.storageClassName = "wffc"
                _ = try await self.client.create(claim)
            }
        default:
            break
        }
    }

    /// Pod `index` (its claim is `claim-<index>`) of a batch ("b": burst, "s": stream).
    private func makePod(_ index: Int, batch: String) throws -> Pod {
        var pod = Pod(metadata: ObjectMeta(name: "pod-\(batch)-\(index)", namespace: "default"))
        var container = Container(name: "app", image: "busybox")
        container.resources = ResourceRequirements(requests: ["cpu": try Quantity("100m"), "memory": try Quantity("500Mi")])
        pod.spec.containers = [container]
        if workload != "basic" {
            pod.spec.volumes = [Volume(name: "data", persistentVolumeClaim: PersistentVolumeClaimVolumeSource(claimName: "claim-\(index)"))]
        }
        return pod
    }

    /// Answers provisioning as a CSI provisioner and the PV binder would: a claim with
    /// `selected-node` gets a PV on that node, bound to it. It stands for other processes (the
    /// controller manager's), so it does as little as it can in this one: its watch reads only
    /// the claim's name, uid, `selected-node` and volume name, and it binds the claim with a merge
    /// patch instead of decoding and re-encoding the whole claim.
    private func stubProvisioner() async {
        var done: Set<String> = []
        let source = ProjectedSource(client, PersistentVolumeClaim.self, namespace: "default") { json in
            var claim = PersistentVolumeClaim()
            claim.metadata.name = json["metadata"]?["name"]?.stringValue
            claim.metadata.uid = json["metadata"]?["uid"]?.stringValue
            if let node = json["metadata"]?["annotations"]?[SchedulerNames.selectedNode]?.stringValue {
                claim.metadata.annotations = [SchedulerNames.selectedNode: node]
            }
            claim.spec.volumeName = json["spec"]?["volumeName"]?.stringValue
            return claim
        }
        while !Task.isCancelled {
            do {
                let stream = try await source.watch(from: "")
                for try await event in stream {
                    guard let claim = event.object, let node = claim.metadata.annotations?[SchedulerNames.selectedNode],
                          (claim.spec.volumeName ?? "").isEmpty, let name = claim.metadata.name, !done.contains(name) else { continue }
                    done.insert(name)
                    var volume = PersistentVolume(metadata: ObjectMeta(name: "pv-\(name)"))
                    volume.spec.capacity = ["storage": try Quantity("1Gi")]
                    volume.spec.accessModes = ["ReadWriteOnce"]
                    volume.spec.storageClassName = "wffc"
                    volume.spec.persistentVolumeReclaimPolicy = "Delete"
                    volume.spec.csi = CSIPersistentVolumeSource(driver: driver, volumeHandle: "disk-\(name)")
                    volume.spec.claimRef = ObjectReference(kind: "PersistentVolumeClaim", namespace: "default", name: name,
                                                           uid: claim.metadata.uid, apiVersion: "v1")
                    volume.spec.nodeAffinity = VolumeNodeAffinity(required: NodeSelector(nodeSelectorTerms: [NodeSelectorTerm(
                        matchExpressions: [NodeSelectorRequirement(key: "kubernetes.io/hostname", operator: "In", values: [node])])]))
                    let client = self.client!
                    Task {
                        try? await client.createDiscardingResult(volume)
                        let patch: ClusterAPI.JSONValue = ["metadata": ["annotations": [SchedulerNames.bindCompleted: "yes"]],
                                                           "spec": ["volumeName": .string("pv-\(name)")]]
                        _ = try? await client.send(.PATCH, ResourcePath.object(PersistentVolumeClaim.self, name: name, namespace: "default"),
                                                   json: patch.jsonData, contentType: "application/merge-patch+json")
                    }
                }
            } catch {
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    /// Runs `body` for 0..<count, at most `width` at once.
    private func concurrently(_ count: Int, width: Int, _ body: @escaping @Sendable (Int) async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = 0
            while next < min(width, count) {
                let index = next
                group.addTask { try await body(index) }
                next += 1
            }
            while try await group.next() != nil {
                if next < count {
                    let index = next
                    group.addTask { try await body(index) }
                    next += 1
                }
            }
        }
    }
}

/// When each pod named `prefix…` was first seen in the state `reached` tests (by watching):
/// bound to a node by default.
actor PodWatcher {
    let client: KubeClient
    let namespace: String
    let prefix: String
    let reached: @Sendable (Pod) -> Bool
    /// Asked of the API server, so that it sends (and this process decodes) only the pods that
    /// may have reached the state: `spec.nodeName!=` for bound ones.
    let fieldSelector: String?
    /// Makes the pod `reached` looks at from its JSON (nil: the whole Pod is decoded).
    let project: (@Sendable (ClusterAPI.JSONValue) throws -> Pod)?
    private(set) var seen: [String: ContinuousClock.Instant] = [:]

    init(client: KubeClient, namespace: String, prefix: String, fieldSelector: String? = nil,
         project: (@Sendable (ClusterAPI.JSONValue) throws -> Pod)? = nil,
         reached: @escaping @Sendable (Pod) -> Bool = { !($0.spec.nodeName ?? "").isEmpty }) {
        self.client = client
        self.namespace = namespace
        self.prefix = prefix
        self.fieldSelector = fieldSelector
        self.project = project
        self.reached = reached
    }

    /// A pod with only `metadata.name` and `spec.nodeName`: enough for the default `reached`.
    static let nameAndNode: @Sendable (ClusterAPI.JSONValue) throws -> Pod = { json in
        var pod = Pod()
        pod.metadata.name = json["metadata"]?["name"]?.stringValue
        pod.spec.nodeName = json["spec"]?["nodeName"]?.stringValue
        return pod
    }

    var count: Int { seen.count }

    func count(prefix: String) -> Int { seen.keys.filter { $0.hasPrefix(prefix) }.count }

    func seenTimes(prefix: String) -> [String: ContinuousClock.Instant] { seen.filter { $0.key.hasPrefix(prefix) } }

    func run() async {
        while !Task.isCancelled {
            do {
                let stream: AsyncThrowingStream<WatchEvent<Pod>, any Error>
                if let project {
                    stream = try await ProjectedSource(client, Pod.self, namespace: namespace, fieldSelector: fieldSelector,
                                                       decode: project).watch(from: "")
                } else {
                    stream = try await client.watch(Pod.self, namespace: namespace, fieldSelector: fieldSelector)
                }
                for try await event in stream {
                    guard let pod = event.object, let name = pod.metadata.name, name.hasPrefix(prefix),
                          seen[name] == nil, reached(pod) else { continue }
                    seen[name] = .now
                }
            } catch {
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
    }
}

final class LockedInstants: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [String: ContinuousClock.Instant] = [:]
    func set(_ key: String, _ value: ContinuousClock.Instant) { lock.withLock { values[key] = value } }
    var all: [String: ContinuousClock.Instant] { lock.withLock { values } }
}

final class LockedCount: Sendable {
    private let count: Mutex<Int>
    init(_ value: Int) { count = Mutex(value) }
    func add(_ delta: Int) { count.withLock { $0 += delta } }
    var value: Int { count.withLock { $0 } }
}
