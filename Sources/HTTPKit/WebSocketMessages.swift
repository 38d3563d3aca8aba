// A WebSocket's incoming messages, bounded: the connection's reader waits while the session has
// more than `capacity` bytes unread, so it stops reading the socket and the peer is held back
// by TCP, instead of the messages piling up in memory (a client typing into a command that reads
// nothing, say).
import NIOCore
import Synchronization

/// The data messages of a `WebSocketConnection`, in order; the sequence ends when the peer
/// closes or the connection drops, or when the task iterating it is cancelled. One consumer.
public final class WebSocketMessages: AsyncSequence, Sendable {
    public typealias Element = WebSocketMessage

    /// Unread bytes past which the reader waits (one message is always taken, whatever its size).
    static let capacity = 4 << 20

    private struct State {
        var buffer = CircularBuffer<WebSocketMessage>()
        var bytes = 0
        /// No more messages: the peer closed, or the connection dropped.
        var finished = false
        /// The consumer went (cancelled): what arrives is dropped.
        var abandoned = false
        var consumer: CheckedContinuation<WebSocketMessage?, Never>?
        var producer: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    init() {}

    /// Hands `message` to the consumer; waits while more than `capacity` bytes are unread (until
    /// the consumer reads, goes, or the task is cancelled).
    func push(_ message: WebSocketMessage) async {
        let waiting = state.withLock { state -> CheckedContinuation<WebSocketMessage?, Never>? in
            if state.abandoned || state.finished { return nil }
            if let consumer = state.consumer {
                state.consumer = nil
                return consumer
            }
            state.buffer.append(message)
            state.bytes += message.bytes.count
            return nil
        }
        if let waiting {
            waiting.resume(returning: message)
            return
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let full = state.withLock { state -> Bool in
                    guard state.bytes > Self.capacity, !state.abandoned, !Task.isCancelled else { return false }
                    state.producer = continuation
                    return true
                }
                if !full { continuation.resume() }
            }
        } onCancel: {
            state.withLock { state -> CheckedContinuation<Void, Never>? in
                defer { state.producer = nil }
                return state.producer
            }?.resume()
        }
    }

    /// The session is over (it returned, or its task was cancelled): what is buffered and what
    /// comes from now on is dropped, so that the reader never waits for it.
    func abandon() {
        let (consumer, producer) = state.withLock { Self.abandon(&$0) }
        consumer?.resume(returning: nil)
        producer?.resume()
    }

    private static func abandon(_ state: inout State) -> (CheckedContinuation<WebSocketMessage?, Never>?, CheckedContinuation<Void, Never>?) {
        state.abandoned = true
        state.buffer.removeAll()
        state.bytes = 0
        defer { (state.consumer, state.producer) = (nil, nil) }
        return (state.consumer, state.producer)
    }

    /// No more messages: the consumer reads what is buffered, then the end.
    func finish() {
        let waiting = state.withLock { state -> CheckedContinuation<WebSocketMessage?, Never>? in
            state.finished = true
            defer { state.consumer = nil }
            return state.consumer
        }
        waiting?.resume(returning: nil)
    }

    private func next() async -> WebSocketMessage? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<WebSocketMessage?, Never>) in
                enum Outcome { case message(WebSocketMessage?, CheckedContinuation<Void, Never>?), wait }
                let outcome = state.withLock { state -> Outcome in
                    if let message = state.buffer.popFirst() {
                        state.bytes -= message.bytes.count
                        var producer: CheckedContinuation<Void, Never>?
                        if state.bytes <= Self.capacity { (producer, state.producer) = (state.producer, nil) }
                        return .message(message, producer)
                    }
                    if Task.isCancelled { return .message(nil, Self.abandon(&state).1) }
                    if state.finished || state.abandoned { return .message(nil, nil) }
                    state.consumer = continuation
                    return .wait
                }
                if case .message(let message, let producer) = outcome {
                    producer?.resume()
                    continuation.resume(returning: message)
                }
            }
        } onCancel: {
            abandon()   // the consumer is gone: it gets the end, the reader drops what comes from now on
        }
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let messages: WebSocketMessages
        public mutating func next() async -> WebSocketMessage? { await messages.next() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(messages: self) }
}
