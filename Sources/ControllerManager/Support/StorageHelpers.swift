// Small facts about claims, volumes and classes, as Kubernetes' storage helpers
// (component-helpers/storage/volume) compute them.
import ClusterAPI

extension PersistentVolumeClaim {
    /// "namespace/name", the key Kubernetes logs and events use for a claim.
    var key: String { "\(metadata.namespace ?? "")/\(metadata.name ?? "")" }

    /// The claim's class: `spec.storageClassName`, else the beta annotation, else "".
    var className: String {
        if let name = spec.storageClassName { return name }
        return metadata.annotations?[Annotation.betaStorageClass] ?? ""
    }

    /// `spec.resources.requests.storage`.
    var requestedStorage: Quantity? { spec.resources?.requests?["storage"] }

    var volumeMode: String { spec.volumeMode ?? "Filesystem" }

    func hasAnnotation(_ name: String) -> Bool { metadata.annotations?[name] != nil }

    /// The provisioner the binder asked for (`volume.kubernetes.io/storage-provisioner`, or the beta name).
    var requestedProvisioner: String? {
        metadata.annotations?[Annotation.storageProvisioner] ?? metadata.annotations?[Annotation.betaStorageProvisioner]
    }

    var isBeingDeleted: Bool { metadata.deletionTimestamp != nil }
}

extension PersistentVolume {
    var className: String {
        if let name = spec.storageClassName { return name }
        return metadata.annotations?[Annotation.betaStorageClass] ?? ""
    }

    var capacity: Quantity? { spec.capacity?["storage"] }

    var volumeMode: String { spec.volumeMode ?? "Filesystem" }

    var phase: String { status.phase ?? "" }

    func hasAnnotation(_ name: String) -> Bool { metadata.annotations?[name] != nil }

    /// Whether `claimRef` names `claim` (by namespace and name, and by uid when it has one).
    func isBound(to claim: PersistentVolumeClaim) -> Bool {
        guard let ref = spec.claimRef else { return false }
        if ref.name != claim.metadata.name || ref.namespace != claim.metadata.namespace { return false }
        if let uid = ref.uid, !uid.isEmpty, uid != claim.metadata.uid { return false }
        return true
    }

    /// "namespace/name" of the claim `claimRef` names.
    var claimKey: String? {
        guard let ref = spec.claimRef else { return nil }
        return "\(ref.namespace ?? "")/\(ref.name ?? "")"
    }

    /// `kubernetes.io/csi/<driver>^<handle>`, the name a node lists an attached CSI volume under.
    var uniqueVolumeName: String? {
        guard let csi = spec.csi else { return nil }
        return "kubernetes.io/csi/\(csi.driver)^\(csi.volumeHandle)"
    }
}

public enum AccessModes {
    /// Whether `volume` offers every mode `claim` asks for.
    public static func satisfied(claim: [String], volume: [String]) -> Bool {
        Set(claim).isSubset(of: Set(volume))
    }

    /// Whether a volume with these modes may be attached to several nodes at once: Kubernetes'
    /// `IsMultiAttachAllowed` (pkg/volume/util, used by the attach/detach reconciler) — allowed
    /// as soon as the PV lists ReadWriteMany or ReadOnlyMany, *even beside* ReadWriteOnce, since
    /// a PV's access modes say every way it can be used, not how one claim uses it (a change to
    /// refuse when ReadWriteOnce is listed, kubernetes/kubernetes#85166, was rejected for that
    /// reason). One difference: a PV with no access modes is refused here, where upstream lets
    /// the attacher decide — upstream's validation never lets such a PV exist, this API server's
    /// does, and the safe answer for a disk is one node.
    public static func allowsMultiAttach(_ modes: [String]) -> Bool {
        modes.contains("ReadWriteMany") || modes.contains("ReadOnlyMany")
    }
}

extension StorageClass {
    var isWaitForFirstConsumer: Bool { volumeBindingMode == "WaitForFirstConsumer" }
}

extension Pod {
    /// Kubernetes' `IsPodTerminated`: Succeeded or Failed, or being deleted with no container running.
    var isTerminated: Bool {
        if status.phase == "Succeeded" || status.phase == "Failed" { return true }
        guard metadata.deletionTimestamp != nil else { return false }
        return (status.containerStatuses ?? []).allSatisfy { $0["state"]?["running"] == nil }
    }

    /// pvc-protection's `podIsShutDown`: deleted with no grace left (processed by the kubelet or forced).
    var isShutDown: Bool { metadata.deletionTimestamp != nil && metadata.deletionGracePeriodSeconds == 0 }

    /// Names of the claims its volumes use.
    var claimNames: [String] { (spec.volumes ?? []).compactMap { $0.persistentVolumeClaim?.claimName } }

    var key: String { "\(metadata.namespace ?? "")/\(metadata.name ?? "")" }
}

extension Node {
    /// The Ready condition's status ("True", "False", "Unknown"), nil when it has none.
    var readyStatus: String? { status.conditions?.first { $0.type == "Ready" }?.status }

    func hasTaint(_ key: String) -> Bool { (spec.taints ?? []).contains { $0.key == key } }
}
