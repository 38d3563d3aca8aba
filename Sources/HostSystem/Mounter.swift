// The seam between a node's volume logic (the CSI node plugin, the kubelet's volume manager) and
// the kernel: block devices, the mount table, mount and unmount, probing, formatting and growing
// file systems. `SystemMounter` does it for real (root, real tools); `RecordingMounter` pretends
// and records, so the logic above is tested without root, and fault-injected.
#if canImport(Glibc)
import Glibc
#endif

/// A block device as the node sees it.
public struct BlockDevice: Sendable, Equatable {
    /// Its node ("/dev/loop3").
    public var path: String
    /// Its device number ("7:3"), as mountinfo shows it.
    public var majorMinor: String
    public var sizeBytes: Int64
    /// The device refuses writes.
    public var readOnly: Bool
    /// The file behind a loop device; nil for any other device.
    public var backingFile: String?

    public init(path: String, majorMinor: String, sizeBytes: Int64, readOnly: Bool = false, backingFile: String? = nil) {
        self.path = path
        self.majorMinor = majorMinor
        self.sizeBytes = sizeBytes
        self.readOnly = readOnly
        self.backingFile = backingFile
    }
}

/// Bytes and inodes of a mounted file system (statfs).
public struct FileSystemUsage: Sendable, Equatable {
    public var totalBytes: Int64
    public var availableBytes: Int64
    public var usedBytes: Int64
    public var totalInodes: Int64
    public var freeInodes: Int64
    public var usedInodes: Int64

    public init(totalBytes: Int64, availableBytes: Int64, usedBytes: Int64, totalInodes: Int64, freeInodes: Int64, usedInodes: Int64) {
        self.totalBytes = totalBytes
        self.availableBytes = availableBytes
        self.usedBytes = usedBytes
        self.totalInodes = totalInodes
        self.freeInodes = freeInodes
        self.usedInodes = usedInodes
    }
}

/// What a node does with block devices and mounts. Paths are absolute and already confined by
/// the caller (`PathConfinement`); implementations refuse malformed mount options.
public protocol Mounter: Sendable {
    /// The mount table of this mount namespace, in mount order (later mounts stack on earlier).
    func mounts() -> [MountInfo]
    /// Whether something is mounted at `path` (the mount table's answer; an implementation
    /// may know it without reading the table).
    func isMountPoint(_ path: String) -> Bool
    /// Mounts the file system `fsType` of `device` at `target` with `options` (each one option:
    /// no commas; see `MountOptions`).
    func mount(device: String, at target: String, fsType: String, options: [String]) async throws
    /// Bind-mounts `source` (a directory, or a device node onto a file) at `target`, then
    /// remounts it read-only if asked; nothing stays mounted when that fails.
    func bind(_ source: String, to target: String, readOnly: Bool) async throws
    /// Unmounts the topmost mount at `path`, without following a symlink there.
    func unmount(_ path: String) async throws
    /// Every signature on `device` — file system, partition table, RAID or LVM member —
    /// probed without a cache.
    func probe(_ device: String) async throws -> DeviceSignature
    /// Makes an empty file system `fsType` on `device`. Callers probe first: only a blank
    /// device is ever formatted.
    func format(_ device: String, fsType: String) async throws
    /// Grows the file system mounted at `mountPath` from `device` to the device's size.
    func growFileSystem(device: String, mountPath: String, fsType: String) async throws
    /// Grows an unmounted file system smaller than its device (ext4, offline; a no-op for
    /// file systems that grow only mounted, and when it already fills the device).
    func growUnmountedFileSystem(device: String, fsType: String) async throws
    /// Makes a loop device see its backing file's current size (a no-op for other devices).
    func refreshCapacity(_ device: String) async throws
    /// The block device at `path`, or nil when `path` is not one.
    func blockDevice(_ path: String) -> BlockDevice?
    /// The block device numbered `majorMinor` ("7:3"), or nil.
    func blockDevice(majorMinor: String) -> BlockDevice?
    /// Bytes and inodes of the file system mounted at `path`.
    func usage(of path: String) throws -> FileSystemUsage
}

extension Mounter {
    /// The topmost mount at `path`, if `path` is a mount point.
    public func mount(at path: String) -> MountInfo? {
        mounts().last { $0.mountPoint == path }
    }

    public func isMountPoint(_ path: String) -> Bool { mount(at: path) != nil }

    /// The block device a mount shows: the device mounted there, or a device node bind-mounted
    /// from devtmpfs (a raw block volume's target).
    public func device(of mount: MountInfo) -> BlockDevice? {
        if ["devtmpfs", "tmpfs"].contains(mount.fsType) {
            let name = mount.root.split(separator: "/").last.map(String.init) ?? ""
            return name.isEmpty || name.contains("..") ? nil : blockDevice("/dev/" + name)
        }
        return blockDevice(majorMinor: mount.majorMinor)
    }

    /// True when `mount` shows `device`: the device mounted there, or its node bind-mounted.
    public func mount(_ mount: MountInfo, shows device: String) -> Bool {
        guard let wanted = blockDevice(device) else { return false }
        return self.device(of: mount)?.majorMinor == wanted.majorMinor
    }

    /// Unmounts `path` until nothing is mounted there (stacked mounts included, at most 8).
    public func unmountAll(_ path: String) async throws {
        for _ in 0..<8 where mount(at: path) != nil {
            try await unmount(path)
        }
        if mount(at: path) != nil { throw HostSystemError(.busy, "\(path) is still mounted after 8 unmounts") }
    }
}

/// Mount options as the node accepts them: each one option, printable, without commas (which
/// would smuggle further options into mount's -o list).
public enum MountOptions {
    /// Throws `.invalidArgument` naming the first malformed option.
    public static func check(_ options: [String]) throws(HostSystemError) {
        for option in options {
            guard !option.isEmpty, !option.contains(","),
                  option.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7f }) else {
                throw HostSystemError(.invalidArgument, "mount option \"\(option)\" is malformed: one option per entry, printable ASCII, no commas or spaces")
            }
        }
    }
}
