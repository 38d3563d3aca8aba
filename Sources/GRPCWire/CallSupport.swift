import NIOConcurrencyHelpers
import NIOCore

/// Tells a unary call's work that nobody waits for its answer any more: the
/// client reset the stream, or the connection closed. Work not started yet
/// should not start; work running may stop early. The answer is still due
/// (it releases what the call holds) but is not sent.
public final class CallCancellation: Sendable {
    private let state = NIOLockedValueBox<(cancelled: Bool, handlers: [@Sendable () -> Void])>((false, []))

    init() {}

    public var isCancelled: Bool { state.withLockedValue { $0.cancelled } }

    /// Runs `handler` once the call is cancelled (at once if it already is).
    public func onCancel(_ handler: @escaping @Sendable () -> Void) {
        let now = state.withLockedValue { s -> Bool in
            if s.cancelled { return true }
            s.handlers.append(handler)
            return false
        }
        if now { handler() }
    }

    func cancel() {
        let handlers = state.withLockedValue { s -> [@Sendable () -> Void] in
            guard !s.cancelled else { return [] }
            s.cancelled = true
            defer { s.handlers = [] }
            return s.handlers
        }
        for h in handlers { h() }
    }
}

/// The request messages of one streaming call, between the connection
/// (which adds them on its event loop) and the call's task (which takes them).
/// The connection gives the client flow-control credit back only as the task
/// takes messages (`consumed`), so what waits here is bounded by the
/// stream's window: a task that stops reading stops its client.
final class InboundMessages: @unchecked Sendable {
    private let lock = NIOLock()
    private var messages = CircularBuffer<[UInt8]>()
    private var ended = false
    private var failure: (any Error)?
    private var waiter: CheckedContinuation<[UInt8]?, any Error>?
    /// Called (on the taking task's thread) with the bytes each taken message held, framing included.
    private let consumed: @Sendable (Int) -> Void

    init(consumed: @escaping @Sendable (Int) -> Void) { self.consumed = consumed }

    /// A new message (event loop).
    func add(_ message: [UInt8]) {
        let w: CheckedContinuation<[UInt8]?, any Error>? = lock.withLock {
            guard !ended else { return nil }
            if let w = waiter {
                waiter = nil
                return w
            }
            messages.append(message)
            return nil
        }
        if let w {
            consumed(5 + message.count)
            w.resume(returning: message)
        }
    }

    /// No more messages: the client half-closed (nil), or the stream is gone.
    func finish(throwing error: (any Error)? = nil) {
        let w: CheckedContinuation<[UInt8]?, any Error>? = lock.withLock {
            guard !ended else { return nil }
            ended = true
            failure = error
            if error != nil { messages.removeAll() }  // the stream is gone: what it held is released by the connection
            defer { waiter = nil }
            return waiter
        }
        if let w {
            if let error { w.resume(throwing: error) } else { w.resume(returning: nil) }
        }
    }

    /// The next message; nil once the client half-closed; throws once the stream is gone or the task is cancelled.
    func next() async throws -> [UInt8]? {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<[UInt8]?, any Error>) in
                enum Now { case message([UInt8]), end, fail(any Error), wait }
                let now: Now = lock.withLock {
                    if let m = messages.popFirst() { return .message(m) }
                    if ended { return failure.map { .fail($0) } ?? .end }
                    if Task.isCancelled { return .fail(CancellationError()) }
                    waiter = c
                    return .wait
                }
                switch now {
                case .message(let m):
                    consumed(5 + m.count)
                    c.resume(returning: m)
                case .end: c.resume(returning: nil)
                case .fail(let e): c.resume(throwing: e)
                case .wait: break
                }
            }
        } onCancel: {
            let w: CheckedContinuation<[UInt8]?, any Error>? = lock.withLock {
                defer { waiter = nil }
                return waiter
            }
            w?.resume(throwing: CancellationError())
        }
    }

    var stream: RequestStream {
        AsyncThrowingStream(unfolding: { try await self.next() })
    }
}

/// A token bucket: `burst` tokens, refilled at `perSecond`; what a client
/// may do in a burst and on average before the server calls it a flood.
struct TokenBucket {
    private let burst: Double
    private let perSecond: Double
    private var tokens: Double
    private var last: NIODeadline

    init(burst: Int, perSecond: Double, now: NIODeadline = .now()) {
        self.burst = Double(burst)
        self.perSecond = perSecond
        self.tokens = Double(burst)
        self.last = now
    }

    /// Takes a token; false when none is left.
    mutating func take(now: NIODeadline = .now()) -> Bool {
        let elapsed = Double((now - last).nanoseconds) / 1e9
        last = now
        tokens = min(burst, tokens + elapsed * perSecond)
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}
