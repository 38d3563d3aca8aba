// The mount options a volume capability may ask for (`mount_flags`). Each entry is one option,
// checked against a list of what is safe for a pod's volume on ext4 and xfs: access-time and
// sync behaviour, nosuid/nodev/noexec, discard, quotas, journalling modes. Anything else —
// commas smuggling further options, bind/remount, SELinux contexts, errors=panic, norecovery
// on a writable mount, unknown options — is INVALID_ARGUMENT naming the flag.
import HostSystem

enum MountFlags {
    /// Options without a value.
    static let plain: Set<String> = [
        "defaults", "ro", "rw", "sync", "async", "dirsync",
        "atime", "noatime", "relatime", "norelatime", "strictatime", "nostrictatime", "lazytime", "nolazytime",
        "diratime", "nodiratime", "nosuid", "nodev", "noexec", "discard", "nodiscard",
        "quota", "noquota", "usrquota", "grpquota", "prjquota", "uquota", "gquota", "pquota",
        "user_xattr", "nouser_xattr", "acl", "noacl", "journal_checksum", "nojournal_checksum",
        "delalloc", "nodelalloc", "auto_da_alloc", "noauto_da_alloc", "inode64", "inode32",
        "largeio", "nolargeio", "nouuid", "grpid", "nogrpid", "bsdgroups", "sysvgroups",
    ]

    /// Options of the form key=value, and the values each accepts.
    static let valued: [String: @Sendable (String) -> Bool] = [
        "data": { ["ordered", "writeback", "journal"].contains($0) },
        "errors": { ["remount-ro", "continue"].contains($0) },
        "commit": { number($0, in: 0...300) },
        "stripe": { number($0, in: 0...(1 << 20)) },
        "logbufs": { number($0, in: 2...8) },
        "logbsize": { ["16k", "32k", "64k", "128k", "256k"].contains($0) },
        "allocsize": { size($0) },
        "sunit": { number($0, in: 0...(1 << 24)) },
        "swidth": { number($0, in: 0...(1 << 24)) },
    ]

    /// Throws INVALID_ARGUMENT naming `field` and the first flag that is not allowed.
    static func check(_ flags: [String], field: String) throws {
        do {
            try MountOptions.check(flags)
        } catch {
            throw CSIError.invalid(field, error.message)
        }
        for flag in flags {
            if plain.contains(flag) { continue }
            if let equals = flag.firstIndex(of: "="), let accepts = valued[String(flag[..<equals])],
               accepts(String(flag[flag.index(after: equals)...])) { continue }
            throw CSIError.invalid(field, "\"\(CSIError.printable(flag))\" is not an allowed mount option; allowed: \(plain.sorted().joined(separator: ", ")), and \(valued.keys.sorted().map { "\($0)=…" }.joined(separator: ", "))")
        }
    }

    private static func number(_ text: String, in range: ClosedRange<Int>) -> Bool {
        text.count <= 9 && text.allSatisfy(\.isASCII) && Int(text).map(range.contains) == true
    }

    private static func size(_ text: String) -> Bool {
        guard let last = text.last else { return false }
        let digits = "kmgKMG".contains(last) ? String(text.dropLast()) : text
        return number(digits, in: 1...(1 << 20))
    }
}
