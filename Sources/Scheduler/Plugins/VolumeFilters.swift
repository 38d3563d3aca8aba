// The volume plugins of kube-scheduler's default profile, with upstream's messages:
//
// - VolumeRestrictions (PreFilter): a ReadWriteOncePod claim another placed pod uses.
// - VolumeBinding (PreFilter): every claim exists, is not being deleted or Lost, and is either
//   bound or WaitForFirstConsumer; (Filter, per node) a bound volume's node affinity matches the
//   node; an unbound WaitForFirstConsumer claim finds the smallest fitting static volume
//   reachable from the node (not already chosen for another of the pod's claims, not reserved
//   by another cycle), or a class that can provision in the node's topology.
// - NodeVolumeLimits (Filter): unique volume handles per CSI driver against the CSINode's
//   `allocatable.count`.
import ClusterAPI

/// What VolumeBinding's PreFilter learnt of the pod's claims.
struct PodVolumes: Sendable {
    /// Claims bound to a volume (nil: the volume is not in the cache).
    var bound: [(claim: PersistentVolumeClaim, volume: PersistentVolume?)] = [] {
        didSet {
            boundMissing = bound.contains { $0.volume == nil }
            boundAffinities = bound.compactMap { $0.volume?.spec.nodeAffinity?.required }
        }
    }
    /// What the Filter reads of `bound` on every node, taken out once per pod (copying each
    /// claim and volume for each node cost more than the checks).
    private(set) var boundMissing = false
    /// The bound volumes' required node affinities.
    private(set) var boundAffinities: [NodeSelector] = []
    /// Unbound WaitForFirstConsumer claims, with their class and static candidates (smallest first).
    var delayed: [DelayedClaim] = []
    /// Every claim of the pod, by key.
    var claims: [String: PersistentVolumeClaim] = [:]
}

/// An unbound WaitForFirstConsumer claim of the pod. A class, so that the Filter's loop over a
/// pod's claims on every node takes a reference, not a copy of the claim and its class (copying
/// them per node and claim was a third of VolumeBinding's Filter with `wffc`).
final class DelayedClaim: Sendable {
    let claim: PersistentVolumeClaim
    let key: String
    let storageClass: StorageClass
    let candidates: [PersistentVolume]
    /// What the Filter reads of the class per node, taken out once.
    let provisions: Bool
    let allowedTopologies: [TopologySelectorTerm]
    /// Another cycle's reservation of the claim in the state PreFilter read (the same for every
    /// node: looked up once, not per node).
    let reservation: VolumeReservation?

    init(claim: PersistentVolumeClaim, key: String, storageClass: StorageClass, candidates: [PersistentVolume],
         reservation: VolumeReservation?) {
        self.claim = claim
        self.key = key
        self.storageClass = storageClass
        self.candidates = candidates
        self.reservation = reservation
        provisions = !storageClass.provisioner.isEmpty && storageClass.provisioner != SchedulerNames.noProvisioner
        allowedTopologies = storageClass.allowedTopologies ?? []
    }
}

/// The volume decisions for one node: static volumes to bind, claims to provision there.
struct VolumePlan: Sendable, Equatable {
    var staticBindings: [(claimKey: String, volume: String)] = []
    var provisions: [String] = []

    var isEmpty: Bool { staticBindings.isEmpty && provisions.isEmpty }

    static func == (a: VolumePlan, b: VolumePlan) -> Bool {
        a.provisions == b.provisions && a.staticBindings.map(\.claimKey) == b.staticBindings.map(\.claimKey)
            && a.staticBindings.map(\.volume) == b.staticBindings.map(\.volume)
    }
}

extension PersistentVolumeClaim {
    var cacheKey: String { "\(metadata.namespace ?? "default")/\(metadata.name ?? "")" }

    var className: String { spec.storageClassName ?? metadata.annotations?["volume.beta.kubernetes.io/storage-class"] ?? "" }

    /// Bound, as VolumeBinding sees it: a volume name and the binder's `bind-completed`.
    var isFullyBound: Bool {
        !(spec.volumeName ?? "").isEmpty && metadata.annotations?[SchedulerNames.bindCompleted] != nil
    }
}

extension PersistentVolume {
    var className: String { spec.storageClassName ?? metadata.annotations?["volume.beta.kubernetes.io/storage-class"] ?? "" }

    /// Whether its node affinity lets `node` reach it (no affinity: every node).
    func reachable(from node: NodeRecord) -> Bool {
        guard let required = spec.nodeAffinity?.required else { return true }
        return NodeSelectorMatch.matches(required, node)
    }

    /// "namespace/name" of the claim its claimRef names.
    var claimKey: String? {
        spec.claimRef.map { "\($0.namespace ?? "default")/\($0.name ?? "")" }
    }

    /// `driver` and `handle` of a CSI volume.
    var csiHandle: (driver: String, handle: String)? {
        spec.csi.map { ($0.driver, $0.volumeHandle) }
    }
}

enum VolumeFilters {
    // MARK: VolumeRestrictions

    static func restrictionsPreFilter(_ pod: PendingPod, _ state: ClusterState) -> String? {
        for key in pod.info.claimKeys {
            guard let claim = state.claims[key] else { continue }
            if (claim.spec.accessModes ?? []).contains("ReadWriteOncePod"), (state.claimUsers[key] ?? 0) > 0 {
                return Reason.readWriteOncePod
            }
        }
        return nil
    }

    // MARK: VolumeBinding

    enum PreFilterResult {
        case ok(PodVolumes)
        /// `missing`: only because an object is not in the caches (yet).
        case reject(String, missing: Bool = false)
    }

    static func bindingPreFilter(_ pod: PendingPod, _ state: ClusterState) -> PreFilterResult {
        var volumes = PodVolumes()
        for name in pod.info.claims {
            let key = "\(pod.info.namespace)/\(name)"
            guard let claim = state.claims[key] else {
                if pod.info.ephemeralClaims.contains(name) {
                    return .reject("waiting for ephemeral volume controller to create the persistentvolumeclaim \"\(name)\"", missing: true)
                }
                return .reject("persistentvolumeclaim \"\(name)\" not found", missing: true)
            }
            if claim.metadata.deletionTimestamp != nil { return .reject("persistentvolumeclaim \"\(name)\" is being deleted") }
            if claim.status.phase == "Lost" {
                return .reject("persistentvolumeclaim \"\(name)\" bound to non-existent persistentvolume \"\(claim.spec.volumeName ?? "")\"")
            }
            volumes.claims[key] = claim
            if claim.isFullyBound {
                volumes.bound.append((claim, state.volumes[claim.spec.volumeName ?? ""]))
                continue
            }
            let className = claim.className
            guard !className.isEmpty, (claim.spec.volumeName ?? "").isEmpty else { return .reject(Reason.unboundImmediate) }
            guard let storageClass = state.classes[className] else {
                return .reject("storageclass.storage.k8s.io \"\(className)\" not found", missing: true)
            }
            guard storageClass.volumeBindingMode == "WaitForFirstConsumer" else { return .reject(Reason.unboundImmediate) }
            volumes.delayed.append(DelayedClaim(claim: claim, key: key, storageClass: storageClass,
                                                candidates: candidates(for: claim, state), reservation: state.reservations[key]))
        }
        return .ok(volumes)
    }

    /// Static volumes that could serve `claim` anywhere: its class, free (or pre-bound to it),
    /// big enough, the modes and labels it asks for; pre-bound first, then smallest first.
    static func candidates(for claim: PersistentVolumeClaim, _ state: ClusterState) -> [PersistentVolume] {
        let className = claim.className
        let wanted = claim.spec.resources?.requests?["storage"] ?? Quantity.zero
        let modes = Set(claim.spec.accessModes ?? [])
        let mode = claim.spec.volumeMode ?? "Filesystem"
        let names = (state.freeVolumes[className] ?? []).union(state.volumesByClaim[claim.cacheKey] ?? [])
        let found = names.compactMap { state.volumes[$0] }.filter { volume in
            guard volume.className == className, volume.metadata.deletionTimestamp == nil else { return false }
            if let ref = volume.spec.claimRef {
                guard ref.name == claim.metadata.name, ref.namespace == claim.metadata.namespace,
                      (ref.uid ?? "").isEmpty || ref.uid == claim.metadata.uid else { return false }
            } else if volume.status.phase == "Released" || volume.status.phase == "Failed" {
                return false
            }
            guard modes.isSubset(of: Set(volume.spec.accessModes ?? [])), (volume.spec.volumeMode ?? "Filesystem") == mode else { return false }
            guard let capacity = volume.spec.capacity?["storage"], !(capacity < wanted) else { return false }
            if let selector = claim.spec.selector, !LabelMatch.matches(selector, volume.metadata.labels ?? [:]) { return false }
            return true
        }
        return found.sorted { a, b in
            let aPre = a.spec.claimRef != nil, bPre = b.spec.claimRef != nil
            if aPre != bPre { return aPre }
            let ca = a.spec.capacity?["storage"] ?? .zero, cb = b.spec.capacity?["storage"] ?? .zero
            if ca != cb { return ca < cb }
            return (a.metadata.name ?? "") < (b.metadata.name ?? "")
        }
    }

    /// The reasons `node` cannot serve the pod's volumes, or the plan that would.
    static func bindingFilter(_ pod: PendingPod, _ volumes: PodVolumes, _ node: NodeRecord, _ state: ClusterState) -> (reasons: [String], plan: VolumePlan) {
        var reasons: [String] = []
        let nodeName = node.name
        if volumes.boundMissing { reasons.append(Reason.volumeNotExist) }
        if volumes.boundAffinities.contains(where: { !NodeSelectorMatch.matches($0, node) }) { reasons.append(Reason.volumeNodeConflict) }
        var plan = VolumePlan()
        var chosen: Set<String> = []
        var bindConflict = false
        for delayed in volumes.delayed {
            if let reservation = delayed.reservation, reservation.podKey != pod.info.key {
                // Another cycle is binding this claim: follow its choice.
                if let volume = reservation.volume {
                    if let pv = state.volumes[volume], !pv.reachable(from: node) { bindConflict = true }
                } else if reservation.node != nodeName {
                    bindConflict = true
                }
                continue
            }
            if let volume = delayed.candidates.first(where: { pv in
                let name = pv.metadata.name ?? ""
                if chosen.contains(name) { return false }
                if let holder = state.reservedVolumes[name], holder != delayed.key { return false }
                return pv.reachable(from: node)
            }) {
                let name = volume.metadata.name ?? ""
                chosen.insert(name)
                plan.staticBindings.append((delayed.key, name))
                continue
            }
            if delayed.provisions, NodeSelectorMatch.matches(delayed.allowedTopologies, node) {
                plan.provisions.append(delayed.key)
                continue
            }
            bindConflict = true
        }
        if bindConflict { reasons.append(Reason.volumeBindConflict) }
        return (reasons, plan)
    }

    // MARK: NodeVolumeLimits

    /// The unique volumes (driver → handles) of `keys`' claims.
    static func csiVolumes(_ keys: [String], _ state: ClusterState, into result: inout [String: Set<String>]) {
        for key in keys {
            guard let claim = state.claims[key] else { continue }
            if let name = claim.spec.volumeName, !name.isEmpty, let csi = state.volumes[name]?.csiHandle {
                result[csi.driver, default: []].insert(csi.handle)
            } else if let reservation = state.reservations[key], let volume = reservation.volume,
                      let csi = state.volumes[volume]?.csiHandle {
                result[csi.driver, default: []].insert(csi.handle)
            } else if let provisioner = state.classes[claim.className]?.provisioner, !provisioner.isEmpty {
                result[provisioner, default: []].insert("pvc:" + key)
            }
        }
    }

    static func volumeLimits(_ pod: PendingPod, _ info: NodeInfo, _ state: ClusterState) -> [String] {
        // Every claim adds at most one handle: a node whose pods mount fewer claims than the
        // smallest limit, with this pod's, cannot exceed it (most nodes; counting handles means
        // looking up every claim and volume of every pod on the node). The smallest of all
        // nodes is checked first: it spares most nodes the lookup of their own limits.
        guard !pod.info.claims.isEmpty, let anySmallest = state.smallestVolumeLimit,
              info.claimCount + pod.info.claims.count > anySmallest else { return [] }
        guard let nodeLimits = state.volumeLimits[info.name], let smallest = nodeLimits.smallest else { return [] }
        let limits = nodeLimits.byDriver
        if info.claimCount + pod.info.claims.count <= smallest { return [] }
        var wanted: [String: Set<String>] = [:]
        csiVolumes(pod.info.claimKeys, state, into: &wanted)
        guard wanted.keys.contains(where: { limits[$0] != nil }) else { return [] }
        var inUse: [String: Set<String>] = [:]
        for other in info.pods.values where other.key != pod.info.key { csiVolumes(other.claimKeys, state, into: &inUse) }
        for (driver, handles) in wanted {
            guard let limit = limits[driver] else { continue }
            let used = inUse[driver] ?? []
            if used.count + handles.subtracting(used).count > limit { return [Reason.maxVolumeCount] }
        }
        return []
    }
}

enum LabelMatch {
    /// A `LabelSelectorSpec` (matchLabels and matchExpressions) against labels.
    static func matches(_ selector: LabelSelectorSpec, _ labels: [String: String]) -> Bool {
        for (key, value) in selector.matchLabels ?? [:] where labels[key] != value { return false }
        for requirement in selector.matchExpressions ?? [] {
            let value = labels[requirement.key]
            let values = requirement.values ?? []
            switch requirement.`operator`.rawValue {
            case "In": if !(value.map(values.contains) ?? false) { return false }
            case "NotIn": if let value, values.contains(value) { return false }
            case "Exists": if value == nil { return false }
            case "DoesNotExist": if value != nil { return false }
            default: return false
            }
        }
        return true
    }
}
