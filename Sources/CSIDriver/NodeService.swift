// The CSI node service: stages a published loop device (formatting it only when a cache-free
// probe finds no signature at all, then mounting it at the staging path), publishes it with bind
// mounts, reports usage, and grows file systems. It checks that a device is the volume it
// expects before touching it, and that a mount shows the volume before unmounting it; it keeps
// what it did in `NodeState`, and only touches paths that resolve under the kubelet root
// (`NodeService+Checks.swift`). The kernel is reached through a `Mounter`: `SystemMounter` in
// the plugin, `RecordingMounter` in the logic tests.
import CloudProvider
import Foundation
import GRPCCore
import HostSystem
import Logging

struct NodeService: Csi_V1_Node.SimpleServiceProtocol {
    let configuration: DriverConfiguration
    let node: NodeIdentity
    let state: NodeState
    let mounter: any Mounter
    let logger: Logger
    let inFlight = InFlight()

    func nodeStageVolume(request: Csi_V1_NodeStageVolumeRequest, context: ServerContext) async throws -> Csi_V1_NodeStageVolumeResponse {
        try await edge {
            guard !request.volumeID.isEmpty else { throw CSIError.required("volume_id") }
            guard !request.stagingTargetPath.isEmpty else { throw CSIError.required("staging_target_path") }
            guard request.hasVolumeCapability else { throw CSIError.required("volume_capability") }
            let capability = try Capability(request.volumeCapability, field: "volume_capability")
            let staging = try confine(request.stagingTargetPath, field: "staging_target_path")
            guard VolumeID.isValid(request.volumeID) else { throw CSIError(.notFound, "volume \(request.volumeID) does not exist") }
            guard let device = request.publishContext[PublishContext.devicePath], !device.isEmpty else {
                throw CSIError.required("publish_context.\(PublishContext.devicePath) (ControllerPublishVolume provides it)")
            }
            return try await inFlight.run(request.volumeID) {
                let found = try verify(device: device, isVolume: request.volumeID, serial: request.publishContext[PublishContext.serial])
                try await node.checkAttached(request.volumeID)
                if let existing = state[request.volumeID], let stagedAt = existing.stagingPath {
                    guard stagedAt == staging else {
                        throw CSIError(.failedPrecondition, "volume \(request.volumeID) is already staged at \(stagedAt); unstage it there first")
                    }
                    guard existing.block == capability.isBlock, existing.devicePath == device,
                          capability.isBlock || existing.fsType == capability.fsType else {
                        throw CSIError(.alreadyExists, "volume \(request.volumeID) is staged at \(staging) with another capability")
                    }
                    if capability.isBlock || mounter.mount(at: staging).map({ mounter.mount($0, shows: device) }) == true {
                        return Csi_V1_NodeStageVolumeResponse()
                    }
                }
                if case .mount(let fsType, let flags) = capability.access {
                    try await stageMount(volumeID: request.volumeID, device: found, staging: staging, fsType: fsType,
                                         flags: flags, readOnlyMode: capability.isReadOnlyMode)
                }
                try state.update(request.volumeID) { record in
                    record = NodeVolume(devicePath: device, block: capability.isBlock, fsType: capability.fsType,
                                        mountFlags: capability.mountFlags, mode: capability.mode.rawValue, stagingPath: staging,
                                        targets: record?.targets ?? [:])
                }
                logger.info("staged volume", metadata: ["volume": "\(request.volumeID)", "device": "\(device)", "path": "\(staging)"])
                return Csi_V1_NodeStageVolumeResponse()
            }
        }
    }

    private func stageMount(volumeID: String, device found: BlockDevice, staging: String, fsType: String, flags: [String],
                            readOnlyMode: Bool) async throws {
        let device = found.path
        if let mounted = mounter.mount(at: staging) {
            guard mounter.mount(mounted, shows: device) else {
                throw CSIError(.alreadyExists, "staging path \(staging) already holds another file system (\(mounted.source)); unstage it first")
            }
            return
        }
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
        let readOnly = readOnlyMode || found.readOnly
        // Every signature counts — a partition table, a RAID or LVM member, another file system:
        // only a device on which the probe finds nothing at all is ever formatted.
        let signature = try await mounter.probe(device)
        let formatted = signature.isBlank
        if formatted {
            guard !readOnly else {
                throw CSIError(.failedPrecondition, "volume \(volumeID) has no file system and is staged read-only; it cannot be formatted — stage it writable once first")
            }
            logger.info("formatting volume", metadata: ["volume": "\(volumeID)", "device": "\(device)", "fsType": "\(fsType)"])
            try await mounter.format(device, fsType: fsType)
        } else if signature.type != fsType || signature.partitionTable != nil || signature.ambivalent {
            let hint = signature.partitionTable == nil && !signature.ambivalent
                && signature.type.map(Capability.supportedFileSystems.contains) == true
                ? "ask for fsType \(signature.type!)"
                : "use it as a block volume, or wipe it yourself if its data is not needed"
            throw CSIError(.failedPrecondition, "volume \(volumeID) holds \(signature.summary), not a \(fsType) file system, and was not formatted: \(hint)")
        }
        // A file system made just now fills its device: only an older one may need growing.
        if !readOnly && !formatted { try await mounter.growUnmountedFileSystem(device: device, fsType: fsType) }
        var options = flags
        if readOnly { options += fsType == "ext4" ? ["ro", "noload"] : ["ro", "norecovery"] }
        if fsType == "xfs" { options.append("nouuid") }
        try await mounter.mount(device: device, at: staging, fsType: fsType, options: options)
        if !readOnly, fsType == "xfs" {
            do {
                try await growFileSystem(device: device, mountPath: staging, fsType: fsType)
            } catch {
                try? await mounter.unmountAll(staging)
                throw error
            }
        }
    }

    func nodeUnstageVolume(request: Csi_V1_NodeUnstageVolumeRequest, context: ServerContext) async throws -> Csi_V1_NodeUnstageVolumeResponse {
        try await edge {
            guard !request.volumeID.isEmpty else { throw CSIError.required("volume_id") }
            guard !request.stagingTargetPath.isEmpty else { throw CSIError.required("staging_target_path") }
            let staging = try confine(request.stagingTargetPath, field: "staging_target_path")
            return try await inFlight.run(request.volumeID) {
                let record = state[request.volumeID]
                if let record, !record.targets.isEmpty {
                    throw CSIError(.failedPrecondition, "volume \(request.volumeID) is still published at \(record.targets.keys.sorted().joined(separator: ", ")); unpublish it first")
                }
                try await unmountVolume(request.volumeID, at: staging, field: "staging_target_path")
                if record?.stagingPath == staging {
                    try state.update(request.volumeID) { $0 = nil }
                }
                logger.info("unstaged volume", metadata: ["volume": "\(request.volumeID)", "path": "\(staging)"])
                return Csi_V1_NodeUnstageVolumeResponse()
            }
        }
    }

    func nodePublishVolume(request: Csi_V1_NodePublishVolumeRequest, context: ServerContext) async throws -> Csi_V1_NodePublishVolumeResponse {
        try await edge {
            guard !request.volumeID.isEmpty else { throw CSIError.required("volume_id") }
            guard !request.targetPath.isEmpty else { throw CSIError.required("target_path") }
            guard request.hasVolumeCapability else { throw CSIError.required("volume_capability") }
            let capability = try Capability(request.volumeCapability, field: "volume_capability")
            guard !request.stagingTargetPath.isEmpty else {
                throw CSIError(.failedPrecondition, "staging_target_path is required: this driver stages volumes (STAGE_UNSTAGE_VOLUME)")
            }
            let target = try confine(request.targetPath, field: "target_path")
            let staging = try confine(request.stagingTargetPath, field: "staging_target_path")
            guard VolumeID.isValid(request.volumeID) else { throw CSIError(.notFound, "volume \(request.volumeID) does not exist") }
            return try await inFlight.run(request.volumeID) {
                guard let record = state[request.volumeID], record.stagingPath == staging else {
                    throw CSIError(.failedPrecondition, "volume \(request.volumeID) is not staged at \(staging); call NodeStageVolume first")
                }
                guard record.block == capability.isBlock else {
                    throw CSIError(.alreadyExists, "volume \(request.volumeID) was staged as \(record.block ? "block" : "mount"), not \(capability.isBlock ? "block" : "mount")")
                }
                let readOnly = request.readonly || capability.isReadOnlyMode
                if let recorded = record.targets[target] {
                    guard recorded == readOnly, record.mode == capability.mode.rawValue else {
                        throw CSIError(.alreadyExists, "volume \(request.volumeID) is already published at \(target) with readonly=\(recorded)")
                    }
                    if mounter.mount(at: target).map({ mounter.mount($0, shows: record.devicePath) }) == true {
                        return Csi_V1_NodePublishVolumeResponse()
                    }
                }
                if !capability.allowsSeveralTargets, let other = record.targets.keys.first(where: { $0 != target }) {
                    throw CSIError(.failedPrecondition, "volume \(request.volumeID) is SINGLE_NODE_SINGLE_WRITER and already published at \(other)")
                }
                if let mounted = mounter.mount(at: target) {
                    // Published before, and the answer (or the record) was lost: the same
                    // volume the same way is done; anything else is not this call's to touch.
                    guard mounter.mount(mounted, shows: record.devicePath), mounted.isReadOnly == readOnly else {
                        throw CSIError(.alreadyExists, "target_path \(target) already holds another mount (\(mounted.source), \(mounted.options)); unpublish it first")
                    }
                    try state.update(request.volumeID) { $0?.targets[target] = readOnly }
                    return Csi_V1_NodePublishVolumeResponse()
                }
                if capability.isBlock {
                    try FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                    if !FileManager.default.fileExists(atPath: target) {
                        guard FileManager.default.createFile(atPath: target, contents: nil, attributes: [.posixPermissions: 0o600]) else {
                            throw CSIError(.internalError, "cannot create the file \(target) for the block device")
                        }
                    }
                    try await bindOrRemove(record.devicePath, to: target, readOnly: readOnly)
                } else {
                    try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
                    try await bindOrRemove(staging, to: target, readOnly: readOnly)
                }
                try state.update(request.volumeID) { $0?.targets[target] = readOnly }
                logger.info("published volume", metadata: ["volume": "\(request.volumeID)", "path": "\(target)", "readOnly": "\(readOnly)"])
                return Csi_V1_NodePublishVolumeResponse()
            }
        }
    }

    /// Bind-mounts, and removes the target it made when the mount fails.
    private func bindOrRemove(_ source: String, to target: String, readOnly: Bool) async throws {
        do {
            try await mounter.bind(source, to: target, readOnly: readOnly)
        } catch {
            try? FileManager.default.removeItem(atPath: target)
            throw error
        }
    }

    func nodeUnpublishVolume(request: Csi_V1_NodeUnpublishVolumeRequest, context: ServerContext) async throws -> Csi_V1_NodeUnpublishVolumeResponse {
        try await edge {
            guard !request.volumeID.isEmpty else { throw CSIError.required("volume_id") }
            guard !request.targetPath.isEmpty else { throw CSIError.required("target_path") }
            let target = try confine(request.targetPath, field: "target_path")
            return try await inFlight.run(request.volumeID) {
                try await unmountVolume(request.volumeID, at: target, field: "target_path")
                var isDirectory: ObjCBool = false
                if FileManager.default.fileExists(atPath: target, isDirectory: &isDirectory) {
                    // Only what this driver made: an empty directory or an empty file.
                    let empty = isDirectory.boolValue ? (try? FileManager.default.contentsOfDirectory(atPath: target))?.isEmpty == true
                        : (try? FileManager.default.attributesOfItem(atPath: target)[.size] as? Int) == 0
                    guard empty else {
                        throw CSIError(.failedPrecondition, "\(target) is not empty after unmounting; it was not made by this driver, remove it by hand")
                    }
                    try FileManager.default.removeItem(atPath: target)
                }
                if state[request.volumeID]?.targets[target] != nil {
                    try state.update(request.volumeID) { $0?.targets[target] = nil }
                }
                logger.info("unpublished volume", metadata: ["volume": "\(request.volumeID)", "path": "\(target)"])
                return Csi_V1_NodeUnpublishVolumeResponse()
            }
        }
    }

    func nodeGetVolumeStats(request: Csi_V1_NodeGetVolumeStatsRequest, context: ServerContext) async throws -> Csi_V1_NodeGetVolumeStatsResponse {
        try await edge {
            guard !request.volumeID.isEmpty else { throw CSIError.required("volume_id") }
            guard !request.volumePath.isEmpty else { throw CSIError.required("volume_path") }
            guard VolumeID.isValid(request.volumeID), let record = state[request.volumeID] else {
                throw CSIError(.notFound, "volume \(request.volumeID) is not staged on this node")
            }
            let path = try confine(request.volumePath, field: "volume_path")
            guard FileManager.default.fileExists(atPath: path) else {
                throw CSIError(.notFound, "volume \(request.volumeID) is not at \(request.volumePath)")
            }
            guard let mounted = mounter.mount(at: path), mounter.mount(mounted, shows: record.devicePath) else {
                return .with {
                    $0.volumeCondition = .with {
                        $0.abnormal = true
                        $0.message = "\(path) is not mounted from \(record.devicePath) any more; unpublish and publish the volume again"
                    }
                }
            }
            let device = mounter.blockDevice(record.devicePath)
            let healthy = device.flatMap(volumeID(of:)) == request.volumeID
            let condition = Csi_V1_VolumeCondition.with {
                $0.abnormal = !healthy
                $0.message = healthy ? "volume is healthy" : "device \(record.devicePath) no longer backs volume \(request.volumeID)"
            }
            if record.block {
                let size = device?.sizeBytes ?? 0
                return .with {
                    $0.usage = [.with { $0.unit = .bytes; $0.total = size }]
                    $0.volumeCondition = condition
                }
            }
            let usage = try mounter.usage(of: path)
            return .with {
                $0.usage = [
                    .with { $0.unit = .bytes; $0.total = usage.totalBytes; $0.available = usage.availableBytes; $0.used = usage.usedBytes },
                    .with { $0.unit = .inodes; $0.total = usage.totalInodes; $0.available = usage.freeInodes; $0.used = usage.usedInodes },
                ]
                $0.volumeCondition = condition
            }
        }
    }

    func nodeExpandVolume(request: Csi_V1_NodeExpandVolumeRequest, context: ServerContext) async throws -> Csi_V1_NodeExpandVolumeResponse {
        try await edge {
            guard !request.volumeID.isEmpty else { throw CSIError.required("volume_id") }
            guard !request.volumePath.isEmpty else { throw CSIError.required("volume_path") }
            guard VolumeID.isValid(request.volumeID), let record = state[request.volumeID] else {
                throw CSIError(.notFound, "volume \(request.volumeID) is not staged on this node")
            }
            let path = try confine(request.volumePath, field: "volume_path")
            guard FileManager.default.fileExists(atPath: path) else {
                throw CSIError(.notFound, "volume \(request.volumeID) is not at \(request.volumePath)")
            }
            return try await inFlight.run(request.volumeID) {
                _ = try verify(device: record.devicePath, isVolume: request.volumeID, serial: nil)
                try await mounter.refreshCapacity(record.devicePath)
                if !record.block, let fsType = record.fsType {
                    let mountPath = record.stagingPath ?? path
                    try await growFileSystem(device: record.devicePath, mountPath: mountPath, fsType: fsType)
                }
                let size = mounter.blockDevice(record.devicePath)?.sizeBytes ?? 0
                if request.hasCapacityRange, request.capacityRange.requiredBytes > size {
                    throw CSIError(.outOfRange, "the device holds \(size) bytes, less than the \(request.capacityRange.requiredBytes) asked; expand the volume with ControllerExpandVolume first")
                }
                logger.info("expanded volume on the node", metadata: ["volume": "\(request.volumeID)", "bytes": "\(size)"])
                return .with { $0.capacityBytes = size }
            }
        }
    }

    func nodeGetCapabilities(request: Csi_V1_NodeGetCapabilitiesRequest, context: ServerContext) async throws -> Csi_V1_NodeGetCapabilitiesResponse {
        let types: [Csi_V1_NodeServiceCapability.RPC.TypeEnum] = [.stageUnstageVolume, .getVolumeStats, .expandVolume, .volumeCondition, .singleNodeMultiWriter]
        return .with { $0.capabilities = types.map { type in .with { $0.rpc = .with { $0.type = type } } } }
    }

    func nodeGetInfo(request: Csi_V1_NodeGetInfoRequest, context: ServerContext) async throws -> Csi_V1_NodeGetInfoResponse {
        try await edge {
            let instance = try await node.instance()
            return .with {
                $0.nodeID = instance.id
                $0.maxVolumesPerNode = Int64(max(1, instance.attachLimit))
                $0.accessibleTopology = .with { $0.segments = [Topology.zoneKey: instance.zone] }
            }
        }
    }
}

extension Capability {
    var fsType: String? { if case .mount(let fsType, _) = access { fsType } else { nil } }
    var mountFlags: [String] { if case .mount(_, let flags) = access { flags } else { [] } }
}
