// The volume manager: makes a pod's volumes ready before its containers start, and undoes
// them after its containers are gone — Kubernetes' reconciler order, driven by the pod
// workers: a pod's volumes are unpublished (unmount pods' volumes) before a device is
// unstaged (unmount devices), and staged before it is published (attach/mount). Per volume,
// one operation at a time.
//
// A CSI volume is reported in `node.status.volumesInUse` before it is staged, and stays there
// while any pod wants it or any stage or publish of it exists on disk (the attach/detach
// controller never detaches it meanwhile). Everything done is recorded on disk (vol_data.json
// beside each target), so a restarted kubelet finds it again and neither remounts nor unmounts
// what pods use.
import APIClient
import ClusterAPI
import CSIProto
import Foundation
import HostSystem
import Logging

/// What a pod volume is in its containers.
public struct PodVolume: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// A directory (or file, for hostPath) to bind-mount at `mountPath`.
        case path(String)
        /// A block device file (published raw block volume) for `volumeDevices`.
        case block(String)
    }
    public var kind: Kind
    public var readOnly: Bool
}

/// The state of a pod's volumes after one pass.
public struct VolumeSetUp: Sendable {
    public var ready: [String: PodVolume] = [:]
    /// Volumes still waiting (attachment, claim binding), with why.
    public var waiting: [String: String] = [:]
    /// Volumes that failed, with the error (event FailedMount).
    public var failed: [String: String] = [:]
    /// Of the waiting ones, those waiting for their attachment.
    public var unattached: Set<String> = []

    public var isReady: Bool { waiting.isEmpty && failed.isEmpty }
}

public actor VolumeManager {
    let paths: VolumePaths
    let nodeName: String
    let client: KubeClient
    let csi: CSINodeClient?
    let mounter: any Mounter
    let logger: Logger
    /// Reports volumesInUse to the node status (returns once written).
    let reportInUse: @Sendable ([String]) async throws -> Void
    let locks = KeyedLock()
    /// Unique names each pod wants, by pod uid.
    var desired: [String: Set<String>] = [:]
    /// Unique names written to node.status.volumesInUse.
    var reported: Set<String> = []
    /// The plugin's node capabilities (nil until asked).
    var stageUnstage: Bool?
    /// Whether a CSI driver needs attachment (CSIDriver.spec.attachRequired), by name.
    var attachRequired: [String: Bool] = [:]
    /// Claims whose attachment is awaited, by "pod uid/volume name": what they resolved to, and when.
    var awaitingAttachment: [String: (volume: CSIVolume, csi: CSINodeClient, resolvedAt: ContinuousClock.Instant)] = [:]

    public init(root: String, nodeName: String, client: KubeClient, csi: CSINodeClient?, mounter: any Mounter, logger: Logger,
                reportInUse: @escaping @Sendable ([String]) async throws -> Void) {
        self.paths = VolumePaths(root: root)
        self.nodeName = nodeName
        self.client = client
        self.csi = csi
        self.mounter = mounter
        self.logger = logger
        self.reportInUse = reportInUse
    }

    // MARK: Pods

    /// One pass over `pod`'s volumes: what is ready, what waits, what failed. Idempotent.
    /// Volumes in `ready` (set up by an earlier pass of the same start) are kept as they are:
    /// a pod waiting for one attachment does not read its other volumes again on every pass.
    public func setUp(_ pod: Pod, ready: [String: PodVolume] = [:]) async -> VolumeSetUp {
        var result = VolumeSetUp()
        let uid = pod.uid
        for volume in pod.spec.volumes ?? [] {
            if let done = ready[volume.name] {
                result.ready[volume.name] = done
                continue
            }
            do {
                if let claim = volume.persistentVolumeClaim {
                    switch try await setUpClaim(pod: pod, volume: volume.name, claim: claim) {
                    case .ready(let mounted): result.ready[volume.name] = mounted
                    case .waiting(let reason, let attach):
                        result.waiting[volume.name] = reason
                        if attach { result.unattached.insert(volume.name) }
                    }
                } else if let emptyDir = volume.emptyDir {
                    result.ready[volume.name] = try await setUpEmptyDir(pod: uid, volume: volume.name, source: emptyDir)
                } else if let hostPath = volume.hostPath {
                    result.ready[volume.name] = try setUpHostPath(volume: volume.name, source: hostPath)
                } else if let source = volume.configMap {
                    result.ready[volume.name] = try await setUpKeyed(pod: pod, volume: volume.name, source: source, secret: false)
                } else if let source = volume.secret {
                    result.ready[volume.name] = try await setUpKeyed(pod: pod, volume: volume.name, source: source, secret: true)
                } else {
                    let kind = volume.unknownFields.keys.sorted().first ?? ["csi", "ephemeral", "projected", "downwardAPI"].first {
                        switch $0 {
                        case "csi": volume.csi != nil
                        case "ephemeral": volume.ephemeral != nil
                        case "projected": volume.projected != nil
                        default: volume.downwardAPI != nil
                        }
                    } ?? "unknown"
                    result.failed[volume.name] = "volume \"\(volume.name)\" has a source of type \(kind), which this kubelet does not support (supported: persistentVolumeClaim (CSI), emptyDir, hostPath, configMap, secret)"
                }
            } catch let error as KubeletError {
                result.failed[volume.name] = error.message
            } catch {
                result.failed[volume.name] = "\(error)"
            }
        }
        if desired[uid]?.isEmpty == true { desired[uid] = nil }
        for key in awaitingAttachment.keys where key.hasPrefix(uid + "/") && result.unattached.isEmpty { awaitingAttachment[key] = nil }
        return result
    }

    /// Undoes every volume of pod `uid` found on disk (the pod is gone or has ended, and its
    /// containers are stopped), then unstages the devices no pod uses any more.
    public func tearDown(podUID uid: String) async throws {
        desired[uid] = nil
        for key in awaitingAttachment.keys where key.hasPrefix(uid + "/") { awaitingAttachment[key] = nil }
        try await tearDownCSI(podUID: uid)
        try await tearDownLocal(podUID: uid)
        let podDirectory = paths.podDirectory(uid)
        let left = mounter.mounts().filter { $0.mountPoint.hasPrefix(podDirectory + "/") }
        guard left.isEmpty else {
            throw KubeletError(.volume, "pod \(uid): \(left.map(\.mountPoint)) still mounted; not removing \(podDirectory)")
        }
        try? FileManager.default.removeItem(atPath: podDirectory)
        try await unstageUnused()
    }

    /// The pods that have a directory on disk (alive or orphaned).
    public func podDirectories() -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: paths.root + "/pods")) ?? []
    }

    // MARK: In use

    /// `node.status.volumesInUse`: what pods want, and what is staged or published on disk.
    public func volumesInUse() -> [String] {
        var names = Set(desired.values.flatMap { $0 })
        for data in stagedVolumes().map(\.data) + publishedVolumes().map(\.data) { names.insert(data.uniqueName) }
        return names.sorted()
    }

    /// Marks `unique` wanted by `uid`, and makes sure the node status says so before returning.
    func markInUse(_ unique: String, pod uid: String) async throws {
        desired[uid, default: []].insert(unique)
        guard !reported.contains(unique) else { return }
        try await writeInUse()
    }

    /// Writes volumesInUse as it is now, one write at a time (a list computed before another
    /// write must not land after it).
    func writeInUse() async throws {
        try await locks.with(Self.inUseKey) {
            let names = volumesInUse()
            try await reportInUse(names)
            reported = Set(names)
        }
    }

    /// The lock key of volumesInUse writes (no volume's unique name starts with a NUL).
    static let inUseKey = "\u{0}volumesInUse"

    /// After the node status was written from elsewhere: what it said.
    public func noteReported(_ names: [String]) {
        reported = Set(names)
    }
}
