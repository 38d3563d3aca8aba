// Where the simulator's disks physically are. `LoopDeviceBackend` keeps each disk as a sparse
// file under the volumes dir and attaches it with losetup; `MemoryDeviceBackend` only pretends,
// for tests of the code above the cloud. Paths are built here from validated ids only.
import Foundation
import HostSystem
import Synchronization

public protocol DeviceBackend: Sendable {
    /// Makes the disk's backing file: a sparse file of `sizeBytes`, or a copy of `source`
    /// (grown to `sizeBytes`). Idempotent: an existing file is replaced.
    func createDisk(zone: String, diskId: String, sizeBytes: Int64, copying source: DataSource?) async throws
    func deleteDisk(zone: String, diskId: String) async throws
    func diskExists(zone: String, diskId: String) -> Bool
    /// Grows the backing file, and tells the loop device at `devicePath` (if any) to see it.
    func resizeDisk(zone: String, diskId: String, sizeBytes: Int64, devicePath: String?) async throws
    /// Attaches the disk and returns its device path; reuses a device that already backs it the
    /// same way (read-only or not).
    func attach(zone: String, diskId: String, readOnly: Bool) async throws -> String
    /// Removes the device; refuses with InUse when it is mounted, unless `force`.
    func detach(devicePath: String, zone: String, diskId: String, force: Bool) async throws
    /// Why the device cannot be detached now ("mounted at /x"), or nil when it is free.
    func busyReason(devicePath: String) -> String?
    /// True when `devicePath` exists and is backed by the disk's file.
    func deviceBacks(devicePath: String, zone: String, diskId: String) -> Bool
    func createSnapshot(snapshotId: String, zone: String, diskId: String, devicePath: String?) async throws
    func deleteSnapshot(snapshotId: String) async throws
    func snapshotExists(snapshotId: String) -> Bool
}

/// What a new disk's data comes from.
public enum DataSource: Sendable, Equatable {
    case snapshot(String)
    case disk(zone: String, id: String)
}

/// Disks as sparse files under `root` (`<zone>/<disk-id>.img`, `snapshots/<snap-id>.img`),
/// attached as loop devices.
public struct LoopDeviceBackend: DeviceBackend {
    public let root: URL

    public init(root: URL) throws {
        self.root = root.standardizedFileURL
        try FileManager.default.createDirectory(at: self.root.appendingPathComponent("snapshots"), withIntermediateDirectories: true)
    }

    public func diskPath(zone: String, diskId: String) -> String {
        root.appendingPathComponent(zone).appendingPathComponent(diskId + Self.diskSuffix).path
    }

    private static let diskSuffix = ".img"

    /// The disk whose backing file is `path` (`<volumes>/<zone>/<disk-id>.img`), or nil for any
    /// other file (a snapshot, a temporary copy, a deleted file shown as "… (deleted)"). The one
    /// place that reads this naming back: the CSI node plugin asks it which volume a loop
    /// device holds.
    public static func diskID(backingFile path: String) -> String? {
        let name = (path as NSString).lastPathComponent
        guard name.hasSuffix(diskSuffix), (path as NSString).deletingLastPathComponent.hasSuffix("/snapshots") == false else { return nil }
        let id = String(name.dropLast(diskSuffix.count))
        return (try? CloudValidation.checkID(id, .disk, parameter: "backing file")) != nil ? id : nil
    }

    public func snapshotPath(_ snapshotId: String) -> String {
        root.appendingPathComponent("snapshots").appendingPathComponent(snapshotId + ".img").path
    }

    public func createDisk(zone: String, diskId: String, sizeBytes: Int64, copying source: DataSource?) async throws {
        let path = diskPath(zone: zone, diskId: diskId)
        let zoneDirectory = (path as NSString).deletingLastPathComponent
        if !FileManager.default.fileExists(atPath: zoneDirectory) {
            try FileManager.default.createDirectory(atPath: zoneDirectory, withIntermediateDirectories: true)
            FileSystem.syncDirectory(of: zoneDirectory)   // the zone's entry too: the disk's rename into it is synced below
        }
        let temporary = path + ".tmp"
        unlink(temporary)
        do {
            switch source {
            case nil:
                try FileSystem.createSparseFile(temporary, size: sizeBytes)
            case .snapshot(let snapshotId):
                try await FileSystem.copy(snapshotPath(snapshotId), to: temporary)
                try FileSystem.grow(temporary, to: sizeBytes)
            case .disk(let sourceZone, let sourceId):
                try await FileSystem.copy(diskPath(zone: sourceZone, diskId: sourceId), to: temporary)
                try FileSystem.grow(temporary, to: sizeBytes)
            }
            try FileSystem.commit(temporary, to: path)
        } catch {
            unlink(temporary)  // a failed copy leaves no half-made file behind
            throw error
        }
    }

    public func deleteDisk(zone: String, diskId: String) async throws {
        try FileSystem.remove(diskPath(zone: zone, diskId: diskId))
    }

    public func diskExists(zone: String, diskId: String) -> Bool {
        FileManager.default.fileExists(atPath: diskPath(zone: zone, diskId: diskId))
    }

    public func resizeDisk(zone: String, diskId: String, sizeBytes: Int64, devicePath: String?) async throws {
        try FileSystem.grow(diskPath(zone: zone, diskId: diskId), to: sizeBytes)
        if let devicePath { try await SystemCommand.check(["losetup", "--set-capacity", devicePath]) }
    }

    public func attach(zone: String, diskId: String, readOnly: Bool) async throws -> String {
        let path = diskPath(zone: zone, diskId: diskId)
        if let existing = LoopDevices.devices(backing: path).first(where: { LoopDevices.isReadOnly($0) == readOnly && !LoopDevices.isDetaching($0) }) {
            return existing
        }
        let device = try await SystemCommand.check(["losetup", "--find", "--show"] + (readOnly ? ["--read-only"] : []) + [path])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        guard device.hasPrefix("/dev/loop") else { throw CloudError(.internal, "losetup printed \"\(device)\" instead of a loop device") }
        return device
    }

    public func detach(devicePath: String, zone: String, diskId: String, force: Bool) async throws {
        guard deviceBacks(devicePath: devicePath, zone: zone, diskId: diskId) else { return }
        if !force, let reason = await settledBusyReason(devicePath: devicePath) {
            throw CloudError(.inUse, "disk \(diskId) is in use on \(devicePath) (\(reason)): unmount it first, or detach with force")
        }
        // A device some program still holds open (udev's probe, a forced detach of a mounted
        // one) is detached by the kernel at its last close; until then it is `isDetaching`, and
        // neither `attach` nor `deviceBacks` counts it.
        try await LoopDevices.detach(devicePath, settle: .seconds(2))
    }

    public func busyReason(devicePath: String) -> String? {
        LoopDevices.busyReason(devicePath)
    }

    public func deviceBacks(devicePath: String, zone: String, diskId: String) -> Bool {
        LoopDevices.backingFile(of: devicePath) == diskPath(zone: zone, diskId: diskId) && !LoopDevices.isDetaching(devicePath)
    }

    public func createSnapshot(snapshotId: String, zone: String, diskId: String, devicePath: String?) async throws {
        if let devicePath { await LoopDevices.flush(devicePath) }
        let path = snapshotPath(snapshotId)
        let temporary = path + ".tmp"
        unlink(temporary)
        do {
            try await FileSystem.copy(diskPath(zone: zone, diskId: diskId), to: temporary)
            try FileSystem.commit(temporary, to: path)
        } catch {
            unlink(temporary)
            throw error
        }
    }

    public func deleteSnapshot(snapshotId: String) async throws {
        try FileSystem.remove(snapshotPath(snapshotId))
    }

    public func snapshotExists(snapshotId: String) -> Bool {
        FileManager.default.fileExists(atPath: snapshotPath(snapshotId))
    }
}

/// No files, no devices: attachments get made-up device paths. For tests of the layers above.
public final class MemoryDeviceBackend: DeviceBackend, Sendable {
    private struct State {
        var disks: [String: Int64] = [:]
        var snapshots: Set<String> = []
        var devices: [String: String] = [:]  // device path -> disk id
        var nextDevice = 0
        var mounted: Set<String> = []
    }
    private let state = Mutex(State())

    /// Device paths a test has declared mounted: detaching them needs force.
    public var mounted: Set<String> {
        get { state.withLock { $0.mounted } }
        set { state.withLock { $0.mounted = newValue } }
    }

    public init() {}

    public func createDisk(zone: String, diskId: String, sizeBytes: Int64, copying source: DataSource?) async throws {
        state.withLock { $0.disks[diskId] = sizeBytes }
    }
    public func deleteDisk(zone: String, diskId: String) async throws { _ = state.withLock { $0.disks.removeValue(forKey: diskId) } }
    public func diskExists(zone: String, diskId: String) -> Bool { state.withLock { $0.disks[diskId] != nil } }
    public func resizeDisk(zone: String, diskId: String, sizeBytes: Int64, devicePath: String?) async throws {
        state.withLock { $0.disks[diskId] = sizeBytes }
    }
    public func attach(zone: String, diskId: String, readOnly: Bool) async throws -> String {
        state.withLock { state in
            if let existing = state.devices.first(where: { $0.value == diskId })?.key { return existing }
            state.nextDevice += 1
            let path = "/dev/memory\(state.nextDevice)"
            state.devices[path] = diskId
            return path
        }
    }
    public func detach(devicePath: String, zone: String, diskId: String, force: Bool) async throws {
        try state.withLock { state in
            if !force, state.mounted.contains(devicePath) {
                throw CloudError(.inUse, "disk \(diskId) is in use on \(devicePath) (mounted): unmount it first, or detach with force")
            }
            state.devices.removeValue(forKey: devicePath)
        }
    }
    public func busyReason(devicePath: String) -> String? { state.withLock { $0.mounted.contains(devicePath) ? "mounted" : nil } }
    public func deviceBacks(devicePath: String, zone: String, diskId: String) -> Bool { state.withLock { $0.devices[devicePath] == diskId } }
    public func createSnapshot(snapshotId: String, zone: String, diskId: String, devicePath: String?) async throws {
        _ = state.withLock { $0.snapshots.insert(snapshotId) }
    }
    public func deleteSnapshot(snapshotId: String) async throws { _ = state.withLock { $0.snapshots.remove(snapshotId) } }
    public func snapshotExists(snapshotId: String) -> Bool { state.withLock { $0.snapshots.contains(snapshotId) } }

    /// The made-up device paths now attached.
    public var attachedDevices: [String] { state.withLock { $0.devices.keys.sorted() } }

    /// Forgets every device, as a reboot would.
    public func simulateReboot() { state.withLock { $0.devices.removeAll() } }
}

extension DeviceBackend {
    /// `busyReason`, looked at again for up to a second while the device is only opened
    /// exclusively, with no mount here showing it: such a holder is usually passing — a
    /// container's new mount namespace holds copies of this one's mounts until it pivots into
    /// its root, a probe opens the device for a moment. A holder that stays is still refused.
    func settledBusyReason(devicePath: String) async -> String? {
        var reason = busyReason(devicePath: devicePath)
        for _ in 0..<10 {
            guard reason == LoopDevices.openedExclusively else { return reason }
            try? await Task.sleep(for: .milliseconds(100))
            reason = busyReason(devicePath: devicePath)
        }
        return reason
    }
}
