// Container logs in the CRI format, as containerd and CRI-O write them and as `kubectl logs`
// reads them through the kubelet: one line per line of output,
//
//     2024-05-01T10:00:00.123456789Z stdout F hello world
//     2024-05-01T10:00:00.200000000Z stderr P a line longer than 16 KiB is cut into partial…
//     2024-05-01T10:00:00.200000001Z stderr F …pieces, the last one tagged F
//
// at `<pod-logs-dir>/<namespace>_<pod>_<uid>/<container>/<restartCount>.log`.
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Writes CRI log lines to a file; shared by the writers of a container's stdout and stderr.
public final class CRILogWriter: Sendable {
    /// The longest piece written as one line; longer lines become partial (P) lines.
    public static let maxLineBytes = 16 * 1024
    private let fd: Int32

    /// Opens (creating, appending) the log at `path`.
    public init(path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw KubeletError(.runtime, "cannot open the container log \(path): \(String(cString: strerror(errno)))") }
    }

    deinit { close(fd) }

    /// Appends one entry: `content` (without its newline) from `stream`, full or partial.
    public func write(stream: String, partial: Bool, content: some Collection<UInt8>, at time: Date = Date()) {
        var line = Array((CRILog.timestamp(time) + " " + stream + (partial ? " P " : " F ")).utf8)
        line.append(contentsOf: content)
        line.append(0x0A)
        line.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 { if errno == EINTR { continue } else { return } }
                offset += written
            }
        }
    }

    /// Copies `chunks` (a stream's output) into the log, line by line, until they end.
    public func pump(_ chunks: some AsyncSequence<[UInt8], any Error>, stream: String) async {
        var pending: [UInt8] = []
        do {
            for try await chunk in chunks {
                pending.append(contentsOf: chunk)
                var start = 0
                while let newline = pending[start...].firstIndex(of: 0x0A) {
                    var end = newline
                    while end - start > Self.maxLineBytes {
                        write(stream: stream, partial: true, content: pending[start..<(start + Self.maxLineBytes)])
                        start += Self.maxLineBytes
                        end = newline
                    }
                    write(stream: stream, partial: false, content: pending[start..<end])
                    start = newline + 1
                }
                while pending.count - start > Self.maxLineBytes {
                    write(stream: stream, partial: true, content: pending[start..<(start + Self.maxLineBytes)])
                    start += Self.maxLineBytes
                }
                pending.removeFirst(start)
            }
        } catch {}
        if !pending.isEmpty { write(stream: stream, partial: false, content: pending) }
    }
}

/// Reading CRI logs back, for `/containerLogs` (`kubectl logs`).
public enum CRILog {
    /// One parsed entry.
    public struct Entry: Sendable, Equatable {
        public var time: String
        public var stream: String
        public var partial: Bool
        public var content: Substring
    }

    /// RFC 3339 with nanoseconds in UTC, as Go's `time.RFC3339Nano` prints it.
    public static func timestamp(_ date: Date) -> String {
        let seconds = date.timeIntervalSince1970
        var whole = time_t(seconds.rounded(.down))
        var nanos = Int((seconds - Double(whole)) * 1e9)
        if nanos >= 1_000_000_000 { whole += 1; nanos -= 1_000_000_000 }
        var parts = tm()
        gmtime_r(&whole, &parts)
        var text = String(format: "%04d-%02d-%02dT%02d:%02d:%02d", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday),
                          Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec))
        if nanos > 0 {
            var fraction = String(format: "%09d", nanos)
            while fraction.hasSuffix("0") { fraction.removeLast() }
            text += "." + fraction
        }
        return text + "Z"
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
