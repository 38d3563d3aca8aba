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
//
// The files: instances, disks, attachments, snapshots and the operation engine each in their own
// `CloudSimulator+….swift`; lookups and idempotency here.
//
// The actor runs on a thread of its own (`ThreadExecutor`), not on Swift's cooperative pool:
// its SQLite transactions (synchronous=FULL, an fsync each) and its file syncs block, and a
// blocked pool thread stalls every other task of the process.
import Foundation
import HostSystem
import Logging
import Primitives

public actor CloudSimulator: CloudProvider {
    public let configuration: SimulatorConfiguration
    let database: CloudDatabase
    let devices: DeviceBackend
    let logger: Logger
    var work: [String: Task<Void, Never>] = [:]
    /// The last operation queued on each target.
    var tails: [String: (operationId: String, task: Task<Void, Never>)] = [:]
    var dice: SplitMix64
    /// Long polls waiting for an operation to finish, by operation id and waiter.
    var completionWaiters: [String: [UInt64: CheckedContinuation<Void, Never>]] = [:]
    var nextWaiter: UInt64 = 0
    /// Tests: the next operation of this kind fails to record its result (after its work).
    var recordFailure: OperationKind?
    private let executor: ThreadExecutor

    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    /// Opens (creating if needed) the state database at `statePath`. Call `start()` before serving.
    public init(configuration: SimulatorConfiguration, statePath: String, devices: DeviceBackend, logger: Logger) throws {
        self.configuration = configuration
        self.database = try CloudDatabase(path: statePath)
        self.devices = devices
        self.logger = logger
        self.dice = SplitMix64(seed: configuration.faultSeed ?? UInt64.random(in: .min ... .max))
        self.executor = ThreadExecutor(name: "ballast-cloud")
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
    func reconcile() throws {
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
                let operation = newOperation(.diskAttach, target: disk.id, instance: attachment.instanceId)
                try database.transaction {
                    try database.upsert(Attachment(diskId: disk.id, instanceId: attachment.instanceId, state: .attaching, devicePath: nil,
                                                   readOnly: attachment.readOnly))
                    try database.insert(operation)
                }
            }
        }
    }

    // MARK: - Helpers

    /// Tests: the name of the thread the actor runs on, as the kernel has it.
    func currentThreadName() -> String? {
        (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8))?.trimmingCharacters(in: .newlines)
    }

    /// Tests: how many times an operation was read from the database.
    var operationLookups: Int { database.operationLookups }

    func newOperation(_ kind: OperationKind, target: String, instance: String? = nil) -> CloudOperation {
        CloudOperation(id: CloudValidation.newID(.operation), kind: kind, targetId: target, instanceId: instance,
                  state: .running, error: nil, createdAt: CloudJSON.now(), doneAt: nil)
    }

    /// Records and returns an operation that had nothing to do.
    func finishedOperation(_ kind: OperationKind, target: String, instance: String?) throws -> CloudOperation {
        var operation = newOperation(kind, target: target, instance: instance)
        operation.state = .succeeded
        operation.doneAt = operation.createdAt
        try database.transaction { try database.insert(operation) }
        return operation
    }

    /// The operation a token was first used for, when `request` matches; AlreadyExists when not.
    func replay<R: TokenedRequest>(token: String, request: R) throws -> CloudOperation? {
        guard let recorded = try database.token(token) else { return nil }
        guard recorded.request == (try tokenKey(request)) else {
            throw CloudError(.alreadyExists, "clientToken \(token) was used for \(recorded.resourceId) with other parameters; use a new token for a different request")
        }
        guard let (operation, _) = try database.operation(id: recorded.operationId) else {
            // Pruned after a day: the create it answered is long done.
            var done = newOperation(R.operationKind, target: recorded.resourceId)
            done.state = .succeeded
            done.doneAt = done.createdAt
            return done
        }
        return operation
    }

    /// The request as recorded with its token: its canonical JSON (sorted keys) with the token
    /// itself taken out of the value, not out of the text, so that a tag that happens to be
    /// called clientToken still tells two requests apart.
    func tokenKey<R: TokenedRequest>(_ request: R) throws -> String {
        var keyed = request
        keyed.clientToken = nil
        return try database.json(keyed)
    }

    func injectFault(_ action: CloudAction) throws {
        guard let rate = configuration.faults[action], rate > 0 else { return }
        let roll = Double(dice.next() >> 11) / Double(1 << 53)
        guard roll < rate else { return }
        let fault = dice.next() & 1 == 0
            ? CloudError(.throttled, "injected fault: too many \(action.rawValue) requests; retry after a pause")
            : CloudError(.internal, "injected fault: \(action.rawValue) failed inside the cloud; retry")
        logger.warning("injected fault", metadata: ["action": "\(action.rawValue)", "error": "\(fault.code)"])
        throw fault
    }

    func instance(_ id: String, parameter: String) throws -> Instance {
        try CloudValidation.checkID(id, .instance, parameter: parameter)
        guard let instance = try database.instance(id: id) else { throw CloudError.notFound("instance", id) }
        return instance
    }

    func disk(_ id: String, parameter: String) throws -> Disk {
        try CloudValidation.checkID(id, .disk, parameter: parameter)
        guard let disk = try database.disk(id: id) else { throw CloudError.notFound("disk", id) }
        return disk
    }

    func snapshot(_ id: String, parameter: String) throws -> Snapshot {
        try CloudValidation.checkID(id, .snapshot, parameter: parameter)
        guard let snapshot = try database.snapshot(id: id) else { throw CloudError.notFound("snapshot", id) }
        return snapshot
    }

    /// The id a page starts after, and its length.
    func pageBounds(_ page: PageRequest, _ kind: ResourceKind) throws -> (String?, Int) {
        let limit = page.limit ?? 100
        guard (1...1000).contains(limit) else { throw CloudError.invalid("limit", "must be 1 to 1000, got \(limit)") }
        guard let token = page.pageToken else { return (nil, limit) }
        guard let data = Data(base64Encoded: token), let after = String(data: data, encoding: .utf8),
              (try? CloudValidation.checkID(after, kind, parameter: "pageToken")) != nil else {
            throw CloudError.invalid("pageToken", "\"\(CloudValidation.printable(token))\" is not a page token of this list; start again without one")
        }
        return (after, limit)
    }

    func paged<T>(_ rows: [T], limit: Int, id: KeyPath<T, String>) -> Page<T> {
        guard rows.count > limit else { return Page(items: rows, nextPageToken: nil) }
        let items = Array(rows.prefix(limit))
        return Page(items: items, nextPageToken: Data(items[limit - 1][keyPath: id].utf8).base64EncodedString())
    }
}

/// A create that carries an idempotency token.
protocol TokenedRequest: Encodable {
    var clientToken: String? { get set }
    /// The kind of the operation it starts.
    static var operationKind: OperationKind { get }
}

extension CreateDiskRequest: TokenedRequest {
    static var operationKind: OperationKind { .diskCreate }
}

extension CreateSnapshotRequest: TokenedRequest {
    static var operationKind: OperationKind { .snapshotCreate }
}
