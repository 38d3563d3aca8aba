import NIOConcurrencyHelpers
import NIOCore

/// How the server runs one method. Messages are the serialized protobuf
/// bytes, without gRPC's 5-byte length prefix.
public enum GRPCMethod: Sendable {
    /// One request, one response. The handler runs on the connection's event
    /// loop and must not block: it answers through the responder exactly once,
    /// from any thread, now or later (the store's writer answers a whole group
    /// of writes at once, with one event-loop hop per connection).
    case unary(@Sendable (_ request: [UInt8], _ responder: UnaryResponder) -> Void)
    /// Streams in either direction. The handler runs as a task; returning
    /// ends the call with OK, throwing a ``GRPCStatus`` ends it with that
    /// status (any other error: UNKNOWN).
    case streaming(@Sendable (_ requests: RequestStream, _ responses: ResponseWriter) async throws -> Void)

    /// A unary method whose handler is async: it runs as a task.
    /// The task is cancelled when the client resets the call (or the connection goes).
    public static func unaryAsync(_ body: @escaping @Sendable (_ request: [UInt8]) async throws -> [UInt8]) -> GRPCMethod {
        .unary { request, responder in
            let task = Task {
                do {
                    responder.succeed(try await body(request))
                } catch {
                    responder.fail(GRPCStatus(error))
                }
            }
            responder.cancellation.onCancel { task.cancel() }
        }
    }
}

extension GRPCStatus {
    /// The status for an error a handler threw.
    init(_ error: any Error) {
        if let s = error as? GRPCStatus {
            self = s
        } else if error is CancellationError {
            self = GRPCStatus(.cancelled, "the call was cancelled")
        } else {
            self = GRPCStatus(.unknown, "\(error)")
        }
    }
}

/// Answers one unary call. The first answer counts; later ones are ignored.
/// Every call must be answered, even a cancelled one: the answer releases
/// what the call holds of its connection's bounds.
public struct UnaryResponder: Sendable {
    let inbox: CompletionInbox
    let connection: NIOLoopBound<GRPCConnectionHandler>
    let streamID: UInt32
    /// Cancelled when the client resets the call or the connection closes.
    public let cancellation: CallCancellation

    public func succeed(_ response: [UInt8]) { inbox.post(connection, streamID, .message(response)) }
    public func fail(_ status: GRPCStatus) { inbox.post(connection, streamID, .status(status)) }
}

/// The request messages of a streaming call, in order; it ends when the
/// client half-closes and throws `CancellationError` when the client resets
/// the stream or the connection goes.
public typealias RequestStream = AsyncThrowingStream<[UInt8], any Error>

/// Sends the response messages of a streaming call.
public struct ResponseWriter: Sendable {
    let connection: NIOLoopBound<GRPCConnectionHandler>
    let streamID: UInt32

    /// Queues one message. Returns at once while fewer than a megabyte of this
    /// stream's messages wait to reach the socket, later otherwise (so a client
    /// that stops reading slows its stream's producer, never the server).
    /// Throws `CancellationError` once the stream is gone, or when the
    /// calling task is cancelled while it waits (the message stays queued).
    public func send(_ message: [UInt8]) async throws {
        let connection = self.connection
        let id = streamID
        let ticket = SendTicket()
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                connection.eventLoop.execute {
                    connection.value.send(message, on: id, ticket: ticket, then: c)
                }
            }
        } onCancel: {
            ticket.cancelled.withLockedValue { $0 = true }
            connection.eventLoop.execute { connection.value.cancelWait(on: id, ticket: ticket) }
        }
    }
}

/// Identifies one waiting `send`, so that its task's cancellation ends that wait alone
/// (also when the cancellation comes first).
final class SendTicket: Sendable {
    let cancelled = NIOLockedValueBox(false)
}
