// The mount table of this process's mount namespace, parsed from /proc/self/mountinfo
// (proc(5)): one line per mount, fields separated by spaces, with space, tab, newline and
// backslash in paths written as octal escapes.
//
//     36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//     (1)(2) (3)   (4)   (5)      (6)      (7)   (8) (9)    (10)         (11)
//
// (3) is the device number, (4) the path inside the file system that is mounted, (5) the mount
// point, (6) per-mount options, (7) optional fields ended by "-" (8), (9) the file system type,
// (10) the source.
import Foundation

/// One line of /proc/self/mountinfo.
public struct MountInfo: Sendable, Equatable {
    /// The device number ("7:3").
    public var majorMinor: String
    /// The path inside the mounted file system that is mounted ("/" for a whole file system).
    public var root: String
    public var mountPoint: String
    /// Per-mount options ("rw,relatime").
    public var options: String
    public var fsType: String
    public var source: String

    public init(majorMinor: String, root: String, mountPoint: String, options: String, fsType: String, source: String) {
        self.majorMinor = majorMinor
        self.root = root
        self.mountPoint = mountPoint
        self.options = options
        self.fsType = fsType
        self.source = source
    }

    /// Mounted read-only.
    public var isReadOnly: Bool { options.split(separator: ",").contains("ro") }

    /// The device node `name` ("loop3") of devtmpfs bind-mounted here (a block volume's target).
    public func showsDeviceNode(_ name: String) -> Bool {
        ["devtmpfs", "tmpfs"].contains(fsType) && root == "/" + name
    }
}

public enum Mounts {
    /// The mount table of this process's mount namespace, in mount order.
    public static func current() -> [MountInfo] {
        guard let text = FileSystem.readVirtualFile("/proc/self/mountinfo") else { return [] }
        return parse(table: text)
    }

    /// Every mount of a mountinfo text; lines that are not mountinfo lines are skipped.
    public static func parse(table text: String) -> [MountInfo] {
        text.split(separator: "\n").compactMap(parse)
    }

    /// Parses a mountinfo line: "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw".
    public static func parse(_ line: Substring) -> MountInfo? {
        let fields = line.split(separator: " ", omittingEmptySubsequences: false)
        guard let separator = fields.firstIndex(of: "-"), separator >= 6, fields.count >= separator + 3 else { return nil }
        return MountInfo(majorMinor: String(fields[2]), root: unescape(fields[3]), mountPoint: unescape(fields[4]),
                         options: String(fields[5]), fsType: String(fields[separator + 1]), source: unescape(fields[separator + 2]))
    }

    /// mountinfo writes space, tab, newline and backslash as octal escapes ("\040").
    public static func unescape(_ field: Substring) -> String {
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

    /// `path` as mountinfo writes it (the inverse of `unescape`).
    public static func escape(_ path: String) -> String {
        var out = ""
        for scalar in path.unicodeScalars {
            switch scalar {
            case " ": out += "\\040"
            case "\t": out += "\\011"
            case "\n": out += "\\012"
            case "\\": out += "\\134"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
