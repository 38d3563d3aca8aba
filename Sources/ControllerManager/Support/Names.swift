// The names Kubernetes gives the annotations, finalizers, taints and event reasons these
// controllers read and write, verbatim: users and other components match on them.

/// Annotations on PVs, PVCs, nodes and VolumeAttachments.
public enum Annotation {
    /// PVC: the binding has been completed once (pv_controller.go `annBindCompleted`).
    public static let bindCompleted = "pv.kubernetes.io/bind-completed"
    /// PV and PVC: the binding was made by the controller, not pre-bound by the user.
    public static let boundByController = "pv.kubernetes.io/bound-by-controller"
    /// PV: the provisioner that made it.
    public static let provisionedBy = "pv.kubernetes.io/provisioned-by"
    /// PVC: the provisioner expected to make its volume.
    public static let storageProvisioner = "volume.kubernetes.io/storage-provisioner"
    /// PVC: the same, under its beta name, still read and written.
    public static let betaStorageProvisioner = "volume.beta.kubernetes.io/storage-provisioner"
    /// PVC: the node the scheduler chose for a WaitForFirstConsumer claim.
    public static let selectedNode = "volume.kubernetes.io/selected-node"
    /// PVC: the resizer expected to expand it.
    public static let storageResizer = "volume.kubernetes.io/storage-resizer"
    /// PVC: the class, under its beta annotation.
    public static let betaStorageClass = "volume.beta.kubernetes.io/storage-class"
    /// Node: its volumes are attached and detached by the attach/detach controller (set by the kubelet).
    public static let controllerManagedAttachDetach = "volumes.kubernetes.io/controller-managed-attach-detach"
    /// VolumeAttachment: the CSI node id the attacher used.
    public static let csiNodeID = "csi.alpha.kubernetes.io/node-id"
    /// StorageClass: the default class.
    public static let defaultStorageClass = "storageclass.kubernetes.io/is-default-class"
}

/// Finalizers, each removed only by its owner.
public enum Finalizer {
    public static let pvcProtection = "kubernetes.io/pvc-protection"
    public static let pvProtection = "kubernetes.io/pv-protection"
    /// On PVs with reclaim policy Delete that the provisioner made: the disk is deleted first.
    public static let provisioner = "external-provisioner.volume.kubernetes.io/finalizer"

    /// `external-attacher/<driver>`, the driver name with every character other than a letter,
    /// digit or `-` replaced by `-` (external-attacher's `GetFinalizerName`).
    public static func attacher(_ driver: String) -> String {
        "external-attacher/" + String(driver.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") ? $0 : "-" })
    }
}

/// Node taints.
public enum Taint {
    public static let unreachable = "node.kubernetes.io/unreachable"
    public static let notReady = "node.kubernetes.io/not-ready"
    public static let outOfService = "node.kubernetes.io/out-of-service"
}

/// The `source.component` of each controller's events, as Kubernetes names them.
public enum EventSourceName {
    public static let persistentVolumeController = "persistentvolume-controller"
    public static let attachDetachController = "attachdetach-controller"
    public static let nodeController = "node-controller"
    public static let expandController = "volume_expand"
    public static let taintManager = "taint-eviction-controller"
    /// The node IPAM range allocator's.
    public static let nodeIPAMController = "cidrAllocator"
}
