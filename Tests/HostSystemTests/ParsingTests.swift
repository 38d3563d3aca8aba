// The parsers of what the kernel and the tools print: mountinfo lines, blkid's export format,
// dumpe2fs's superblock header; and path confinement. None may trap on any input.
import Foundation
import HostSystem
import Testing

@Suite struct MountInfoParsingTests {
    @Test func parsesLinesWithEscapesAndOptionalFields() throws {
        let line = #"36 35 98:0 /mnt\0401 /mnt\011two rw,noatime master:1 shared:2 - ext3 /dev/root\134x rw,errors=continue"#
        let mount = try #require(Mounts.parse(Substring(line)))
        #expect(mount.majorMinor == "98:0")
        #expect(mount.root == "/mnt 1")
        #expect(mount.mountPoint == "/mnt\ttwo")
        #expect(mount.options == "rw,noatime")
        #expect(mount.fsType == "ext3")
        #expect(mount.source == "/dev/root\\x")
        #expect(!mount.isReadOnly)
        #expect(Mounts.unescape(Substring(Mounts.escape("/a b\\c\nd"))) == "/a b\\c\nd")
    }

    @Test(arguments: ["", "-", "1 2 3 4 5 - x", "1 2 3 4 5 6 -", #"\"#, #"1 2 3 \777 /m rw - t s o"#, "a b c d e f g h i j k l m n - "])
    func malformedLinesAreSkippedWithoutTrapping(_ line: String) {
        _ = Mounts.parse(Substring(line))
        _ = Mounts.parse(table: line + "\n" + line)
    }

    @Test("kernel files are read to their end, not to the first page Foundation's size-0 read returns")
    func virtualFilesAreReadWhole() throws {
        // /proc/self/maps of a Swift test process runs well past 4 KiB; its last line is the vsyscall page.
        let maps = try #require(FileSystem.readVirtualFile("/proc/self/maps"))
        #expect(maps.utf8.count > 8192, "\(maps.utf8.count) bytes")
        #expect(maps.hasSuffix("\n"))
        #expect(maps.split(separator: "\n").last?.contains("[vsyscall]") == true || maps.contains("[stack]"))
        #expect(FileSystem.readVirtualFile("/proc/no/such/file") == nil)
    }

    @Test func theRealTableHasTheRootMount() {
        let mounts = Mounts.current()
        #expect(mounts.contains { $0.mountPoint == "/" }, "/proc/self/mountinfo parses: \(mounts.count) mounts")
    }
}

@Suite struct DeviceSignatureTests {
    @Test func partitionTablesWithoutATypeAreNotBlank() {
        let signature = DeviceSignature.parse(blkidExport: "DEVNAME=/dev/loop3\nPTUUID=5f2e1c3a\nPTTYPE=dos\n")
        #expect(signature.type == nil)
        #expect(signature.partitionTable == "dos")
        #expect(!signature.isBlank)
        #expect(signature.summary == "a dos partition table")
    }

    @Test func fileSystemsAndOddLines() {
        let signature = DeviceSignature.parse(blkidExport: "DEVNAME=/dev/loop3\r\nUUID=b1b6\nTYPE=ext4\n=junk\nno equals\nBLOCK_SIZE=1024\nTYPE_EMPTY=\n")
        #expect(signature.type == "ext4" && signature.partitionTable == nil && !signature.isBlank)
        #expect(signature.values["BLOCK_SIZE"] == "1024")
        #expect(DeviceSignature.parse(blkidExport: "").isBlank)
        #expect(DeviceSignature.parse(blkidExport: "TYPE=\nPTTYPE=").isBlank, "empty values are no signature")
        #expect(!DeviceSignature.parse(blkidExport: "", ambivalent: true).isBlank)
    }

    /// Issue 12 finding 6: the superblock's block count times its block size trapped on
    /// overflow. The product is checked, and one that does not fit is "unknown".
    @Test func ext4GeometryArithmeticIsChecked() {
        let normal = Ext4Geometry.parse(dumpe2fs: "Filesystem volume name:   <none>\nBlock count:              81920\nBlock size:               4096\n")
        let bytes = normal?.bytes
        #expect(bytes == Int64(81920 * 4096))
        let hostile = Ext4Geometry.parse(dumpe2fs: "Block count: 9223372036854775807\nBlock size: 4096\n")
        #expect(hostile != nil && hostile?.bytes == nil)
        #expect(Ext4Geometry.parse(dumpe2fs: "Block count: -5\nBlock size: 4096") == nil)
        #expect(Ext4Geometry.parse(dumpe2fs: "Block count: 5\nBlock size: 0") == nil)
        #expect(Ext4Geometry.parse(dumpe2fs: "Block count: 99999999999999999999\nBlock size: 1") == nil)
        #expect(Ext4Geometry.parse(dumpe2fs: "Block size: 4096") == nil)
    }

    @Test func checkedArithmetic() {
        #expect(Checked.roundUp(Int64.max, toMultipleOf: 1 << 20) == nil)
        #expect(Checked.roundUp(Int64.max - (1 << 20) + 2, toMultipleOf: 1 << 20) == nil)
        #expect(Checked.roundUp(Int64.max - (1 << 20), toMultipleOf: 1 << 20) == Int64.max - (1 << 20) + 1)
        #expect(Checked.roundUp(1, toMultipleOf: 1 << 20) == 1 << 20)
        #expect(Checked.roundUp(0, toMultipleOf: 4) == 0)
        #expect(Checked.roundUp(-1, toMultipleOf: 4) == nil)
        #expect(Checked.multiply(Int64.max / 2, 3) == nil)
        #expect(Checked.add(Int64.max, 1) == nil)
    }
}

@Suite struct PathConfinementTests {
    @Test func resolvesThroughSymlinksAndRefusesEscapes() throws {
        let base = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let root = base + "/root"
        let files = FileManager.default
        try files.createDirectory(atPath: root + "/inside/deep", withIntermediateDirectories: true)
        try files.createDirectory(atPath: base + "/outside", withIntermediateDirectories: true)
        try files.createSymbolicLink(atPath: root + "/out", withDestinationPath: base + "/outside")
        try files.createSymbolicLink(atPath: root + "/in", withDestinationPath: root + "/inside")
        try files.createSymbolicLink(atPath: root + "/dotdot", withDestinationPath: "../outside")

        #expect(try PathConfinement.resolve(root + "/inside/deep", under: root) == root + "/inside/deep")
        #expect(try PathConfinement.resolve(root + "//inside///new/dir", under: root + "/") == root + "/inside/new/dir")
        #expect(try PathConfinement.resolve(root + "/in/deep/new", under: root) == root + "/inside/deep/new")
        for path in [root + "/out", root + "/out/x", root + "/dotdot/x", root + "/in", root + "/../escape", root + "/./x",
                     "relative", root, "/etc", root + "x/y", root + "/a\0b", root + "/" + String(repeating: "a", count: 5000)] {
            #expect(throws: HostSystemError.self, "\(path.prefix(80))") { try PathConfinement.resolve(path, under: root) }
        }
        // A root that is itself reached through a symlink: paths given either way resolve.
        try files.createSymbolicLink(atPath: base + "/root-link", withDestinationPath: root)
        #expect(try PathConfinement.resolve(base + "/root-link/inside/x", under: base + "/root-link") == root + "/inside/x")
        #expect(try PathConfinement.resolve(root + "/inside/x", under: base + "/root-link") == root + "/inside/x")
    }
}
