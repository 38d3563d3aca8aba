// Facts about loop devices and files, read from the kernel directly (/sys, /proc) rather than
// from a tool's output: what backs a device, whether it is mounted or held, and crash-safe file
// creation and copies for the disks' backing files.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public enum LoopDevices {
    /// The loop devices whose backing file is `path`.
    public static func devices(backing path: String) async throws -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/block")) ?? []
        return names.filter { $0.hasPrefix("loop") }.sorted().compactMap { name in
            backingFile(of: "/dev/" + name) == path ? "/dev/" + name : nil
        }
    }

    /// The file behind loop device `devicePath`, or nil when it is not an attached loop device.
    /// A backing file that was deleted reads as "<path> (deleted)", which matches no disk.
    public static func backingFile(of devicePath: String) -> String? {
        guard let name = loopName(devicePath) else { return nil }
        guard let text = try? String(contentsOfFile: "/sys/block/\(name)/loop/backing_file", encoding: .utf8) else { return nil }
        return text.trimmingCharacters(in: .newlines)
    }

    /// True when the loop device refuses writes.
    public static func isReadOnly(_ devicePath: String) -> Bool {
        guard let name = loopName(devicePath) else { return false }
        return (try? String(contentsOfFile: "/sys/block/\(name)/ro", encoding: .utf8))?.hasPrefix("1") == true
    }

    /// Why `devicePath` is busy — mounted (directly or bind-mounted as a device node), held by
    /// another device, or opened exclusively — or nil when nothing uses it.
    public static func busyReason(_ devicePath: String) -> String? {
        guard let name = loopName(devicePath), let majorMinor = majorMinor(of: devicePath) else { return nil }
        for mount in Mounts.current() {
            if mount.majorMinor == majorMinor { return "mounted at \(mount.mountPoint)" }
            if ["devtmpfs", "tmpfs"].contains(mount.fsType), mount.root == "/" + name {
                return "bind-mounted at \(mount.mountPoint)"
            }
        }
        if let holders = try? FileManager.default.contentsOfDirectory(atPath: "/sys/block/\(name)/holders"), !holders.isEmpty {
            return "held by \(holders.joined(separator: ", "))"
        }
        let fd = open(devicePath, O_RDONLY | O_EXCL | O_CLOEXEC)
        if fd < 0 { return errno == EBUSY ? "opened exclusively by another program" : nil }
        close(fd)
        return nil
    }

    /// "7:3" for a block device node, as /proc/self/mountinfo writes device numbers.
    public static func majorMinor(of devicePath: String) -> String? {
        var info = stat()
        guard stat(devicePath, &info) == 0, (info.st_mode & S_IFMT) == S_IFBLK else { return nil }
        return "\(major(info.st_rdev)):\(minor(info.st_rdev))"
    }

    /// Size of a block device in bytes, from /sys (loop devices) or 0 when unknown.
    public static func sizeBytes(of devicePath: String) -> Int64 {
        guard let name = devicePath.hasPrefix("/dev/") ? String(devicePath.dropFirst(5)) : nil,
              let text = try? String(contentsOfFile: "/sys/block/\(name)/size", encoding: .utf8),
              let sectors = Int64(text.trimmingCharacters(in: .whitespacesAndNewlines)) else { return 0 }
        return sectors * 512
    }

    /// Writes the device's dirty pages through to its backing file.
    public static func flush(_ devicePath: String) {
        let fd = open(devicePath, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }

    /// "loop7" for "/dev/loop7"; nil for anything that is not a loop device path.
    static func loopName(_ devicePath: String) -> String? {
        guard devicePath.hasPrefix("/dev/loop") else { return nil }
        let name = String(devicePath.dropFirst("/dev/".count))
        guard name.dropFirst(4).allSatisfy(\.isNumber), name.count > 4 else { return nil }
        return name
    }

    private static func major(_ device: dev_t) -> UInt32 { UInt32((device >> 8) & 0xfff) | UInt32((device >> 32) & ~0xfff) }
    private static func minor(_ device: dev_t) -> UInt32 { UInt32(device & 0xff) | UInt32((device >> 12) & ~0xff) }
}

/// One line of /proc/self/mountinfo.
public struct MountInfo: Sendable, Equatable {
    public var majorMinor: String
    /// The path inside the mounted file system that is mounted ("/" for a whole file system).
    public var root: String
    public var mountPoint: String
    public var options: String
    public var fsType: String
    public var source: String
}

public enum Mounts {
    /// The mount table of this process's mount namespace.
    public static func current() -> [MountInfo] {
        guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap(parse)
    }

    /// Parses a mountinfo line: "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw".
    static func parse(_ line: Substring) -> MountInfo? {
        let fields = line.split(separator: " ", omittingEmptySubsequences: false)
        guard let separator = fields.firstIndex(of: "-"), separator >= 6, fields.count >= separator + 3 else { return nil }
        return MountInfo(majorMinor: String(fields[2]), root: unescape(fields[3]), mountPoint: unescape(fields[4]),
                         options: String(fields[5]), fsType: String(fields[separator + 1]), source: unescape(fields[separator + 2]))
    }

    /// mountinfo writes space, tab, newline and backslash as octal escapes ("\040").
    static func unescape(_ field: Substring) -> String {
        guard field.contains("\\") else { return String(field) }
        var bytes: [UInt8] = []
        var utf8 = Array(field.utf8)[...]
        while let byte = utf8.popFirst() {
            if byte == UInt8(ascii: "\\"), utf8.count >= 3,
               let value = UInt8(String(decoding: utf8.prefix(3), as: UTF8.self), radix: 8) {
                bytes.append(value)
                utf8 = utf8.dropFirst(3)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Crash-safe file steps: a file is made under a temporary name, synced, then renamed into place
/// and its directory synced, so after a crash it is either whole or absent.
enum FileSystem {
    static func createSparseFile(_ path: String, size: Int64) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw posixError("create", path) }
        defer { close(fd) }
        guard ftruncate(fd, off_t(size)) == 0 else { throw posixError("size", path) }
        guard fsync(fd) == 0 else { throw posixError("sync", path) }
    }

    /// Grows `path` to `size` bytes (never shrinks it) and syncs it.
    static func grow(_ path: String, to size: Int64) throws {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw posixError("open", path) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw posixError("stat", path) }
        if Int64(info.st_size) < size {
            guard ftruncate(fd, off_t(size)) == 0 else { throw posixError("grow", path) }
        }
        guard fsync(fd) == 0 else { throw posixError("sync", path) }
    }

    /// Copies `source` to `destination`, sharing blocks where the file system can (reflink) and
    /// keeping holes otherwise; the copy is synced.
    static func copy(_ source: String, to destination: String) async throws {
        guard FileManager.default.fileExists(atPath: source) else {
            throw CloudError(.internal, "backing file \(source) is missing")
        }
        try await SystemCommand.check(["cp", "--reflink=auto", "--sparse=always", source, destination])
        let fd = open(destination, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw posixError("open", destination) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw posixError("sync", destination) }
    }

    /// Renames `temporary` to `path` and syncs the directory.
    static func commit(_ temporary: String, to path: String) throws {
        guard rename(temporary, path) == 0 else { throw posixError("rename \(temporary) to", path) }
        syncDirectory(of: path)
    }

    /// Removes `path` (gone already is fine) and syncs the directory.
    static func remove(_ path: String) throws {
        guard unlink(path) == 0 || errno == ENOENT else { throw posixError("remove", path) }
        syncDirectory(of: path)
    }

    static func syncDirectory(of path: String) {
        let fd = open((path as NSString).deletingLastPathComponent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }

    static func posixError(_ action: String, _ path: String) -> CloudError {
        CloudError(.internal, "cannot \(action) \(path): \(String(cString: strerror(errno)))")
    }
}
