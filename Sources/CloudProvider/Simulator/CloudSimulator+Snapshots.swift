// Snapshots: point-in-time copies of a disk, usable in any zone; idempotent by client token.
import Foundation
import HostSystem

extension CloudSimulator {
    public func createSnapshot(_ request: CreateSnapshotRequest) async throws -> CloudOperation {
        try injectFault(.snapshot)
        try request.validate()
        let disk = try disk(request.diskId, parameter: "diskId")
        if let token = request.clientToken, let operation = try replay(token: token, request: request) { return operation }
        guard [.available, .inUse].contains(disk.state) else {
            throw CloudError(.incorrectState, "disk \(disk.id) is \(disk.state.rawValue); snapshots are taken of available or in-use disks")
        }
        let snapshot = Snapshot(id: CloudValidation.newID(.snapshot), name: request.name, sourceDiskId: disk.id,
                                sizeBytes: disk.sizeBytes, state: .pending, tags: request.tags ?? [:], createdAt: CloudJSON.now())
        let operation = newOperation(.snapshotCreate, target: snapshot.id)
        try database.transaction {
            try database.insert(snapshot, sourceZone: disk.zone)
            try database.insert(operation)
            if let token = request.clientToken {
                try database.insertToken(token, request: try tokenKey(request), resourceId: snapshot.id, operationId: operation.id)
            }
        }
        launch(operation, delay: configuration.latency[.snapshot])
        return operation
    }

    public func describeSnapshot(id: String) async throws -> Snapshot {
        try injectFault(.describe)
        return try snapshot(id, parameter: "id")
    }

    public func listSnapshots(sourceDiskId: String?, _ page: PageRequest) async throws -> Page<Snapshot> {
        try injectFault(.list)
        if let sourceDiskId { try CloudValidation.checkID(sourceDiskId, .disk, parameter: "sourceDiskId") }
        let (after, limit) = try pageBounds(page, .snapshot)
        return paged(try database.snapshots(sourceDiskId: sourceDiskId, after: after, limit: limit + 1), limit: limit, id: \.id)
    }

    public func deleteSnapshot(id: String) async throws -> CloudOperation {
        try injectFault(.deleteSnapshot)
        let snapshot = try snapshot(id, parameter: "id")
        if snapshot.state == .deleting, let running = try database.runningOperation(targetId: id) { return running }
        guard snapshot.state != .pending else {
            throw CloudError(.incorrectState, "snapshot \(id) is still being taken; wait for its operation, then delete it")
        }
        let operation = newOperation(.snapshotDelete, target: id)
        try database.transaction {
            try database.setSnapshotState(id, .deleting)
            try database.insert(operation)
        }
        launch(operation, delay: configuration.latency[.deleteSnapshot])
        return operation
    }
}
