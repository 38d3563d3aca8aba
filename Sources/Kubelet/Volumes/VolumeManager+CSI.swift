// CSI volumes of a pod (PersistentVolumeClaims bound to CSI PersistentVolumes): claim → volume
// → wait for the VolumeAttachment → NodeStage at the device's global mount → NodePublish at the
// pod's target → vol_data.json; and back: NodeUnpublish, then NodeUnstage once no pod publishes
// the volume. NodeExpandVolume when the claim waits for the node to grow its file system.
import APIClient
import ClusterAPI
import CSIProto
import Foundation
import GRPCCore
import HostSystem

extension VolumeManager {
    enum ClaimState {
        case ready(PodVolume)
        case waiting(String, attach: Bool)
    }

    /// What a pod's claim resolves to.
    struct CSIVolume {
        var pvName: String
        var driver: String
        var handle: String
        var block: Bool
        var readOnly: Bool
        var capability: Csi_V1_VolumeCapability
        var attributes: [String: String]
        var claim: PersistentVolumeClaim
        var volume: PersistentVolume
        var unique: String { VolumePaths.uniqueName(driver: driver, handle: handle) }
    }

    /// What a pod's claim resolves to: its CSI volume, or why it cannot be mounted yet.
    enum Resolved {
        case volume(CSIVolume, CSINodeClient)
        case waiting(String)
    }

    /// The claim (read unless given), its PersistentVolume and the CSI driver that mounts it.
    func resolve(pod: Pod, claim source: PersistentVolumeClaimVolumeSource, read: PersistentVolumeClaim? = nil) async throws -> Resolved {
        let namespace = pod.metadata.namespace ?? "default"
        let claim: PersistentVolumeClaim
        do {
            if let read { claim = read } else { claim = try await client.get(PersistentVolumeClaim.self, name: source.claimName, namespace: namespace) }
        } catch let error as APIError where error.isNotFound {
            return .waiting("persistentvolumeclaim \"\(source.claimName)\" not found")
        }
        guard claim.status.phase == "Bound", let pvName = claim.spec.volumeName, !pvName.isEmpty else {
            return .waiting("PVC \(namespace)/\(source.claimName) is not bound")
        }
        let pv = try await client.get(PersistentVolume.self, name: pvName)
        guard let csiSource = pv.spec.csi else {
            throw KubeletError(.volume, "volume \(pvName) of claim \(namespace)/\(source.claimName) is not a CSI volume; this kubelet mounts CSI volumes only")
        }
        guard let csi else {
            throw KubeletError(.volume, "volume \(pvName) needs the CSI driver \(csiSource.driver), and the kubelet has no --csi-endpoint")
        }
        let block = pv.spec.volumeMode == "Block"
        var capability = Csi_V1_VolumeCapability()
        if block {
            capability.block = Csi_V1_VolumeCapability.BlockVolume()
        } else {
            capability.mount = .with {
                $0.fsType = csiSource.fsType ?? ""
                $0.mountFlags = pv.spec.mountOptions ?? []
            }
        }
        capability.accessMode = .with { $0.mode = Self.accessMode(pv.spec.accessModes ?? []) }
        let target = CSIVolume(pvName: pvName, driver: csiSource.driver, handle: csiSource.volumeHandle, block: block,
                               readOnly: (source.readOnly ?? false) || (csiSource.readOnly ?? false), capability: capability,
                               attributes: csiSource.volumeAttributes ?? [:], claim: claim, volume: pv)
        return .volume(target, csi)
    }

    func setUpClaim(pod: Pod, volume name: String, claim source: PersistentVolumeClaimVolumeSource) async throws -> ClaimState {
        let (target, csi): (CSIVolume, CSINodeClient)
        // While the attachment is awaited (looked at every 25 ms), the claim and its volume are
        // read again only once a second.
        let waitKey = pod.uid + "/" + name
        if let waiting = awaitingAttachment[waitKey], ContinuousClock.now - waiting.resolvedAt < .seconds(1) {
            (target, csi) = (waiting.volume, waiting.csi)
        } else {
            awaitingAttachment[waitKey] = nil   // read again now: its time starts again
            switch try await resolve(pod: pod, claim: source) {
            case .waiting(let reason): return .waiting(reason, attach: false)
            case .volume(let volume, let client): (target, csi) = (volume, client)
            }
        }
        let pvName = target.pvName, block = target.block
        try await markInUse(target.unique, pod: pod.uid)
        return try await locks.with(target.unique) {
            var publishContext: [String: String] = [:]
            var attachmentID: String?
            if try await needsAttachment(target.driver) {
                let attachment = VolumePaths.attachmentName(handle: target.handle, driver: target.driver, node: nodeName)
                let va: VolumeAttachment
                do {
                    va = try await client.get(VolumeAttachment.self, name: attachment)
                } catch let error as APIError where error.isNotFound || error.code == 403 {
                    awaitAttachment(waitKey, target, csi)
                    return .waiting("volume \(pvName) is not attached to node \(nodeName) yet (no VolumeAttachment \(attachment))", attach: true)
                }
                guard va.status?.attached == true else {
                    awaitAttachment(waitKey, target, csi)
                    let detail = va.status?.attachError?.message.map { ": " + $0 } ?? ""
                    return .waiting("volume \(pvName) is not attached to node \(nodeName) yet (VolumeAttachment \(attachment))\(detail)", attach: true)
                }
                publishContext = va.status?.attachmentMetadata ?? [:]
                attachmentID = attachment
            }
            awaitingAttachment[waitKey] = nil
            let mounted = try await stageAndPublish(target, pod: pod.uid, podVolume: name, publishContext: publishContext,
                                                    attachmentID: attachmentID, csi: csi)
            if !block { try await expandIfPending(target, pod: pod.uid, csi: csi) }
            return .ready(mounted)
        }
    }

    /// Keeps what `key`'s claim resolved to while its attachment is awaited (the time it was
    /// resolved stays on later passes, so that it is read again after a second).
    private func awaitAttachment(_ key: String, _ volume: CSIVolume, _ csi: CSINodeClient) {
        let since = awaitingAttachment[key].map { $0.resolvedAt } ?? .now
        awaitingAttachment[key] = (volume, csi, since)
    }

    static func accessMode(_ modes: [String]) -> Csi_V1_VolumeCapability.AccessMode.Mode {
        if modes.contains("ReadWriteOncePod") { return .singleNodeSingleWriter }
        if modes.contains("ReadWriteMany") { return .multiNodeMultiWriter }
        if modes.contains("ReadOnlyMany") && !modes.contains("ReadWriteOnce") { return .multiNodeReaderOnly }
        return .singleNodeWriter
    }

    /// CSIDriver.spec.attachRequired (true when the object is missing, as Kubernetes assumes).
    func needsAttachment(_ driver: String) async throws -> Bool {
        if let known = attachRequired[driver] { return known }
        let required: Bool
        do {
            required = try await client.get(CSIDriver.self, name: driver).spec.attachRequired ?? true
        } catch let error as APIError where error.isNotFound {
            required = true
        }
        attachRequired[driver] = required
        return required
    }

    private func stageAndPublish(_ volume: CSIVolume, pod uid: String, podVolume: String, publishContext: [String: String],
                                 attachmentID: String?, csi: CSINodeClient) async throws -> PodVolume {
        if stageUnstage == nil {
            stageUnstage = (try? await csi.capabilities())?.contains(.stageUnstageVolume) ?? true
        }
        let fm = FileManager.default
        let staging = volume.block ? paths.blockStaging(pv: volume.pvName) : paths.csiStaging(driver: volume.driver, handle: volume.handle)
        let data = VolumeData(driverName: volume.driver, volumeHandle: volume.handle, specVolID: volume.pvName, nodeName: nodeName,
                              attachmentID: attachmentID, volumeLifecycleMode: "Persistent", podVolume: podVolume,
                              mode: volume.block ? "block" : nil)
        if stageUnstage == true {
            let dataPath = volume.block ? paths.blockData(pv: volume.pvName) : paths.csiDeviceDirectory(driver: volume.driver, handle: volume.handle) + "/vol_data.json"
            // Block stages are not mounts: NodeStage is asked again (idempotent in the plugin).
            let staged = volume.block ? false : mounter.isMountPoint(staging)
            if !staged {
                try fm.createDirectory(atPath: (dataPath as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try fm.createDirectory(atPath: staging, withIntermediateDirectories: true)
                try RecordFiles.write(data, to: dataPath)
                do {
                    _ = try await csi.node.nodeStageVolume(.with {
                        $0.volumeID = volume.handle
                        $0.publishContext = publishContext
                        $0.stagingTargetPath = staging
                        $0.volumeCapability = volume.capability
                        $0.volumeContext = volume.attributes
                    }, options: csi.operationOptions)
                } catch let error as RPCError {
                    throw KubeletError(.volume, "MountVolume.MountDevice failed for volume \"\(volume.pvName)\" : \(error.kubernetesDescription)")
                }
                logger.info("staged volume", metadata: ["volume": "\(volume.pvName)", "path": "\(staging)"])
            }
        }
        let target = volume.block ? paths.blockPublish(pv: volume.pvName, pod: uid) : paths.csiPublish(pod: uid, pv: volume.pvName)
        let publishData = volume.block ? nil : paths.csiPublishData(pod: uid, pv: volume.pvName)
        let published = volume.block ? mounter.isMountPoint(target) : mounter.isMountPoint(target)
        if !published {
            try fm.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            if let publishData { try RecordFiles.write(data, to: publishData) }
            do {
                _ = try await csi.node.nodePublishVolume(.with {
                    $0.volumeID = volume.handle
                    $0.publishContext = publishContext
                    if stageUnstage == true { $0.stagingTargetPath = staging }
                    $0.targetPath = target
                    $0.volumeCapability = volume.capability
                    $0.readonly = volume.readOnly
                    $0.volumeContext = volume.attributes
                }, options: csi.operationOptions)
            } catch let error as RPCError {
                throw KubeletError(.volume, "MountVolume.SetUp failed for volume \"\(volume.pvName)\" : \(error.kubernetesDescription)")
            }
            logger.info("published volume", metadata: ["volume": "\(volume.pvName)", "pod": "\(uid)", "path": "\(target)"])
        }
        return PodVolume(kind: volume.block ? .block(target) : .path(target), readOnly: volume.readOnly)
    }

    /// Online expansion: NodeExpandVolume for the pod's mounted file-system claims whose resize
    /// waits for the node. Returns the volumes grown, and the ones that failed with why.
    public func expandPending(_ pod: Pod) async -> (expanded: [String], failed: [String: String]) {
        var expanded: [String] = [], failed: [String: String] = [:]
        for volume in pod.spec.volumes ?? [] {
            guard let source = volume.persistentVolumeClaim else { continue }
            do {
                // One read of the claim per pass; its volume only when a resize waits for the node.
                let claim: PersistentVolumeClaim
                do {
                    claim = try await client.get(PersistentVolumeClaim.self, name: source.claimName, namespace: pod.metadata.namespace ?? "default")
                } catch let error as APIError where error.isNotFound {
                    continue
                }
                guard Self.resizePending(claim), case .volume(let target, let csi) = try await resolve(pod: pod, claim: source, read: claim),
                      !target.block else { continue }
                let grown = try await locks.with(target.unique) {
                    // Still published: the pod may have been torn down while this waited.
                    guard mounter.isMountPoint(paths.csiPublish(pod: pod.uid, pv: target.pvName)) else { return false }
                    try await expandIfPending(target, pod: pod.uid, csi: csi)
                    return true
                }
                if grown { expanded.append(target.pvName) }
            } catch let error as KubeletError {
                failed[volume.name] = error.message
            } catch {
                failed[volume.name] = "\(error)"
            }
        }
        return (expanded, failed)
    }

    /// Whether the claim's storage is `NodeResizePending` (or it has the FileSystemResizePending
    /// condition): the controller grew the disk, the node must grow the file system.
    static func resizePending(_ claim: PersistentVolumeClaim) -> Bool {
        claim.status.allocatedResourceStatuses?["storage"] == "NodeResizePending"
            || (claim.status.conditions ?? []).contains { $0.type == "FileSystemResizePending" && $0.status == "True" }
    }

    /// NodeExpandVolume when the claim's resize waits for the node, then the claim's new
    /// capacity in its status.
    private func expandIfPending(_ volume: CSIVolume, pod uid: String, csi: CSINodeClient) async throws {
        let claim = volume.claim
        guard Self.resizePending(claim) else { return }
        let wanted = volume.volume.spec.capacity?["storage"] ?? claim.spec.resources?.requests?["storage"]
        let bytes = wanted?.value ?? 0
        let staging = stageUnstage == true ? paths.csiStaging(driver: volume.driver, handle: volume.handle) : ""
        let response: Csi_V1_NodeExpandVolumeResponse
        do {
            response = try await csi.node.nodeExpandVolume(.with {
                $0.volumeID = volume.handle
                $0.volumePath = paths.csiPublish(pod: uid, pv: volume.pvName)
                $0.stagingTargetPath = staging
                $0.capacityRange = .with { $0.requiredBytes = bytes }
                $0.volumeCapability = volume.capability
            }, options: csi.operationOptions)
        } catch let error as RPCError {
            throw KubeletError(.volume, "MountVolume.NodeExpandVolume failed for volume \"\(volume.pvName)\" : \(error.kubernetesDescription)")
        }
        var status = claim.status
        status.capacity = (status.capacity ?? [:]).merging(["storage": wanted ?? Quantity(response.capacityBytes)]) { $1 }
        status.conditions = (status.conditions ?? []).filter { $0.type != "FileSystemResizePending" && $0.type != "Resizing" }
        let resizing = status.allocatedResourceStatuses?["storage"] != nil
        status.allocatedResourceStatuses?["storage"] = nil
        var patched = try JSONValue(encoding: status)
        // A merge patch keeps a key it does not name: the resize status is removed with null.
        if resizing {
            var statuses = patched["allocatedResourceStatuses"] ?? [:]
            statuses["storage"] = .null
            patched["allocatedResourceStatuses"] = statuses
        }
        let patch: JSONValue = ["status": patched]
        _ = try await client.mergePatch(PersistentVolumeClaim.self, name: claim.metadata.name ?? "", namespace: claim.metadata.namespace,
                                        patch: patch, subresource: "status")
        logger.info("expanded volume", metadata: ["volume": "\(volume.pvName)", "bytes": "\(response.capacityBytes)"])
    }

    // MARK: Teardown

    /// A publish found on disk.
    struct Published { var target: String; var record: String?; var data: VolumeData }
    /// A stage found on disk.
    struct Staged { var path: String; var directory: String; var data: VolumeData }

    /// Every publish on disk (file-system publishes in pod directories, block publishes).
    func publishedVolumes(pod uid: String? = nil) -> [Published] {
        let fm = FileManager.default
        var found: [Published] = []
        let pods = uid.map { [$0] } ?? podDirectories()
        for pod in pods {
            let directory = paths.podVolumes(pod, plugin: "kubernetes.io~csi")
            for pv in (try? fm.contentsOfDirectory(atPath: directory)) ?? [] {
                let record = paths.csiPublishData(pod: pod, pv: pv)
                if let data = RecordFiles.read(VolumeData.self, from: record) {
                    found.append(Published(target: paths.csiPublish(pod: pod, pv: pv), record: record, data: data))
                }
            }
        }
        for pv in (try? fm.contentsOfDirectory(atPath: paths.blockDirectory + "/publish")) ?? [] {
            guard let data = RecordFiles.read(VolumeData.self, from: paths.blockData(pv: pv)) else { continue }
            for pod in (try? fm.contentsOfDirectory(atPath: paths.blockDirectory + "/publish/" + pv)) ?? [] where uid == nil || uid == pod {
                found.append(Published(target: paths.blockPublish(pv: pv, pod: pod), record: nil, data: data))
            }
        }
        return found
    }

    /// Every stage on disk.
    func stagedVolumes() -> [Staged] {
        let fm = FileManager.default
        var found: [Staged] = []
        let base = paths.root + "/plugins/kubernetes.io/csi"
        for driver in (try? fm.contentsOfDirectory(atPath: base)) ?? [] where driver != "volumeDevices" {
            for hash in (try? fm.contentsOfDirectory(atPath: base + "/" + driver)) ?? [] {
                let directory = base + "/" + driver + "/" + hash
                if let data = RecordFiles.read(VolumeData.self, from: directory + "/vol_data.json") {
                    found.append(Staged(path: directory + "/globalmount", directory: directory, data: data))
                }
            }
        }
        for pv in (try? fm.contentsOfDirectory(atPath: paths.blockDirectory)) ?? [] where !["staging", "publish"].contains(pv) {
            if let data = RecordFiles.read(VolumeData.self, from: paths.blockData(pv: pv)) {
                found.append(Staged(path: paths.blockStaging(pv: pv), directory: paths.blockDirectory + "/" + pv, data: data))
            }
        }
        return found
    }

    func tearDownCSI(podUID uid: String) async throws {
        for published in publishedVolumes(pod: uid) {
            guard let csi else { throw KubeletError(.volume, "cannot unpublish \(published.target): the kubelet has no --csi-endpoint") }
            try await locks.with(published.data.uniqueName) {
                do {
                    _ = try await csi.node.nodeUnpublishVolume(.with {
                        $0.volumeID = published.data.volumeHandle
                        $0.targetPath = published.target
                    }, options: csi.operationOptions)
                } catch let error as RPCError {
                    throw KubeletError(.volume, "UnmountVolume.TearDown failed for volume \"\(published.data.specVolID ?? published.data.volumeHandle)\" (UniqueName: \"\(published.data.uniqueName)\") pod \"\(uid)\": \(error.kubernetesDescription)")
                }
                if let record = published.record {
                    removeUnmounted((record as NSString).deletingLastPathComponent)
                } else {
                    removeUnmounted(published.target)
                }
                logger.info("unpublished volume", metadata: ["volume": "\(published.data.specVolID ?? "")", "pod": "\(uid)"])
            }
        }
    }

    /// Removes `path` (recursively) once nothing is mounted at or under it. A plugin that
    /// answered NodeUnpublish or NodeUnstage but left its mount in place must not have the
    /// volume's files deleted through it: the directory stays, and the kubelet says so.
    private func removeUnmounted(_ path: String) {
        let mounted = mounter.mounts().map(\.mountPoint).filter { $0 == path || $0.hasPrefix(path + "/") }
        guard mounted.isEmpty else {
            logger.warning("not removing a volume directory with a mount in it", metadata: ["path": "\(path)", "mounts": "\(mounted)"])
            return
        }
        try? FileManager.default.removeItem(atPath: path)
    }

    /// NodeUnstage for every staged volume that no pod publishes or wants; then, when that
    /// changed what the node uses, volumesInUse written at once, so that the attach/detach
    /// controller can detach without waiting for the next status update.
    public func unstageUnused() async throws {
        let wanted = Set(desired.values.flatMap { $0 })
        for staged in stagedVolumes() where !wanted.contains(staged.data.uniqueName) {
            guard let csi else { continue }
            try await locks.with(staged.data.uniqueName) {
                let stillPublished = publishedVolumes().contains { $0.data.uniqueName == staged.data.uniqueName }
                let stillWanted = Set(desired.values.flatMap { $0 }).contains(staged.data.uniqueName)
                guard !stillPublished && !stillWanted else { return }
                do {
                    _ = try await csi.node.nodeUnstageVolume(.with {
                        $0.volumeID = staged.data.volumeHandle
                        $0.stagingTargetPath = staged.path
                    }, options: csi.operationOptions)
                } catch let error as RPCError {
                    throw KubeletError(.volume, "UnmountDevice failed for volume \"\(staged.data.specVolID ?? staged.data.volumeHandle)\" (UniqueName: \"\(staged.data.uniqueName)\"): \(error.kubernetesDescription)")
                }
                removeUnmounted(staged.directory)
                if staged.data.mode == "block" {
                    removeUnmounted(paths.blockStaging(pv: staged.data.specVolID ?? ""))
                    removeUnmounted(paths.blockDirectory + "/publish/" + (staged.data.specVolID ?? ""))
                }
                logger.info("unstaged volume", metadata: ["volume": "\(staged.data.specVolID ?? "")"])
            }
        }
        if Set(volumesInUse()) != reported { try await writeInUse() }
    }
}
