// The node as the API server knows it: registered with the standard labels (and, under an
// external cloud provider, the `uninitialized` taint the cloud controller manager removes),
// its status — capacity and allocatable, addresses, nodeInfo, the kubelet's endpoint, the
// conditions Ready, MemoryPressure, DiskPressure, PIDPressure, volumesInUse — written when it
// changes and at least every minute, its Lease in kube-node-lease renewed every 10 s, and its
// CSINode from the node plugin's NodeGetInfo.
import APIClient
import ClusterAPI
import Foundation
import Logging

/// What the node reports about itself.
public struct NodeSettings: Sendable {
    public var name: String
    public var ip: String
    public var port: Int
    public var capacity: [String: Quantity]
    public var externalCloudProvider: Bool
    public var kubeletVersion: String
    public var runtimeName: String
    public var runtimeVersion: String
    public var leaseDuration: Int32 = 40
    public var leaseRenewal: Duration = .seconds(10)
    public var statusReport: Duration = .seconds(60)
    /// The kubelet's root (nodefs) and image store (imagefs), for DiskPressure.
    public var rootDirectory = "/"
    public var imageDirectory = "/"

    public init(name: String, ip: String, port: Int, capacity: [String: Quantity], externalCloudProvider: Bool, kubeletVersion: String,
                runtimeName: String, runtimeVersion: String) {
        self.name = name
        self.ip = ip
        self.port = port
        self.capacity = capacity
        self.externalCloudProvider = externalCloudProvider
        self.kubeletVersion = kubeletVersion
        self.runtimeName = runtimeName
        self.runtimeVersion = runtimeVersion
    }

    /// The machine's CPUs, memory and `pods=110`, overridden by `overrides`.
    public static func capacity(overrides: [String: Quantity]) -> [String: Quantity] {
        var capacity: [String: Quantity] = [
            "cpu": Quantity(Int64(ProcessInfo.processInfo.activeProcessorCount)),
            "memory": (try? Quantity("\(ProcessInfo.processInfo.physicalMemory / 1024)Ki")) ?? Quantity(0),
            "pods": Quantity(110),
        ]
        for (key, value) in overrides { capacity[key] = value }
        return capacity
    }
}

public actor NodeStatusManager {
    let client: KubeClient
    let settings: NodeSettings
    let logger: Logger
    var volumesInUse: @Sendable () async -> [String] = { [] }
    var onReported: @Sendable ([String]) async -> Void = { _ in }
    var runtimeHealthy: @Sendable () async -> Bool = { true }
    private var lastWritten: JSONValue?
    private var lastWriteAt: ContinuousClock.Instant?
    private var nodeUID: String?
    private var csiDriver: (name: String, nodeID: String)?

    public init(client: KubeClient, settings: NodeSettings, logger: Logger) {
        self.client = client
        self.settings = settings
        self.logger = logger
    }

    func connect(volumesInUse: @escaping @Sendable () async -> [String], onReported: @escaping @Sendable ([String]) async -> Void,
                 runtimeHealthy: @escaping @Sendable () async -> Bool) {
        self.volumesInUse = volumesInUse
        self.onReported = onReported
        self.runtimeHealthy = runtimeHealthy
    }

    // MARK: Registration

    /// Creates the Node, or brings an existing one's labels and annotations up to date.
    public func register() async throws {
        var node = Node()
        node.metadata.name = settings.name
        node.metadata.labels = labels
        node.metadata.annotations = annotations
        if settings.externalCloudProvider {
            node.spec.taints = [Taint(key: "node.cloudprovider.kubernetes.io/uninitialized", value: "true", effect: "NoSchedule")]
        }
        do {
            let created = try await client.create(node)
            nodeUID = created.metadata.uid
            logger.info("registered the node", metadata: ["node": "\(settings.name)"])
        } catch let error as APIError where error.isAlreadyExists {
            let patch: JSONValue = ["metadata": ["labels": try JSONValue(encoding: labels), "annotations": try JSONValue(encoding: annotations)]]
            let updated = try await client.mergePatch(Node.self, name: settings.name, patch: patch)
            nodeUID = updated.metadata.uid
            logger.info("the node was registered already; labels and annotations updated", metadata: ["node": "\(settings.name)"])
        }
        lastWritten = nil
        try await writeStatus(force: true)
    }

    var labels: [String: String] {
        ["kubernetes.io/hostname": settings.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": Platform.architecture,
         "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": Platform.architecture]
    }

    var annotations: [String: String] {
        var annotations = ["volumes.kubernetes.io/controller-managed-attach-detach": "true", "node.alpha.kubernetes.io/ttl": "0"]
        if settings.externalCloudProvider { annotations["alpha.kubernetes.io/provided-node-ip"] = settings.ip }
        if let csiDriver {
            annotations["csi.volume.kubernetes.io/nodeid"] = "{\"\(csiDriver.name)\":\"\(csiDriver.nodeID)\"}"
        }
        return annotations
    }

    // MARK: Status

    /// Writes the status when it changed (heartbeats aside), or `statusReport` after the last
    /// write, or with `force`.
    public func writeStatus(force: Bool = false) async throws {
        let current = try await client.get(Node.self, name: settings.name)
        nodeUID = current.metadata.uid
        let inUse = await volumesInUse()
        let status = try await computeStatus(current: current, volumesInUse: inUse)
        let due = lastWriteAt.map { ContinuousClock.now - $0 >= settings.statusReport } ?? true
        guard force || due || status.withoutHeartbeats != lastWritten?.withoutHeartbeats else { return }
        _ = try await client.mergePatch(Node.self, name: settings.name, patch: ["status": status], subresource: "status")
        lastWritten = status
        lastWriteAt = ContinuousClock.now
        await onReported(inUse)
    }

    /// Writes volumesInUse now (before a volume is staged).
    public func reportVolumesInUse(_ names: [String]) async throws {
        _ = try await client.mergePatch(Node.self, name: settings.name, patch: ["status": ["volumesInUse": try JSONValue(encoding: names)]],
                                        subresource: "status")
        if case .object(var written)? = lastWritten {
            written["volumesInUse"] = try JSONValue(encoding: names)
            lastWritten = .object(written)
        }
    }

    func computeStatus(current: Node, volumesInUse: [String]) async throws -> JSONValue {
        let now = Time.now()
        let healthy = await runtimeHealthy()
        let existing = current.status.conditions ?? []
        func condition(_ type: String, _ status: String, _ reason: String, _ message: String) -> NodeCondition {
            let previous = existing.first { $0.type == type }
            let transition = previous?.status == status ? previous?.lastTransitionTime ?? now : now
            return NodeCondition(type: type, status: status, lastHeartbeatTime: now, lastTransitionTime: transition, reason: reason, message: message)
        }
        let pressure = NodePressure.measure(rootDirectory: settings.rootDirectory, imageDirectory: settings.imageDirectory)
        let conditions = [
            pressure.memory.map { condition("MemoryPressure", "True", "KubeletHasInsufficientMemory", "kubelet has insufficient memory available: \($0)") }
                ?? condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            pressure.disk.map { condition("DiskPressure", "True", "KubeletHasDiskPressure", "kubelet has disk pressure: \($0)") }
                ?? condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            pressure.pids.map { condition("PIDPressure", "True", "KubeletHasInsufficientPID", "kubelet has insufficient PID available: \($0)") }
                ?? condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            healthy ? condition("Ready", "True", "KubeletReady", "kubelet is posting ready status")
                : condition("Ready", "False", "KubeletNotReady", "container runtime is down: \(settings.runtimeName) does not answer"),
        ]
        var addresses = current.status.addresses ?? []
        for (type, address) in [("InternalIP", settings.ip), ("Hostname", settings.name)] where !addresses.contains(where: { $0.type == type }) {
            addresses.append(NodeAddress(type: type, address: address))
        }
        var uname = utsname()
        _ = Glibc.uname(&uname)
        let kernel = withUnsafeBytes(of: &uname.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let info = NodeSystemInfo(machineID: Self.read("/etc/machine-id"), systemUUID: Self.read("/sys/class/dmi/id/product_uuid") ?? Self.read("/etc/machine-id"),
                                  bootID: Self.read("/proc/sys/kernel/random/boot_id"), kernelVersion: kernel, osImage: Self.osImage,
                                  containerRuntimeVersion: "\(settings.runtimeName)://\(settings.runtimeVersion)",
                                  kubeletVersion: settings.kubeletVersion, kubeProxyVersion: "", operatingSystem: "linux",
                                  architecture: Platform.architecture)
        let capacity = settings.capacity
        let status: [String: JSONValue] = [
            "capacity": try JSONValue(encoding: capacity),
            "allocatable": try JSONValue(encoding: capacity),
            "conditions": try JSONValue(encoding: conditions),
            "addresses": try JSONValue(encoding: addresses),
            "daemonEndpoints": ["kubeletEndpoint": ["Port": .integer(Int64(settings.port))]],
            "nodeInfo": try JSONValue(encoding: info),
            "volumesInUse": try JSONValue(encoding: volumesInUse),
        ]
        return .object(status)
    }

    static func read(_ path: String) -> String? {
        (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static var osImage: String {
        let text = (try? String(contentsOfFile: "/etc/os-release", encoding: .utf8)) ?? ""
        for line in text.split(separator: "\n") where line.hasPrefix("PRETTY_NAME=") {
            return String(line.dropFirst(12)).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        }
        return "Linux"
    }

    // MARK: Lease

    /// Renews (or creates) the node's Lease.
    public func renewLease() async throws {
        let now = MicroTime.now()
        do {
            var lease = try await client.get(Lease.self, name: settings.name, namespace: "kube-node-lease")
            lease.spec.holderIdentity = settings.name
            lease.spec.leaseDurationSeconds = settings.leaseDuration
            lease.spec.renewTime = now
            _ = try await client.update(lease)
        } catch let error as APIError where error.isNotFound {
            var lease = Lease()
            lease.metadata.name = settings.name
            lease.metadata.namespace = "kube-node-lease"
            if let nodeUID {
                lease.metadata.ownerReferences = [OwnerReference(apiVersion: "v1", kind: "Node", name: settings.name, uid: nodeUID)]
            }
            lease.spec = LeaseSpec(holderIdentity: settings.name, leaseDurationSeconds: settings.leaseDuration, acquireTime: now, renewTime: now)
            _ = try await client.create(lease)
        }
    }

    // MARK: CSINode

    /// Registers the node plugin: the CSINode's driver entry and the node's nodeid annotation.
    public func registerCSI(_ csi: CSINodeClient) async throws {
        let name = try await csi.driverName()
        let info = try await csi.info()
        csiDriver = (name, info.nodeID)
        var driver = CSINodeDriver(name: name, nodeID: info.nodeID,
                                   topologyKeys: info.hasAccessibleTopology ? info.accessibleTopology.segments.keys.sorted() : nil)
        if info.maxVolumesPerNode > 0 { driver.allocatable = VolumeNodeResources(count: Int32(clamping: info.maxVolumesPerNode)) }
        do {
            var existing = try await client.get(CSINode.self, name: settings.name)
            existing.spec.drivers.removeAll { $0.name == name }
            existing.spec.drivers.append(driver)
            _ = try await client.update(existing)
        } catch let error as APIError where error.isNotFound {
            var object = CSINode()
            object.metadata.name = settings.name
            if let nodeUID {
                object.metadata.ownerReferences = [OwnerReference(apiVersion: "v1", kind: "Node", name: settings.name, uid: nodeUID)]
            }
            object.spec.drivers = [driver]
            _ = try await client.create(object)
        }
        _ = try await client.mergePatch(Node.self, name: settings.name,
                                        patch: ["metadata": ["annotations": try JSONValue(encoding: annotations)]])
        logger.info("registered the CSI driver", metadata: ["driver": "\(name)", "nodeID": "\(info.nodeID)"])
    }
}

extension JSONValue {
    /// A node status without its conditions' heartbeat times.
    var withoutHeartbeats: JSONValue {
        guard case .object(var object) = self else { return self }
        if case .array(let conditions)? = object["conditions"] {
            object["conditions"] = .array(conditions.map { condition in
                guard case .object(var fields) = condition else { return condition }
                fields["lastHeartbeatTime"] = nil
                return .object(fields)
            })
        }
        return .object(object)
    }
}
