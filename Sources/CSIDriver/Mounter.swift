// The node's dealings with the kernel: mounts read from /proc/self/mountinfo, and mount, umount,
// blkid, mkfs, resize2fs, xfs_growfs and losetup run as commands.
import CloudProvider
import Foundation
#if canImport(Glibc)
import Glibc
#endif

enum Mounter {
    /// The topmost mount at `path`, if `path` is a mount point.
    static func mount(at path: String) -> MountInfo? {
        Mounts.current().last { $0.mountPoint == path }
    }

    /// True when `mount` shows `device`: the device mounted there, or its node bind-mounted.
    static func mount(_ mount: MountInfo, shows device: String) -> Bool {
        if let number = LoopDevices.majorMinor(of: device), mount.majorMinor == number { return true }
        return ["devtmpfs", "tmpfs"].contains(mount.fsType) && mount.root == "/" + (device as NSString).lastPathComponent
    }

    static func isReadOnly(_ mount: MountInfo) -> Bool {
        mount.options.split(separator: ",").contains("ro")
    }

    /// Mounts `device` at `target` with the file system `fsType` and `options`.
    static func mount(device: String, at target: String, fsType: String, options: [String]) async throws {
        var arguments = ["mount", "-t", fsType]
        if !options.isEmpty { arguments += ["-o", options.joined(separator: ",")] }
        try await run(arguments + [device, target])
    }

    /// Bind-mounts `source` (a directory or a device node) onto `target`, read-only if asked.
    static func bind(_ source: String, to target: String, readOnly: Bool) async throws {
        try await run(["mount", "--bind", source, target])
        if readOnly {
            do {
                try await run(["mount", "-o", "remount,bind,ro", target])
            } catch {
                _ = try? await SystemCommand.run(["umount", target])
                throw error
            }
        }
    }

    /// Unmounts `path` until nothing is mounted there (stacked mounts included).
    static func unmount(_ path: String) async throws {
        for _ in 0..<8 where mount(at: path) != nil {
            try await run(["umount", path])
        }
        if mount(at: path) != nil { throw CSIError(.internalError, "\(path) is still mounted after 8 unmounts") }
    }

    /// The file system on `device`, probed without blkid's cache (a reused loop device could
    /// otherwise look formatted); nil when there is none.
    static func fileSystem(on device: String) async throws -> String? {
        let result = try await SystemCommand.run(["blkid", "-p", "-s", "TYPE", "-o", "value", device])
        switch result.status {
        case 0:
            let type = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            return type.isEmpty ? nil : type
        case 2: return nil
        default: throw CSIError(.internalError, "blkid -p \(device) failed with status \(result.status): \(result.stderr)")
        }
    }

    static func format(_ device: String, fsType: String) async throws {
        switch fsType {
        case "ext4": try await run(["mkfs.ext4", "-F", "-q", "-m0", device])
        case "xfs": try await run(["mkfs.xfs", "-f", "-q", device])
        default: throw CSIError.invalid("fs_type", "\(fsType) is not supported")
        }
    }

    /// Grows the mounted file system to the device's size (no-op when it already fills it).
    /// ext4 grows online only with CAP_SYS_RESOURCE; without it the error says so, and the file
    /// system grows offline at the next stage (`growUnmountedExt4`).
    static func growFileSystem(device: String, mountPath: String, fsType: String) async throws {
        switch fsType {
        case "ext4":
            let result = try await SystemCommand.run(["resize2fs", device])
            guard result.status == 0 else {
                if result.stderr.contains("Permission denied") {
                    throw CSIError(.failedPrecondition, "the ext4 file system on \(device) cannot grow while mounted: online resize needs CAP_SYS_RESOURCE, which this node plugin lacks; it grows when the volume is next staged (restart the pod)")
                }
                throw CSIError(.internalError, CommandError(command: ["resize2fs", device], result: result).description)
            }
        case "xfs": try await run(["xfs_growfs", mountPath])
        default: break
        }
    }

    /// Grows an unmounted ext4 file system that is smaller than its device (after a check, as
    /// resize2fs asks). Offline, it needs no privilege beyond writing the device.
    static func growUnmountedExt4(_ device: String) async throws {
        let header = try await SystemCommand.run(["dumpe2fs", "-h", device])
        guard header.status == 0 else { return }
        func field(_ name: String) -> Int64? {
            header.stdout.split(separator: "\n").first { $0.hasPrefix(name + ":") }
                .flatMap { Int64($0.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces)) }
        }
        guard let blocks = field("Block count"), let blockSize = field("Block size"),
              blocks * blockSize < LoopDevices.sizeBytes(of: device) else { return }
        let check = try await SystemCommand.run(["e2fsck", "-f", "-p", device])
        guard check.status <= 1 else {
            throw CSIError(.internalError, "e2fsck -f -p \(device) found errors it could not fix (status \(check.status)): \(check.stderr)")
        }
        try await run(["resize2fs", device])
    }

    /// Makes a loop device see its backing file's current size.
    static func refreshCapacity(_ device: String) async throws {
        if device.hasPrefix("/dev/loop") { try await run(["losetup", "--set-capacity", device]) }
    }

    /// Bytes and inodes of the file system mounted at `path`.
    static func usage(of path: String) throws -> (bytes: (total: Int64, available: Int64, used: Int64), inodes: (total: Int64, free: Int64, used: Int64)) {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else {
            throw CSIError(.internalError, "statfs \(path): \(String(cString: strerror(errno)))")
        }
        let block = Int64(info.f_frsize)
        let total = Int64(info.f_blocks) * block
        let available = Int64(info.f_bavail) * block
        let used = (Int64(info.f_blocks) - Int64(info.f_bfree)) * block
        let inodes = Int64(info.f_files)
        let freeInodes = Int64(info.f_ffree)
        return ((total, available, used), (inodes, freeInodes, inodes - freeInodes))
    }

    private static func run(_ arguments: [String]) async throws {
        do {
            try await SystemCommand.check(arguments)
        } catch let error as CommandError {
            throw CSIError(.internalError, error.description)
        }
    }
}
