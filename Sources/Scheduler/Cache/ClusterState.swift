// The scheduler's view of the cluster, as one value: nodes with the pods on them (bound and
// assumed), and the storage objects VolumeBinding and NodeVolumeLimits read, with the
// reservations of scheduling cycles not yet bound. A cycle takes a copy (copy-on-write makes it
// cheap), decides outside the lock, and assumes under the lock after re-checking its node
// against the current state, so parallel cycles never over-commit.
import ClusterAPI

/// A node and what is placed on it.
struct NodeInfo: Sendable {
    var node: Node? {
        didSet {
            allocatable = ResourceAmounts(node?.status.allocatable)
            allowedPodNumber = node?.status.allocatable?["pods"]?.value ?? 0
        }
    }
    /// `status.allocatable`, converted once per node version.
    private(set) var allocatable = ResourceAmounts()
    /// `status.allocatable.pods` (0 when the node states none: no pod fits).
    private(set) var allowedPodNumber: Int64 = 0
    var pods: [String: PodInfo] = [:]
    /// Sum of the requests of `pods`.
    var requested = ResourceAmounts()
    var nonZeroCPU: Int64 = 0
    var nonZeroMemory: Int64 = 0

    var name: String { node?.metadata.name ?? "" }

    mutating func add(_ pod: PodInfo) {
        if let old = pods[pod.key] { remove(old) }
        pods[pod.key] = pod
        requested.add(pod.requests)
        nonZeroCPU += pod.nonZeroCPU
        nonZeroMemory += pod.nonZeroMemory
    }

    mutating func remove(_ pod: PodInfo) {
        guard pods.removeValue(forKey: pod.key) != nil else { return }
        requested.subtract(pod.requests)
        nonZeroCPU -= pod.nonZeroCPU
        nonZeroMemory -= pod.nonZeroMemory
    }
}

/// A claim's reservation by an in-flight cycle: a static volume chosen for it, or a node chosen
/// for its provisioning (the future `selected-node`).
struct VolumeReservation: Sendable, Hashable {
    var claimKey: String
    var volume: String?
    var node: String?
    var podKey: String
}

struct ClusterState: Sendable {
    var nodes: [String: NodeInfo] = [:]
    /// Pods placed on a node, bound or assumed, by key.
    var placed: [String: PodInfo] = [:]
    /// Keys of the placed pods whose binding the informer has not shown yet.
    var assumed: Set<String> = []
    /// How many placed pods use each claim ("namespace/name"): VolumeRestrictions' RWOP check.
    var claimUsers: [String: Int] = [:]
    var claims: [String: PersistentVolumeClaim] = [:]
    /// Set through `setVolume`/`removeVolume`, which keep the two indexes below.
    var volumes: [String: PersistentVolume] = [:]
    /// Names of the volumes without a claimRef, by class: where a WFFC claim's static
    /// candidates come from, without scanning every volume for every pod.
    var freeVolumes: [String: Set<String>] = [:]
    /// Names of the volumes whose claimRef names a claim, by claim key.
    var volumesByClaim: [String: Set<String>] = [:]
    var classes: [String: StorageClass] = [:]
    var csiNodes: [String: CSINode] = [:]
    /// Volume names (PV) attached to each node, from VolumeAttachments that say so.
    var attachments: [String: (volume: String, node: String)] = [:]
    /// The names of the nodes that exist, sorted (kept with `nodes`).
    private(set) var nodeNames: [String] = []
    /// Reservations of in-flight cycles, by claim key.
    var reservations: [String: VolumeReservation] = [:]
    /// Volume name → claim key, for the reserved static volumes.
    var reservedVolumes: [String: String] = [:]

    // MARK: Pods

    /// Records a pod placed on `pod.nodeName` (replacing its previous placement).
    mutating func place(_ pod: PodInfo) {
        unplace(pod.key)
        guard !pod.nodeName.isEmpty, !pod.isTerminal else { return }
        placed[pod.key] = pod
        nodes[pod.nodeName, default: NodeInfo()].add(pod)
        for claim in pod.claimKeys { claimUsers[claim, default: 0] += 1 }
    }

    mutating func unplace(_ key: String) {
        guard let old = placed.removeValue(forKey: key) else { return }
        nodes[old.nodeName]?.remove(old)
        if let info = nodes[old.nodeName], info.node == nil, info.pods.isEmpty { nodes[old.nodeName] = nil }
        for claim in old.claimKeys {
            claimUsers[claim, default: 1] -= 1
            if claimUsers[claim] == 0 { claimUsers[claim] = nil }
        }
        assumed.remove(key)
    }

    // MARK: Nodes

    mutating func setNode(_ node: Node) {
        let name = node.metadata.name ?? ""
        if nodes[name]?.node == nil { nodeNames.insert(name, at: nodeNames.firstIndex { $0 > name } ?? nodeNames.endIndex) }
        nodes[name, default: NodeInfo()].node = node
    }

    mutating func removeNode(_ name: String) {
        guard nodes[name]?.node != nil else { return }
        nodeNames.removeAll { $0 == name }
        nodes[name]?.node = nil
        if nodes[name]?.pods.isEmpty == true { nodes[name] = nil }
    }

    /// Volumes attached to `node` (PV names).
    func attachedVolumes(on node: String) -> Set<String> {
        Set(attachments.values.filter { $0.node == node }.map(\.volume))
    }

    // MARK: Volumes

    mutating func setVolume(_ volume: PersistentVolume) {
        let name = volume.metadata.name ?? ""
        removeVolume(name)
        volumes[name] = volume
        if let claim = volume.claimKey {
            volumesByClaim[claim, default: []].insert(name)
        } else {
            freeVolumes[volume.className, default: []].insert(name)
        }
    }

    mutating func removeVolume(_ name: String) {
        guard let old = volumes.removeValue(forKey: name) else { return }
        if let claim = old.claimKey {
            volumesByClaim[claim]?.remove(name)
            if volumesByClaim[claim]?.isEmpty == true { volumesByClaim[claim] = nil }
        } else {
            freeVolumes[old.className]?.remove(name)
            if freeVolumes[old.className]?.isEmpty == true { freeVolumes[old.className] = nil }
        }
    }

    // MARK: Reservations

    mutating func reserve(_ reservation: VolumeReservation) {
        reservations[reservation.claimKey] = reservation
        if let volume = reservation.volume { reservedVolumes[volume] = reservation.claimKey }
    }

    mutating func releaseReservations(of podKey: String) {
        for (claim, reservation) in reservations where reservation.podKey == podKey {
            reservations[claim] = nil
            if let volume = reservation.volume, reservedVolumes[volume] == claim { reservedVolumes[volume] = nil }
        }
    }
}
