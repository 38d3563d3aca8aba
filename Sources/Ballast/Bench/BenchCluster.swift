// The cluster `ballast bench controllers` measures: this binary started as the API server, the
// simulated cloud, the CSI controller plugin and the controller manager, each a real process on
// 127.0.0.1 with its log under the working directory.
import APIClient
import ClusterAPI
import CloudProvider
import ControllerManager
import CSIProto
import EtcdAPI
import Foundation
import HostSystem
import Logging

/// A child process of the benchmark (HostSystem's `ChildProcess`, in a session of its own);
/// `stop()` sends SIGTERM, then SIGKILL after 10 s.
final class BenchProcess: Sendable {
    let name: String
    private let child: ChildProcess

    init(_ name: String, arguments: [String], log: String) throws {
        self.name = name
        child = try ChildProcess(["/proc/self/exe"] + arguments, newSession: true,
                                 standardOutput: .file(log), standardError: .sameAsOutput)
    }

    var pid: Int32 { child.pid }
    var isRunning: Bool { child.termination == nil }

    /// User + system CPU seconds so far.
    var cpuSeconds: Double { ProcessInfoReader.cpuSeconds(pid: String(pid)) ?? 0 }

    func stop() async {
        await child.terminate(grace: .seconds(10))
    }
}

final class BenchCluster: @unchecked Sendable {
    let root: String
    let logger: Logger
    /// The processes started so far, oldest first.
    private(set) var processes: [BenchProcess] = []
    private(set) var client: KubeClient!
    private(set) var cloud: CloudClient!
    private(set) var csi: GRPCCSIPlugin!
    private(set) var apiserver: BenchProcess!
    /// The simulated cloud's address, once started.
    private(set) var cloudURL = ""
    private var instances: [String: String] = [:]
    private var nodeNames: [String] = []
    private var nodeZones: [String: String] = [:]
    let driver = "loop.csi.ballast.dev"

    init(root: String, logger: Logger) {
        self.root = root
        self.logger = logger
    }

    /// The API server's admin kubeconfig (written by `ballast apiserver`).
    var kubeconfig: String { root + "/api/admin.kubeconfig" }
    var cloudKeyFile: String { root + "/cloud/admin.key" }

    /// Starts this binary with `arguments`, its output in ROOT/NAME.log; `stop()` ends it.
    func spawn(_ name: String, _ arguments: [String]) throws -> BenchProcess {
        let process = try BenchProcess(name, arguments: arguments, log: "\(root)/\(name).log")
        processes.append(process)
        return process
    }

    /// Polls `ready` until it holds, failing with the process's log after 60 s or when it exits.
    func wait(for process: BenchProcess, _ ready: () async -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            if await ready() { return }
            guard process.isRunning else { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let log = (try? String(contentsOfFile: "\(root)/\(process.name).log", encoding: .utf8)) ?? ""
        throw BenchFailure("\(process.name) did not become ready: \(log.suffix(2000))")
    }

    func start(latency: String, nodes: Int) async throws {
        let apiPort = Self.freePort(), cloudPort = Self.freePort()
        apiserver = try spawn("apiserver", ["apiserver", "--data-dir", root + "/api", "--secure-port", "\(apiPort)", "--bind-address", "127.0.0.1",
                                            "--log-level", "warning"])
        try await wait(for: apiserver) {
            guard FileManager.default.fileExists(atPath: kubeconfig), let client = try? KubeClient(try Connection.kubeconfig(at: kubeconfig)) else {
                return false
            }
            self.client = client
            return (try? await client.send(.GET, "/readyz"))?.status.code == 200
        }
        cloudURL = "http://127.0.0.1:\(cloudPort)"
        let cloudProcess = try spawn("cloud", ["cloud", "serve", "--listen", "127.0.0.1:\(cloudPort)", "--volumes-dir", root + "/volumes",
                                               "--state-dir", root + "/cloud", "--latency", latency, "--attach-limit", "256",
                                               "--log-level", "warning"])
        try await wait(for: cloudProcess) {
            guard let cloud = try? CloudClient(url: self.cloudURL, keyFile: self.cloudKeyFile) else { return false }
            self.cloud = cloud
            return (try? await cloud.describeRegion()) != nil
        }
        let socket = root + "/csi.sock"
        let csiProcess = try spawn("csi", ["csi", "--mode", "controller", "--endpoint", "unix://" + socket, "--driver-name", driver,
                                           "--cloud-url", cloudURL, "--cloud-key-file", cloudKeyFile,
                                           "--log-level", "warning"])
        csi = try GRPCCSIPlugin(endpoint: "unix://" + socket, timeout: .seconds(60))
        try await wait(for: csiProcess) { (try? await self.csi.getPluginInfo()) != nil }
        let region = try await cloud.describeRegion()
        for index in 0..<nodes {
            let name = "bench-node-\(index)"
            let zone = region.zones[index % region.zones.count].name
            let instance = try await cloud.registerInstance(RegisterInstanceRequest(name: name, zone: zone))
            instances[name] = instance.id
            nodeNames.append(name)
            nodeZones[name] = zone
            var node = Node(metadata: ObjectMeta(name: name, labels: ["topology.kubernetes.io/zone": zone],
                                                 annotations: [Annotation.controllerManagedAttachDetach: "true"]))
            node.status.conditions = [NodeCondition(type: "Ready", status: "True", lastHeartbeatTime: Time.now(), lastTransitionTime: Time.now())]
            _ = try await client.create(node)
            _ = try await client.create(CSINode(metadata: ObjectMeta(name: name), spec: CSINodeSpec(drivers: [
                CSINodeDriver(name: driver, nodeID: instance.id, topologyKeys: ["topology.kubernetes.io/zone"])])))
        }
        _ = try spawn("controller-manager", ["controller-manager", "--kubeconfig", kubeconfig, "--csi-endpoint", "unix://" + socket,
                                             "--log-level", "warning"])
    }

    func stop() async {
        csi?.close()
        for process in processes.reversed() { await process.stop() }
        processes.removeAll()
    }

    /// The same calls the controllers will make, straight on the socket, at the same rate.
    func measureFloor(count: Int, rate: Double, bytes: Int64) async throws -> ControllersBenchResult {
        var result = ControllersBenchResult()
        let capability = benchCapability
        let region = try await cloud.describeRegion()
        let created = try await Self.paced(count: count, rate: rate) { index -> (String, String, Double) in
            let node = self.nodeNames[index % self.nodeNames.count]
            let zone = region.zones[(index % self.nodeNames.count) % region.zones.count].name
            let started = ContinuousClock.now
            let volume = try await self.csi.createVolume(.with {
                $0.name = "floor-\(index)"
                $0.capacityRange = .with { $0.requiredBytes = bytes }
                $0.volumeCapabilities = [capability]
                $0.accessibilityRequirements = .with {
                    $0.requisite = [.with { $0.segments = ["topology.kubernetes.io/zone": zone] }]
                    $0.preferred = $0.requisite
                }
            }).volume.volumeID
            return (volume, node, (ContinuousClock.now - started).seconds)
        }
        result.floorCreate = created.map(\.2)
        result.floorPublish = try await Self.paced(count: count, rate: rate) { index -> Double in
            let (volume, node, _) = created[index]
            let started = ContinuousClock.now
            _ = try await self.csi.controllerPublishVolume(.with {
                $0.volumeID = volume
                $0.nodeID = self.instances[node]!
                $0.volumeCapability = capability
            })
            return (ContinuousClock.now - started).seconds
        }
        _ = try await Self.paced(count: count, rate: rate * 4) { index -> Void in
            _ = try await self.csi.controllerUnpublishVolume(.with {
                $0.volumeID = created[index].0
                $0.nodeID = self.instances[created[index].1]!
            })
        }
        result.floorDelete = try await Self.paced(count: count, rate: rate) { index -> Double in
            let started = ContinuousClock.now
            _ = try await self.csi.deleteVolume(.with { $0.volumeID = created[index].0 })
            while (try? await self.cloud.describeDisk(id: created[index].0)) != nil { try await Task.sleep(for: .milliseconds(10)) }
            return (ContinuousClock.now - started).seconds
        }
        return result
    }

    /// The controller manager process, once started.
    var controllerManager: BenchProcess? { processes.first { $0.name == "controller-manager" } }

    /// Waits until the controller manager holds its leader lease (its controllers run).
    func waitForControllerManager() async throws {
        guard let manager = controllerManager else { throw BenchFailure("the controller manager was not started") }
        try await wait(for: manager) {
            (try? await self.client.get(Lease.self, name: "ballast-controller-manager", namespace: "kube-system"))?.spec.holderIdentity.map { !$0.isEmpty } == true
        }
    }

    /// PVCs → Bound, pods → attached, deletes → disks gone, through the controllers.
    func measureControllers(count: Int, rate: Double, size: Int64, floor: ControllersBenchResult) async throws -> ControllersBenchResult {
        var result = floor
        try await waitForControllerManager()
        let manager = controllerManager!
        _ = try await client.create(StorageClass(metadata: ObjectMeta(name: "bench"), provisioner: driver, reclaimPolicy: "Delete",
                                                 volumeBindingMode: "Immediate"))
        try await Task.sleep(for: .milliseconds(500))
        let cpuBefore = (manager.cpuSeconds, apiserver.cpuSeconds)
        let phaseStart = ContinuousClock.now
        let watcher = BenchWatcher(client: client)
        let watching = Task { await watcher.run() }
        defer { watching.cancel() }
        try await Task.sleep(for: .milliseconds(200))

        // PVC → Bound.
        let claimStarts = try await Self.paced(count: count, rate: rate) { index -> ContinuousClock.Instant in
            var claim = PersistentVolumeClaim(metadata: ObjectMeta(name: "bench-\(index)", namespace: "default"))
            claim.spec.accessModes = ["ReadWriteOnce"]
            claim.spec.storageClassName = "bench"
            claim.spec.resources = VolumeResourceRequirements(requests: ["storage": Quantity(size, format: .binarySI)])
            let started = ContinuousClock.now
            _ = try await self.client.create(claim)
            return started
        }
        let bound = try await watcher.waitFor(count: count, .bound, timeout: .seconds(Double(count) / rate * 4 + 60))
        result.bound = (0..<count).compactMap { index in bound["bench-\(index)"].map { (($0 - claimStarts[index]).seconds) } }

        // Pod → VolumeAttachment attached.
        var volumes: [String: String] = [:]
        for claim in try await client.list(PersistentVolumeClaim.self, namespace: "default").items {
            volumes[claim.metadata.name ?? ""] = claim.spec.volumeName
        }
        // Each pod goes to a node of its volume's zone, as the scheduler would place it.
        var zones: [String: String] = [:]
        for volume in try await client.list(PersistentVolume.self).items {
            zones[volume.metadata.name ?? ""] = volume.spec.nodeAffinity?.required?.nodeSelectorTerms.first?.matchExpressions?
                .first { $0.key == "topology.kubernetes.io/zone" }?.values?.first
        }
        let nodesByZone = Dictionary(grouping: nodeNames, by: { nodeZones[$0] ?? "" })
        let placement: [String] = (0..<count).map { index in
            let zone = volumes["bench-\(index)"].flatMap { zones[$0] } ?? ""
            let candidates = nodesByZone[zone] ?? nodeNames
            return candidates[index % candidates.count]
        }
        let podStarts = try await Self.paced(count: count, rate: rate) { index -> ContinuousClock.Instant in
            var pod = Pod(metadata: ObjectMeta(name: "bench-\(index)", namespace: "default"))
            pod.spec.containers = [Container(name: "app", image: "busybox")]
            pod.spec.volumes = [Volume(name: "data", persistentVolumeClaim: PersistentVolumeClaimVolumeSource(claimName: "bench-\(index)"))]
            pod.spec.nodeName = placement[index]
            let started = ContinuousClock.now
            _ = try await self.client.create(pod)
            return started
        }
        let attached = try await watcher.waitFor(count: count, .attached, timeout: .seconds(Double(count) / rate * 4 + 60))
        result.attached = (0..<count).compactMap { index in
            volumes["bench-\(index)"].flatMap { attached[$0] }.map { ($0 - podStarts[index]).seconds }
        }

        // Delete → disk gone.
        var handles: [String: String] = [:]
        for volume in try await client.list(PersistentVolume.self).items { handles[volume.metadata.name ?? ""] = volume.spec.csi?.volumeHandle }
        _ = try await Self.paced(count: count, rate: rate * 4) { index -> Void in
            try await self.client.delete(Pod.self, name: "bench-\(index)", namespace: "default", options: DeleteOptions(gracePeriodSeconds: 0))
        }
        let deleteStarts = try await Self.paced(count: count, rate: rate) { index -> ContinuousClock.Instant in
            let started = ContinuousClock.now
            try await self.client.delete(PersistentVolumeClaim.self, name: "bench-\(index)", namespace: "default")
            return started
        }
        var gone: [Int: ContinuousClock.Instant] = [:]
        let deadline = ContinuousClock.now + .seconds(Double(count) / rate * 4 + 120)
        while gone.count < count && ContinuousClock.now < deadline {
            let disks = Set(try await cloud.allDisks().map(\.id))
            for index in 0..<count where gone[index] == nil {
                if let handle = volumes["bench-\(index)"].flatMap({ handles[$0] }), !disks.contains(handle) { gone[index] = .now }
            }
            try await Task.sleep(for: .milliseconds(25))
        }
        guard gone.count == count else { throw BenchFailure("only \(gone.count) of \(count) disks were deleted in time") }
        result.deleted = (0..<count).map { (gone[$0]! - deleteStarts[$0]).seconds }
        result.managerCPU = manager.cpuSeconds - cpuBefore.0
        result.apiserverCPU = apiserver.cpuSeconds - cpuBefore.1
        result.elapsed = (ContinuousClock.now - phaseStart).seconds
        return result
    }

    /// Runs `body` for 0..<count, starting one every 1/rate seconds (all at once for an
    /// infinite rate), all concurrently; results in order.
    static func paced<T: Sendable>(count: Int, rate: Double, _ body: @escaping @Sendable (Int) async throws -> T) async throws -> [T] {
        try await withThrowingTaskGroup(of: (Int, T).self) { group in
            let start = ContinuousClock.now
            for index in 0..<count {
                let due = start + .seconds(Double(index) / rate)
                if due > .now { try await Task.sleep(until: due) }
                group.addTask { (index, try await body(index)) }
            }
            var results: [Int: T] = [:]
            for try await (index, value) in group { results[index] = value }
            return (0..<count).map { results[$0]! }
        }
    }

    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// When each PVC was first seen Bound and each volume first seen attached (by watching).
actor BenchWatcher {
    let client: KubeClient
    var bound: [String: ContinuousClock.Instant] = [:]
    var attached: [String: ContinuousClock.Instant] = [:]

    init(client: KubeClient) { self.client = client }

    func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.watchClaims() }
            group.addTask { await self.watchAttachments() }
        }
    }

    private func watchClaims() async {
        while !Task.isCancelled {
            guard let stream = try? await client.watch(PersistentVolumeClaim.self, namespace: "default") else {
                try? await Task.sleep(for: .milliseconds(100))
                continue
            }
            do {
                for try await event in stream {
                    if let claim = event.object, claim.status.phase == "Bound", let name = claim.metadata.name, bound[name] == nil { bound[name] = .now }
                }
            } catch {}
        }
    }

    private func watchAttachments() async {
        while !Task.isCancelled {
            guard let stream = try? await client.watch(VolumeAttachment.self) else {
                try? await Task.sleep(for: .milliseconds(100))
                continue
            }
            do {
                for try await event in stream {
                    if let attachment = event.object, attachment.status?.attached == true,
                       let volume = attachment.spec.source.persistentVolumeName, attached[volume] == nil { attached[volume] = .now }
                }
            } catch {}
        }
    }

    enum Field { case bound, attached }

    func waitFor(count: Int, _ field: Field, timeout: Duration) async throws -> [String: ContinuousClock.Instant] {
        let deadline = ContinuousClock.now + timeout
        func current() -> [String: ContinuousClock.Instant] { field == .bound ? bound : attached }
        while current().count < count {
            guard ContinuousClock.now < deadline else { throw BenchFailure("only \(current().count) of \(count) done in \(timeout)") }
            try await Task.sleep(for: .milliseconds(20))
        }
        return current()
    }
}

struct BenchFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// A read-write mount volume on one node, what the bench's claims ask for.
let benchCapability = Csi_V1_VolumeCapability.with {
    $0.mount = Csi_V1_VolumeCapability.MountVolume()
    $0.accessMode = .with { $0.mode = .singleNodeWriter }
}
