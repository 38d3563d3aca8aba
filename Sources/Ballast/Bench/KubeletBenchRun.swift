// The run behind `ballast bench kubelet`: BenchCluster's processes (API server, cloud, CSI
// controller plugin, controller manager) plus a CSI node plugin and `ballast kubelet` for one
// node, the floor's containers (`RuncFloor`), the two phases, and the teardown that leaves
// nothing behind: pods and claims deleted through the cluster while it runs, then the
// processes stopped and the working directory swept (containers, shims, mounts, loop devices,
// cgroups).
import APIClient
import ClusterAPI
import CloudProvider
import ControllerManager
import Foundation
import HostSystem
import Kubelet
import Logging

final class KubeletBenchRun: @unchecked Sendable {
    let root: String
    let podCount: Int
    let volumePodCount: Int
    /// Creations per second (infinity: all at once).
    let rate: Double
    let latency: String
    let latencies: [CloudAction: Duration]
    let size: Int64
    let cluster: BenchCluster
    /// The kubelet's node, and the one the floor's cgroups are named after.
    let nodeName: String
    let floorNode: String
    let namespace = "default"
    var kubeletRoot: String { root + "/kubelet" }
    var floorDirectory: String { root + "/floor" }
    private var kubelet: BenchProcess?
    /// Where each phase's CPU goes (nil, with why, where the machine has no cpuacct hierarchy).
    private var accounting: CPUAccounting?
    private(set) var accountingUnavailable: String?
    private let suffix: String

    init(root: String, suffix: String, pods: Int, volumePods: Int, rate: Double, latency: String, size: Int64, logger: Logger) {
        self.root = root
        podCount = pods
        volumePodCount = volumePods
        self.rate = rate
        self.latency = latency
        latencies = (try? SimulatorConfiguration.parseLatencies(latency)) ?? [:]
        self.size = size
        cluster = BenchCluster(root: root, logger: logger)
        nodeName = "kbench-" + suffix
        floorNode = "kbench-floor-" + suffix
        self.suffix = suffix
    }

    private var client: KubeClient { cluster.client }

    func measure() async throws -> KubeletBenchResult {
        progress("starting the API server, the cloud, the CSI controller plugin and the controller manager…")
        try await cluster.start(latency: latency, nodes: 0)
        startAccounting()
        let images = try ImageStore(directory: root + "/images")
        let image = try await images.resolve("busybox")
        let floor = RuncFloor(directory: floorDirectory, node: floorNode, image: image, layers: try await images.layerDirectories(of: image))
        // The floor's bundles and runc's state are placed as the kubelet places its containers
        // (TopDirectories: spread over ext4's block groups), so that the two sides differ by
        // what the kubelet does, not by where the file system puts their files.
        for path in [floorDirectory, floor.stateRoot] {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        }
        TopDirectories.mark([floorDirectory, floor.stateRoot], logger: Logger(label: "ballast.bench"))
        progress("starting the CSI node plugin and the kubelet of node \(nodeName)…")
        let zone = try await startNode()
        try await cluster.waitForControllerManager()
        var result = KubeletBenchResult()
        try await measurePlain(floor, into: &result)
        if volumePodCount > 0 { try await measureVolumes(floor, zone: zone, into: &result) }
        return result
    }

    // MARK: The node

    /// Registers the node's cloud instance, starts its CSI node plugin and its kubelet, and
    /// waits until the node is Ready with the driver in its CSINode; the instance's zone.
    private func startNode() async throws -> String {
        let zone = try await cluster.cloud.describeRegion().zones[0].name
        let instance = try await cluster.cloud.registerInstance(RegisterInstanceRequest(name: nodeName, zone: zone))
        let socket = root + "/csi-node.sock"
        let plugin = try cluster.spawn("csi-node", ["csi", "--mode", "node", "--endpoint", "unix://" + socket, "--driver-name", cluster.driver,
                                                    "--node-id", instance.id, "--kubelet-root", kubeletRoot, "--cloud-url", cluster.cloudURL,
                                                    "--cloud-key-file", cluster.cloudKeyFile, "--log-level", "warning"])
        let csi = try GRPCCSIPlugin(endpoint: "unix://" + socket, timeout: .seconds(10))
        defer { csi.close() }
        try await cluster.wait(for: plugin) { (try? await csi.getPluginInfo()) != nil }
        let kubelet = try cluster.spawn("kubelet", ["kubelet", "--node-name", nodeName, "--kubeconfig", cluster.kubeconfig, "--root-dir", kubeletRoot,
                                                    "--csi-endpoint", "unix://" + socket, "--node-ip", "127.0.0.1",
                                                    "--port", "\(BenchCluster.freePort())", "--image-dir", root + "/images",
                                                    "--pod-logs-dir", root + "/pod-logs", "--log-level", "warning"])
        self.kubelet = kubelet
        account("cluster", pid: plugin.pid)
        account("kubelet", pid: kubelet.pid)
        try await cluster.wait(for: kubelet) {
            guard let node = try? await self.client.get(Node.self, name: self.nodeName),
                  node.status.conditions?.contains(where: { $0.type == "Ready" && $0.status == "True" }) == true,
                  let csiNode = try? await self.client.get(CSINode.self, name: self.nodeName) else { return false }
            return csiNode.spec.drivers.contains { $0.name == self.cluster.driver }
        }
        // The kubelet lists its pods right after registering: let its informer sync.
        try await Task.sleep(for: .milliseconds(500))
        return zone
    }

    // MARK: CPU

    /// This process, the API server and the other processes of the cluster each into a cpuacct
    /// group of their own (processes started later join theirs when started). Where that fails
    /// the run goes on without the CPU table, which says why.
    private func startAccounting() {
        switch CPUAccounting.make(name: "kbench-cpu-" + suffix) {
        case .success(let made):
            accounting = made
            account("bench", pid: getpid())
            for process in cluster.processes { account(process === cluster.apiserver ? "apiserver" : "cluster", pid: process.pid) }
        case .failure(let why):
            accountingUnavailable = why.description
        }
    }

    private func account(_ group: String, pid: Int32) {
        guard let accounting else { return }
        do {
            try accounting.join(group, pid: pid)
        } catch {
            accountingUnavailable = "\(error)"   // no CPU table; the groups are removed at the end all the same
        }
    }

    private func cpuSample() -> CPUSnapshot? {
        guard accountingUnavailable == nil else { return nil }
        return accounting?.sample(paths: ["containers": Cgroups.nodePath(node: nodeName), "floorContainers": Cgroups.nodePath(node: floorNode)],
                           processes: ["kubelet": kubelet?.pid ?? 0, "apiserver": cluster.apiserver.pid])
    }

    // MARK: Phase 1: pods without volumes

    /// The kubelet's burst between two floor bursts, just before and just after it, pooled:
    /// that cancels a machine whose speed drifts, and the state the phase builds up. What a
    /// burst made stays until the phase ends — on ext4 without a journal (this machine's /tmp)
    /// a new inode skips those freed in the last minute, at a block lookup each, so a burst
    /// after a mass removal pays for it (it was a quarter of the kubelet's CPU in a profile) —
    /// so the kubelet's burst runs beside the first floor burst's sleeping containers, and the
    /// second floor burst beside those and the kubelet's pods, with their mounts: the kubelet's
    /// burst sees a node between the two floor bursts'.
    private func measurePlain(_ floor: RuncFloor, into result: inout KubeletBenchResult) async throws {
        let before = try await floorBurst(floor, number: 0)
        let kubelet = kubelet!
        let watcher = runningWatcher(prefix: "plain-")
        let watching = Task { await watcher.run() }
        defer { watching.cancel() }
        try await Task.sleep(for: .milliseconds(300))
        try await warmConnections(podCount)
        progress("kubelet: creating \(podCount) pods without volumes…")
        let (requestsBefore, syncsBefore) = try await APIRequestCounts.scrape(client)
        let cpuBefore = kubelet.cpuSeconds
        let phaseBefore = cpuSample()
        let released = ContinuousClock.now
        let starts = try await BenchCluster.paced(count: podCount, rate: rate) { index -> ContinuousClock.Instant in
            try await self.client.createDiscardingResult(self.pod("plain-\(index)"))
            return self.due(index, from: released)
        }
        let running = try await waitForRunning(watcher, count: podCount, what: "kubelet, no volume")
        if let phaseBefore, let after = cpuSample() { result.kubeletPhaseCPU = phaseBefore.delta(to: after) }
        let (requestsAtRunning, syncsAtRunning) = try await APIRequestCounts.scrape(client)
        result.requestsAtRunning = Self.perPod(requestsAtRunning, since: requestsBefore, pods: podCount)
        result.walSyncs = syncsAtRunning.since(syncsBefore)
        // Also the pause before the second floor burst: the kubelet's queued writes done.
        result.requestsSettled = Self.perPod(try await settledRequests(), since: requestsBefore, pods: podCount)
        result.running = (0..<podCount).map { (running["plain-\($0)"]! - starts[$0]).seconds }
        result.kubeletCPU = kubelet.cpuSeconds - cpuBefore
        let after = try await floorBurst(floor, number: 1)
        result.floorBursts = [before.latencies, after.latencies]
        if let first = before.cpu, let second = after.cpu { result.floorCPU = CPUDelta.mean(first, second) }
        progress("deleting the pods…")
        try await deletePods()
        await floor.removeAll()
    }

    /// `--pods` floor containers started at once (or at `--rate`): their latencies, and where the CPU went.
    private func floorBurst(_ floor: RuncFloor, number: Int) async throws -> (latencies: [Double], cpu: CPUDelta?) {
        progress("floor: \(podCount) × runc run -d (\(number == 0 ? "before" : "after") the kubelet's)…")
        let before = cpuSample()
        let released = ContinuousClock.now
        let latencies = try await BenchCluster.paced(count: podCount, rate: rate) { index in
            try await floor.start("run-\(number)-\(index)", since: self.due(index, from: released))
        }
        let cpu = before.flatMap { before in cpuSample().map { before.delta(to: $0) } }
        // The floor's root file systems leave this mount namespace (each container keeps its
        // own): each runc and each container's first mount namespace reads and copies the whole
        // mount table, and with the floor's overlays in it the kubelet's runc processes spent
        // 2.6 ms per pod reading /proc/self/mountinfo in a profile (1.4 ms without).
        floor.detachRoots((0..<podCount).map { "run-\(number)-\($0)" })
        return (latencies, cpu)
    }

    /// Opens this benchmark's keep-alive connections for `count` concurrent requests (up to
    /// the pool's 32 idle ones) before a phase, with as many concurrent reads: its creates then
    /// do not each begin with a TCP and TLS handshake, whose CPU — the API server's too — would
    /// count against the kubelet's phase.
    private func warmConnections(_ count: Int) async throws {
        _ = try await BenchCluster.paced(count: min(count, 32), rate: .infinity) { _ in
            _ = try await self.client.get(Namespace.self, name: "default")
        }
    }

    // MARK: Phase 2: pods with a fresh PVC each

    private func measureVolumes(_ floor: RuncFloor, zone: String, into result: inout KubeletBenchResult) async throws {
        progress("floor: \(volumePodCount) × disk file, losetup, mkfs.ext4, mount, bind mount, runc run -d…")
        let cloudLatency = (latencies[.create] ?? .zero) + (latencies[.attach] ?? .zero)
        result.floorVolumeLatency = cloudLatency
        let floorReleased = ContinuousClock.now
        result.floorVolume = try await BenchCluster.paced(count: volumePodCount, rate: rate) { index in
            let due = self.due(index, from: floorReleased)
            let directory = self.floorDirectory + "/disk-\(index)"
            for sub in ["staging", "target"] {
                try FileManager.default.createDirectory(atPath: directory + "/" + sub, withIntermediateDirectories: true)
            }
            _ = try await DirectVolume.setUp(directory + "/disk.img", bytes: self.size, staging: directory + "/staging", target: directory + "/target")
            let volume = OCISpec.Mount(destination: "/data", type: "bind", source: directory + "/target", options: ["rbind", "rprivate", "rw"])
            return try await floor.start("vol-\(index)", mounts: [volume], since: due) + cloudLatency.seconds
        }
        await floor.removeAll()

        _ = try await client.create(StorageClass(
            metadata: ObjectMeta(name: "kbench"), provisioner: cluster.driver, parameters: ["csi.storage.k8s.io/fstype": "ext4"],
            reclaimPolicy: "Delete", volumeBindingMode: "Immediate",
            allowedTopologies: [TopologySelectorTerm(matchLabelExpressions: [
                TopologySelectorLabelRequirement(key: "topology.kubernetes.io/zone", values: [zone])])]))
        let kubelet = kubelet!
        let steps = BenchWatcher(client: client)
        let watcher = runningWatcher(prefix: "vol-")
        let watching = [Task { await watcher.run() }, Task { await steps.run() }]
        defer { for task in watching { task.cancel() } }
        try await Task.sleep(for: .milliseconds(300))
        try await warmConnections(volumePodCount)   // each pod's claim, then the pod: one request per pod at a time
        progress("kubelet: creating \(volumePodCount) pods with a fresh PVC each…")
        let cpuBefore = kubelet.cpuSeconds
        let released = ContinuousClock.now
        let starts = try await BenchCluster.paced(count: volumePodCount, rate: rate) { index -> ContinuousClock.Instant in
            var claim = PersistentVolumeClaim(metadata: ObjectMeta(name: "vol-\(index)", namespace: self.namespace))
            claim.spec.accessModes = ["ReadWriteOnce"]
            claim.spec.storageClassName = "kbench"
            claim.spec.resources = VolumeResourceRequirements(requests: ["storage": Quantity(self.size, format: .binarySI)])
            try await self.client.createDiscardingResult(claim)
            try await self.client.createDiscardingResult(self.pod("vol-\(index)", claim: "vol-\(index)"))
            return self.due(index, from: released)
        }
        let running = try await waitForRunning(watcher, count: volumePodCount, what: "kubelet, fresh PVC")
        result.kubeletVolumeCPU = kubelet.cpuSeconds - cpuBefore
        result.volumeRunning = (0..<volumePodCount).map { (running["vol-\($0)"]! - starts[$0]).seconds }
        let bound = await steps.bound, attached = await steps.attached
        var volumes: [String: String] = [:]
        for claim in try await client.list(PersistentVolumeClaim.self, namespace: namespace).items {
            volumes[claim.metadata.name ?? ""] = claim.spec.volumeName
        }
        result.volumeBound = (0..<volumePodCount).compactMap { index in bound["vol-\(index)"].map { ($0 - starts[index]).seconds } }
        result.volumeAttached = (0..<volumePodCount).compactMap { index in
            volumes["vol-\(index)"].flatMap { attached[$0] }.map { ($0 - starts[index]).seconds }
        }
    }

    /// When creation `index` is due (`paced`'s schedule): every pod and every floor container
    /// is timed from it, not from when its task got a thread. The floor's tasks make their
    /// bundles synchronously on the two threads of the cooperative pool, so in a burst the
    /// last ones began tens of milliseconds after the others had been released, and timing
    /// each from its own beginning left that wait out of the floor alone.
    private func due(_ index: Int, from released: ContinuousClock.Instant) -> ContinuousClock.Instant {
        rate.isFinite ? released + .seconds(Double(index) / rate) : released
    }

    // MARK: Pods

    /// A busybox pod bound to the node that sleeps, with `claim` mounted at /data.
    private func pod(_ name: String, claim: String? = nil) -> Pod {
        var pod = Pod(metadata: ObjectMeta(name: name, namespace: namespace))
        var container = Container(name: "app", image: "busybox")
        container.command = RuncFloor.command
        if let claim {
            container.volumeMounts = [VolumeMount(name: "data", mountPath: "/data")]
            pod.spec.volumes = [Volume(name: "data", persistentVolumeClaim: PersistentVolumeClaimVolumeSource(claimName: claim))]
        }
        pod.spec.containers = [container]
        pod.spec.nodeName = nodeName
        pod.spec.terminationGracePeriodSeconds = 1
        // The node's resolver, as the floor's containers bind the host's /etc/resolv.conf: the
        // benchmark's kubelet has no --cluster-dns, and a ClusterFirst pod there costs a
        // MissingClusterDNS event (upstream's too) that a cluster with DNS does not write.
        pod.spec.dnsPolicy = "Default"
        return pod
    }

    /// When each pod named `prefix…` was first seen Running. The server sends only pods in phase
    /// Running, and this process reads only what `isRunning` needs of them: the watch is the
    /// benchmark's, and its CPU is charged to the kubelet's phase.
    private func runningWatcher(prefix: String) -> PodWatcher {
        PodWatcher(client: client, namespace: namespace, prefix: prefix, fieldSelector: "status.phase=Running",
                   project: Self.runningView, reached: { KubeletBenchRun.isRunning($0) })
    }

    /// A pod with only its name, phase, containers' names and container statuses.
    static let runningView: @Sendable (ClusterAPI.JSONValue) throws -> Pod = { json in
        var pod = Pod()
        pod.metadata.name = json["metadata"]?["name"]?.stringValue
        pod.spec.containers = (json["spec"]?["containers"]?.arrayValue ?? []).map { Container(name: $0["name"]?.stringValue ?? "") }
        pod.status.phase = json["status"]?["phase"]?.stringValue
        pod.status.containerStatuses = json["status"]?["containerStatuses"]?.arrayValue
        return pod
    }

    /// Phase Running with every container running.
    static func isRunning(_ pod: Pod) -> Bool {
        guard pod.status.phase == "Running", let statuses = pod.status.containerStatuses, statuses.count == pod.spec.containers.count else {
            return false
        }
        return statuses.allSatisfy { $0["state"]?["running"]?.objectValue != nil }
    }

    /// Waits until `count` pods were seen Running (progress on stderr); when each was.
    private func waitForRunning(_ watcher: PodWatcher, count: Int, what: String) async throws -> [String: ContinuousClock.Instant] {
        let deadline = ContinuousClock.now + .seconds(120) + .seconds(Double(count) / (rate.isFinite ? rate : 10))
        var shown = -1
        while true {
            let seen = await watcher.count
            if seen != shown {
                FileHandle.standardError.write(Data("\r\(what): \(seen)/\(count) pods Running   \(seen >= count ? "\n" : "")".utf8))
                shown = seen
            }
            if seen >= count { return await watcher.seen }
            guard kubelet?.isRunning == true else { throw BenchFailure("the kubelet exited: \(logTail("kubelet"))") }
            guard ContinuousClock.now < deadline else {
                let pending = try await client.list(Pod.self, namespace: namespace).items.filter { !Self.isRunning($0) }
                    .map { "\($0.metadata.name ?? "") (\($0.status.phase ?? "no status"))" }
                throw BenchFailure("\(what): only \(seen) of \(count) pods Running in time; not running: \(pending.prefix(10).joined(separator: ", ")); see \(root)/kubelet.log")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    // MARK: Requests

    /// The counters once the requests the kubelet still had queued (events are written in the
    /// background) are done: unchanged for 500 ms (the node's own writes, lease and status, come
    /// every 10 s), at most 10 s.
    private func settledRequests() async throws -> [String: Double] {
        var last = try await APIRequestCounts.read(client)
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(500))
            let now = try await APIRequestCounts.read(client)
            if now == last { return now }
            last = now
        }
        return last
    }

    /// Requests per pod between two samples.
    static func perPod(_ after: [String: Double], since before: [String: Double], pods: Int) -> [String: Double] {
        var out: [String: Double] = [:]
        for (key, value) in after {
            let delta = value - (before[key] ?? 0)
            if delta > 0 { out[key] = delta / Double(max(pods, 1)) }
        }
        return out
    }

    /// Deletes every pod of the namespace (grace 1 s) and waits until the kubelet has
    /// terminated them and removed them from the API, at most `timeout`.
    private func deletePods(timeout: Duration = .seconds(90)) async throws {
        let names = try await client.list(Pod.self, namespace: namespace).items.compactMap(\.metadata.name)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for name in names {
                group.addTask {
                    do {
                        try await self.client.delete(Pod.self, name: name, namespace: self.namespace, options: DeleteOptions(gracePeriodSeconds: 1))
                    } catch let error as APIError where error.isNotFound {}
                }
            }
            try await group.waitForAll()
        }
        let deadline = ContinuousClock.now + timeout
        while try await !client.list(Pod.self, namespace: namespace).items.isEmpty {
            guard ContinuousClock.now < deadline else { throw BenchFailure("the kubelet did not terminate the pods in \(timeout); see \(root)/kubelet.log") }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    // MARK: Teardown

    /// Deletes the pods through the cluster while it runs (the kubelet stops their containers
    /// and unpublishes and unstages their volumes: at most 90 s), stops the processes, then
    /// removes whatever is left — containers, shims, mounts, the cloud's loop devices, cgroups —
    /// and, with `removeDirectory`, the working directory. The claims are not deleted: their
    /// disks are files of the cloud's under the working directory, and the deleter waits for
    /// the detach with back-off (tens of seconds).
    func tearDown(removeDirectory: Bool) async {
        if kubelet?.isRunning == true, cluster.client != nil {
            progress("deleting the pods…")
            do {
                try await deletePods()
            } catch {
                progress("cannot delete them through the kubelet (\(error)); removing what is left directly")
            }
        }
        progress("stopping the processes and removing containers, mounts, devices and cgroups…")
        await cluster.stop()
        await HostCleanup.sweep(root, runtimeRoots: [kubeletRoot + "/runtime/runc", floorDirectory + "/runc"],
                                 cgroups: [Cgroups.nodePath(node: nodeName), Cgroups.nodePath(node: floorNode)], removeDirectory: removeDirectory)
        // After the sweep: the shims it killed were in the kubelet's group.
        for busy in accounting?.remove() ?? [] { progress("cannot remove the accounting cgroup \(busy): processes are left in it") }
    }

    private func logTail(_ name: String) -> String {
        String(((try? String(contentsOfFile: "\(root)/\(name).log", encoding: .utf8)) ?? "").suffix(2000))
    }

    private func progress(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}

/// The floor's containers: each a bundle of its own — an overlayfs root over the same image
/// layers the kubelet uses, the config.json the kubelet would write for the same container
/// (`ContainerConfig.ociSpec`, with new UTS and IPC namespaces instead of a pod's pinned ones)
/// — started with `runc run -d`, no shim, no kubelet.
final class RuncFloor: Sendable {
    /// What every container of the benchmark runs.
    static let command = ["sleep", "3600"]
    let directory: String
    let node: String
    let image: ResolvedImage
    let layers: [String]
    let binary = SystemCommand.resolve("runc")
    var stateRoot: String { directory + "/runc" }

    init(directory: String, node: String, image: ResolvedImage, layers: [String]) {
        self.directory = directory
        self.node = node
        self.image = image
        self.layers = layers
    }

    /// Makes the bundle of container `name` (with `mounts`) and starts it; the seconds from
    /// `since` (its due time; by default now) until `runc run -d` has exited.
    func start(_ name: String, mounts: [OCISpec.Mount] = [], since: ContinuousClock.Instant? = nil) async throws -> Double {
        let started = since ?? ContinuousClock.now
        let bundle = directory + "/" + name
        for sub in ["rootfs", "upper", "work"] {
            try FileManager.default.createDirectory(atPath: bundle + "/" + sub, withIntermediateDirectories: true)
        }
        let options = "lowerdir=\(layers.joined(separator: ":")),upperdir=\(bundle)/upper,workdir=\(bundle)/work"
        guard options.withCString({ mount("overlay", bundle + "/rootfs", "overlay", 0, $0) }) == 0 else {
            throw BenchFailure("cannot mount overlayfs at \(bundle)/rootfs: \(String(cString: strerror(errno)))")
        }
        // Written as the kubelet writes its pods' files (UnsyncedFile: no fsync, which Foundation's
        // writes do), so that the two sides differ by what the kubelet does, not by how a file is written.
        try UnsyncedFile.write("127.0.0.1\tlocalhost\n127.0.0.1\t\(name)\n", to: bundle + "/hosts", atomically: false)
        try UnsyncedFile.write(name + "\n", to: bundle + "/hostname", atomically: false)
        let files = [OCISpec.Mount(destination: "/etc/hosts", type: "bind", source: bundle + "/hosts", options: ["rbind", "rprivate", "rw"]),
                     OCISpec.Mount(destination: "/etc/hostname", type: "bind", source: bundle + "/hostname", options: ["rbind", "rprivate", "rw"]),
                     OCISpec.Mount(destination: "/etc/resolv.conf", type: "bind", source: "/etc/resolv.conf", options: ["rbind", "rprivate", "ro"])]
        let config = ContainerConfig(podUID: name, podNamespace: "default", podName: name, name: "app", attempt: 0, isInit: false,
                                     image: image, args: Self.command, env: image.config.config?.Env ?? [], workingDir: "/",
                                     mounts: mounts + files, devices: [], pidsLimit: 4096, hostname: name,
                                     sandbox: PodSandbox(directory: bundle + "/sandbox"), logPath: bundle + "/log", specHash: "")
        var spec = config.ociSpec(rootfs: bundle + "/rootfs", cgroupsPath: Cgroups.containerPath(parent: Cgroups.nodePath(node: node), podUID: name, containerID: name))
        for index in spec.linux.namespaces.indices { spec.linux.namespaces[index].path = nil }
        try UnsyncedFile.write(try spec.configJSON(), to: bundle + "/config.json", atomically: false)
        let runc = try ChildProcess([binary, "--root", stateRoot, "run", "--detach", "--bundle", bundle, name],
                                    standardOutput: .file(bundle + "/output.log"), standardError: .sameAsOutput)
        let termination = try await runc.wait()
        guard termination.isSuccess else {
            let output = (try? String(contentsOfFile: bundle + "/output.log", encoding: .utf8)) ?? ""
            throw BenchFailure("runc run \(name) \(termination): \(output.suffix(1000))")
        }
        return (ContinuousClock.now - started).seconds
    }

    /// Detaches the overlay roots of running containers `names` from this mount namespace. Each
    /// container keeps its root: its own mount namespace, copied when it started, holds it, and
    /// `runc delete` does not need it.
    func detachRoots(_ names: [String]) {
        for name in names { _ = umount2(directory + "/" + name + "/rootfs", Int32(MNT_DETACH | UMOUNT_NOFOLLOW)) }
    }

    /// Deletes every container (killing it), unmounts the bundles and the volumes, detaches
    /// the floor's loop devices and removes its cgroups and files.
    func removeAll() async {
        await HostCleanup.sweep(directory, runtimeRoots: [stateRoot], cgroups: [Cgroups.nodePath(node: node)])
    }
}
