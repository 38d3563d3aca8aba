// Where volumes live under the kubelet's root, as Kubernetes lays them out (pkg/volume/csi
// csi_attacher.go, csi_mounter.go, csi_block.go; pkg/kubelet/kubelet_getters.go):
//
//   pods/<uid>/volumes/kubernetes.io~csi/<pv>/mount              NodePublish target (file system)
//   pods/<uid>/volumes/kubernetes.io~csi/<pv>/vol_data.json      what the publish was
//   pods/<uid>/volumes/kubernetes.io~empty-dir/<volume>/
//   pods/<uid>/volumes/kubernetes.io~configmap/<volume>/
//   pods/<uid>/volumes/kubernetes.io~secret/<volume>/            tmpfs
//   plugins/kubernetes.io/csi/<driver>/<sha256(volumeHandle)>/globalmount     NodeStage target
//   plugins/kubernetes.io/csi/<driver>/<sha256(volumeHandle)>/vol_data.json
//   plugins/kubernetes.io/csi/volumeDevices/staging/<pv>                      block NodeStage target
//   plugins/kubernetes.io/csi/volumeDevices/publish/<pv>/<uid>                block NodePublish target (a file)
//   plugins/kubernetes.io/csi/volumeDevices/<pv>/data/vol_data.json
import Crypto
import Foundation

public struct VolumePaths: Sendable {
    public let root: String

    public init(root: String) { self.root = root }

    public func podDirectory(_ uid: String) -> String { root + "/pods/" + uid }
    public func podVolumes(_ uid: String, plugin: String) -> String { podDirectory(uid) + "/volumes/" + plugin }

    /// NodePublish target of a file-system CSI volume.
    public func csiPublish(pod uid: String, pv: String) -> String { podVolumes(uid, plugin: "kubernetes.io~csi") + "/" + pv + "/mount" }
    public func csiPublishData(pod uid: String, pv: String) -> String { podVolumes(uid, plugin: "kubernetes.io~csi") + "/" + pv + "/vol_data.json" }

    /// NodeStage target of a file-system CSI volume.
    public func csiStaging(driver: String, handle: String) -> String { csiDeviceDirectory(driver: driver, handle: handle) + "/globalmount" }
    public func csiDeviceDirectory(driver: String, handle: String) -> String {
        root + "/plugins/kubernetes.io/csi/" + driver + "/" + Self.sha256(handle)
    }

    public var blockDirectory: String { root + "/plugins/kubernetes.io/csi/volumeDevices" }
    public func blockStaging(pv: String) -> String { blockDirectory + "/staging/" + pv }
    public func blockPublish(pv: String, pod uid: String) -> String { blockDirectory + "/publish/" + pv + "/" + uid }
    public func blockData(pv: String) -> String { blockDirectory + "/" + pv + "/data/vol_data.json" }

    public func emptyDir(pod uid: String, volume: String) -> String { podVolumes(uid, plugin: "kubernetes.io~empty-dir") + "/" + volume }

    static func sha256(_ text: String) -> String {
        SHA256.hash(data: Data(text.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// The unique name of a CSI volume (`volumesInUse`, `volumesAttached`).
    public static func uniqueName(driver: String, handle: String) -> String { "kubernetes.io/csi/\(driver)^\(handle)" }

    /// The VolumeAttachment of a CSI volume on a node (csi_attacher.go `getAttachmentName`).
    public static func attachmentName(handle: String, driver: String, node: String) -> String {
        "csi-" + sha256(handle + driver + node)
    }
}

/// `vol_data.json`: what the kubelet needs to undo a stage or publish after a restart.
public struct VolumeData: Codable, Sendable, Equatable {
    public var driverName: String
    public var volumeHandle: String
    public var specVolID: String?
    public var nodeName: String?
    public var attachmentID: String?
    public var volumeLifecycleMode: String?
    /// Ballast's addition: the pod's volume name, and "block" for raw block volumes.
    public var podVolume: String?
    public var mode: String?

    public init(driverName: String, volumeHandle: String, specVolID: String? = nil, nodeName: String? = nil, attachmentID: String? = nil,
                volumeLifecycleMode: String? = nil, podVolume: String? = nil, mode: String? = nil) {
        self.driverName = driverName
        self.volumeHandle = volumeHandle
        self.specVolID = specVolID
        self.nodeName = nodeName
        self.attachmentID = attachmentID
        self.volumeLifecycleMode = volumeLifecycleMode
        self.podVolume = podVolume
        self.mode = mode
    }

    var uniqueName: String { VolumePaths.uniqueName(driver: driverName, handle: volumeHandle) }
}
