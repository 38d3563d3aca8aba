// A streamed response read in place: each body chunk is handed to a callback where it arrives
// (on the connection's event loop, for `HTTPClient`), not queued for a task. For readers that
// follow many long responses at once (a hundred watches) and look at a few bytes of each: no
// task wake, no copy into `Data` and no stream element per chunk.
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// How a streamed response that is read in place started.
public enum HTTPStreamStart: Sendable {
    /// A 2xx head: the body goes to the callback as it arrives.
    case streaming(HTTPStreamReading)
    /// Any other status: the whole response, its body collected (the callback is never called).
    case refused(HTTPResponse)
}

/// A response body being read in place. Its chunks go to the callback given when it was
/// opened; `finished()` waits for its end; `cancel()` closes the connection.
public struct HTTPStreamReading: Sendable {
    public let status: HTTPResponseStatus
    public let headers: HTTPHeaders
    private let stop: @Sendable () -> Void
    private let end: @Sendable () async throws -> Void

    public init(status: HTTPResponseStatus, headers: HTTPHeaders, cancel: @escaping @Sendable () -> Void,
                finished: @escaping @Sendable () async throws -> Void) {
        self.status = status
        self.headers = headers
        self.stop = cancel
        self.end = finished
    }

    /// Stops reading: the connection closes and `finished()` returns. A chunk already being
    /// handed over when this is called may still arrive.
    public func cancel() { stop() }

    /// Returns when the body has ended or the reading was cancelled; throws when the
    /// connection failed first, or the callback threw (with its error).
    public func finished() async throws { try await end() }
}

extension HTTPTransport {
    /// Sends `request` and hands its body's chunks to `chunk` as they arrive, in order. This
    /// default reads them through `stream` in a task; `HTTPClient` calls `chunk` on the
    /// connection's event loop (it must not block). A `chunk` that throws ends the reading
    /// with its error.
    public func readStream(_ request: HTTPRequest,
                           chunk: @escaping @Sendable (ByteBuffer) throws -> Void) async throws -> HTTPStreamStart {
        let response = try await stream(request)
        guard (200..<300).contains(response.status.code) else {
            var body = Data()
            for try await part in response.body { body.append(part) }
            return .refused(HTTPResponse(status: response.status, headers: response.headers, body: body))
        }
        let reader = Task {
            for try await part in response.body { try chunk(ByteBuffer(bytes: part)) }
        }
        return .streaming(HTTPStreamReading(status: response.status, headers: response.headers,
                                            cancel: { reader.cancel() },
                                            finished: {
                                                do { try await reader.value } catch is CancellationError {}
                                            }))
    }
}

extension HTTPClient {
    /// Sends `request` on a connection of its own and hands each body chunk to `chunk` on the
    /// connection's event loop as it is decoded (TLS, HTTP/1 chunking): no task between the
    /// socket and `chunk`. Returns at the response head. `chunk` must not block; a `chunk` that
    /// throws closes the connection and `finished()` throws its error.
    public func readStream(_ request: HTTPRequest,
                           chunk: @escaping @Sendable (ByteBuffer) throws -> Void) async throws -> HTTPStreamStart {
        let (host, port) = (self.host, self.port)
        let addHandlers = clientHandlers()
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let started = loop.makePromise(of: HTTPStreamStart.self)
        let ended = loop.makePromise(of: Void.self)
        let channel: any Channel
        do {
            channel = try await bootstrap(loop)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try addHandlers(channel)
                        try channel.pipeline.syncOperations.addHandler(
                            InPlaceBodyReader(host: host, port: port, started: started, ended: ended, chunk: chunk))
                    }
                }
                .connect(host: host, port: port).get()
        } catch {
            started.fail(error)
            ended.fail(error)
            throw HTTPClientError.connect(host: host, port: port, underlying: "\(error)")
        }
        let parts = Self.requestParts(request, host: host, port: port, keepAlive: false)
        loop.execute {
            for part in parts { channel.write(part, promise: nil) }
            channel.flush()
        }
        // The head must come within the client's timeout, as `stream`'s must: a server that
        // takes the connection and never answers fails the call instead of holding it.
        let deadline = timeout
        let headTimeout = loop.scheduleTask(in: .nanoseconds(deadline.nanosecondsClamped)) {
            started.fail(HTTPClientError.timeout(host: host, port: port, after: deadline))
            channel.close(promise: nil)
        }
        // Cancelled on the loop the moment the head (or a failure) settles `started`, so the
        // timer cannot close a connection whose head has come.
        started.futureResult.whenComplete { _ in headTimeout.cancel() }
        let start = try await withTaskCancellationHandler {
            try await started.futureResult.get()
        } onCancel: {
            channel.close(promise: nil)
        }
        guard case .streaming(let opened) = start else { return start }
        let finished = ended.futureResult
        return .streaming(HTTPStreamReading(status: opened.status, headers: opened.headers,
                                            cancel: {
                                                channel.eventLoop.execute {
                                                    try? channel.pipeline.syncOperations.handler(type: InPlaceBodyReader.self).cancel()
                                                    channel.close(promise: nil)
                                                }
                                            },
                                            finished: { try await finished.get() }))
    }
}

/// The last handler of an in-place reading: the head completes `started`, a 2xx body goes to
/// `chunk`, any other status is collected and answered as `.refused`; the end (or the
/// connection's failure or close) completes `ended`.
private final class InPlaceBodyReader: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    private let host: String
    private let port: Int
    private let started: EventLoopPromise<HTTPStreamStart>
    private let ended: EventLoopPromise<Void>
    private let chunk: @Sendable (ByteBuffer) throws -> Void
    private var head: HTTPResponseHead?
    /// The body of a refused (non-2xx) response.
    private var refusedBody: ByteBuffer?
    private var done = false
    static let maxRefusedBody = 1 << 20

    init(host: String, port: Int, started: EventLoopPromise<HTTPStreamStart>, ended: EventLoopPromise<Void>,
         chunk: @escaping @Sendable (ByteBuffer) throws -> Void) {
        self.host = host
        self.port = port
        self.started = started
        self.ended = ended
        self.chunk = chunk
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else { return }
        switch unwrapInboundIn(data) {
        case .head(let responseHead):
            head = responseHead
            if (200..<300).contains(responseHead.status.code) {
                // The reading's controls are attached by `readStream`; the head is what it needs.
                started.succeed(.streaming(HTTPStreamReading(status: responseHead.status, headers: responseHead.headers,
                                                             cancel: {}, finished: {})))
            } else {
                refusedBody = context.channel.allocator.buffer(capacity: 0)
            }
        case .body(var buffer):
            if refusedBody != nil {
                // A refusal's body is a Status of a few hundred bytes; keep at most 1 MiB.
                let room = max(0, Self.maxRefusedBody - refusedBody!.readableBytes)
                if let kept = buffer.readSlice(length: min(room, buffer.readableBytes)) {
                    var kept = kept
                    refusedBody!.writeBuffer(&kept)
                }
                return
            }
            do {
                try chunk(buffer)
            } catch {
                finish(error, context: context)
            }
        case .end:
            if let head, let body = refusedBody {
                done = true
                started.succeed(.refused(HTTPResponse(status: head.status, headers: head.headers, body: Data(body.readableBytesView))))
                ended.succeed(())
            } else {
                done = true
                ended.succeed(())
            }
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        finish(HTTPClientError.io(host: host, port: port, underlying: "\(error)"), context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(HTTPClientError.closed(host: host, port: port), context: context)
        context.fireChannelInactive()
    }

    /// The reader stopped reading: the reading ends without an error.
    func cancel() {
        guard !done else { return }
        done = true
        if head == nil || refusedBody != nil { started.fail(CancellationError()) }
        ended.succeed(())
    }

    /// Ends the reading with `error` (once; nothing after the end counts).
    private func finish(_ error: any Error, context: ChannelHandlerContext) {
        guard !done else { return }
        done = true
        if head == nil || refusedBody != nil { started.fail(error) }
        ended.fail(error)
        context.close(promise: nil)
    }
}
