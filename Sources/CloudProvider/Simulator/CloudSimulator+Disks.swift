// The simulator's disks: create (empty, from a snapshot or cloned; idempotent by client token),
// describe, list, delete and resize. Each change validates, then records the disk's new state and
// a running operation in one transaction; the work itself runs later (`+Operations`).
import Foundation
import HostSystem

extension CloudSimulator {
    public func createDisk(_ request: CreateDiskRequest) async throws -> CloudOperation {
        try injectFault(.create)
        let (size, type) = try request.validate(zones: configuration.zones, region: configuration.region, maxDiskBytes: configuration.maxDiskBytes)
        if let token = request.clientToken, let operation = try replay(token: token, request: request) { return operation }

        if let snapshotId = request.snapshotId {
            guard let snapshot = try database.snapshot(id: snapshotId) else { throw CloudError.notFound("snapshot", snapshotId) }
            guard snapshot.state == .completed else {
                throw CloudError(.incorrectState, "snapshot \(snapshotId) is \(snapshot.state.rawValue); wait until it is completed")
            }
            guard size >= snapshot.sizeBytes else {
                throw CloudError.invalid("sizeBytes", "\(size) bytes is smaller than snapshot \(snapshotId) (\(snapshot.sizeBytes) bytes); ask for at least its size")
            }
        } else if let sourceId = request.sourceDiskId {
            let sourceDisk = try disk(sourceId, parameter: "sourceDiskId")
            guard sourceDisk.zone == request.zone else {
                throw CloudError.invalid("sourceDiskId", "disk \(sourceId) is in zone \(sourceDisk.zone), not \(request.zone); clone within a zone, or go through a snapshot")
            }
            guard [.available, .inUse].contains(sourceDisk.state) else {
                throw CloudError(.incorrectState, "disk \(sourceId) is \(sourceDisk.state.rawValue) and cannot be cloned now")
            }
            guard size >= sourceDisk.sizeBytes else {
                throw CloudError.invalid("sizeBytes", "\(size) bytes is smaller than disk \(sourceId) (\(sourceDisk.sizeBytes) bytes); ask for at least its size")
            }
        }

        let disk = Disk(id: CloudValidation.newID(.disk), name: request.name, zone: request.zone, sizeBytes: size, type: type,
                        state: .creating, multiAttach: request.multiAttach ?? false, tags: request.tags ?? [:],
                        sourceSnapshotId: request.snapshotId, sourceDiskId: request.sourceDiskId, attachments: [],
                        failureReason: nil, createdAt: CloudJSON.now())
        let operation = newOperation(.diskCreate, target: disk.id)
        try database.transaction {
            let used = try database.usedBytes(zone: request.zone)
            guard size <= configuration.zoneCapacityBytes - used else {
                throw CloudError(.quotaExceeded, "zone \(request.zone) has \(configuration.zoneCapacityBytes - used) of \(configuration.zoneCapacityBytes) bytes left, \(size) asked; delete disks or use another zone")
            }
            try database.insert(disk)
            try database.insert(operation)
            if let token = request.clientToken {
                try database.insertToken(token, request: try tokenKey(request), resourceId: disk.id, operationId: operation.id)
            }
        }
        logger.info("creating disk", metadata: ["disk": "\(disk.id)", "name": "\(disk.name)", "zone": "\(disk.zone)", "bytes": "\(size)"])
        launch(operation, delay: configuration.latency[.create])
        return operation
    }

    public func describeDisk(id: String) async throws -> Disk {
        try injectFault(.describe)
        return try disk(id, parameter: "id")
    }

    public func listDisks(_ filter: DiskFilter, _ page: PageRequest) async throws -> Page<Disk> {
        try injectFault(.list)
        try filter.validate(zones: configuration.zones, region: configuration.region)
        let (after, limit) = try pageBounds(page, .disk)
        return paged(try database.disks(filter, after: after, limit: limit + 1), limit: limit, id: \.id)
    }

    public func tagDisk(id: String, tags: [String: String]) async throws -> Disk {
        try injectFault(.describe)
        try CloudValidation.checkTags(tags)
        let disk = try disk(id, parameter: "id")
        let merged = disk.tags.merging(tags) { $1 }
        try CloudValidation.checkTags(merged)
        try database.transaction { try database.setDiskTags(id, merged) }
        return try self.disk(id, parameter: "id")
    }

    public func deleteDisk(id: String) async throws -> CloudOperation {
        try injectFault(.delete)
        let disk = try disk(id, parameter: "id")
        if disk.state == .deleting, let running = try database.runningOperation(targetId: id) { return running }
        guard disk.attachments.isEmpty else {
            let instances = disk.attachments.map(\.instanceId).joined(separator: ", ")
            throw CloudError(.inUse, "disk \(id) is attached to \(instances); detach it first")
        }
        guard disk.state != .creating else {
            throw CloudError(.incorrectState, "disk \(id) is still being created; wait for its operation, then delete it")
        }
        let operation = newOperation(.diskDelete, target: id)
        try database.transaction {
            try database.setDiskState(id, .deleting)
            try database.insert(operation)
        }
        launch(operation, delay: configuration.latency[.delete])
        return operation
    }

    public func resizeDisk(id: String, sizeBytes: Int64) async throws -> CloudOperation {
        try injectFault(.resize)
        let disk = try disk(id, parameter: "id")
        let size = try CloudValidation.checkSize(sizeBytes, maximum: configuration.maxDiskBytes)
        guard size >= disk.sizeBytes else {
            throw CloudError.invalid("sizeBytes", "disks only grow: \(id) has \(disk.sizeBytes) bytes, \(size) asked")
        }
        guard [.available, .inUse].contains(disk.state), disk.attachments.allSatisfy({ $0.state == .attached }) else {
            throw CloudError(.incorrectState, "disk \(id) is \(disk.state.rawValue) or has an attachment in progress; retry when it is settled")
        }
        if let running = try database.runningOperation(targetId: id), running.kind == .diskResize {
            throw CloudError(.incorrectState, "disk \(id) is being resized by \(running.id); wait for it")
        }
        let operation = newOperation(.diskResize, target: id)
        try database.transaction {
            let used = try database.usedBytes(zone: disk.zone)
            guard size - disk.sizeBytes <= configuration.zoneCapacityBytes - used else {
                throw CloudError(.quotaExceeded, "zone \(disk.zone) has \(configuration.zoneCapacityBytes - used) bytes left, \(size - disk.sizeBytes) more asked; delete disks first")
            }
            try database.setDiskSize(id, size)
            try database.insert(operation, argument: disk.sizeBytes)
        }
        launch(operation, delay: configuration.latency[.resize])
        return operation
    }
}
