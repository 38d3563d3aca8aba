// The real `Mounter`: device facts from /sys/dev/block, the mount table from
// /proc/self/mountinfo, unmounts through umount2(2) without following symlinks, and mount,
// blkid, mkfs, resize2fs, xfs_growfs, losetup as tools (`SystemCommand`). Needs root.
import CHostSystem
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public struct SystemMounter: Mounter {
    public init() {}

    public func mounts() -> [MountInfo] { Mounts.current() }

    /// The kernel's answer for `path` alone (statx), which pods' workers ask on every pass; the
    /// mount table (hundreds of lines with many pods) only on kernels before 5.8.
    public func isMountPoint(_ path: String) -> Bool {
        switch chs_is_mount_root(path) {
        case 1: true
        case 0: false
        default: mount(at: path) != nil
        }
    }

    public func mount(device: String, at target: String, fsType: String, options: [String]) async throws {
        try MountOptions.check(options)
        var arguments = ["mount", "-t", fsType]
        if !options.isEmpty { arguments += ["-o", options.joined(separator: ",")] }
        try await SystemCommand.check(arguments + ["--", device, target])
    }

    public func bind(_ source: String, to target: String, readOnly: Bool) async throws {
        try await SystemCommand.check(["mount", "--bind", "--", source, target])
        if readOnly {
            do {
                try await SystemCommand.check(["mount", "-o", "remount,bind,ro", "--", target])
            } catch {
                try? await unmount(target)
                throw error
            }
        }
    }

    public func unmount(_ path: String) async throws {
        // UMOUNT_NOFOLLOW: a symlink put at `path` after the caller checked it is not followed.
        // On a thread of its own: the last unmount of a file system writes it back (seconds).
        let failure = await onOwnThread(named: "umount") { chs_umount_nofollow(path) == 0 ? 0 : errno }
        guard failure == 0 else {
            throw HostSystemError.system("unmount \(path)", errno: failure)
        }
    }

    public func probe(_ device: String) async throws -> DeviceSignature {
        let result = try await SystemCommand.run(["blkid", "-p", "-o", "export", "--", device], timeout: .seconds(60))
        switch result.status {
        case 0: return DeviceSignature.parse(blkidExport: result.stdout)
        case 2: return .blank
        case 8: return DeviceSignature.parse(blkidExport: result.stdout, ambivalent: true)
        default:
            throw HostSystemError(.commandFailed, "blkid -p \(device) failed with status \(result.status): \(result.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }

    /// Formats without the tools' force flags: should anything have appeared on the device since
    /// it was probed, mkfs.ext4 (asking on a closed stdin) and mkfs.xfs refuse instead of
    /// overwriting it.
    public func format(_ device: String, fsType: String) async throws {
        switch fsType {
        case "ext4": try await SystemCommand.check(["mkfs.ext4", "-q", "-m0", "--", device])
        case "xfs": try await SystemCommand.check(["mkfs.xfs", "-q", "--", device])
        default: throw HostSystemError(.invalidArgument, "cannot format \(device) as \(fsType): only ext4 and xfs are supported")
        }
    }

    /// ext4 grows online only with CAP_SYS_RESOURCE; without it the error is `.permissionDenied`.
    public func growFileSystem(device: String, mountPath: String, fsType: String) async throws {
        switch fsType {
        case "ext4":
            let result = try await SystemCommand.run(["resize2fs", device])
            guard result.status == 0 else {
                if result.stderr.contains("Permission denied") {
                    throw HostSystemError(.permissionDenied, "the ext4 file system on \(device) cannot grow while mounted: online resize needs CAP_SYS_RESOURCE, which this process lacks")
                }
                throw CommandError(command: ["resize2fs", device], result: result)
            }
        case "xfs": try await SystemCommand.check(["xfs_growfs", mountPath])
        default: break
        }
    }

    /// ext4 only, after `e2fsck -f -p` as resize2fs asks; the size comes from the superblock
    /// (`Ext4Geometry`), and one that does not parse or overflows leaves the file system alone.
    public func growUnmountedFileSystem(device: String, fsType: String) async throws {
        guard fsType == "ext4" else { return }
        let header = try await SystemCommand.run(["dumpe2fs", "-h", device])
        guard header.status == 0, let bytes = Ext4Geometry.parse(dumpe2fs: header.stdout)?.bytes,
              let size = blockDevice(device)?.sizeBytes, bytes < size else { return }
        let check = try await SystemCommand.run(["e2fsck", "-f", "-p", device])
        guard check.status <= 1 else {
            throw HostSystemError(.commandFailed, "e2fsck -f -p \(device) found errors it could not fix (status \(check.status)): \(check.stderr)")
        }
        try await SystemCommand.check(["resize2fs", device])
    }

    public func refreshCapacity(_ device: String) async throws {
        if LoopDevices.loopName(device) != nil { try await SystemCommand.check(["losetup", "--set-capacity", device]) }
    }

    public func blockDevice(_ path: String) -> BlockDevice? {
        guard let number = LoopDevices.majorMinor(of: path) else { return nil }
        return describe(number, path: path)
    }

    public func blockDevice(majorMinor: String) -> BlockDevice? {
        guard Self.isDeviceNumber(majorMinor),
              let uevent = try? String(contentsOfFile: "/sys/dev/block/\(majorMinor)/uevent", encoding: .utf8),
              let name = uevent.split(separator: "\n").first(where: { $0.hasPrefix("DEVNAME=") })?.dropFirst(8),
              !name.isEmpty, !name.contains("..") else { return nil }
        return describe(majorMinor, path: "/dev/" + name)
    }

    public func usage(of path: String) throws -> FileSystemUsage {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { throw HostSystemError.system("statfs \(path)") }
        // What a file system reports is not trusted to fit: saturate instead of trapping.
        func value<T: BinaryInteger>(_ x: T) -> Int64 { Int64(exactly: x) ?? .max }
        func bytes(_ blocks: Int64) -> Int64 { Checked.multiply(blocks, value(info.f_frsize)) ?? .max }
        let blocks = value(info.f_blocks), free = value(info.f_bfree), inodes = value(info.f_files), freeInodes = value(info.f_ffree)
        return FileSystemUsage(totalBytes: bytes(blocks), availableBytes: bytes(value(info.f_bavail)), usedBytes: bytes(max(0, blocks - free)),
                               totalInodes: inodes, freeInodes: freeInodes, usedInodes: max(0, inodes - freeInodes))
    }

    private func describe(_ number: String, path: String) -> BlockDevice {
        let sys = "/sys/dev/block/\(number)"
        func read(_ file: String) -> String? {
            (try? String(contentsOfFile: sys + "/" + file, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let sectors = read("size").flatMap { Int64($0) } ?? 0
        return BlockDevice(path: path, majorMinor: number, sizeBytes: Checked.multiply(sectors, 512) ?? 0,
                           readOnly: read("ro") == "1", backingFile: read("loop/backing_file"))
    }

    /// "7:3": digits, a colon, digits (nothing that could walk out of /sys/dev/block).
    static func isDeviceNumber(_ text: String) -> Bool {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        return parts.count == 2 && parts.allSatisfy { !$0.isEmpty && $0.count <= 10 && $0.allSatisfy { $0.isASCII && $0.isNumber } }
    }
}
