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
        for entry in entries {
            if timestamps && lineStart { out += entry.time + " " }
            out += entry.content
            if !entry.partial { out += "\n" }
            lineStart = !entry.partial
        }
        return out
    }

    /// The end of the CRI log at `path` from a line's start, holding more than `logicalLines`
    /// full lines (or the whole log), read backwards in blocks; and the log's size then.
    public static func readEnd(_ path: String, logicalLines: Int) -> (String, Int) {
        guard let handle = FileHandle(forReadingAtPath: path) else { return ("", 0) }
        defer { try? handle.close() }
        let size = Int((try? handle.seekToEnd()) ?? 0)
        var start = size
        var data = Data()
        var block = 64 << 10
        while start > 0 {
            defer { block *= 2 }   // each pass re-reads what it has: doubling keeps the whole linear
            let from = max(0, start - block)
            try? handle.seek(toOffset: UInt64(from))
            data = ((try? handle.read(upToCount: start - from)) ?? Data()) + data
            start = from
            // Whole lines only (the first may be cut unless the start was reached); enough when
            // more full logical lines ("F" entries) than asked are there.
            let lines = data.split(separator: 0x0A).dropFirst(start > 0 ? 1 : 0)
            let full = lines.reduce(0) { count, line in
                count + (CRILog.parse(Substring(decoding: line, as: UTF8.self)).map { $0.partial ? 0 : 1 } ?? 0)
            }
            if full > logicalLines { break }
        }
        if start > 0, let newline = data.firstIndex(of: 0x0A) { data = Data(data[data.index(after: newline)...]) }
        return (String(decoding: data, as: UTF8.self), size)
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
