// The simulated cloud's behaviour: validation, quotas, attach limits, idempotency, asynchronous
// operations with intermediate states, fault injection, and reconciliation with the machine on
// start. State lives in SQLite (`CloudDatabase`), disks in a `DeviceBackend`. The HTTP service
// (`CloudHTTPService`) is a thin layer over this actor, which also serves in-process as a
// `CloudProvider` (see `inMemory()`).
//
// Every request first validates, then changes the database in one transaction and, for slow
// work, records a running operation. The work itself (files, losetup) runs in a task after the
// configured latency and finishes the operation in a second transaction. A crash between the two
// leaves a running operation, which `start()` resumes: each kind of work is idempotent.
import Foundation
import Logging

public actor CloudSimulator: CloudProvider {
    public let configuration: SimulatorConfiguration
    private let database: CloudDatabase
    private let devices: DeviceBackend
    private let logger: Logger
    private var work: [String: Task<Void, Never>] = [:]
    /// The last operation queued on each target.
    private var tails: [String: (operationId: String, task: Task<Void, Never>)] = [:]
    private var dice: SplitMix64

    /// Opens (creating if needed) the state database at `statePath`. Call `start()` before serving.
    public init(configuration: SimulatorConfiguration, statePath: String, devices: DeviceBackend, logger: Logger) throws {
        self.configuration = configuration
        self.database = try CloudDatabase(path: statePath)
        self.devices = devices
        self.logger = logger
        self.dice = SplitMix64(seed: configuration.faultSeed ?? UInt64.random(in: .min ... .max))
    }

    /// A simulator with its state in memory and no real devices: the in-memory `CloudProvider`
    /// for tests of the code above the cloud.
    public static func inMemory(_ configuration: SimulatorConfiguration = SimulatorConfiguration(),
                                devices: MemoryDeviceBackend = MemoryDeviceBackend()) async throws -> CloudSimulator {
        var logger = Logger(label: "ballast.cloud")
        logger.logLevel = .warning
        let simulator = try CloudSimulator(configuration: configuration, statePath: ":memory:", devices: devices, logger: logger)
        try await simulator.start()
        return simulator
    }

    // MARK: - Start and stop

    /// Reconciles the recorded state with the machine, then resumes interrupted operations.
    public func start() async throws {
        try reconcile()
        for (operation, _) in try database.runningOperations() {
            logger.info("resuming operation", metadata: ["operation": "\(operation.id)", "kind": "\(operation.kind)", "target": "\(operation.targetId)"])
            launch(operation, delay: nil)
        }
        try database.pruneOperations(olderThan: CloudJSON.now().addingTimeInterval(-24 * 3600))
    }

    /// Waits for the operations in progress to finish.
    public func drain() async {
        while let (_, task) = work.first {
            await task.value
        }
    }

    /// A disk whose backing file vanished is marked failed; an attachment whose loop device
    /// vanished (a reboot) is re-attached, or marked lost when that fails. Never a silent mismatch.
    private func reconcile() throws {
        for disk in try database.allDisks() where disk.state != .creating && disk.state != .deleting {
            guard devices.diskExists(zone: disk.zone, diskId: disk.id) else {
                if disk.state != .failed {
                    logger.error("backing file of disk vanished: marking it failed", metadata: ["disk": "\(disk.id)"])
                    try database.transaction {
                        try database.setDiskState(disk.id, .failed, failure: "backing file vanished; delete the disk and restore it from a snapshot")
                        for attachment in disk.attachments where attachment.state == .attached {
                            try database.upsert(Attachment(diskId: disk.id, instanceId: attachment.instanceId, state: .lost, devicePath: nil))
                        }
                    }
                }
                continue
            }
            for attachment in disk.attachments where attachment.state == .attached {
                if let path = attachment.devicePath, devices.deviceBacks(devicePath: path, zone: disk.zone, diskId: disk.id) { continue }
                logger.warning("loop device of an attachment vanished: re-attaching", metadata: [
                    "disk": "\(disk.id)", "instance": "\(attachment.instanceId)", "device": "\(attachment.devicePath ?? "-")"])
                let operation = newOperation("disk.attach", target: disk.id, instance: attachment.instanceId)
                try database.transaction {
                    try database.upsert(Attachment(diskId: disk.id, instanceId: attachment.instanceId, state: .attaching, devicePath: nil,
                                                   readOnly: attachment.readOnly))
                    try database.insert(operation)
                }
            }
        }
    }

    // MARK: - Region and instances

    public func describeRegion() async throws -> (region: String, zones: [Zone]) {
        try injectFault(.describe)
        let zones = try configuration.zones.map { name in
            Zone(name: name, region: configuration.region, capacityBytes: configuration.zoneCapacityBytes,
                 usedBytes: try database.usedBytes(zone: name))
        }
        return (configuration.region, zones)
    }

    public func registerInstance(_ request: RegisterInstanceRequest) async throws -> Instance {
        try injectFault(.register)
        try CloudValidation.checkInstanceName(request.name)
        if let zone = request.zone { try checkZone(zone, parameter: "zone") }
        if let limit = request.attachLimit, !(1...256).contains(limit) {
            throw CloudError.invalid("attachLimit", "must be 1 to 256, got \(limit)")
        }
        if let type = request.type { try CloudValidation.checkName(type, parameter: "type") }
        for address in request.addresses ?? [] where !["InternalIP", "ExternalIP", "Hostname", "InternalDNS", "ExternalDNS"].contains(address.type) {
            throw CloudError.invalid("addresses", "type \"\(CloudValidation.printable(address.type))\" is not one of InternalIP, ExternalIP, Hostname, InternalDNS, ExternalDNS")
        }
        return try database.transaction {
            if let existing = try database.instances(named: request.name).first, existing.state != .terminated {
                let same = (request.zone ?? existing.zone) == existing.zone && (request.type ?? existing.type) == existing.type
                    && (request.attachLimit ?? existing.attachLimit) == existing.attachLimit
                    && (request.addresses ?? existing.addresses) == existing.addresses
                guard same else {
                    throw CloudError(.alreadyExists, "instance \(request.name) is already registered as \(existing.id) with other parameters; terminate it first or register the same ones")
                }
                return existing
            }
            let zone = try request.zone ?? configuration.zones[try database.instanceCount() % configuration.zones.count]
            let instance = Instance(id: CloudValidation.newID(.instance), name: request.name, zone: zone,
                                    type: request.type ?? configuration.defaultInstanceType, state: .running,
                                    addresses: request.addresses ?? [InstanceAddress(type: "InternalIP", address: "127.0.0.1"),
                                                                     InstanceAddress(type: "Hostname", address: request.name)],
                                    attachLimit: request.attachLimit ?? configuration.defaultAttachLimit, createdAt: CloudJSON.now())
            try database.insert(instance)
            logger.info("instance registered", metadata: ["instance": "\(instance.id)", "name": "\(instance.name)", "zone": "\(zone)"])
            return instance
        }
    }

    public func describeInstance(id: String) async throws -> Instance {
        try injectFault(.describe)
        return try instance(id, parameter: "id")
    }

    public func findInstance(name: String) async throws -> Instance? {
        try injectFault(.describe)
        try CloudValidation.checkInstanceName(name)
        return try database.instances(named: name).first
    }

    public func listInstances(_ page: PageRequest) async throws -> Page<Instance> {
        try injectFault(.list)
        let (after, limit) = try pageBounds(page, .instance)
        return paged(try database.instances(after: after, limit: limit + 1), limit: limit, id: \.id)
    }

    public func setInstanceState(id: String, to state: InstanceState) async throws -> Instance {
        try injectFault(.instanceState)
        let current = try instance(id, parameter: "id")
        if current.state == state { return current }
        guard current.state != .terminated else {
            throw CloudError(.incorrectState, "instance \(id) is terminated; register a new instance instead")
        }
        if state == .terminated {
            // A terminated instance keeps no disks: detach them all, forcibly, as a cloud does.
            for attachment in try database.attachments(instanceId: id) {
                _ = try await startDetach(diskId: attachment.diskId, instanceId: id, force: true)
            }
        }
        try database.transaction { try database.setInstanceState(id, state) }
        logger.info("instance state changed", metadata: ["instance": "\(id)", "state": "\(state.rawValue)"])
        return try instance(id, parameter: "id")
    }

    // MARK: - Disks

    public func createDisk(_ request: CreateDiskRequest) async throws -> CloudOperation {
        try injectFault(.create)
        try CloudValidation.checkName(request.name, parameter: "name")
        try checkZone(request.zone, parameter: "zone")
        let size = try CloudValidation.checkSize(request.sizeBytes, maximum: configuration.maxDiskBytes)
        let type = request.type ?? "standard"
        guard ["standard", "ssd"].contains(type) else {
            throw CloudError.invalid("type", "\"\(CloudValidation.printable(type))\" is not a disk type; use standard or ssd")
        }
        try CloudValidation.checkTags(request.tags)
        try CloudValidation.checkToken(request.clientToken)
        guard request.snapshotId == nil || request.sourceDiskId == nil else {
            throw CloudError.invalid("snapshotId", "give either snapshotId or sourceDiskId, not both")
        }
        if let token = request.clientToken, let operation = try replay(token: token, request: request) { return operation }

        if let snapshotId = request.snapshotId {
            try CloudValidation.checkID(snapshotId, .snapshot, parameter: "snapshotId")
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
        let operation = newOperation("disk.create", target: disk.id)
        try database.transaction {
            let used = try database.usedBytes(zone: request.zone)
            guard used + size <= configuration.zoneCapacityBytes else {
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
        if let name = filter.name { try CloudValidation.checkName(name, parameter: "name") }
        if let zone = filter.zone { try checkZone(zone, parameter: "zone") }
        if let instanceId = filter.instanceId { try CloudValidation.checkID(instanceId, .instance, parameter: "instanceId") }
        if let tag = filter.tag, !tag.contains("=") { throw CloudError.invalid("tag", "\"\(CloudValidation.printable(tag))\" is not KEY=VALUE") }
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
        let operation = newOperation("disk.delete", target: id)
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
        if let running = try database.runningOperation(targetId: id), running.kind == "disk.resize" {
            throw CloudError(.incorrectState, "disk \(id) is being resized by \(running.id); wait for it")
        }
        let operation = newOperation("disk.resize", target: id)
        try database.transaction {
            let used = try database.usedBytes(zone: disk.zone)
            guard used - disk.sizeBytes + size <= configuration.zoneCapacityBytes else {
                throw CloudError(.quotaExceeded, "zone \(disk.zone) has \(configuration.zoneCapacityBytes - used) bytes left, \(size - disk.sizeBytes) more asked; delete disks first")
            }
            try database.setDiskSize(id, size)
            try database.insert(operation, argument: disk.sizeBytes)
        }
        launch(operation, delay: configuration.latency[.resize])
        return operation
    }

    public func attachDisk(id: String, instanceId: String, readOnly: Bool) async throws -> CloudOperation {
        try injectFault(.attach)
        let disk = try disk(id, parameter: "id")
        let instance = try instance(instanceId, parameter: "instanceId")
        if let existing = disk.attachments.first(where: { $0.instanceId == instanceId }) {
            if existing.readOnly != readOnly, [.attaching, .attached].contains(existing.state) {
                throw CloudError(.alreadyExists, "disk \(id) is attached to \(instanceId) \(existing.readOnly ? "read-only" : "read-write"); detach it before attaching it \(readOnly ? "read-only" : "read-write")")
            }
            switch existing.state {
            case .attached: return try finishedOperation("disk.attach", target: id, instance: instanceId)
            case .attaching:
                if let running = try database.runningOperation(targetId: id, instanceId: instanceId) { return running }
            case .detaching:
                throw CloudError(.incorrectState, "disk \(id) is detaching from \(instanceId); wait for that, then attach")
            case .lost, .detached:
                break
            }
        }
        guard instance.state == .running else {
            throw CloudError(.incorrectState, "instance \(instanceId) is \(instance.state.rawValue); start it before attaching disks")
        }
        guard instance.zone == disk.zone else {
            throw CloudError.invalid("instanceId", "instance \(instanceId) is in zone \(instance.zone) but disk \(id) is in \(disk.zone); disks attach within their zone")
        }
        guard [.available, .inUse].contains(disk.state) else {
            throw CloudError(.incorrectState, "disk \(id) is \(disk.state.rawValue)\(disk.failureReason.map { " (\($0))" } ?? ""); it cannot be attached now")
        }
        let others = disk.attachments.filter { $0.instanceId != instanceId && $0.state != .lost }
        if !disk.multiAttach, let other = others.first {
            throw CloudError(.inUse, "disk \(id) is attached to instance \(other.instanceId); detach it there first, or create the disk with multiAttach")
        }
        let operation = newOperation("disk.attach", target: id, instance: instanceId)
        try database.transaction {
            let attached = try database.attachments(instanceId: instanceId).filter { $0.diskId != id }
            guard attached.count < instance.attachLimit else {
                throw CloudError(.attachLimitExceeded, "instance \(instanceId) already has \(attached.count) of \(instance.attachLimit) disks attached; detach one first")
            }
            try database.upsert(Attachment(diskId: id, instanceId: instanceId, state: .attaching, devicePath: nil, readOnly: readOnly))
            try database.refreshDiskState(id)
            try database.insert(operation)
        }
        launch(operation, delay: configuration.latency[.attach])
        return operation
    }

    public func detachDisk(id: String, instanceId: String, force: Bool) async throws -> CloudOperation {
        try injectFault(.detach)
        try CloudValidation.checkID(instanceId, .instance, parameter: "instanceId")
        _ = try disk(id, parameter: "id")
        return try await startDetach(diskId: id, instanceId: instanceId, force: force)
    }

    private func startDetach(diskId id: String, instanceId: String, force: Bool) async throws -> CloudOperation {
        let disk = try disk(id, parameter: "id")
        guard let existing = disk.attachments.first(where: { $0.instanceId == instanceId }) else {
            return try finishedOperation("disk.detach", target: id, instance: instanceId)
        }
        switch existing.state {
        case .detaching:
            if let running = try database.runningOperation(targetId: id, instanceId: instanceId) { return running }
        case .attaching:
            guard force else {
                throw CloudError(.incorrectState, "disk \(id) is still attaching to \(instanceId); wait for that, then detach")
            }
            // The detach is queued behind the attach and undoes it.
        case .attached, .lost, .detached:
            break
        }
        if !force, let path = existing.devicePath, let reason = devices.busyReason(devicePath: path) {
            throw CloudError(.inUse, "disk \(id) is in use on \(path) (\(reason)): unmount it first, or detach with force")
        }
        let operation = newOperation("disk.detach", target: id, instance: instanceId)
        try database.transaction {
            try database.upsert(Attachment(diskId: id, instanceId: instanceId, state: .detaching, devicePath: existing.devicePath,
                                           readOnly: existing.readOnly))
            try database.insert(operation, argument: force ? 1 : 0)
        }
        launch(operation, delay: configuration.latency[.detach])
        return operation
    }

    // MARK: - Snapshots

    public func createSnapshot(_ request: CreateSnapshotRequest) async throws -> CloudOperation {
        try injectFault(.snapshot)
        try CloudValidation.checkName(request.name, parameter: "name")
        try CloudValidation.checkTags(request.tags)
        try CloudValidation.checkToken(request.clientToken)
        let disk = try disk(request.diskId, parameter: "diskId")
        if let token = request.clientToken, let operation = try replay(token: token, request: request) { return operation }
        guard [.available, .inUse].contains(disk.state) else {
            throw CloudError(.incorrectState, "disk \(disk.id) is \(disk.state.rawValue); snapshots are taken of available or in-use disks")
        }
        let snapshot = Snapshot(id: CloudValidation.newID(.snapshot), name: request.name, sourceDiskId: disk.id,
                                sizeBytes: disk.sizeBytes, state: .pending, tags: request.tags ?? [:], createdAt: CloudJSON.now())
        let operation = newOperation("snapshot.create", target: snapshot.id)
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
        let operation = newOperation("snapshot.delete", target: id)
        try database.transaction {
            try database.setSnapshotState(id, .deleting)
            try database.insert(operation)
        }
        launch(operation, delay: configuration.latency[.deleteSnapshot])
        return operation
    }

    public func describeOperation(id: String) async throws -> CloudOperation {
        try CloudValidation.checkID(id, .operation, parameter: "id")
        guard let (operation, _) = try database.operation(id: id) else { throw CloudError.notFound("operation", id) }
        return operation
    }

    public func waitForOperation(id: String, timeout: Duration) async throws -> CloudOperation {
        let deadline = ContinuousClock.now + min(timeout, .seconds(30))
        var operation = try await describeOperation(id: id)
        while !operation.isDone && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(2))
            operation = try await describeOperation(id: id)
        }
        return operation
    }

    // MARK: - The asynchronous work

    /// Runs the operation's work after `delay`, and after the operations already queued on the
    /// same disk or snapshot: work on one target happens in the order it was asked for (a
    /// detach never overtakes the attach it undoes).
    private func launch(_ operation: CloudOperation, delay: Duration?) {
        let previous = tails[operation.targetId]?.task
        let task = Task {
            await previous?.value
            if let delay, delay > .zero { try? await Task.sleep(for: delay) }
            await self.perform(operation.id)
        }
        work[operation.id] = task
        tails[operation.targetId] = (operation.id, task)
    }

    private func perform(_ operationId: String) async {
        defer {
            work[operationId] = nil
            if let target = tails.first(where: { $0.value.operationId == operationId })?.key { tails[target] = nil }
        }
        guard let (operation, argument) = try? database.operation(id: operationId), operation.state == .running else { return }
        do {
            let record = try await execute(operation, argument: argument)
            try database.transaction {
                try record()
                try database.finish(operationId: operationId, error: nil, at: CloudJSON.now())
            }
            logger.info("operation done", metadata: ["operation": "\(operationId)", "kind": "\(operation.kind)", "target": "\(operation.targetId)"])
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

    /// Does the work of `operation` (safe to run again after a crash) and returns how to record
    /// its result, which `perform` commits in one transaction with the operation's end.
    private func execute(_ operation: CloudOperation, argument: Int64?) async throws -> () throws -> Void {
        let database = self.database
        let id = operation.targetId
        switch operation.kind {
        case "disk.create":
            guard let disk = try database.disk(id: id) else { return {} }
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
            return { try database.setDiskState(id, .available) }
        case "disk.delete":
            guard let disk = try database.disk(id: id) else { return {} }
            try await devices.deleteDisk(zone: disk.zone, diskId: id)
            return { try database.deleteDisk(id) }
        case "disk.resize":
            guard let disk = try database.disk(id: id) else { return {} }
            let device = disk.attachments.compactMap(\.devicePath).first
            try await devices.resizeDisk(zone: disk.zone, diskId: id, sizeBytes: disk.sizeBytes, devicePath: device)
            return {}
        case "disk.attach":
            guard let disk = try database.disk(id: id), let instanceId = operation.instanceId,
                  let attachment = disk.attachments.first(where: { $0.instanceId == instanceId }) else { return {} }
            let device = try await devices.attach(zone: disk.zone, diskId: id, readOnly: attachment.readOnly)
            return {
                // A forced detach queued meanwhile keeps the attachment "detaching".
                let state = try database.attachments(diskId: id).first { $0.instanceId == instanceId }?.state == .detaching
                    ? AttachmentState.detaching : .attached
                try database.upsert(Attachment(diskId: id, instanceId: instanceId, state: state, devicePath: device, readOnly: attachment.readOnly))
                try database.refreshDiskState(id)
            }
        case "disk.detach":
            guard let disk = try database.disk(id: id), let instanceId = operation.instanceId,
                  let attachment = disk.attachments.first(where: { $0.instanceId == instanceId }) else { return {} }
            let sharedDevice = disk.attachments.contains { $0.instanceId != instanceId && $0.devicePath == attachment.devicePath }
            if let path = attachment.devicePath, !sharedDevice {
                try await devices.detach(devicePath: path, zone: disk.zone, diskId: id, force: argument == 1)
            }
            return {
                try database.deleteAttachment(diskId: id, instanceId: instanceId)
                try database.refreshDiskState(id)
            }
        case "snapshot.create":
            guard let snapshot = try database.snapshot(id: id), let zone = try database.snapshotSourceZone(id: id) else { return {} }
            guard let disk = try database.disk(id: snapshot.sourceDiskId) else {
                throw CloudError(.notFound, "disk \(snapshot.sourceDiskId) was deleted before snapshot \(id) was taken")
            }
            try await devices.createSnapshot(snapshotId: id, zone: zone, diskId: disk.id,
                                             devicePath: disk.attachments.compactMap(\.devicePath).first)
            return { try database.setSnapshotState(id, .completed) }
        case "snapshot.delete":
            try await devices.deleteSnapshot(snapshotId: id)
            return { try database.deleteSnapshot(id) }
        default:
            throw CloudError(.internal, "unknown operation kind \(operation.kind)")
        }
    }

    /// Puts the target back into a consistent state after its work failed.
    private func rollBack(_ operation: CloudOperation, argument: Int64?, reason: String) throws {
        let id = operation.targetId
        switch operation.kind {
        case "disk.create", "disk.delete":
            try database.setDiskState(id, .failed, failure: "\(operation.kind) failed: \(reason)")
        case "disk.resize":
            if let previous = argument { try database.setDiskSize(id, previous) }
        case "disk.attach":
            if let instanceId = operation.instanceId {
                try database.deleteAttachment(diskId: id, instanceId: instanceId)
                try database.refreshDiskState(id)
            }
        case "disk.detach":
            if let instanceId = operation.instanceId,
               let attachment = try database.attachments(diskId: id).first(where: { $0.instanceId == instanceId }) {
                try database.upsert(Attachment(diskId: id, instanceId: instanceId, state: .attached, devicePath: attachment.devicePath,
                                               readOnly: attachment.readOnly))
            }
        case "snapshot.create":
            try database.setSnapshotState(id, .failed)
        case "snapshot.delete":
            try database.setSnapshotState(id, .completed)
        default:
            break
        }
    }

    // MARK: - Helpers

    private func newOperation(_ kind: String, target: String, instance: String? = nil) -> CloudOperation {
        CloudOperation(id: CloudValidation.newID(.operation), kind: kind, targetId: target, instanceId: instance,
                  state: .running, error: nil, createdAt: CloudJSON.now(), doneAt: nil)
    }

    /// Records and returns an operation that had nothing to do.
    private func finishedOperation(_ kind: String, target: String, instance: String?) throws -> CloudOperation {
        var operation = newOperation(kind, target: target, instance: instance)
        operation.state = .succeeded
        operation.doneAt = operation.createdAt
        try database.transaction { try database.insert(operation) }
        return operation
    }

    /// The operation a token was first used for, when `request` matches; AlreadyExists when not.
    private func replay<R: Encodable>(token: String, request: R) throws -> CloudOperation? {
        guard let recorded = try database.token(token) else { return nil }
        guard recorded.request == (try tokenKey(request)) else {
            throw CloudError(.alreadyExists, "clientToken \(token) was used for \(recorded.resourceId) with other parameters; use a new token for a different request")
        }
        guard let (operation, _) = try database.operation(id: recorded.operationId) else {
            var done = newOperation("replay", target: recorded.resourceId)
            done.state = .succeeded
            return done
        }
        return operation
    }

    /// The request as recorded with its token: its canonical JSON without the token itself.
    private func tokenKey<R: Encodable>(_ request: R) throws -> String {
        var text = try database.json(request)
        if let range = text.range(of: #","clientToken":"[^"]*""#, options: .regularExpression) { text.removeSubrange(range) }
        if let range = text.range(of: #""clientToken":"[^"]*",?"#, options: .regularExpression) { text.removeSubrange(range) }
        return text
    }

    private func injectFault(_ action: CloudAction) throws {
        guard let rate = configuration.faults[action], rate > 0 else { return }
        let roll = Double(dice.next() >> 11) / Double(1 << 53)
        guard roll < rate else { return }
        if dice.next() & 1 == 0 {
            throw CloudError(.throttled, "injected fault: too many \(action.rawValue) requests; retry after a pause")
        }
        throw CloudError(.internal, "injected fault: \(action.rawValue) failed inside the cloud; retry")
    }

    private func checkZone(_ zone: String, parameter: String) throws {
        guard configuration.zones.contains(zone) else {
            throw CloudError.invalid(parameter, "\"\(CloudValidation.printable(zone))\" is not a zone of region \(configuration.region); zones are \(configuration.zones.joined(separator: ", "))")
        }
    }

    private func instance(_ id: String, parameter: String) throws -> Instance {
        try CloudValidation.checkID(id, .instance, parameter: parameter)
        guard let instance = try database.instance(id: id) else { throw CloudError.notFound("instance", id) }
        return instance
    }

    private func disk(_ id: String, parameter: String) throws -> Disk {
        try CloudValidation.checkID(id, .disk, parameter: parameter)
        guard let disk = try database.disk(id: id) else { throw CloudError.notFound("disk", id) }
        return disk
    }

    private func snapshot(_ id: String, parameter: String) throws -> Snapshot {
        try CloudValidation.checkID(id, .snapshot, parameter: parameter)
        guard let snapshot = try database.snapshot(id: id) else { throw CloudError.notFound("snapshot", id) }
        return snapshot
    }

    /// The id a page starts after, and its length.
    private func pageBounds(_ page: PageRequest, _ kind: ResourceKind) throws -> (String?, Int) {
        let limit = page.limit ?? 100
        guard (1...1000).contains(limit) else { throw CloudError.invalid("limit", "must be 1 to 1000, got \(limit)") }
        guard let token = page.pageToken else { return (nil, limit) }
        guard let data = Data(base64Encoded: token), let after = String(data: data, encoding: .utf8),
              (try? CloudValidation.checkID(after, kind, parameter: "pageToken")) != nil else {
            throw CloudError.invalid("pageToken", "\"\(CloudValidation.printable(token))\" is not a page token of this list; start again without one")
        }
        return (after, limit)
    }

    private func paged<T>(_ rows: [T], limit: Int, id: KeyPath<T, String>) -> Page<T> {
        guard rows.count > limit else { return Page(items: rows, nextPageToken: nil) }
        let items = Array(rows.prefix(limit))
        return Page(items: items, nextPageToken: Data(items[limit - 1][keyPath: id].utf8).base64EncodedString())
    }
}

/// A small, seedable random number generator for the fault dice.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
