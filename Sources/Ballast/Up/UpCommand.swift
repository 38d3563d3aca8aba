// `ballast up`: the whole cluster on this machine, supervised — the API server (embedded store,
// or --etcd-servers), the simulated cloud, the CSI controller plugin, the cloud controller
// manager, the controller manager, the scheduler, and per node a cloud instance, a CSI node
// plugin, a kubelet and a kube-proxy (node-N on 127.0.1.N, zones round-robin), after the pod network's host
// routes (unreachable route, Service device, nftables table; see docs/networking.md). It installs
// the CSIDriver, the StorageClasses, the snapshot CRDs and the default VolumeSnapshotClass, says
// when every node is Ready, and runs until Ctrl-C / SIGTERM (or
// `ballast down`), then stops everything, containers included; the data stays for the next `up`.
import APIClient
import ArgumentParser
import ClusterAPI
import ControllerManager
import CloudProvider
import Foundation
import HostSystem
import Kubelet
import Logging

struct UpCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Start a whole cluster on this machine: control plane, simulated cloud, CSI driver and N nodes with kubelets."
    )

    @Option(help: "Directory of the cluster's state, logs and nodes.")
    var dataDir: String = ".ballast"

    @Option(help: "Directory of the cloud's disk files (default: volumes).")
    var volumesDir: String?

    @Option(help: "Number of nodes (1–50; default 3).")
    var nodes: Int?

    @Option(help: "Number of zones the nodes are spread over, round-robin (1–26; default 2).")
    var zones: Int?

    @Option(help: "Volumes attachable to one node: each instance's attach limit and CSINode allocatable.count (default 16).")
    var attachLimit: Int?

    @Option(help: "The cloud's latencies, as `ballast cloud serve --latency` (default: the cloud's own).")
    var cloudLatency: String?

    @Option(help: "The cloud's fault rates, as `ballast cloud serve --faults` (e.g. attach=0.2,create=0.1).")
    var cloudFaults: String?

    @Option(help: "`embedded` (the API server's own store) or etcd client URLs, comma-separated.")
    var etcdServers: String?

    @Option(help: "The API server's port on 127.0.0.1 (default 6443).")
    var apiPort: Int?

    @Option(help: "The cloud's port on 127.0.0.1 (default 7070).")
    var cloudPort: Int?

    @Option(help: "The kubelets' port, each on its node's IP 127.0.1.N (default 10250).")
    var kubeletPort: Int?

    @Option(help: "A cgroup of this cluster's own for the nodes' pods, /ballast/<name> (default: /ballast; two clusters on one machine need their own).")
    var cgroupRoot: String?

    @Option(help: "The pods' range, a /24 of it per node (default 198.18.0.0/16, in the block reserved for benchmarking: never routed off this machine).")
    var clusterCidr: String?

    @Option(help: "The Services' range (default 198.19.0.0/16).")
    var serviceClusterIpRange: String?

    @Option(help: "Four letters or digits in the names of the cluster's bridges, Service device and nftables table (default: derived from the data dir; two clusters on one machine need different tags and ranges).")
    var networkTag: String?

    @Flag(help: "Return once the cluster is ready and leave it running (its supervisor's pid in DATA_DIR/up.pid).")
    var detach = false

    @OptionGroup var logging: LoggingOptions

    static let defaultLatency = "create=100ms,attach=200ms,detach=200ms,resize=100ms,snapshot=200ms"

    /// The spec from the flags, checked against the one of an earlier `up` on this data dir.
    func spec() throws -> ClusterSpec {
        let dataDir = self.dataDir.absolutePath
        let earlier = try ClusterSpec.read(dataDir: dataDir)
        func pick<T: Equatable>(_ flag: String, _ given: T?, _ kept: T?, _ fallback: T) throws -> T {
            if let given, let kept, given != kept {
                throw ValidationError("--\(flag) \(given) contradicts this data dir's cluster (\(kept), in \(dataDir)/\(ClusterSpec.fileName)): drop the flag, or start afresh with `ballast down --purge --data-dir \(self.dataDir)`")
            }
            return given ?? kept ?? fallback
        }
        let spec = ClusterSpec(
            dataDir: dataDir,
            volumesDir: try pick("volumes-dir", volumesDir?.absolutePath, earlier?.volumesDir, "volumes".absolutePath),
            nodes: try pick("nodes", nodes, earlier?.nodes, 3),
            zones: try pick("zones", zones, earlier?.zones, 2),
            attachLimit: try pick("attach-limit", attachLimit, earlier?.attachLimit, 16),
            cloudLatency: try pick("cloud-latency", cloudLatency, earlier?.cloudLatency, Self.defaultLatency),
            cloudFaults: cloudFaults ?? earlier?.cloudFaults,
            etcdServers: try pick("etcd-servers", etcdServers, earlier?.etcdServers, "embedded"),
            apiPort: apiPort ?? earlier?.apiPort ?? 6443,
            cloudPort: cloudPort ?? earlier?.cloudPort ?? 7070,
            kubeletPort: kubeletPort ?? earlier?.kubeletPort ?? 10250,
            cgroupRoot: cgroupRoot ?? earlier?.cgroupRoot,
            clusterCIDR: try pick("cluster-cidr", clusterCidr, earlier?.clusterCIDR, "\(ClusterNetwork.defaultClusterCIDR)"),
            serviceCIDR: try pick("service-cluster-ip-range", serviceClusterIpRange, earlier?.serviceCIDR, "\(ClusterNetwork.defaultServiceCIDR)"),
            networkTag: try pick("network-tag", networkTag, earlier?.networkTag, ClusterNetwork.tag(for: dataDir)))
        if let range = spec.serviceCIDR, let cidr = IPv4CIDR(range), !(12...29).contains(cidr.prefixLength) {
            throw ValidationError("--service-cluster-ip-range \(range): expected an IPv4 CIDR from /12 to /29 (the API server's limits), e.g. 198.19.0.0/16")
        }
        if let earlier, let given = cgroupRoot, given != earlier.cgroupRoot {
            throw ValidationError("--cgroup-root \(given) contradicts this data dir's cluster (\(earlier.cgroupRoot ?? "/ballast"), in \(dataDir)/\(ClusterSpec.fileName)): drop the flag, or start afresh with `ballast down --purge --data-dir \(self.dataDir)`")
        }
        guard (1...50).contains(spec.nodes) else { throw ValidationError("--nodes \(spec.nodes): between 1 and 50") }
        guard (1...26).contains(spec.zones) else { throw ValidationError("--zones \(spec.zones): between 1 and 26") }
        guard (1...256).contains(spec.attachLimit) else { throw ValidationError("--attach-limit \(spec.attachLimit): between 1 and 256") }
        if let root = spec.cgroupRoot {
            let parts = root.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 3, parts[0].isEmpty, parts[1] == "ballast",
                  !parts[2].isEmpty, parts[2].allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
                throw ValidationError("--cgroup-root \(root): expected /ballast/<name> (letters, digits, - and _), a cgroup of this cluster's own")
            }
        }
        let network = try spec.network
        guard spec.nodes <= network.podSubnetCount else {
            throw ValidationError("--cluster-cidr \(network.clusterCIDR) holds \(network.podSubnetCount) node ranges (/\(network.nodeMaskSize)), fewer than --nodes \(spec.nodes)")
        }
        for (flag, port) in [("api-port", spec.apiPort), ("cloud-port", spec.cloudPort), ("kubelet-port", spec.kubeletPort)] {
            guard (1...65535).contains(port) else { throw ValidationError("--\(flag) \(port): a TCP port, 1 to 65535") }
        }
        return spec
    }

    func run() async throws {
        guard getuid() == 0 else {
            throw UpFailure("ballast up needs root: its nodes attach loop devices, mount volumes and run runc containers (sudo ballast up …)")
        }
        let spec = try spec()
        if let pid = runningSupervisor(spec) {
            throw UpFailure("a cluster already runs on \(spec.dataDir) (supervisor pid \(pid)): use it (export KUBECONFIG=\(spec.kubeconfig)), or stop it with `ballast down --data-dir \(dataDir)`")
        }
        for directory in [spec.dataDir, spec.volumesDir, spec.logsDirectory, spec.dataDir + "/csi", spec.dataDir + "/images"] {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        try spec.write()
        try? FileManager.default.removeItem(atPath: spec.readyFile)
        if detach {
            try await detachSupervisor(spec)
            return
        }
        try "\(getpid())\n".write(toFile: spec.pidFile, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: spec.pidFile) }
        let logger = logging.logger("ballast.up")
        let supervisor = Supervisor(logsDirectory: spec.logsDirectory, logger: logger)
        enum Event: Sendable { case ready, failed(any Error), stop }
        let (events, emit) = AsyncStream<Event>.makeStream()
        let interrupts = InterruptHandler { _ in emit.yield(.stop) }
        defer { interrupts.cancel() }
        let cluster = UpCluster(spec: spec, supervisor: supervisor, logger: logger)
        let starting = Task {
            do {
                try await cluster.start()
                emit.yield(.ready)
            } catch {
                emit.yield(.failed(error))
            }
        }
        var iterator = events.makeAsyncIterator()
        switch await iterator.next() {
        case .failed(let error)?:
            say("ballast up: \(error)")
            await cluster.stop()
            throw ExitCode(1)
        case .ready?:
            do {
                try "ready\n".write(toFile: spec.readyFile, atomically: true, encoding: .utf8)
            } catch {
                say("cannot write \(spec.readyFile) (ballast up --detach waits for it): \(error)")
            }
            say("Ballast is ready: \(spec.nodes) node\(spec.nodes == 1 ? "" : "s") in \(min(spec.zones, spec.nodes)) zone\(min(spec.zones, spec.nodes) == 1 ? "" : "s"), default StorageClass ballast-loop, default VolumeSnapshotClass ballast-snapshots. Use it with:\n    export KUBECONFIG=\(spec.kubeconfig)\nStop it with Ctrl-C (or `ballast down --data-dir \(dataDir)`); the data stays for the next `ballast up`.")
            _ = await iterator.next()   // until SIGINT or SIGTERM
        case .stop?, nil:
            starting.cancel()
        }
        say("stopping the cluster…")
        await cluster.stop()
        try? FileManager.default.removeItem(atPath: spec.readyFile)
        say("stopped; the data is in \(spec.dataDir) and \(spec.volumesDir)")
    }

    /// Starts this command again without --detach in a session of its own, waits until it says
    /// the cluster is ready (exit 0) or ends (exit 1 with its output's tail).
    func detachSupervisor(_ spec: ClusterSpec) async throws {
        let log = spec.logsDirectory + "/up.log"
        var arguments = Array(CommandLine.arguments.dropFirst()).filter { $0 != "--detach" }
        arguments = arguments.map { $0 == dataDir ? spec.dataDir : $0 }
        let child = try ChildProcess(["/proc/self/exe"] + arguments, workingDirectory: FileManager.default.currentDirectoryPath,
                                     newSession: true, standardOutput: .file(log), standardError: .sameAsOutput)
        say("starting the cluster in the background (log: \(log))…")
        let deadline = ContinuousClock.now + .seconds(300)
        while ContinuousClock.now < deadline {
            if FileManager.default.fileExists(atPath: spec.readyFile) {
                say("Ballast is ready (supervisor pid \(child.pid)): export KUBECONFIG=\(spec.kubeconfig)\nStop it with `ballast down --data-dir \(dataDir)`.")
                return
            }
            if child.termination != nil { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        if child.termination == nil { await child.terminate(grace: .seconds(30)) }
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        say("ballast up failed:\n" + String(text.suffix(4000)))
        throw ExitCode(1)
    }
}

/// The cluster's components and what `up` installs, in order.
struct UpCluster: Sendable {
    let spec: ClusterSpec
    let supervisor: Supervisor
    let logger: Logger
    static let driver = "loop.csi.ballast.dev"


    func start() async throws {
        let spec = self.spec
        // Before any pod can start: every pod and Service address ends on this machine.
        let network = try spec.network
        // The node bridges come with the nodes' ranges: the controller manager's node IPAM gives
        // each node its spec.podCIDR, and each kubelet installs its bridge before its first pod.
        say("installing the pod network's host routes (pods \(network.clusterCIDR), Services \(network.serviceCIDR), devices \(network.prefix)*)…")
        try await HostNetwork.install(network, podSubnets: [])
        say("starting the API server on 127.0.0.1:\(spec.apiPort)…")
        var apiArguments = ["apiserver", "--data-dir", spec.dataDir, "--secure-port", "\(spec.apiPort)", "--bind-address", "127.0.0.1",
                            "--service-cluster-ip-range", "\(network.serviceCIDR)"]
        if spec.etcdServers != "embedded" { apiArguments += ["--etcd-servers", spec.etcdServers] }
        try supervisor.start(.init(name: "apiserver", arguments: apiArguments))
        let client = try await until("the API server", component: "apiserver") { () -> KubeClient? in
            guard let client = try? KubeClient(try Connection.kubeconfig(at: spec.kubeconfig)),
                  (try? await client.send(.GET, "/readyz"))?.status.code == 200 else { return nil }
            return client
        }
        say("starting the simulated cloud on 127.0.0.1:\(spec.cloudPort)…")
        var cloudArguments = ["cloud", "serve", "--listen", "127.0.0.1:\(spec.cloudPort)", "--volumes-dir", spec.volumesDir,
                              "--state-dir", spec.dataDir + "/cloud", "--zones", "\(spec.zones)", "--attach-limit", "\(spec.attachLimit)",
                              "--latency", spec.cloudLatency]
        if let faults = spec.cloudFaults { cloudArguments += ["--faults", faults] }
        try supervisor.start(.init(name: "cloud", arguments: cloudArguments))
        let cloud = try await until("the cloud", component: "cloud") { () -> CloudClient? in
            guard let cloud = try? CloudClient(url: spec.cloudURL, keyFile: spec.cloudKeyFile), (try? await cloud.describeRegion()) != nil else { return nil }
            return cloud
        }
        let region = try await cloud.describeRegion()
        for index in 1...spec.nodes {
            let name = spec.nodeName(index)
            if let existing = try await cloud.findInstance(name: name), existing.state != .terminated { continue }
            let zone = region.zones[(index - 1) % region.zones.count].name
            _ = try await cloud.registerInstance(RegisterInstanceRequest(name: name, zone: zone, attachLimit: spec.attachLimit,
                                                                         addresses: [InstanceAddress(type: "InternalIP", address: spec.nodeIP(index))]))
        }
        say("starting the CSI controller plugin, the cloud controller manager, the controller manager and the scheduler…")
        // With injected faults, the CSI plugins hand each one to Kubernetes, whose controllers
        // retry with back-off and record it in an event, instead of absorbing it themselves.
        let cloudFlags = ["--cloud-url", spec.cloudURL, "--cloud-key-file", spec.cloudKeyFile]
            + (spec.cloudFaults.map { $0.isEmpty ? [] : ["--cloud-attempts", "1"] } ?? [])
        try supervisor.start(.init(name: "csi-controller", arguments: ["csi", "--mode", "controller", "--endpoint", "unix://" + spec.controllerSocket,
                                                                       "--driver-name", Self.driver] + cloudFlags))
        try supervisor.start(.init(name: "cloud-controller-manager", arguments: ["cloud-controller-manager", "--kubeconfig", spec.kubeconfig] + cloudFlags))
        try supervisor.start(.init(name: "controller-manager", arguments: ["controller-manager", "--kubeconfig", spec.kubeconfig,
                                                                           "--csi-endpoint", "unix://" + spec.controllerSocket,
                                                                           "--allocate-node-cidrs", "--cluster-cidr", "\(network.clusterCIDR)",
                                                                           "--node-cidr-mask-size", "\(network.nodeMaskSize)"]))
        try supervisor.start(.init(name: "scheduler", arguments: ["scheduler", "--kubeconfig", spec.kubeconfig]))
        let clusterDNS = try spec.clusterDNS
        say("starting the cluster DNS on \(clusterDNS):53 (Service kube-system/kube-dns)…")
        try await ClusterDNSSetup(address: clusterDNS, network: network).install(client)
        try supervisor.start(.init(name: "dns", arguments: ["dns", "--kubeconfig", spec.kubeconfig, "--bind-address", clusterDNS,
                                                            "--port", "53", "--cluster-domain", ClusterDNSSetup.domain,
                                                            "--cluster-cidr", "\(network.clusterCIDR)"]))
        say("starting \(spec.nodes) node\(spec.nodes == 1 ? "" : "s") (CSI node plugin, kubelet and kube-proxy each)…")
        for index in 1...spec.nodes {
            let name = spec.nodeName(index), directory = spec.nodeDirectory(index)
            try FileManager.default.createDirectory(atPath: directory + "/kubelet", withIntermediateDirectories: true)
            try supervisor.start(.init(name: "csi-" + name, arguments: [
                "csi", "--mode", "node", "--node-id", name, "--endpoint", "unix://\(directory)/csi.sock", "--driver-name", Self.driver,
                "--kubelet-root", directory + "/kubelet"] + cloudFlags))
            try supervisor.start(.init(name: "kubelet-" + name, arguments: [
                "kubelet", "--node-name", name, "--kubeconfig", spec.kubeconfig, "--root-dir", directory + "/kubelet",
                "--csi-endpoint", "unix://\(directory)/csi.sock", "--node-ip", spec.nodeIP(index), "--port", "\(spec.kubeletPort)",
                "--image-dir", spec.dataDir + "/images", "--pod-logs-dir", directory + "/logs", "--cloud-provider", "external",
                "--authentication-token-file", spec.dataDir + "/pki/kubelet-client.token",
                "--cgroup-root", spec.cgroupRoot ?? "/ballast",
                "--cluster-cidr", "\(network.clusterCIDR)",
                "--service-cluster-ip-range", "\(network.serviceCIDR)", "--network-tag", network.tag, "--cluster-domain", ClusterDNSSetup.domain,
                "--cluster-dns", clusterDNS]))
            try supervisor.start(.init(name: "kube-proxy-" + name, arguments: [
                "kube-proxy", "--node-name", name, "--kubeconfig", spec.kubeconfig, "--network-tag", network.tag,
                "--cluster-cidr", "\(network.clusterCIDR)", "--node-cidr-mask-size", "\(network.nodeMaskSize)"]))
        }
        try await install(client)
        var reported = -1
        _ = try await until("every node Ready", component: nil, timeout: .seconds(180)) { () -> Bool? in
            let ready = await readyNodes(client)
            if ready != reported {
                reported = ready
                say("nodes ready: \(ready)/\(spec.nodes)")
            }
            return ready == spec.nodes ? true : nil
        }
    }

    /// Nodes Ready, initialised by the cloud controller manager, with the driver in their CSINode.
    func readyNodes(_ client: KubeClient) async -> Int {
        var count = 0
        for index in 1...spec.nodes {
            let name = spec.nodeName(index)
            guard let node = try? await client.get(Node.self, name: name),
                  node.status.conditions?.contains(where: { $0.type == "Ready" && $0.status == "True" }) == true,
                  !(node.spec.taints ?? []).contains(where: { $0.key == "node.cloudprovider.kubernetes.io/uninitialized" }),
                  let csiNode = try? await client.get(CSINode.self, name: name),
                  csiNode.spec.drivers.contains(where: { $0.name == Self.driver }) else { continue }
            count += 1
        }
        return count
    }

    /// The CSIDriver, the two StorageClasses, the snapshot CRDs and the default
    /// VolumeSnapshotClass, created when missing.
    func install(_ client: KubeClient) async throws {
        func ensure<T: APIObject>(_ object: T) async throws {
            do {
                _ = try await client.create(object)
            } catch let error as APIError where error.code == 409 {
                return
            }
        }
        try await ensure(CSIDriver(metadata: ObjectMeta(name: Self.driver), spec: CSIDriverSpec(attachRequired: true)))
        for (name, mode, isDefault) in [("ballast-loop", "WaitForFirstConsumer", true), ("ballast-loop-immediate", "Immediate", false)] {
            try await ensure(StorageClass(metadata: ObjectMeta(name: name, annotations: isDefault ? ["storageclass.kubernetes.io/is-default-class": "true"] : nil),
                                          provisioner: Self.driver, parameters: ["csi.storage.k8s.io/fstype": "ext4"], reclaimPolicy: "Delete",
                                          allowVolumeExpansion: true, volumeBindingMode: mode))
        }
        // The snapshot.storage.k8s.io/v1 definitions (fixtures/crds/) and the default
        // VolumeSnapshotClass ballast-snapshots.
        try await SnapshotDefinitions.install(client)
    }

    /// Polls `ready` every 200 ms until it returns a value; fails with the component's log tail
    /// when it does not within `timeout`.
    func until<T>(_ what: String, component: String?, timeout: Duration = .seconds(60), _ ready: () async -> T?) async throws -> T {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let value = await ready() { return value }
            try await Task.sleep(for: .milliseconds(200))
        }
        let tail = component.map { "\n\($0) log (\(supervisor.logPath($0))):\n" + supervisor.logTail($0) } ?? ""
        throw UpFailure("\(what): not ready within \(timeout)\(tail)")
    }

    /// Stops the components, then what the nodes' pods left running: their containers (and
    /// shims), mounts and cgroups, and the loop devices of the cloud's disks — the next `up`
    /// starts them again from the API's objects and the cloud's records.
    func stop() async {
        await supervisor.stopAll()
        await HostCleanup.sweep(spec.dataDir + "/nodes", runtimeRoots: spec.runtimeRoots, cgroups: spec.cgroups, removeDirectory: false)
        await HostCleanup.sweep(spec.volumesDir, removeDirectory: false)
        await HostCleanup.removeNetwork(spec)
    }
}
