// Facts about loop devices, read from the kernel directly (/sys, /proc) rather than from a
// tool's output: what backs a device, its size, whether it is read-only, mounted or held.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public enum LoopDevices {
    /// The loop devices whose backing file is `path`, in name order — those being detached
    /// included (`isDetaching`).
    public static func devices(backing path: String) -> [String] {
        all().filter { backingFile(of: $0) == path }
    }

    /// True when `devicePath` is attached but will be detached at its last close: the kernel
    /// answers `losetup --detach` of a device that some program still holds open by setting its
    /// autoclear flag, not by detaching it then. Such a device must not be handed out again.
    public static func isDetaching(_ devicePath: String) -> Bool {
        guard let name = loopName(devicePath) else { return false }
        return (try? String(contentsOfFile: "/sys/block/\(name)/loop/autoclear", encoding: .utf8))?.hasPrefix("1") == true
    }

    /// `losetup --detach devicePath`, then waits (at most `settle`, polling /sys) until the device
    /// no longer has a backing file. False when it still has one then: some program holds the
    /// device open (udev's probe of a new device, a `blkid`), and the kernel detaches it at that
    /// program's last close. Throws when losetup fails.
    @discardableResult
    public static func detach(_ devicePath: String, settle: Duration = .seconds(5)) async throws -> Bool {
        try await SystemCommand.check(["losetup", "--detach", devicePath], timeout: .seconds(30))
        let deadline = ContinuousClock.now + settle
        while backingFile(of: devicePath) != nil {
            guard ContinuousClock.now < deadline else { return false }
            try await Task.sleep(for: .milliseconds(20))
        }
        return true
    }

    /// Every loop device node that /sys shows ("/dev/loop0", …), attached or not.
    public static func all() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/block")) ?? []
        return names.filter { loopName("/dev/" + $0) != nil }.sorted().map { "/dev/" + $0 }
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

    /// The busy reason of a device opened exclusively that no mount here shows (another mount
    /// namespace's mount, a program's O_EXCL open).
    public static let openedExclusively = "opened exclusively by another program"

    /// Why `devicePath` is busy — mounted (directly or bind-mounted as a device node), held by
    /// another device, or opened exclusively — or nil when nothing uses it.
    public static func busyReason(_ devicePath: String) -> String? {
        guard let name = loopName(devicePath), let majorMinor = majorMinor(of: devicePath) else { return nil }
        for mount in Mounts.current() {
            if mount.majorMinor == majorMinor { return "mounted at \(mount.mountPoint)" }
            if mount.showsDeviceNode(name) { return "bind-mounted at \(mount.mountPoint)" }
        }
        if let holders = try? FileManager.default.contentsOfDirectory(atPath: "/sys/block/\(name)/holders"), !holders.isEmpty {
            return "held by \(holders.joined(separator: ", "))"
        }
        let fd = open(devicePath, O_RDONLY | O_EXCL | O_CLOEXEC)
        if fd < 0 { return errno == EBUSY ? openedExclusively : nil }
        close(fd)
        return nil
    }

    /// "7:3" for a block device node, as /proc/self/mountinfo writes device numbers; nil for
    /// anything that is not a block device.
    public static func majorMinor(of devicePath: String) -> String? {
        var info = stat()
        guard stat(devicePath, &info) == 0, (info.st_mode & S_IFMT) == S_IFBLK else { return nil }
        return "\(major(info.st_rdev)):\(minor(info.st_rdev))"
    }

    /// The loop device whose number is `majorMinor` ("7:3"), from /sys; nil when none is.
    public static func device(majorMinor: String) -> String? {
        all().first { device in
            let text = try? String(contentsOfFile: "/sys/block/\(device.dropFirst(5))/dev", encoding: .utf8)
            return text?.trimmingCharacters(in: .whitespacesAndNewlines) == majorMinor
        }
    }

    /// Size of a block device in bytes, from /sys (loop devices) or 0 when unknown.
    public static func sizeBytes(of devicePath: String) -> Int64 {
        guard let name = devicePath.hasPrefix("/dev/") ? String(devicePath.dropFirst(5)) : nil, !name.contains("/"),
              let text = try? String(contentsOfFile: "/sys/block/\(name)/size", encoding: .utf8),
              let sectors = Int64(text.trimmingCharacters(in: .whitespacesAndNewlines)) else { return 0 }
        return Checked.multiply(sectors, 512) ?? 0
    }

    /// Writes the device's dirty pages through to its backing file (on a thread of its own: it
    /// can take seconds).
    public static func flush(_ devicePath: String) async {
        let fd = open(devicePath, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        await onOwnThread(named: "fsync") {
            fsync(fd)
            close(fd)
        }
    }

    /// "loop7" for "/dev/loop7"; nil for anything that is not a loop device path.
    public static func loopName(_ devicePath: String) -> String? {
        guard devicePath.hasPrefix("/dev/loop") else { return nil }
        let name = String(devicePath.dropFirst("/dev/".count))
        guard name.count > 4, name.dropFirst(4).allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return name
    }

    private static func major(_ device: dev_t) -> UInt32 { UInt32((device >> 8) & 0xfff) | UInt32(truncatingIfNeeded: (device >> 32) & ~0xfff) }
    private static func minor(_ device: dev_t) -> UInt32 { UInt32(device & 0xff) | UInt32(truncatingIfNeeded: (device >> 12) & ~0xff) }
}
