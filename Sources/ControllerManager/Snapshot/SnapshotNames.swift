// The names external-snapshotter gives its finalizers, annotations and event reasons
// (pkg/utils/util.go), verbatim: users, kubectl and other tools match on them.

/// Finalizers and annotations of VolumeSnapshots and VolumeSnapshotContents.
public enum SnapshotNames {
    /// VolumeSnapshot: kept while a claim that is being provisioned restores from it.
    public static let asSourceFinalizer = "snapshot.storage.kubernetes.io/volumesnapshot-as-source-protection"
    /// VolumeSnapshot: kept while it is bound to a content with deletionPolicy Delete, until that
    /// content (and the storage system's snapshot) is gone.
    public static let boundFinalizer = "snapshot.storage.kubernetes.io/volumesnapshot-bound-protection"
    /// VolumeSnapshotContent with deletionPolicy Delete: kept until the storage system's
    /// snapshot is deleted.
    public static let contentFinalizer = "snapshot.storage.kubernetes.io/volumesnapshotcontent-bound-protection"
    /// VolumeSnapshotContent: set by the controller before it deletes a content whose snapshot
    /// is being deleted, so that the storage system's snapshot is deleted with it.
    public static let beingDeleted = "snapshot.storage.kubernetes.io/volumesnapshot-being-deleted"
    /// VolumeSnapshotContent: set before CreateSnapshot is called and removed once its result is
    /// recorded; a content deleted while it is set has its snapshot looked up by name first.
    public static let beingCreated = "snapshot.storage.kubernetes.io/volumesnapshot-being-created"
    /// The API group of the snapshot resources.
    public static let group = "snapshot.storage.k8s.io"
    /// The event source of the controller.
    public static let component = "snapshot-controller"
    /// `snapshot-<VolumeSnapshot uid>`: the CSI name of a dynamic snapshot (external-snapshotter's
    /// default `--snapshot-name-prefix`).
    public static func csiName(snapshotUID: String) -> String { "snapshot-\(snapshotUID)" }
    /// `snapcontent-<VolumeSnapshot uid>`: the content made for a dynamic snapshot.
    public static func contentName(snapshotUID: String) -> String { "snapcontent-\(snapshotUID)" }
}
