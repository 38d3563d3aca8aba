// How a client reaches an HTTP server: over the network (`HTTPClient`) or, in tests and in
// one-process setups, by calling the server's handler directly (`HandlerTransport`). Clients
// such as `KubeClient` take either, so controller tests run against the real API handler
// without sockets, TLS or ports.
import Foundation
import NIOCore
import Synchronization

/// One request answered whole, or a response whose body streams (a watch).
public protocol HTTPTransport: Sendable {
    /// Sends `request` and returns the whole response.
    func send(_ request: HTTPRequest) async throws -> HTTPResponse
    /// Sends `request`; returns the head at once and the body as it arrives. The body ends
    /// when the server ends it, or when the consumer stops iterating it.
    func stream(_ request: HTTPRequest) async throws -> HTTPStreamingResponse
    /// Sends `request` and hands its body's chunks to `chunk` as they arrive (HTTPStreamReading.swift).
    /// A requirement, not only an extension method, so that a call through `any HTTPTransport`
    /// reaches `HTTPClient`'s own reading on the event loop rather than the default.
    func readStream(_ request: HTTPRequest, chunk: @escaping @Sendable (ByteBuffer) throws -> Void) async throws -> HTTPStreamStart
}

extension HTTPClient: HTTPTransport {}

/// Answers requests by calling a handler in this process, as `HTTPServer` would call it for a
/// request that arrived on a socket.
public struct HandlerTransport: HTTPTransport {
    private let handler: HTTPHandler

    public init(_ handler: @escaping HTTPHandler) { self.handler = handler }

    /// A streamed response is read to its end; use `stream` for responses that do not end.
    public func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        var response = await answer(request)
        guard let stream = response.stream else { return response }
        response.stream = nil
        let collected = ChunkCollector()
        try await stream(HTTPBodyWriter { chunk in collected.append(chunk) })
        response.body = collected.bytes
        return response
    }

    public func stream(_ request: HTTPRequest) async throws -> HTTPStreamingResponse {
        let response = await answer(request)
        guard let stream = response.stream else {
            let body = response.body
            return HTTPStreamingResponse(status: response.status, headers: response.headers, body: AsyncThrowingStream { continuation in
                if !body.isEmpty { continuation.yield(body) }
                continuation.finish()
            })
        }
        let (body, chunks) = AsyncThrowingStream<Data, any Error>.makeStream()
        let writer = Task {
            do {
                try await stream(HTTPBodyWriter { chunk in
                    try Task.checkCancellation()
                    if case .terminated = chunks.yield(chunk) { throw CancellationError() }
                })
                chunks.finish()
            } catch {
                chunks.finish(throwing: error)
            }
        }
        chunks.onTermination = { _ in writer.cancel() }
        return HTTPStreamingResponse(status: response.status, headers: response.headers, body: body)
    }
}

extension HandlerTransport {
    /// The handler's answer, computed in a task of its own: as over a socket, a client that
    /// gives up (its task is cancelled) does not cancel the server's work half-way.
    private func answer(_ request: HTTPRequest) async -> HTTPResponse {
        let handler = self.handler
        return await Task { await handler(request) }.value
    }
}

/// The chunks of a streamed body, gathered under a lock (the stream may write from any task).
private final class ChunkCollector: Sendable {
    private let data = Mutex(Data())
    func append(_ chunk: Data) { data.withLock { $0.append(chunk) } }
    var bytes: Data { data.withLock { $0 } }
}
