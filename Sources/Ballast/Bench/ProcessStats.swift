// What the benchmark reads about its own process and files, from /proc and the file system.
import Foundation

enum ProcessStats {
    /// `write_bytes` of /proc/self/io: bytes this process caused to be written to storage
    /// (counted when pages are dirtied). Nil if the file is unreadable (some containers hide it).
    static func writeBytes() -> UInt64? {
        field("write_bytes:", in: "/proc/self/io")
    }

    /// Peak resident set size (VmHWM of /proc/self/status) in bytes, or nil.
    static func peakRSSBytes() -> UInt64? {
        field("VmHWM:", in: "/proc/self/status").map { $0 * 1024 }   // reported in kB
    }

    /// Resets VmHWM to the current RSS (writing "5" to /proc/self/clear_refs, Linux 4.0+), so
    /// each engine's peak is its own. Returns false if the kernel refused.
    @discardableResult
    static func resetPeakRSS() -> Bool {
        let fd = open("/proc/self/clear_refs", O_WRONLY)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return write(fd, "5", 1) == 1
    }

    /// The first number after `label` in a "label value [unit]" line of a /proc file.
    private static func field(_ label: String, in path: String) -> UInt64? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(label) {
            let words = line.dropFirst(label.count).split(whereSeparator: { $0 == " " || $0 == "\t" })
            return words.first.flatMap { UInt64($0) }
        }
        return nil
    }

    /// Sum of the sizes of the regular files under `path`, recursively (symbolic links are
    /// not followed).
    static func directoryBytes(_ path: String) -> UInt64 {
        let fm = FileManager.default
        guard let entries = fm.enumerator(atPath: path) else { return 0 }
        var total: UInt64 = 0
        for case let relative as String in entries {
            var info = stat()
            if lstat(path + "/" + relative, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG {
                total += UInt64(info.st_size)
            }
        }
        return total
    }
}
