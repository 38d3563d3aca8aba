// What the filters need of a pod, computed once per pod version: its requests (kube-scheduler's
// `computePodResourceRequest`), the non-zero requests LeastAllocated scores with, host ports,
// and the claims it mounts.
import ClusterAPI

/// Amounts of the resources NodeResourcesFit compares, in their base units (millicores, bytes).
struct ResourceAmounts: Sendable, Equatable {
    var milliCPU: Int64 = 0
    var memory: Int64 = 0
    var ephemeralStorage: Int64 = 0
    /// Every other resource (extended resources, hugepages) by name, in units.
    var scalar: [String: Int64] = [:]

    init() {}

    init(_ list: [String: Quantity]?) {
        for (name, quantity) in list ?? [:] {
            switch name {
            case "cpu": milliCPU = quantity.milliValue
            case "memory": memory = quantity.value
            case "ephemeral-storage": ephemeralStorage = quantity.value
            case "pods": continue
            default: scalar[name] = quantity.value
            }
        }
    }

    mutating func add(_ other: ResourceAmounts) {
        milliCPU += other.milliCPU
        memory += other.memory
        ephemeralStorage += other.ephemeralStorage
        for (name, value) in other.scalar { scalar[name, default: 0] += value }
    }

    mutating func subtract(_ other: ResourceAmounts) {
        milliCPU -= other.milliCPU
        memory -= other.memory
        ephemeralStorage -= other.ephemeralStorage
        for (name, value) in other.scalar { scalar[name, default: 0] -= value }
    }

    /// The larger of each amount (an init container's requests against the containers' sum).
    mutating func raise(to other: ResourceAmounts) {
        milliCPU = max(milliCPU, other.milliCPU)
        memory = max(memory, other.memory)
        ephemeralStorage = max(ephemeralStorage, other.ephemeralStorage)
        for (name, value) in other.scalar { scalar[name] = max(scalar[name] ?? 0, value) }
    }

    var isZero: Bool { milliCPU == 0 && memory == 0 && ephemeralStorage == 0 && scalar.values.allSatisfy { $0 == 0 } }
}

/// A host port a container asks for.
struct HostPort: Sendable, Hashable {
    var proto: String
    var ip: String
    var port: Int32

    /// Two ports conflict on the same protocol and number when either binds every address.
    func conflicts(with other: HostPort) -> Bool {
        proto == other.proto && port == other.port && (ip == other.ip || ip == "0.0.0.0" || other.ip == "0.0.0.0")
    }
}

/// A pod as the cache keeps it: what the filters read, computed once per pod version and held
/// in one shared, immutable object, so that copying a PodInfo (every copy of a node's pods when a
/// cycle's snapshot is copied on write) costs one reference count, not one per field.
struct PodInfo: Sendable {
    private let core: Core
    /// The node it is placed on ("" while pending); set by an assume.
    var nodeName: String

    var pod: Pod { core.pod }
    var key: String { core.key }
    var uid: String { core.uid }
    var namespace: String { core.namespace }
    var name: String { core.name }
    var requests: ResourceAmounts { core.requests }
    /// Requests with kube-scheduler's defaults for containers that state none (100m CPU,
    /// 200Mi memory): what LeastAllocated scores with, so that request-less pods still spread.
    var nonZeroCPU: Int64 { core.nonZeroCPU }
    var nonZeroMemory: Int64 { core.nonZeroMemory }
    var hostPorts: [HostPort] { core.hostPorts }
    /// The claims the pod mounts (names, in its namespace), generic ephemeral volumes' included
    /// (`<pod>-<volume>`, made by the ephemeral volume controller).
    var claims: [String] { core.claims }
    /// The claims' cache keys ("namespace/name"), in the order of `claims`.
    var claimKeys: [String] { core.claimKeys }
    /// Those of `claims` that are generic ephemeral volumes'.
    var ephemeralClaims: Set<String> { core.ephemeralClaims }
    /// Succeeded or Failed: holds nothing on its node.
    var isTerminal: Bool { core.isTerminal }

    static let defaultMilliCPU: Int64 = 100
    static let defaultMemory: Int64 = 200 * 1024 * 1024

    /// "namespace/name" of `pod`, as `key` is.
    static func key(of pod: Pod) -> String { "\(pod.metadata.namespace ?? "default")/\(pod.metadata.name ?? "")" }

    init(_ pod: Pod) {
        core = Core(pod)
        nodeName = pod.spec.nodeName ?? ""
    }

    private final class Core: Sendable {
        let pod: Pod
        let key: String
        let uid: String
        let namespace: String
        let name: String
        let requests: ResourceAmounts
        let nonZeroCPU: Int64
        let nonZeroMemory: Int64
        let hostPorts: [HostPort]
        let claims: [String]
        let claimKeys: [String]
        let ephemeralClaims: Set<String>
        let isTerminal: Bool

        init(_ pod: Pod) {
            self.pod = pod
            namespace = pod.metadata.namespace ?? "default"
            name = pod.metadata.name ?? ""
            key = "\(namespace)/\(name)"
            uid = pod.metadata.uid ?? ""
            var sum = ResourceAmounts()
            var nonZeroCPU: Int64 = 0
            var nonZeroMemory: Int64 = 0
            for container in pod.spec.containers {
                let requests = ResourceAmounts(container.resources?.requests)
                sum.add(requests)
                let stated = container.resources?.requests ?? [:]
                nonZeroCPU += stated["cpu"] == nil ? PodInfo.defaultMilliCPU : requests.milliCPU
                nonZeroMemory += stated["memory"] == nil ? PodInfo.defaultMemory : requests.memory
            }
            for container in pod.spec.initContainers ?? [] {
                let requests = ResourceAmounts(container.resources?.requests)
                sum.raise(to: requests)
                nonZeroCPU = max(nonZeroCPU, requests.milliCPU)
                nonZeroMemory = max(nonZeroMemory, requests.memory)
            }
            if let overhead = pod.spec.overhead {
                let amounts = ResourceAmounts(overhead)
                sum.add(amounts)
                nonZeroCPU += amounts.milliCPU
                nonZeroMemory += amounts.memory
            }
            requests = sum
            self.nonZeroCPU = nonZeroCPU
            self.nonZeroMemory = nonZeroMemory
            var ports: [HostPort] = []
            for container in pod.spec.containers + (pod.spec.initContainers ?? []) {
                for port in container.ports ?? [] {
                    guard let hostPort = port.hostPort, hostPort > 0 else { continue }
                    let ip = port.hostIP.flatMap { $0.isEmpty ? nil : $0 } ?? "0.0.0.0"
                    ports.append(HostPort(proto: port.`protocol` ?? "TCP", ip: ip, port: hostPort))
                }
            }
            hostPorts = ports
            var claims: [String] = []
            var ephemeral: Set<String> = []
            for volume in pod.spec.volumes ?? [] {
                if let claim = volume.persistentVolumeClaim?.claimName {
                    claims.append(claim)
                } else if let spec = volume.ephemeral, !spec.isNull {
                    let claim = "\(name)-\(volume.name)"
                    claims.append(claim)
                    ephemeral.insert(claim)
                }
            }
            self.claims = claims
            claimKeys = claims.map { [namespace] in "\(namespace)/\($0)" }
            ephemeralClaims = ephemeral
            isTerminal = pod.status.phase == "Succeeded" || pod.status.phase == "Failed"
        }
    }
}
