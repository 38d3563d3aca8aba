// Container logs in the CRI format, as containerd and CRI-O write them and as `kubectl logs`
// reads them through the kubelet: one line per line of output,
//
//     2024-05-01T10:00:00.123456789Z stdout F hello world
//     2024-05-01T10:00:00.200000000Z stderr P a line longer than 16 KiB is cut into partial…
//     2024-05-01T10:00:00.200000001Z stderr F …pieces, the last one tagged F
//
// at `<pod-logs-dir>/<namespace>_<pod>_<uid>/<container>/<restartCount>.log`. The container's
// shim (`ballast-shim`) writes them through CKubelet's `ckl_cri_stream_*`; the kubelet reads
// them here, with the same timestamp format (`ckl_cri_timestamp`).
import CKubelet
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Reading CRI logs back, for `/containerLogs` (`kubectl logs`).
public enum CRILog {
    /// One parsed entry.
    public struct Entry: Sendable, Equatable {
        public var time: String
        public var stream: String
        public var partial: Bool
        public var content: Substring
    }

    /// The longest piece written as one line; longer lines become partial (P) lines.
    public static let maxLineBytes = Int(CKL_CRI_MAX_LINE)

    /// RFC 3339 with nanoseconds in UTC, as Go's `time.RFC3339Nano` prints it.
    public static func timestamp(_ date: Date) -> String {
        let seconds = date.timeIntervalSince1970
        var whole = Int64(seconds.rounded(.down))
        var nanos = Int((seconds - Double(whole)) * 1e9)
        if nanos >= 1_000_000_000 { whole += 1; nanos -= 1_000_000_000 }
        var buffer = [CChar](repeating: 0, count: 64)
        _ = ckl_cri_timestamp(&buffer, buffer.count, whole, nanos)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Parses one line (without its newline); nil for a malformed line.
    public static func parse(_ line: Substring) -> Entry? {
        let parts = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false)
        guard parts.count >= 3, parts[2] == "F" || parts[2] == "P" else { return nil }
        return Entry(time: String(parts[0]), stream: String(parts[1]), partial: parts[2] == "P",
                     content: parts.count == 4 ? parts[3] : "")
    }

    /// What `kubectl logs` prints for `entries`: the content, a newline after full lines, each
    /// logical line prefixed by its time with `timestamps`.
    public static func render(_ entries: [Entry], timestamps: Bool) -> String {
        var out = ""
        var lineStart = true
        for entry in entries { render(entry, timestamps: timestamps, into: &out, lineStart: &lineStart) }
        return out
    }

    /// Appends one entry as `render` does; `lineStart` carries whether it begins a logical line.
    static func render(_ entry: Entry, timestamps: Bool, into out: inout String, lineStart: inout Bool) {
        if timestamps && lineStart { out += entry.time + " " }
        out += entry.content
        if !entry.partial { out += "\n" }
        lineStart = !entry.partial
    }

    /// Where the last `logicalLines` logical lines of the CRI log at `path` begin: 0 for a log
    /// with fewer (or for a negative count), its size for none. Read backwards in blocks,
    /// keeping of each line only its first bytes (time, stream, tag), so that a tail of any log
    /// costs a block of memory. A trailing run of partial (P) entries counts as a line, as
    /// `select` counts it; malformed lines count as nothing, and bytes after the last newline
    /// are not a line yet.
    public static func tailStart(_ path: String, logicalLines: Int) -> Int {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { return 0 }
        let size = Int(info.st_size)
        guard logicalLines != 0 else { return size }
        guard logicalLines > 0 else { return 0 }   // a negative tail, as upstream's -1: all of it
        let blockBytes = 64 << 10, headerBytes = 96
        var end = size                  // what is before `end` is still to be read
        var later: [UInt8] = []         // the first bytes from `end` on: the head of the line there
        var nextNewline: Int? = nil     // the newline ending the line whose start is sought
        var fullLines = 0
        var trailingPartial: Bool? = nil
        // The line [start, newline): its head decides; the start of the tail when it is enough.
        func consider(_ head: ArraySlice<UInt8>, newline: Int) -> Int? {
            guard let entry = parse(Substring(decoding: head, as: UTF8.self)) else { return nil }
            if trailingPartial == nil { trailingPartial = entry.partial }
            guard !entry.partial else { return nil }
            if fullLines + (trailingPartial == true ? 1 : 0) >= logicalLines { return newline + 1 }
            fullLines += 1
            return nil
        }
        while end > 0 {
            let from = max(0, end - blockBytes)
            var buffer = [UInt8](repeating: 0, count: end - from)
            var read = 0
            while read < buffer.count {
                let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + read, $0.count - read, off_t(from + read)) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { return 0 }   // the log shrank or cannot be read: all of it
                read += n
            }
            buffer += later
            var index = end - from
            while index > 0 {
                index -= 1
                guard buffer[index] == 0x0A else { continue }
                if let newline = nextNewline {
                    let head = buffer[(index + 1)..<min(index + 1 + headerBytes, newline - from, buffer.count)]
                    if let start = consider(head, newline: newline) { return start }
                }
                nextNewline = from + index
            }
            later = Array(buffer.prefix(headerBytes))
            end = from
        }
        if let newline = nextNewline, let start = consider(later[..<min(later.count, newline)], newline: newline) { return start }
        return 0
    }

    /// The entries of `text` after `since` (RFC 3339 strings compare in time order when both
    /// are UTC) and, with `tailLines`, only the last that many logical lines.
    public static func select(_ text: String, tailLines: Int?, since: String?) -> [Entry] {
        var entries = text.split(separator: "\n", omittingEmptySubsequences: true).compactMap(parse)
        if let since { entries = entries.filter { compare($0.time, since) >= 0 } }
        if let tailLines {
            var lines: [[Entry]] = []
            var current: [Entry] = []
            for entry in entries {
                current.append(entry)
                if !entry.partial { lines.append(current); current = [] }
            }
            if !current.isEmpty { lines.append(current) }
            entries = lines.suffix(max(0, tailLines)).flatMap { $0 }
        }
        return entries
    }

    /// Orders two RFC 3339 UTC times of possibly different fraction lengths.
    static func compare(_ a: String, _ b: String) -> Int {
        func split(_ t: String) -> (String, String) {
            let trimmed = t.hasSuffix("Z") ? String(t.dropLast()) : t
            let pieces = trimmed.split(separator: ".", maxSplits: 1)
            let fraction = pieces.count > 1 ? String(pieces[1]) : ""
            return (String(pieces[0]), fraction.padding(toLength: 9, withPad: "0", startingAt: 0))
        }
        let (x, y) = (split(a), split(b))
        if x.0 != y.0 { return x.0 < y.0 ? -1 : 1 }
        if x.1 != y.1 { return x.1 < y.1 ? -1 : 1 }
        return 0
    }
}
