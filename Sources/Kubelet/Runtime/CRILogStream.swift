// A CRI log read forward in bounded pieces and rendered as `kubectl logs` prints it, for the
// kubelet's `/containerLogs`: however large the log, a reader holds at most a piece (1 MiB) and
// one unfinished line.
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Reads the CRI log at a path from an offset (0, or `CRILog.tailStart`): the entries at or after
/// `since`, at most `limitBytes` of output in all, with their times when `timestamps`. Without
/// `follow` it ends where the log ended when it was opened; with it, it waits for more and
/// follows the log across a rotation (the kubelet renames the file, the shim reopens the path:
/// the renamed file is read to its end, then the new one from its start). The descriptor is
/// closed when the stream is released.
public final class CRILogStream: Sendable {
    /// The most read from the file in one `next()`.
    public static let pieceBytes = 1 << 20

    public struct Options: Sendable {
        public var timestamps = false
        public var since: String?
        public var limitBytes: Int?
        public var follow = false
        public init(timestamps: Bool = false, since: String? = nil, limitBytes: Int? = nil, follow: Bool = false) {
            self.timestamps = timestamps
            self.since = since
            self.limitBytes = limitBytes
            self.follow = follow
        }
    }

    public enum Piece: Sendable, Equatable {
        /// What was read, rendered (empty when nothing read was a whole line, or all was before `since`).
        case text(Data)
        /// Nothing more yet (`follow`): ask again later.
        case caughtUp
        /// The end: where the log ended when opened (without `follow`), or `limitBytes` reached.
        case finished
    }

    private struct State {
        var fd: Int32
        var file: FileIdentity
        var offset: Int
        /// Without `follow`: the log's size when opened.
        var end: Int?
        /// The bytes of a line not yet ended by its newline.
        var pending: [UInt8] = []
        /// The next entry begins a logical line (for `timestamps`).
        var lineStart = true
        var remaining: Int?
        var finished = false
    }

    private struct FileIdentity: Equatable {
        var device: UInt64
        var inode: UInt64
        init(_ info: stat) { (device, inode) = (UInt64(info.st_dev), UInt64(info.st_ino)) }
        init?(path: String) {
            var info = stat()
            guard stat(path, &info) == 0 else { return nil }
            self.init(info)
        }
    }

    public let path: String
    private let options: Options
    private let state: Mutex<State>

    /// nil when the log cannot be opened.
    public init?(path: String, from offset: Int, options: Options) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        var info = stat()
        guard fstat(fd, &info) == 0 else { close(fd); return nil }
        self.path = path
        self.options = options
        state = Mutex(State(fd: fd, file: FileIdentity(info), offset: max(0, offset), end: options.follow ? nil : Int(info.st_size),
                            remaining: options.limitBytes.map { max(0, $0) }))
    }

    deinit { state.withLock { _ = close($0.fd) } }

    /// The next piece of the log. Blocking file reads: call it off the cooperative pool.
    public func next() -> Piece {
        state.withLock { s -> Piece in
            guard !s.finished, s.remaining != 0 else { s.finished = true; return .finished }
            let want = min(Self.pieceBytes, s.end.map { $0 - s.offset } ?? Self.pieceBytes)
            guard want > 0 else { s.finished = true; return .finished }
            var buffer = [UInt8](repeating: 0, count: want)
            var n: Int
            repeat {
                n = buffer.withUnsafeMutableBytes { pread(s.fd, $0.baseAddress!, want, off_t(s.offset)) }
            } while n < 0 && errno == EINTR
            guard n >= 0 else { s.finished = true; return .finished }
            guard n > 0 else {
                // At the end: a log that shrank ends the read; a followed log that was rotated
                // continues in the file now at the path (not there yet: the shim reopens it soon).
                guard options.follow else { s.finished = true; return .finished }
                guard let now = FileIdentity(path: path), now != s.file else { return .caughtUp }
                let fd = open(path, O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else { return .caughtUp }
                var info = stat()
                fstat(fd, &info)
                close(s.fd)
                (s.fd, s.file, s.offset, s.pending) = (fd, FileIdentity(info), 0, [])
                return .text(Data())
            }
            s.offset += n
            s.pending.append(contentsOf: buffer[..<n])
            guard let lastNewline = s.pending.lastIndex(of: 0x0A) else {
                // No CRI line is this long (the shim cuts lines into partial entries): not a log line.
                if s.pending.count > CRILog.maxLineBytes + 4096 { s.pending.removeAll() }
                return .text(Data())
            }
            let text = String(decoding: s.pending[..<lastNewline], as: UTF8.self)
            s.pending.removeSubrange(...lastNewline)
            var out = ""
            for line in text.split(separator: "\n") {
                guard let entry = CRILog.parse(line) else { continue }
                if let since = options.since, CRILog.compare(entry.time, since) < 0 { continue }
                CRILog.render(entry, timestamps: options.timestamps, into: &out, lineStart: &s.lineStart)
            }
            var data = Data(out.utf8)
            if let remaining = s.remaining {
                if data.count >= remaining { data = data.prefix(remaining) }
                s.remaining = remaining - data.count
            }
            return .text(data)
        }
    }
}
