import GRPCWire
import MVCCStore
import SwiftProtobuf

// Typed registration of etcd's methods on the wire server: requests decoded
// and responses encoded here, errors mapped to statuses once (ErrorMapping).

extension GRPCRouter {
    /// A unary method answered by a task.
    mutating func unary<Request: Message, Response: Message>(
        _ path: String, _ body: @escaping @Sendable (Request) async throws -> Response
    ) {
        register(path, .unaryAsync { bytes in
            do {
                return try encode(try await body(decode(bytes)))
            } catch {
                throw ErrorMapping.status(error)
            }
        })
    }

    /// A unary method that starts its work on the event loop without
    /// blocking and answers through `done` from wherever the work ends (the
    /// store's writer): no task, no thread switch of its own.
    mutating func write<Request: Message, Response: Message>(
        _ path: String,
        _ body: @escaping @Sendable (Request, _ done: @escaping @Sendable (Result<Response, any Error>) -> Void) throws -> Void
    ) {
        register(path, .unary { bytes, responder in
            do {
                try body(try decode(bytes)) { result in
                    do {
                        responder.succeed(try encode(try result.get()))
                    } catch {
                        responder.fail(ErrorMapping.status(error))
                    }
                }
            } catch {
                responder.fail(ErrorMapping.status(error))
            }
        })
    }

    /// A unary method whose work blocks (a read of the store): the request is
    /// decoded on the event loop and `body` hands the work to the store's
    /// reader threads, which answer through `done`. `isCancelled` tells the
    /// work that the client reset the call (a queued read then never runs).
    mutating func read<Request: Message, Response: Message>(
        _ path: String,
        _ body: @escaping @Sendable (Request, _ isCancelled: @escaping @Sendable () -> Bool,
                                     _ done: @escaping @Sendable (Result<Response, any Error>) -> Void) throws -> Void
    ) {
        register(path, .unary { bytes, responder in
            do {
                let cancellation = responder.cancellation
                try body(try decode(bytes), { cancellation.isCancelled }) { result in
                    do {
                        responder.succeed(try encode(try result.get()))
                    } catch {
                        responder.fail(ErrorMapping.status(error))
                    }
                }
            } catch {
                responder.fail(ErrorMapping.status(error))
            }
        })
    }

    /// A streaming method: decoded requests in, typed responses out.
    mutating func streaming<Request: Message, Response: Message>(
        _ path: String,
        _ body: @escaping @Sendable (_ requests: AsyncThrowingMapSequence<RequestStream, Request>,
                                     _ send: @escaping @Sendable (Response) async throws -> Void) async throws -> Void
    ) {
        register(path, .streaming { requests, writer in
            do {
                try await body(requests.map { try decode($0) }) { response in try await writer.send(try encode(response)) }
            } catch {
                throw ErrorMapping.status(error)
            }
        })
    }
}

private func decode<M: Message>(_ bytes: [UInt8]) throws -> M {
    do {
        return try M(serializedBytes: bytes)
    } catch {
        throw GRPCStatus(.internalError, "grpc: error unmarshalling request: \(error)")
    }
}

private func encode(_ message: some Message) throws -> [UInt8] {
    try message.serializedBytes()
}
