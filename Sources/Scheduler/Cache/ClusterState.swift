// The scheduler's view of the cluster, as one value: nodes with the pods on them (bound and
// assumed), and the storage objects VolumeBinding and NodeVolumeLimits read, with the
// reservations of scheduling cycles not yet bound. A cycle takes a copy (copy-on-write makes it
// cheap), decides outside the lock, and assumes under the lock after re-checking its node
// against the current state, so parallel cycles never over-commit.
import ClusterAPI

/// A node and what is placed on it. Its fields live in one object shared by the copies of the
/// state until one of them changes it (copy on write): a cycle's snapshot copies the node map,
/// and with the node's fields inline that copied every Node and pod map of every node each time.
struct NodeInfo: Sendable {
    private var storage = Storage()

    var node: Node? {
        get { storage.record?.node }
        set {
            unique()
            storage.record = newValue.map(NodeRecord.init)
            storage.allocatable = ResourceAmounts(newValue?.status.allocatable)
            storage.allowedPodNumber = newValue?.status.allocatable?["pods"]?.value ?? 0
        }
    }
    /// `status.allocatable`, converted once per node version.
    var allocatable: ResourceAmounts { storage.allocatable }
    /// `status.allocatable.pods` (0 when the node states none: no pod fits).
    var allowedPodNumber: Int64 { storage.allowedPodNumber }
    var pods: [String: PodInfo] { storage.pods }
    /// Sum of the requests of `pods`.
    var requested: ResourceAmounts { storage.requested }
    var nonZeroCPU: Int64 { storage.nonZeroCPU }
    var nonZeroMemory: Int64 { storage.nonZeroMemory }
    /// How many claims the pods mount, summed: a bound on the volumes they use, which lets
    /// NodeVolumeLimits skip counting handles on a node far below its limit.
    var claimCount: Int { storage.claimCount }

    /// The Node in an immutable shared object: the filters read it through this, once per node
    /// and pod, where binding `node` copied the whole Node (dozens of references retained and
    /// released) each time.
    var record: NodeRecord? { storage.record }

    var name: String { storage.record?.name ?? "" }

    mutating func add(_ pod: PodInfo) {
        if let old = storage.pods[pod.key] { remove(old) }
        unique()
        storage.pods[pod.key] = pod
        storage.requested.add(pod.requests)
        storage.nonZeroCPU += pod.nonZeroCPU
        storage.nonZeroMemory += pod.nonZeroMemory
        storage.claimCount += pod.claims.count
    }

    mutating func remove(_ pod: PodInfo) {
        guard storage.pods[pod.key] != nil else { return }
        unique()
        storage.pods[pod.key] = nil
        storage.requested.subtract(pod.requests)
        storage.nonZeroCPU -= pod.nonZeroCPU
        storage.nonZeroMemory -= pod.nonZeroMemory
        storage.claimCount -= pod.claims.count
    }

    private mutating func unique() {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
    }

    /// Mutated only through `NodeInfo` while uniquely referenced (`unique()`), so no two
    /// threads ever see it change: shared copies are read-only.
    private final class Storage: @unchecked Sendable {
        var record: NodeRecord?
        var allocatable = ResourceAmounts()
        var allowedPodNumber: Int64 = 0
        var pods: [String: PodInfo] = [:]
        var requested = ResourceAmounts()
        var nonZeroCPU: Int64 = 0
        var nonZeroMemory: Int64 = 0
        var claimCount = 0

        func copy() -> Storage {
            let copy = Storage()
            copy.record = record
            copy.allocatable = allocatable
            copy.allowedPodNumber = allowedPodNumber
            copy.pods = pods
            copy.requested = requested
            copy.nonZeroCPU = nonZeroCPU
            copy.nonZeroMemory = nonZeroMemory
            copy.claimCount = claimCount
            return copy
        }
    }
}

/// A Node as the cache holds it: never changed (a new version is a new record), so shared by
/// every copy of the state and read without copying it.
/// What the filters read of it is taken out once per Node version: passing the Node itself to
/// each filter copied it (dozens of references retained and released) per node and pod.
final class NodeRecord: Sendable {
    let node: Node
    let name: String
    let labels: [String: String]
    /// `spec.unschedulable`.
    let unschedulable: Bool
    /// The `NoSchedule` and `NoExecute` taints, in order (TaintToleration reads only these).
    let schedulingTaints: [Taint]

    init(_ node: Node) {
        self.node = node
        name = node.metadata.name ?? ""
        labels = node.metadata.labels ?? [:]
        unschedulable = node.spec.unschedulable == true
        schedulingTaints = (node.spec.taints ?? []).filter { $0.effect == "NoSchedule" || $0.effect == "NoExecute" }
    }
}

/// A CSINode's `drivers[].allocatable.count` by driver, and the smallest: what NodeVolumeLimits
/// compares with, taken out once per CSINode version instead of per node and pod.
struct CSIVolumeLimits: Sendable, Equatable {
    var byDriver: [String: Int] = [:]
    var smallest: Int?

    init(_ csiNode: CSINode) {
        for driver in csiNode.spec.drivers { if let count = driver.allocatable?.count { byDriver[driver.name] = Int(count) } }
        smallest = byDriver.values.min()
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
    var nodes = ShardedMap<NodeInfo>()
    /// How many placed pods use each claim ("namespace/name"): VolumeRestrictions' RWOP check.
    var claimUsers = ShardedMap<Int>()
    var claims = SharedValues<PersistentVolumeClaim>()
    /// Set through `setVolume`/`removeVolume`, which keep the two indexes below.
    var volumes = SharedValues<PersistentVolume>()
    /// Names of the volumes without a claimRef, by class: where a WFFC claim's static
    /// candidates come from, without scanning every volume for every pod.
    var freeVolumes: [String: Set<String>] = [:]
    /// Names of the volumes whose claimRef names a claim, by claim key.
    var volumesByClaim = ShardedMap<Set<String>>()
    var classes: [String: StorageClass] = [:]
    /// Each CSINode's attach limits by driver, by node name (set through `setCSINode`).
    private(set) var volumeLimits: [String: CSIVolumeLimits] = [:]
    /// The smallest attach limit of any CSINode (nil: none has one): a node whose pods mount
    /// no more claims than this cannot exceed its own limit, found without looking it up.
    private(set) var smallestVolumeLimit: Int?
    /// Volume names (PV) attached to each node, from VolumeAttachments that say so.
    var attachments: [String: (volume: String, node: String)] = [:]
    /// The names of the nodes that exist, sorted (kept with `nodes`).
    private(set) var nodeNames: [String] = []
    /// Reservations of in-flight cycles, by claim key.
    private(set) var reservations = ShardedMap<VolumeReservation>()
    /// Volume name → claim key, for the reserved static volumes.
    private(set) var reservedVolumes = ShardedMap<String>()
    /// The claims each pod reserved (pod key → claim keys), so that releasing a pod's
    /// reservations touches only them: scanning every reservation (thousands while
    /// WaitForFirstConsumer pods wait in PreBind), and copying the table it iterated over at the
    /// first removal, was 4% of the scheduler's process with `wffc`.
    private var reservedByPod = ShardedMap<[String]>()

    // MARK: Pods

    /// Counts `pod` on `pod.nodeName` (a terminal pod, or one without a node, holds nothing).
    /// Which pods are placed where is the cache's bookkeeping (`Placements`), kept out of this
    /// value so that the cycles' copies do not copy it.
    mutating func place(_ pod: PodInfo) {
        guard !pod.nodeName.isEmpty, !pod.isTerminal else { return }
        nodes[pod.nodeName, default: NodeInfo()].add(pod)
        for claim in pod.claimKeys { claimUsers[claim, default: 0] += 1 }
    }

    /// Stops counting `pod` on its node.
    mutating func unplace(_ pod: PodInfo) {
        guard let old = nodes[pod.nodeName]?.pods[pod.key] else { return }
        nodes[pod.nodeName]?.remove(old)
        if let info = nodes[pod.nodeName], info.record == nil, info.pods.isEmpty { nodes[pod.nodeName] = nil }
        for claim in old.claimKeys {
            claimUsers[claim, default: 1] -= 1
            if claimUsers[claim] == 0 { claimUsers[claim] = nil }
        }
    }

    // MARK: Nodes

    mutating func setNode(_ node: Node) {
        let name = node.metadata.name ?? ""
        if nodes[name]?.record == nil { nodeNames.insert(name, at: nodeNames.firstIndex { $0 > name } ?? nodeNames.endIndex) }
        nodes[name, default: NodeInfo()].node = node
    }

    mutating func removeNode(_ name: String) {
        guard nodes[name]?.record != nil else { return }
        nodeNames.removeAll { $0 == name }
        nodes[name]?.node = nil
        if nodes[name]?.pods.isEmpty == true { nodes[name] = nil }
    }

    /// Records the attach limits of `csiNode` (nil: its node has none any more).
    mutating func setCSINode(_ name: String, _ csiNode: CSINode?) {
        let new = csiNode.map(CSIVolumeLimits.init)
        let old = volumeLimits[name]
        volumeLimits[name] = new
        if let smallest = new?.smallest, smallest <= (smallestVolumeLimit ?? .max) {
            smallestVolumeLimit = smallest
        } else if let was = old?.smallest, was == smallestVolumeLimit {
            // The node that had the smallest limit raised or dropped it: look at them all (rare).
            smallestVolumeLimit = volumeLimits.values.compactMap(\.smallest).min()
        }
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
        reservedByPod[reservation.podKey, default: []].append(reservation.claimKey)
    }

    mutating func releaseReservations(of podKey: String) {
        guard let claims = reservedByPod.removeValue(forKey: podKey) else { return }
        for claim in claims {
            // Another pod's cycle may have reserved the claim since: its reservation stays.
            guard let reservation = reservations[claim], reservation.podKey == podKey else { continue }
            reservations[claim] = nil
            if let volume = reservation.volume, reservedVolumes[volume] == claim { reservedVolumes[volume] = nil }
        }
    }
}

/// The cache's own record of which pods it counts where, beside the state the cycles copy.
struct Placements: Sendable {
    /// Pods placed on a node, bound or assumed, by key.
    var placed: [String: PodInfo] = [:]
    /// Keys of the placed pods whose binding the informer has not shown yet.
    var assumed: Set<String> = []

    /// Records `pod` on `pod.nodeName` in `state`, replacing its previous placement.
    mutating func place(_ pod: PodInfo, in state: inout ClusterState) {
        unplace(pod.key, in: &state)
        guard !pod.nodeName.isEmpty, !pod.isTerminal else { return }
        placed[pod.key] = pod
        state.place(pod)
    }

    mutating func unplace(_ key: String, in state: inout ClusterState) {
        assumed.remove(key)
        guard let old = placed.removeValue(forKey: key) else { return }
        state.unplace(old)
    }
}

/// A map of API objects whose copy costs a reference count per entry, not one per field of each
/// object: thousands of claims and volumes are copied whenever one changes while a cycle holds
/// a copy of the state.
struct SharedValues<Value: Sendable>: Sendable {
    private var entries = ShardedMap<Shared>()

    private final class Shared: Sendable {
        let value: Value
        init(_ value: Value) { self.value = value }
    }

    init() {}

    subscript(key: String) -> Value? {
        get { entries[key]?.value }
        set { entries[key] = newValue.map(Shared.init) }
    }

    @discardableResult
    mutating func removeValue(forKey key: String) -> Value? { entries.removeValue(forKey: key)?.value }

    var count: Int { entries.count }
}
