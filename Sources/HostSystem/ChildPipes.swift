// The parent's ends of a child's pipes: `ChildOutput`, an async sequence of what the child
// writes to stdout or stderr, read while it runs; and `ChildInput`, which writes to its stdin.
// Both are non-blocking descriptors waited on by the reactor thread, so a reader or writer
// suspends instead of holding a thread, and a pipe never fills up behind a child's back as long
// as someone reads it.
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One descriptor owned by the parent: closed once, by whoever gets there first (end of file,
/// `close()`, or deinit), and removed from the reactor before it is closed. Its reads, writes
/// and reactor waits use the number under the same lock as `close()`: a number that was closed
/// is handed to the next file opened anywhere in the process, and a read or a wait taken on it
/// after a close from another task would reach that file (or trip the reactor's one-wait-per-
/// descriptor check).
final class OwnedDescriptor: Sendable {
    private let fd: Mutex<Int32?>
    /// A task is reading or writing it (one at a time).
    private let busy = Mutex(false)

    init(_ fd: Int32) { self.fd = Mutex(fd) }

    /// Runs `body` with the descriptor, or nil once it is closed, under its lock (a `close()`
    /// waits for it). `body` must not block: the descriptor is non-blocking.
    func withDescriptor<T: Sendable>(_ body: (Int32?) -> T) -> T { fd.withLock { body($0) } }

    func close() {
        fd.withLock { fd in
            guard let closing = fd else { return }
            fd = nil
            Reactor.shared.forget(closing)   // a waiter is resumed with `.closed`
            _ = Glibc.close(closing)
        }
    }

    /// Suspends until the descriptor is ready for `interest`. Throws `.closed` when it is closed
    /// first, or while it waits; `CancellationError` when the task is cancelled while it waits.
    func wait(_ interest: Reactor.Interest) async throws {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let failure = fd.withLock { fd -> (any Error)? in
                    guard let fd else { return HostSystemError(.closed, "the descriptor was closed") }
                    guard !Task.isCancelled else { return CancellationError() }
                    Reactor.shared.onReady(fd, interest) { result in
                        continuation.resume(with: result.mapError { error -> any Error in error.code == .cancelled ? CancellationError() : error })
                    }
                    return nil
                }
                if let failure { return continuation.resume(throwing: failure) }
                // Cancelled between the check and the registration: the cancellation handler may
                // have run before there was a wait to cancel.
                if Task.isCancelled { cancelWait() }
            }
        } onCancel: {
            cancelWait()
        }
    }

    /// Resumes this descriptor's waiter, if any, with `CancellationError`; nothing once it is
    /// closed (its number may be another file's by then).
    private func cancelWait() {
        fd.withLock { fd in
            if let fd { Reactor.shared.cancel(fd) }
        }
    }

    /// Runs `body` as the only task using the descriptor; a second concurrent user is refused.
    func exclusively<T>(_ what: String, _ body: () async throws -> T) async throws -> T {
        let claimed = busy.withLock { busy -> Bool in defer { busy = true }; return !busy }
        guard claimed else { throw HostSystemError(.invalidArgument, "two tasks \(what) one child pipe at once; use one consumer per stream") }
        defer { busy.withLock { $0 = false } }
        return try await body()
    }

    deinit { close() }
}

/// What a child writes to one of its outputs (`ChildProcess.Output.stream`), as chunks of bytes
/// in order, read while the child runs. The sequence ends at end of file: when the child and
/// every process that inherited the pipe have closed it.
///
/// Consume it (or `close()` it): a pipe nobody reads fills up after 64 KiB and the child then
/// blocks writing. One consumer at a time.
public struct ChildOutput: AsyncSequence, Sendable {
    public typealias Element = [UInt8]
    let descriptor: OwnedDescriptor

    init(_ fd: Int32) { descriptor = OwnedDescriptor(fd) }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let descriptor: OwnedDescriptor

        /// The next chunk (at most 64 KiB), or nil at end of file or after `close()`.
        public mutating func next() async throws -> [UInt8]? {
            try await ChildOutput.read(descriptor)
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(descriptor: descriptor) }

    /// Stops reading: the child gets EPIPE (or SIGPIPE) on its next write.
    public func close() { descriptor.close() }

    /// Reads to end of file, keeping the first `limit` bytes and discarding the rest (still read,
    /// so that the child never blocks). Cancellation ends the read early with what was kept.
    public func collect(upTo limit: Int) async throws -> CollectedOutput {
        var bytes: [UInt8] = []
        var total = 0
        do {
            for try await chunk in self {
                total += chunk.count
                if bytes.count < limit { bytes += chunk.prefix(limit - bytes.count) }
            }
        } catch is CancellationError {}
        return CollectedOutput(bytes: bytes, totalBytes: total)
    }

    /// The output as lines of text (without their "\n"); a last line without one is included.
    /// Invalid UTF-8 is repaired.
    public var lines: Lines { Lines(base: self) }

    public struct Lines: AsyncSequence, Sendable {
        public typealias Element = String
        let base: ChildOutput

        public struct AsyncIterator: AsyncIteratorProtocol {
            var chunks: ChildOutput.AsyncIterator
            var pending: [UInt8] = []
            var finished = false

            public mutating func next() async throws -> String? {
                while true {
                    if let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                        let line = String(decoding: pending[..<newline], as: UTF8.self)
                        pending.removeSubrange(...newline)
                        return line
                    }
                    if finished {
                        guard !pending.isEmpty else { return nil }
                        defer { pending = [] }
                        return String(decoding: pending, as: UTF8.self)
                    }
                    if let chunk = try await chunks.next() { pending += chunk } else { finished = true }
                }
            }
        }

        public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(chunks: base.makeAsyncIterator()) }
    }

    static func read(_ descriptor: OwnedDescriptor) async throws -> [UInt8]? {
        try await descriptor.exclusively("read") {
            while true {
                // nil: closed; otherwise what one read gave, and errno (-1 at end of file).
                let outcome = descriptor.withDescriptor { fd -> (chunk: [UInt8], failure: Int32)? in
                    guard let fd else { return nil }
                    var failure: Int32 = 0
                    let chunk = [UInt8](unsafeUninitializedCapacity: 65536) { buffer, count in
                        let read = Glibc.read(fd, buffer.baseAddress, buffer.count)
                        count = Swift.max(read, 0)
                        if read < 0 { failure = errno } else if read == 0 { failure = -1 }
                    }
                    return (chunk, failure)
                }
                guard let (chunk, failure) = outcome else { return nil }
                if !chunk.isEmpty { return chunk }
                switch failure {
                case -1:
                    descriptor.close()
                    return nil
                case EINTR:
                    continue
                case EAGAIN:
                    do {
                        try await descriptor.wait(.readable)
                    } catch let error as HostSystemError where error.code == .closed {
                        return nil
                    }
                default:
                    throw HostSystemError.system("read a child's output", errno: failure)
                }
            }
        }
    }
}

/// What `ChildOutput.collect(upTo:)` kept.
public struct CollectedOutput: Sendable, Equatable {
    /// The first bytes, up to the limit.
    public var bytes: [UInt8]
    /// How many bytes the child wrote in all.
    public var totalBytes: Int
    /// True when bytes beyond the limit were discarded.
    public var truncated: Bool { totalBytes > bytes.count }
    /// The kept bytes as text (invalid UTF-8 repaired).
    public var text: String { String(decoding: bytes, as: UTF8.self) }
}

/// The parent's end of a child's stdin (`ChildProcess.Input.pipe`).
public struct ChildInput: Sendable {
    let descriptor: OwnedDescriptor

    init(_ fd: Int32) {
        ChildInput.ignoreBrokenPipes
        descriptor = OwnedDescriptor(fd)
    }

    /// Writes all of `bytes`, suspending while the pipe is full. Throws `.closed` when the child
    /// no longer reads its input (it exited or closed stdin).
    public func write(_ bytes: some Sequence<UInt8>) async throws {
        let bytes = Array(bytes)
        try await descriptor.exclusively("write") {
            var offset = 0
            while offset < bytes.count {
                // nil: closed; otherwise what one write gave, and its errno.
                let outcome = descriptor.withDescriptor { fd -> (written: Int, failure: Int32)? in
                    guard let fd else { return nil }
                    let written = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
                    return (written, written < 0 ? errno : 0)
                }
                guard let (written, failure) = outcome else { throw HostSystemError(.closed, "the child's input was closed") }
                if written >= 0 {
                    offset += written
                    continue
                }
                switch failure {
                case EINTR: continue
                case EAGAIN: try await descriptor.wait(.writable)
                case EPIPE: throw HostSystemError(.closed, "the child stopped reading its input after \(offset) of \(bytes.count) bytes", errno: EPIPE)
                default: throw HostSystemError.system("write to a child's input", errno: failure)
                }
            }
        }
    }

    /// Writes `text` as UTF-8.
    public func write(_ text: String) async throws { try await write(Array(text.utf8)) }

    /// An input that writes to `fd` (a pseudo-terminal's master, say) through a duplicate of it,
    /// which it owns and closes. The descriptor is made non-blocking — its open file description
    /// is, so `fd` and every other duplicate too — and a full buffer suspends the writing task.
    public static func writer(duplicating fd: Int32) throws -> ChildInput {
        let copy = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        guard copy >= 0 else { throw HostSystemError.system("duplicate descriptor \(fd)") }
        let flags = fcntl(copy, F_GETFL)
        guard flags >= 0, fcntl(copy, F_SETFL, flags | O_NONBLOCK) == 0 else {
            let error = HostSystemError.system("make descriptor \(fd) non-blocking")
            Glibc.close(copy)
            throw error
        }
        return ChildInput(copy)
    }

    /// Closes the pipe: the child reads end of file.
    public func close() { descriptor.close() }

    /// A write to a pipe whose reader is gone raises SIGPIPE, which kills the process by
    /// default: ignored once, process-wide, before the first input pipe exists (children get
    /// the default disposition back, see `ChildProcess`).
    private static let ignoreBrokenPipes: Void = { _ = signal(SIGPIPE, SIG_IGN) }()
}
