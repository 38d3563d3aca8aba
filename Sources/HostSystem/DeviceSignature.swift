// What is on a block device, from the tools' own output: blkid's low-level probe (every
// signature: file systems, partition tables, RAID and LVM members) and ext4's superblock as
// dumpe2fs prints it. Both parsers take whatever the tool printed and never trap: a value that
// does not parse, or whose arithmetic does not fit, is absent.
//
// `blkid -p -o export /dev/loop3` prints KEY=VALUE lines; for a device holding only a partition
// table it prints no TYPE at all:
//
//     DEVNAME=/dev/loop3
//     PTUUID=5f2e1c3a
//     PTTYPE=dos
//
// and it exits 2 when it finds nothing, 8 when signatures contradict each other.

/// The signatures found on a device. Only a blank device may be formatted.
public struct DeviceSignature: Sendable, Equatable {
    /// blkid's TYPE: a file system ("ext4", "xfs") or another content ("swap", "LVM2_member",
    /// "linux_raid_member", "crypto_LUKS").
    public var type: String?
    /// blkid's PTTYPE: a partition table ("dos", "gpt").
    public var partitionTable: String?
    /// blkid found contradicting signatures (its status 8).
    public var ambivalent: Bool
    /// Every KEY=VALUE blkid printed.
    public var values: [String: String]

    public init(type: String? = nil, partitionTable: String? = nil, ambivalent: Bool = false, values: [String: String] = [:]) {
        self.type = type
        self.partitionTable = partitionTable
        self.ambivalent = ambivalent
        self.values = values
    }

    /// Nothing found: no file system, no partition table, nothing ambiguous.
    public static let blank = DeviceSignature()

    public var isBlank: Bool { type == nil && partitionTable == nil && !ambivalent }

    /// "an ext4 file system", "a dos partition table", … for messages.
    public var summary: String {
        var parts: [String] = []
        if let type { parts.append("a \(type) signature") }
        if let partitionTable { parts.append("a \(partitionTable) partition table") }
        if ambivalent { parts.append("contradicting signatures") }
        return parts.isEmpty ? "nothing" : parts.joined(separator: " and ")
    }

    /// Parses `blkid -p -o export` output. Lines that are not KEY=VALUE are skipped; keys and
    /// values longer than 4096 bytes are ignored.
    public static func parse(blkidExport text: String, ambivalent: Bool = false) -> DeviceSignature {
        var values: [String: String] = [:]
        for line in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            guard let equals = line.firstIndex(of: "="), equals != line.startIndex else { continue }
            let key = String(line[..<equals]).trimmingSpaces, value = String(line[line.index(after: equals)...]).trimmingSpaces
            guard !key.isEmpty, key.utf8.count <= 4096, value.utf8.count <= 4096 else { continue }
            values[key] = value
        }
        func nonEmpty(_ key: String) -> String? { values[key].flatMap { $0.isEmpty ? nil : $0 } }
        return DeviceSignature(type: nonEmpty("TYPE"), partitionTable: nonEmpty("PTTYPE"), ambivalent: ambivalent, values: values)
    }
}

/// The size fields of an ext4 superblock as `dumpe2fs -h` prints them ("Block count:  81920").
public struct Ext4Geometry: Sendable, Equatable {
    public var blockCount: Int64
    public var blockSize: Int64

    /// The file system's size in bytes; nil when it does not fit in 63 bits (a corrupt or
    /// hostile superblock), which callers treat as "unknown: do not touch".
    public var bytes: Int64? { Checked.multiply(blockCount, blockSize) }

    /// Parses `dumpe2fs -h` output; nil when a field is missing, negative or not a number.
    public static func parse(dumpe2fs text: String) -> Ext4Geometry? {
        func field(_ name: String) -> Int64? {
            text.split(separator: "\n").first { $0.hasPrefix(name + ":") }
                .flatMap { Int64(String($0.dropFirst(name.count + 1)).trimmingSpaces) }
                .flatMap { $0 >= 0 ? $0 : nil }
        }
        guard let blocks = field("Block count"), let size = field("Block size"), size > 0 else { return nil }
        return Ext4Geometry(blockCount: blocks, blockSize: size)
    }
}

extension String {
    /// Without leading and trailing spaces and tabs.
    var trimmingSpaces: String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { $0 != " " && $0 != "\t" }),
              let last = scalars.lastIndex(where: { $0 != " " && $0 != "\t" }) else { return "" }
        return String(scalars[first...last])
    }
}
