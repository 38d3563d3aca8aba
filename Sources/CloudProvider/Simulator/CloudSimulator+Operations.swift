// The operation engine: each accepted change runs its work (files, loop devices) after the
// configured latency, in order per target, and finishes its operation in a second transaction;
// waiters of the long poll are woken when it finishes.
import Foundation
import HostSystem

extension CloudSimulator {
    public func describeOperation(id: String) async throws -> CloudOperation {
        try CloudValidation.checkID(id, .operation, parameter: "id")
        guard let (operation, _) = try database.operation(id: id) else { throw CloudError.notFound("operation", id) }
        return operation
    }

    /// The long poll: answers when the operation finishes (woken by `perform`, not by polling
    /// the database), or as it is after `timeout` (at most 30 s).
    public func waitForOperation(id: String, timeout: Duration) async throws -> CloudOperation {
        let operation = try await describeOperation(id: id)
        guard !operation.isDone, timeout > .zero else { return operation }
        let limit = min(timeout, .seconds(30))
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.completion(of: id) }
            group.addTask { try? await Task.sleep(for: limit) }
            await group.next()
            group.cancelAll()
        }
        return try await describeOperation(id: id)
    }

    /// Returns when operation `id` is done (at once if it is), or when the task is cancelled.
    private func completion(of id: String) async {
        let waiter = nextWaiter
        nextWaiter += 1
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let done = (try? database.operation(id: id))?.0.isDone ?? true
                guard !done, !Task.isCancelled else { return continuation.resume() }
                completionWaiters[id, default: [:]][waiter] = continuation
            }
        } onCancel: {
            Task { await self.stopWaiting(for: id, waiter: waiter) }
        }
    }

    private func stopWaiting(for id: String, waiter: UInt64) {
        let continuation = completionWaiters[id]?.removeValue(forKey: waiter)
        if completionWaiters[id]?.isEmpty == true { completionWaiters[id] = nil }
        continuation?.resume()
    }

    /// Wakes the long polls of operation `id`.
    private func finished(_ id: String) {
        guard let waiters = completionWaiters.removeValue(forKey: id) else { return }
        for continuation in waiters.values { continuation.resume() }
    }

    // MARK: - The asynchronous work

    /// Runs the operation's work after `delay`, and after the operations already queued on the
    /// same disk or snapshot: work on one target happens in the order it was asked for (a
    /// detach never overtakes the attach it undoes).
    func launch(_ operation: CloudOperation, delay: Duration?) {
        let previous = tails[operation.targetId]?.task
        let task = Task {
            await previous?.value
            if let delay, delay > .zero { try? await Task.sleep(for: delay) }
            await self.perform(operation.id)
        }
        work[operation.id] = task
        tails[operation.targetId] = (operation.id, task)
    }

    /// Tests: makes the next operation of `kind` fail to record its result after its work.
    func injectRecordFailure(_ kind: OperationKind) {
        recordFailure = kind
    }

    func perform(_ operationId: String) async {
        defer {
            work[operationId] = nil
            if let target = tails.first(where: { $0.value.operationId == operationId })?.key { tails[target] = nil }
        }
        guard let (operation, argument) = try? database.operation(id: operationId), operation.state == .running else { return }
        defer { finished(operationId) }
        do {
            let result = try await execute(operation, argument: argument)
            do {
                try database.transaction {
                    if recordFailure == operation.kind {
                        recordFailure = nil
                        throw CloudError(.internal, "injected failure recording \(operation.kind.rawValue) of \(operation.targetId)")
                    }
                    try result.record()
                    try database.finish(operationId: operationId, error: nil, at: CloudJSON.now())
                }
            } catch {
                // The work is done but not recorded: undo what the machine would otherwise keep
                // and nothing would ever remove (a loop device nobody knows of).
                await result.undo?()
                throw error
            }
            logger.info("operation done", metadata: ["operation": "\(operationId)", "kind": "\(operation.kind.rawValue)", "target": "\(operation.targetId)"])
        } catch {
            let body = (error as? CloudError)?.body ?? CloudErrorBody(code: .internal, message: "\(error)")
            logger.error("operation failed", metadata: ["operation": "\(operationId)", "kind": "\(operation.kind)", "error": "\(body.message)"])
            do {
                try database.transaction {
                    try rollBack(operation, argument: argument, reason: body.message)
                    try database.finish(operationId: operationId, error: body, at: CloudJSON.now())
                }
            } catch {
                logger.critical("cannot record a failed operation", metadata: ["operation": "\(operationId)", "error": "\(error)"])
            }
        }
    }

    /// What an operation's work leaves to do: record its result (in the transaction that ends
    /// the operation), or, when that fails, undo it.
    struct WorkResult {
        var record: () throws -> Void
        var undo: (@Sendable () async -> Void)?

        init(record: @escaping () throws -> Void = {}, undo: (@Sendable () async -> Void)? = nil) {
            self.record = record
            self.undo = undo
        }
    }

    /// Does the work of `operation` (safe to run again after a crash) and returns how to record
    /// its result, which `perform` commits in one transaction with the operation's end.
    func execute(_ operation: CloudOperation, argument: Int64?) async throws -> WorkResult {
        let database = self.database
        let id = operation.targetId
        switch operation.kind {
        case .diskCreate:
            guard let disk = try database.disk(id: id) else { return WorkResult() }
            let source: DataSource? = try disk.sourceSnapshotId.map { .snapshot($0) }
                ?? disk.sourceDiskId.map { sourceId in
                    guard let sourceDisk = try database.disk(id: sourceId) else {
                        throw CloudError(.notFound, "source disk \(sourceId) was deleted while disk \(id) was being created from it")
                    }
                    return .disk(zone: sourceDisk.zone, id: sourceId)
                }
            if case .snapshot(let snapshotId) = source, !devices.snapshotExists(snapshotId: snapshotId) {
                throw CloudError(.notFound, "snapshot \(snapshotId) was deleted while disk \(id) was being created from it")
            }
            try await devices.createDisk(zone: disk.zone, diskId: id, sizeBytes: disk.sizeBytes, copying: source)
            return WorkResult(record: { try database.setDiskState(id, .available) })
        case .diskDelete:
            guard let disk = try database.disk(id: id) else { return WorkResult() }
            try await devices.deleteDisk(zone: disk.zone, diskId: id)
            return WorkResult(record: { try database.deleteDisk(id) })
        case .diskResize:
            guard let disk = try database.disk(id: id) else { return WorkResult() }
            let device = disk.attachments.compactMap(\.devicePath).first
            try await devices.resizeDisk(zone: disk.zone, diskId: id, sizeBytes: disk.sizeBytes, devicePath: device)
            return WorkResult()
        case .diskAttach:
            guard let disk = try database.disk(id: id), let instanceId = operation.instanceId,
                  let attachment = disk.attachments.first(where: { $0.instanceId == instanceId }) else { return WorkResult() }
            let device = try await devices.attach(zone: disk.zone, diskId: id, readOnly: attachment.readOnly)
            // Undo only a device no other attachment of the disk shares (multi-attach).
            let shared = disk.attachments.contains { $0.instanceId != instanceId && $0.devicePath == device }
            let devices = self.devices, zone = disk.zone
            let record: () throws -> Void = {
                // A forced detach queued meanwhile keeps the attachment "detaching".
                let current = try database.attachments(diskId: id).first { $0.instanceId == instanceId }
                let state: AttachmentState = current?.state == .detaching ? .detaching : .attached
                try database.upsert(Attachment(diskId: id, instanceId: instanceId, state: state, devicePath: device, readOnly: attachment.readOnly))
                try database.refreshDiskState(id)
            }
            let undo: @Sendable () async -> Void = {
                try? await devices.detach(devicePath: device, zone: zone, diskId: id, force: true)
            }
            return WorkResult(record: record, undo: shared ? nil : undo)
        case .diskDetach:
            guard let disk = try database.disk(id: id), let instanceId = operation.instanceId,
                  let attachment = disk.attachments.first(where: { $0.instanceId == instanceId }) else { return WorkResult() }
            let sharedDevice = disk.attachments.contains { $0.instanceId != instanceId && $0.devicePath == attachment.devicePath }
            if let path = attachment.devicePath, !sharedDevice {
                try await devices.detach(devicePath: path, zone: disk.zone, diskId: id, force: argument == 1)
            }
            return WorkResult(record: {
                try database.deleteAttachment(diskId: id, instanceId: instanceId)
                try database.refreshDiskState(id)
            })
        case .snapshotCreate:
            guard let snapshot = try database.snapshot(id: id), let zone = try database.snapshotSourceZone(id: id) else { return WorkResult() }
            guard let disk = try database.disk(id: snapshot.sourceDiskId) else {
                throw CloudError(.notFound, "disk \(snapshot.sourceDiskId) was deleted before snapshot \(id) was taken")
            }
            try await devices.createSnapshot(snapshotId: id, zone: zone, diskId: disk.id,
                                             devicePath: disk.attachments.compactMap(\.devicePath).first)
            return WorkResult(record: { try database.setSnapshotState(id, .completed) })
        case .snapshotDelete:
            try await devices.deleteSnapshot(snapshotId: id)
            return WorkResult(record: { try database.deleteSnapshot(id) })
        }
    }

    /// Puts the target back into a consistent state after its work failed.
    func rollBack(_ operation: CloudOperation, argument: Int64?, reason: String) throws {
        let id = operation.targetId
        switch operation.kind {
        case .diskCreate, .diskDelete:
            try database.setDiskState(id, .failed, failure: "\(operation.kind.rawValue) failed: \(reason)")
        case .diskResize:
            if let previous = argument { try database.setDiskSize(id, previous) }
        case .diskAttach:
            if let instanceId = operation.instanceId {
                try database.deleteAttachment(diskId: id, instanceId: instanceId)
                try database.refreshDiskState(id)
            }
        case .diskDetach:
            if let instanceId = operation.instanceId,
               let attachment = try database.attachments(diskId: id).first(where: { $0.instanceId == instanceId }) {
                try database.upsert(Attachment(diskId: id, instanceId: instanceId, state: .attached, devicePath: attachment.devicePath,
                                               readOnly: attachment.readOnly))
            }
        case .snapshotCreate:
            try database.setSnapshotState(id, .failed)
        case .snapshotDelete:
            try database.setSnapshotState(id, .completed)
        }
    }
}
