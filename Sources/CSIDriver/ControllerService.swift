// The CSI controller service: volumes are the cloud's disks, reached only through the
// `CloudProvider` protocol. Volume ids are disk ids, snapshot ids are snapshot ids, node ids are
// instance ids. Names are made idempotent the way the EBS driver does it: the CSI name is a tag
// on the disk, and the create carries a client token derived from the name, so a retry after a
// crash finds the disk instead of making a second one.
import CloudProvider
import Crypto
import Foundation
import GRPCCore
import HostSystem
import Logging
import SwiftProtobuf

struct ControllerService: Csi_V1_Controller.SimpleServiceProtocol {
    let cloud: any CloudProvider
    let configuration: DriverConfiguration
    let logger: Logger
    let inFlight = InFlight()

    /// Tag carrying the CSI volume or snapshot name.
    static let nameTag = "csi.ballast.dev/name"
    /// Tag naming the driver that made the disk; ListVolumes lists only these.
    static let driverTag = "csi.ballast.dev/driver"
    /// Tag naming the PV of the volume (ControllerModifyVolume's one mutable parameter).
    static let volumeTag = "csi.ballast.dev/pv"
    /// volume_context key of ListVolumes: when the disk was created (RFC 3339).
    static let createdAtContext = "csi.ballast.dev/created-at"

    // MARK: - Volumes

    func createVolume(request: Csi_V1_CreateVolumeRequest, context: ServerContext) async throws -> Csi_V1_CreateVolumeResponse {
        try await edge {
            guard !request.name.isEmpty else { throw CSIError.required("name") }
            let parameters = try VolumeParameters(request.parameters)
            let capabilities = try Capability.all(request.volumeCapabilities, field: "volume_capabilities",
                                                  defaultFileSystem: parameters.fsType)
            let size = try RequestedSize(request.hasCapacityRange ? request.capacityRange : nil, defaultBytes: configuration.defaultVolumeBytes,
                                         field: "capacity_range")
            let source = try contentSource(request)
            return try await inFlight.run("volume name \(request.name)") {
                let region = try await cloud.describeRegion()
                let zones = try candidateZones(request.accessibilityRequirements, hasRequirements: request.hasAccessibilityRequirements,
                                               region: region.zones.map(\.name))
                if let existing = try await existingDisk(named: request.name) {
                    return try await reuse(existing, request: request, size: size, zones: zones, source: source, capabilities: capabilities)
                }
                let zone = try await zoneForSource(source, candidates: zones)
                // A volume from a source is at least the source's size, and exactly that when no
                // capacity was asked for.
                var sizeBytes = size.bytes
                let sourceBytes: Int64? = switch source {
                case .snapshot(let id): try await cloud.describeSnapshot(id: id).sizeBytes
                case .volume(let id): try await cloud.describeDisk(id: id).sizeBytes
                case nil: nil
                }
                if let sourceBytes { sizeBytes = size.required == 0 && size.limit == 0 ? sourceBytes : max(sizeBytes, sourceBytes) }
                guard size.limit == 0 || sizeBytes <= size.limit else {
                    throw CSIError(.outOfRange, "capacity_range.limit_bytes: \(size.limit) is smaller than the source's \(sizeBytes) bytes")
                }
                let diskRequest = CreateDiskRequest(
                    name: Self.diskName(request.name), zone: zone, sizeBytes: sizeBytes, type: parameters.type,
                    tags: [Self.nameTag: request.name, Self.driverTag: configuration.driverName],
                    snapshotId: source?.snapshotID, sourceDiskId: source?.volumeID, clientToken: Self.token("volume", request.name))
                let operation: CloudOperation
                do {
                    operation = try await cloud.createDisk(diskRequest)
                } catch let error as CloudError where error.code == .notFound {
                    throw CSIError(.notFound, "volume_content_source: \(error.message)")
                }
                logger.info("creating volume", metadata: ["name": "\(request.name)", "volume": "\(operation.targetId)", "zone": "\(zone)"])
                try await cloud.wait(for: operation, timeout: configuration.operationTimeout)
                let disk = try await cloud.describeDisk(id: operation.targetId)
                return Csi_V1_CreateVolumeResponse.with { $0.volume = volume(disk) }
            }
        }
    }

    func deleteVolume(request: Csi_V1_DeleteVolumeRequest, context: ServerContext) async throws -> Csi_V1_DeleteVolumeResponse {
        try await edge {
            guard !request.volumeID.isEmpty else { throw CSIError.required("volume_id") }
            guard VolumeID.isValid(request.volumeID) else { return Csi_V1_DeleteVolumeResponse() }
            return try await inFlight.run(request.volumeID) {
                let disk: Disk
                do { disk = try await cloud.describeDisk(id: request.volumeID) } catch let error as CloudError where error.code == .notFound {
                    return Csi_V1_DeleteVolumeResponse()
                }
                let attached = disk.attachments.filter { $0.state != .detached }
                guard attached.isEmpty else {
                    throw CSIError(.failedPrecondition, "volume \(disk.id) is still published to node \(attached.map(\.instanceId).joined(separator: ", ")); unpublish it first")
                }
                do {
                    try await cloud.wait(for: try await cloud.deleteDisk(id: disk.id), timeout: configuration.operationTimeout)
                } catch let error as CloudError where error.code == .notFound {
                    return Csi_V1_DeleteVolumeResponse()
                }
                logger.info("deleted volume", metadata: ["volume": "\(disk.id)"])
                return Csi_V1_DeleteVolumeResponse()
            }
        }
    }

    func controllerPublishVolume(request: Csi_V1_ControllerPublishVolumeRequest, context: ServerContext) async throws -> Csi_V1_ControllerPublishVolumeResponse {
        try await edge {
            guard !request.volumeID.isEmpty else { throw CSIError.required("volume_id") }
            guard !request.nodeID.isEmpty else { throw CSIError.required("node_id") }
            guard request.hasVolumeCapability else { throw CSIError.required("volume_capability") }
            let capability = try Capability(request.volumeCapability, field: "volume_capability")
            guard VolumeID.isValid(request.volumeID) else { throw CSIError(.notFound, "volume \(request.volumeID) does not exist") }
            guard VolumeID.isValidNode(request.nodeID) else { throw CSIError(.notFound, "node \(request.nodeID) does not exist") }
            return try await inFlight.run(request.volumeID) {
                let disk = try await describeVolume(request.volumeID)
                do { _ = try await cloud.describeInstance(id: request.nodeID) } catch let error as CloudError where error.code == .notFound {
                    throw CSIError(.notFound, "node \(request.nodeID) does not exist")
                }
                if let other = disk.attachments.first(where: { $0.instanceId != request.nodeID && $0.state != .lost }) {
                    throw CSIError(.failedPrecondition, "volume \(disk.id) is published to node \(other.instanceId); \(capability.mode) allows one node, unpublish it there first")
                }
                let operation = try await cloud.attachDisk(id: disk.id, instanceId: request.nodeID, readOnly: request.readonly)
                do {
                    try await cloud.wait(for: operation, timeout: configuration.attachTimeout)
                } catch let error as CloudError where error.code == .internal && error.message.contains("still running") {
                    // Stuck attaching: give up on it so that a retry starts afresh.
                    _ = try? await cloud.detachDisk(id: disk.id, instanceId: request.nodeID, force: true)
                    throw CSIError(.deadlineExceeded, "volume \(disk.id) did not attach to \(request.nodeID) within \(configuration.attachTimeout); the attach was cancelled, retry")
                }
                let attachment = try await cloud.describeAttachment(diskId: disk.id, instanceId: request.nodeID)
                guard attachment.state == .attached, let device = attachment.devicePath else {
                    throw CSIError(.internalError, "volume \(disk.id) is \(attachment.state.rawValue) on \(request.nodeID) after attaching")
                }
                logger.info("published volume", metadata: ["volume": "\(disk.id)", "node": "\(request.nodeID)", "device": "\(device)"])
                return Csi_V1_ControllerPublishVolumeResponse.with {
                    $0.publishContext = [PublishContext.devicePath: device, PublishContext.serial: attachment.serial]
                }
            }
        }
    }

    func controllerUnpublishVolume(request: Csi_V1_ControllerUnpublishVolumeRequest, context: ServerContext) async throws -> Csi_V1_ControllerUnpublishVolumeResponse {
        try await edge {
            guard !request.volumeID.isEmpty else { throw CSIError.required("volume_id") }
            guard VolumeID.isValid(request.volumeID), request.nodeID.isEmpty || VolumeID.isValidNode(request.nodeID) else {
                return Csi_V1_ControllerUnpublishVolumeResponse()
            }
            return try await inFlight.run(request.volumeID) {
                let disk: Disk
                do { disk = try await cloud.describeDisk(id: request.volumeID) } catch let error as CloudError where error.code == .notFound {
                    return Csi_V1_ControllerUnpublishVolumeResponse()
                }
                for attachment in disk.attachments where request.nodeID.isEmpty || attachment.instanceId == request.nodeID {
                    do {
                        let operation = try await cloud.detachDisk(id: disk.id, instanceId: attachment.instanceId, force: false)
                        try await cloud.wait(for: operation, timeout: configuration.attachTimeout)
                    } catch let error as CloudError where error.code == .notFound {
                        continue
                    }
                    logger.info("unpublished volume", metadata: ["volume": "\(disk.id)", "node": "\(attachment.instanceId)"])
                }
                return Csi_V1_ControllerUnpublishVolumeResponse()
            }
        }
    }

    func validateVolumeCapabilities(request: Csi_V1_ValidateVolumeCapabilitiesRequest, context: ServerContext) async throws -> Csi_V1_ValidateVolumeCapabilitiesResponse {
        try await edge {
            guard !request.volumeID.isEmpty else { throw CSIError.required("volume_id") }
            guard !request.volumeCapabilities.isEmpty else { throw CSIError.required("volume_capabilities") }
            _ = try await describeVolume(request.volumeID)
            do {
                _ = try Capability.all(request.volumeCapabilities, field: "volume_capabilities")
                _ = try VolumeParameters(request.parameters)
            } catch let error as CSIError {
                return Csi_V1_ValidateVolumeCapabilitiesResponse.with { $0.message = error.message }
            }
            return Csi_V1_ValidateVolumeCapabilitiesResponse.with {
                $0.confirmed = .with {
                    $0.volumeContext = request.volumeContext
                    $0.volumeCapabilities = request.volumeCapabilities
                    $0.parameters = request.parameters
                }
            }
        }
    }

    func listVolumes(request: Csi_V1_ListVolumesRequest, context: ServerContext) async throws -> Csi_V1_ListVolumesResponse {
        try await edge {
            guard request.maxEntries >= 0 else { throw CSIError.invalid("max_entries", "must not be negative") }
            let page: Page<Disk>
            do {
                page = try await cloud.listDisks(DiskFilter(tag: "\(Self.driverTag)=\(configuration.driverName)"),
                                                 PageRequest(limit: request.maxEntries == 0 ? 1000 : min(Int(request.maxEntries), 1000),
                                                             pageToken: request.startingToken.isEmpty ? nil : request.startingToken))
            } catch let error as CloudError where error.body.parameter == "pageToken" {
                throw CSIError(.aborted, "starting_token \"\(request.startingToken)\" is not a token of this list; list again from the start")
            }
            return Csi_V1_ListVolumesResponse.with {
                $0.entries = page.items.map { disk in
                    .with {
                        $0.volume = volume(disk)
                        // Listing also says what made the volume: its CSI name, its PV (once
                        // marked) and its age, for the controller manager's orphan sweep.
                        $0.volume.volumeContext[Self.nameTag] = disk.tags[Self.nameTag]
                        $0.volume.volumeContext[Self.volumeTag] = disk.tags[Self.volumeTag]
                        $0.volume.volumeContext[Self.createdAtContext] = disk.createdAt.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
                        $0.status = .with {
                            $0.publishedNodeIds = disk.attachments.filter { $0.state == .attached }.map(\.instanceId)
                            $0.volumeCondition = condition(disk)
                        }
                    }
                }
                $0.nextToken = page.nextPageToken ?? ""
            }
        }
    }

    func getCapacity(request: Csi_V1_GetCapacityRequest, context: ServerContext) async throws -> Csi_V1_GetCapacityResponse {
        try await edge {
            _ = try request.volumeCapabilities.enumerated().map { try Capability($1, field: "volume_capabilities[\($0)]") }
            let zones = try await cloud.describeRegion().zones
            let wanted = request.hasAccessibleTopology ? request.accessibleTopology.segments[Topology.zoneKey] : nil
            // Capacities come from the cloud: summed saturating, never trapping.
            let available = zones.filter { wanted == nil || $0.name == wanted }
                .reduce(Int64(0)) { total, zone in
                    let free = zone.capacityBytes.subtractingReportingOverflow(zone.usedBytes)
                    return Checked.add(total, free.overflow ? 0 : max(0, free.partialValue)) ?? .max
                }
            return Csi_V1_GetCapacityResponse.with { $0.availableCapacity = available }
        }
    }

    func controllerGetCapabilities(request: Csi_V1_ControllerGetCapabilitiesRequest, context: ServerContext) async throws -> Csi_V1_ControllerGetCapabilitiesResponse {
        let types: [Csi_V1_ControllerServiceCapability.RPC.TypeEnum] = [
            .createDeleteVolume, .publishUnpublishVolume, .listVolumes, .getCapacity, .createDeleteSnapshot,
            .listSnapshots, .cloneVolume, .publishReadonly, .expandVolume, .listVolumesPublishedNodes,
            .volumeCondition, .getVolume, .singleNodeMultiWriter, .getSnapshot, .modifyVolume,
        ]
        return .with { $0.capabilities = types.map { type in .with { $0.rpc = .with { $0.type = type } } } }
    }

    func controllerExpandVolume(request: Csi_V1_ControllerExpandVolumeRequest, context: ServerContext) async throws -> Csi_V1_ControllerExpandVolumeResponse {
        try await edge {
            guard !request.volumeID.isEmpty else { throw CSIError.required("volume_id") }
            guard request.hasCapacityRange else { throw CSIError.required("capacity_range") }
            let size = try RequestedSize(request.capacityRange, defaultBytes: configuration.defaultVolumeBytes, field: "capacity_range")
            let capability = request.hasVolumeCapability ? try Capability(request.volumeCapability, field: "volume_capability") : nil
            return try await inFlight.run(request.volumeID) {
                let disk = try await describeVolume(request.volumeID)
                var current = disk.sizeBytes
                if current < size.bytes {
                    do {
                        try await cloud.wait(for: try await cloud.resizeDisk(id: disk.id, sizeBytes: size.bytes), timeout: configuration.operationTimeout)
                    } catch let error as CloudError {
                        throw CSIError(cloud: error)
                    }
                    current = try await cloud.describeDisk(id: disk.id).sizeBytes
                    logger.info("expanded volume", metadata: ["volume": "\(disk.id)", "bytes": "\(current)"])
                }
                return Csi_V1_ControllerExpandVolumeResponse.with {
                    $0.capacityBytes = current
                    $0.nodeExpansionRequired = !(capability?.isBlock ?? false)
                }
            }
        }
    }

    func controllerGetVolume(request: Csi_V1_ControllerGetVolumeRequest, context: ServerContext) async throws -> Csi_V1_ControllerGetVolumeResponse {
        try await edge {
            guard !request.volumeID.isEmpty else { throw CSIError.required("volume_id") }
            let disk = try await describeVolume(request.volumeID)
            return .with {
                $0.volume = volume(disk)
                $0.status = .with {
                    $0.publishedNodeIds = disk.attachments.filter { $0.state == .attached }.map(\.instanceId)
                    $0.volumeCondition = condition(disk)
                }
            }
        }
    }

    /// The one mutable parameter: `csi.ballast.dev/pv`, the PV written for the volume, kept as a tag
    /// on the disk (the controller manager's orphan sweep never deletes a volume that had a PV).
    func controllerModifyVolume(request: Csi_V1_ControllerModifyVolumeRequest, context: ServerContext) async throws -> Csi_V1_ControllerModifyVolumeResponse {
        try await edge {
            guard !request.volumeID.isEmpty else { throw CSIError.required("volume_id") }
            guard VolumeID.isValid(request.volumeID) else { throw CSIError(.notFound, "volume \(request.volumeID) does not exist") }
            for key in request.mutableParameters.keys.sorted() where key != Self.volumeTag {
                throw CSIError.invalid("mutable_parameters", "\"\(key)\" is not mutable; the only mutable parameter is \(Self.volumeTag)")
            }
            guard !request.mutableParameters.isEmpty else { return Csi_V1_ControllerModifyVolumeResponse() }
            _ = try await cloud.tagDisk(id: request.volumeID, tags: request.mutableParameters)
            return Csi_V1_ControllerModifyVolumeResponse()
        }
    }

    // MARK: - Snapshots

    func createSnapshot(request: Csi_V1_CreateSnapshotRequest, context: ServerContext) async throws -> Csi_V1_CreateSnapshotResponse {
        try await edge {
            guard !request.sourceVolumeID.isEmpty else { throw CSIError.required("source_volume_id") }
            guard !request.name.isEmpty else { throw CSIError.required("name") }
            guard request.parameters.isEmpty else {
                throw CSIError.invalid("parameters", "snapshots take no parameters, got \(request.parameters.keys.sorted().joined(separator: ", "))")
            }
            guard VolumeID.isValid(request.sourceVolumeID) else { throw CSIError(.notFound, "volume \(request.sourceVolumeID) does not exist") }
            return try await inFlight.run("snapshot name \(request.name)") {
                let snapshotRequest = CreateSnapshotRequest(diskId: request.sourceVolumeID, name: Self.diskName(request.name),
                                                            tags: [Self.nameTag: request.name, Self.driverTag: configuration.driverName],
                                                            clientToken: Self.token("snapshot", request.name))
                let operation: CloudOperation
                do {
                    operation = try await cloud.createSnapshot(snapshotRequest)
                } catch let error as CloudError where error.code == .alreadyExists {
                    throw CSIError(.alreadyExists, "a snapshot named \(request.name) already exists for another volume")
                }
                try await cloud.wait(for: operation, timeout: configuration.operationTimeout)
                let snapshot = try await cloud.describeSnapshot(id: operation.targetId)
                return .with { $0.snapshot = self.snapshot(snapshot) }
            }
        }
    }

    func deleteSnapshot(request: Csi_V1_DeleteSnapshotRequest, context: ServerContext) async throws -> Csi_V1_DeleteSnapshotResponse {
        try await edge {
            guard !request.snapshotID.isEmpty else { throw CSIError.required("snapshot_id") }
            guard VolumeID.isValidSnapshot(request.snapshotID) else { return Csi_V1_DeleteSnapshotResponse() }
            return try await inFlight.run(request.snapshotID) {
                do {
                    try await cloud.wait(for: try await cloud.deleteSnapshot(id: request.snapshotID), timeout: configuration.operationTimeout)
                } catch let error as CloudError where error.code == .notFound {
                }
                return Csi_V1_DeleteSnapshotResponse()
            }
        }
    }

    func listSnapshots(request: Csi_V1_ListSnapshotsRequest, context: ServerContext) async throws -> Csi_V1_ListSnapshotsResponse {
        try await edge {
            guard request.maxEntries >= 0 else { throw CSIError.invalid("max_entries", "must not be negative") }
            if !request.snapshotID.isEmpty {
                guard VolumeID.isValidSnapshot(request.snapshotID),
                      let found = try? await cloud.describeSnapshot(id: request.snapshotID),
                      request.sourceVolumeID.isEmpty || found.sourceDiskId == request.sourceVolumeID else {
                    return Csi_V1_ListSnapshotsResponse()
                }
                return .with { $0.entries = [.with { $0.snapshot = snapshot(found) }] }
            }
            if !request.sourceVolumeID.isEmpty, !VolumeID.isValid(request.sourceVolumeID) { return Csi_V1_ListSnapshotsResponse() }
            let page: Page<Snapshot>
            do {
                page = try await cloud.listSnapshots(sourceDiskId: request.sourceVolumeID.isEmpty ? nil : request.sourceVolumeID,
                                                     PageRequest(limit: request.maxEntries == 0 ? 1000 : min(Int(request.maxEntries), 1000),
                                                                 pageToken: request.startingToken.isEmpty ? nil : request.startingToken))
            } catch let error as CloudError where error.body.parameter == "pageToken" {
                throw CSIError(.aborted, "starting_token \"\(request.startingToken)\" is not a token of this list; list again from the start")
            }
            return .with {
                $0.entries = page.items.map { item in .with { $0.snapshot = snapshot(item) } }
                $0.nextToken = page.nextPageToken ?? ""
            }
        }
    }

    func getSnapshot(request: Csi_V1_GetSnapshotRequest, context: ServerContext) async throws -> Csi_V1_GetSnapshotResponse {
        try await edge {
            guard !request.snapshotID.isEmpty else { throw CSIError.required("snapshot_id") }
            guard VolumeID.isValidSnapshot(request.snapshotID) else { throw CSIError(.notFound, "snapshot \(request.snapshotID) does not exist") }
            let found = try await cloud.describeSnapshot(id: request.snapshotID)
            return .with { $0.snapshot = snapshot(found) }
        }
    }

    // MARK: - Helpers

    /// The disk of a volume id; NOT_FOUND for ids of another shape.
    private func describeVolume(_ id: String) async throws -> Disk {
        guard VolumeID.isValid(id) else { throw CSIError(.notFound, "volume \(id) does not exist") }
        return try await cloud.describeDisk(id: id)
    }

    private func existingDisk(named name: String) async throws -> Disk? {
        let disks = try await cloud.allDisks(DiskFilter(tag: "\(Self.nameTag)=\(name)"))
        return disks.first { $0.state != .deleting }
    }

    /// An existing disk of the same name: the same volume if compatible, ALREADY_EXISTS if not.
    private func reuse(_ disk: Disk, request: Csi_V1_CreateVolumeRequest, size: RequestedSize, zones: [String],
                       source: ContentSource?, capabilities: [Capability]) async throws -> Csi_V1_CreateVolumeResponse {
        guard disk.sizeBytes >= size.required, size.limit == 0 || disk.sizeBytes <= size.limit else {
            throw CSIError(.alreadyExists, "volume \(request.name) exists as \(disk.id) with \(disk.sizeBytes) bytes, outside the requested capacity range")
        }
        guard zones.contains(disk.zone) else {
            throw CSIError(.alreadyExists, "volume \(request.name) exists as \(disk.id) in zone \(disk.zone), outside the requested topology")
        }
        guard source?.snapshotID == disk.sourceSnapshotId, source?.volumeID == disk.sourceDiskId else {
            throw CSIError(.alreadyExists, "volume \(request.name) exists as \(disk.id) with another content source")
        }
        var current = disk
        if current.state == .creating, let operation = try? await cloud.createDisk(CreateDiskRequest(
            name: Self.diskName(request.name), zone: disk.zone, sizeBytes: disk.sizeBytes, type: disk.type, tags: disk.tags,
            snapshotId: disk.sourceSnapshotId, sourceDiskId: disk.sourceDiskId, clientToken: Self.token("volume", request.name))) {
            try await cloud.wait(for: operation, timeout: configuration.operationTimeout)
            current = try await cloud.describeDisk(id: disk.id)
        }
        guard current.state != .failed else {
            throw CSIError(.internalError, "volume \(request.name) (\(disk.id)) failed in the cloud: \(disk.failureReason ?? "unknown"); delete it and create it again")
        }
        return .with { $0.volume = volume(current) }
    }

    /// Zones the volume may be created in, in order of preference.
    private func candidateZones(_ requirements: Csi_V1_TopologyRequirement, hasRequirements: Bool, region: [String]) throws -> [String] {
        guard hasRequirements, !requirements.requisite.isEmpty || !requirements.preferred.isEmpty else { return region }
        func zone(_ topology: Csi_V1_Topology, _ field: String) throws -> String? {
            let unknown = topology.segments.keys.filter { $0 != Topology.zoneKey }
            guard unknown.isEmpty else {
                throw CSIError.invalid(field, "unknown topology key \(unknown.sorted().joined(separator: ", ")); this driver knows \(Topology.zoneKey)")
            }
            return topology.segments[Topology.zoneKey]
        }
        let requisite = try requirements.requisite.enumerated().compactMap { try zone($1, "accessibility_requirements.requisite[\($0)]") }
        let preferred = try requirements.preferred.enumerated().compactMap { try zone($1, "accessibility_requirements.preferred[\($0)]") }
        let allowed = requisite.isEmpty ? region : region.filter(requisite.contains)
        guard !allowed.isEmpty else {
            throw CSIError(.resourceExhausted, "no zone of region satisfies the requisite topology \(requisite); zones are \(region.joined(separator: ", "))")
        }
        return preferred.filter(allowed.contains) + allowed.filter { !preferred.contains($0) }
    }

    /// A clone must stay in its source's zone; otherwise the first candidate.
    private func zoneForSource(_ source: ContentSource?, candidates: [String]) async throws -> String {
        guard case .volume(let id) = source else { return candidates[0] }
        let zone = try await cloud.describeDisk(id: id).zone
        guard candidates.contains(zone) else {
            throw CSIError(.resourceExhausted, "source volume \(id) is in zone \(zone), outside the requested topology; clones stay in their source's zone")
        }
        return zone
    }

    private func contentSource(_ request: Csi_V1_CreateVolumeRequest) throws -> ContentSource? {
        guard request.hasVolumeContentSource else { return nil }
        switch request.volumeContentSource.type {
        case .snapshot(let snapshot):
            guard !snapshot.snapshotID.isEmpty else { throw CSIError.required("volume_content_source.snapshot.snapshot_id") }
            guard VolumeID.isValidSnapshot(snapshot.snapshotID) else { throw CSIError(.notFound, "snapshot \(snapshot.snapshotID) does not exist") }
            return .snapshot(snapshot.snapshotID)
        case .volume(let volume):
            guard !volume.volumeID.isEmpty else { throw CSIError.required("volume_content_source.volume.volume_id") }
            guard VolumeID.isValid(volume.volumeID) else { throw CSIError(.notFound, "volume \(volume.volumeID) does not exist") }
            return .volume(volume.volumeID)
        case nil:
            throw CSIError.invalid("volume_content_source", "set snapshot or volume")
        }
    }

    private func volume(_ disk: Disk) -> Csi_V1_Volume {
        .with {
            $0.volumeID = disk.id
            $0.capacityBytes = disk.sizeBytes
            $0.volumeContext = ["type": disk.type]
            $0.accessibleTopology = [.with { $0.segments = [Topology.zoneKey: disk.zone] }]
            if let snapshot = disk.sourceSnapshotId {
                $0.contentSource = .with { $0.snapshot = .with { $0.snapshotID = snapshot } }
            } else if let source = disk.sourceDiskId {
                $0.contentSource = .with { $0.volume = .with { $0.volumeID = source } }
            }
        }
    }

    private func condition(_ disk: Disk) -> Csi_V1_VolumeCondition {
        .with {
            $0.abnormal = disk.state == .failed || disk.attachments.contains { $0.state == .lost }
            $0.message = disk.state == .failed ? (disk.failureReason ?? "failed") :
                disk.attachments.contains { $0.state == .lost } ? "the device of an attachment was lost" : "volume is healthy"
        }
    }

    private func snapshot(_ snapshot: Snapshot) -> Csi_V1_Snapshot {
        .with {
            $0.snapshotID = snapshot.id
            $0.sourceVolumeID = snapshot.sourceDiskId
            $0.sizeBytes = snapshot.sizeBytes
            $0.creationTime = Google_Protobuf_Timestamp(date: snapshot.createdAt)
            $0.readyToUse = snapshot.state == .completed
        }
    }

    /// A cloud disk name from a CSI name: its safe characters, at most 128.
    static func diskName(_ name: String) -> String {
        let safe = String(name.unicodeScalars.map { scalar -> Character in
            let c = Character(scalar)
            return c.isASCII && (c.isLetter || c.isNumber || c == "." || c == "_" || c == "-") ? c : "-"
        }.prefix(128))
        return safe.isEmpty ? "volume" : safe
    }

    /// The cloud's idempotency token for a CSI name: a hash, so any name fits.
    static func token(_ kind: String, _ name: String) -> String {
        SHA256.hash(data: Data("\(kind):\(name)".utf8)).map { String(format: "%02x", $0) }.joined()
    }
}

/// Keys of `publish_context`, read back by NodeStageVolume.
enum PublishContext {
    static let devicePath = "devicePath"
    static let serial = "serial"
}

enum Topology {
    /// The one topology key: the cloud's zone, as Kubernetes labels nodes.
    static let zoneKey = "topology.kubernetes.io/zone"
}

enum ContentSource: Equatable {
    case snapshot(String)
    case volume(String)

    var snapshotID: String? { if case .snapshot(let id) = self { id } else { nil } }
    var volumeID: String? { if case .volume(let id) = self { id } else { nil } }
}

/// StorageClass parameters the driver understands: `type` (standard, ssd) and `fsType`
/// (ext4, xfs); the provisioner's own `csi.storage.k8s.io/…` keys are ignored.
struct VolumeParameters {
    var type = "standard"
    var fsType = Capability.defaultFileSystem

    init(_ parameters: [String: String]) throws {
        for (key, value) in parameters {
            switch key.lowercased() {
            case "type":
                guard ["standard", "ssd"].contains(value) else {
                    throw CSIError.invalid("parameters.type", "\"\(value)\" is not a disk type; use standard or ssd")
                }
                type = value
            case "fstype", "csi.storage.k8s.io/fstype":
                guard Capability.supportedFileSystems.contains(value.lowercased()) else {
                    throw CSIError.invalid("parameters.\(key)", "\"\(value)\" is not supported; use ext4 or xfs")
                }
                fsType = value.lowercased()
            case let other where other.hasPrefix("csi.storage.k8s.io/"):
                continue
            default:
                throw CSIError.invalid("parameters.\(key)", "unknown parameter; this driver takes type and fsType")
            }
        }
    }
}
