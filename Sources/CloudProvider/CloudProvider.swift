// The cloud as the cluster sees it: the cloud controller manager and the CSI controller plugin
// reach disks and instances only through this protocol. Implemented by `CloudClient` (the
// simulator's HTTP API) and by `CloudSimulator` itself (in-process, used by tests through
// `CloudSimulator.inMemory()`).
//
// Slow work — creating, deleting, resizing, attaching and detaching disks, snapshots — is
// asynchronous as on a real cloud: the call returns an `CloudOperation` at once, the resource shows
// its intermediate state (creating, attaching, …), and `wait(for:)` polls the operation.
import Foundation

public protocol CloudProvider: Sendable {
    /// The region's name and its zones with their capacity.
    func describeRegion() async throws -> (region: String, zones: [Zone])

    func registerInstance(_ request: RegisterInstanceRequest) async throws -> Instance
    func describeInstance(id: String) async throws -> Instance
    /// The non-terminated instance called `name`, or the latest terminated one; nil when none.
    func findInstance(name: String) async throws -> Instance?
    func listInstances(_ page: PageRequest) async throws -> Page<Instance>
    /// Stops, starts or terminates an instance. Terminating detaches its disks.
    func setInstanceState(id: String, to state: InstanceState) async throws -> Instance

    func createDisk(_ request: CreateDiskRequest) async throws -> CloudOperation
    func describeDisk(id: String) async throws -> Disk
    func listDisks(_ filter: DiskFilter, _ page: PageRequest) async throws -> Page<Disk>
    /// Refused while the disk is attached.
    func deleteDisk(id: String) async throws -> CloudOperation
    /// Adds `tags` to the disk's tags (a key already there gets the new value); at once, no operation.
    func tagDisk(id: String, tags: [String: String]) async throws -> Disk
    /// Grows a disk (never shrinks it); an attached disk's device sees the new size.
    func resizeDisk(id: String, sizeBytes: Int64) async throws -> CloudOperation
    /// Attaching a disk that is already attached to that instance the same way returns a finished
    /// operation; attached the other way (read-only or not) is AlreadyExists.
    func attachDisk(id: String, instanceId: String, readOnly: Bool) async throws -> CloudOperation
    /// Refused while the device is mounted unless `force`; detaching a detached disk succeeds.
    func detachDisk(id: String, instanceId: String, force: Bool) async throws -> CloudOperation

    func createSnapshot(_ request: CreateSnapshotRequest) async throws -> CloudOperation
    func describeSnapshot(id: String) async throws -> Snapshot
    func listSnapshots(sourceDiskId: String?, _ page: PageRequest) async throws -> Page<Snapshot>
    func deleteSnapshot(id: String) async throws -> CloudOperation

    func describeOperation(id: String) async throws -> CloudOperation
    /// The operation once it is done, or as it is when `timeout` (at most 30 s) has passed:
    /// a long poll, so a caller learns of the end at once without polling.
    func waitForOperation(id: String, timeout: Duration) async throws -> CloudOperation
}

extension CloudProvider {
    /// Attaches read-write.
    public func attachDisk(id: String, instanceId: String) async throws -> CloudOperation {
        try await attachDisk(id: id, instanceId: instanceId, readOnly: false)
    }

    /// Waits (long polls) until `operation` is done; throws its error when it failed, and
    /// `CloudError(.internal…)` when it has not finished within `timeout`.
    @discardableResult
    public func wait(for operation: CloudOperation, timeout: Duration = .seconds(120)) async throws -> CloudOperation {
        var current = operation
        let deadline = ContinuousClock.now + timeout
        while !current.isDone {
            let left = deadline - ContinuousClock.now
            guard left > .zero else {
                throw CloudError(.internal, "operation \(operation.id) (\(operation.kind) of \(operation.targetId)) still running after \(timeout)")
            }
            current = try await waitForOperation(id: operation.id, timeout: min(left, .seconds(30)))
        }
        if current.state == .failed, let error = current.error { throw CloudError(body: error) }
        return current
    }

    /// The attachment of disk `id` to `instanceId`, or one in state `detached` when there is none.
    public func describeAttachment(diskId: String, instanceId: String) async throws -> Attachment {
        let disk = try await describeDisk(id: diskId)
        return disk.attachments.first { $0.instanceId == instanceId }
            ?? Attachment(diskId: diskId, instanceId: instanceId, state: .detached, devicePath: nil)
    }

    /// Every disk matching `filter`, all pages.
    public func allDisks(_ filter: DiskFilter = DiskFilter()) async throws -> [Disk] {
        var disks: [Disk] = []
        var token: String?
        repeat {
            let page = try await listDisks(filter, PageRequest(limit: 1000, pageToken: token))
            disks += page.items
            token = page.nextPageToken
        } while token != nil
        return disks
    }
}
