// A small HTTP/1.1 server on SwiftNIO's async channels: one task per connection, keep-alive,
// whole bodies up to a limit, one handler closure. Enough for JSON APIs such as the simulated
// cloud's; it listens where it is told (tests use 127.0.0.1).
//
// Bounds (HTTPServerLimits): a connection must deliver a whole request head (TLS handshake
// included) within `readHeaderTimeout` and its body within `readBodyTimeout`; an idle
// keep-alive connection is closed after `idleTimeout`; at most `maxConnections` are open
// (more are closed as they are accepted); a body over `maxBodyBytes` is refused from its
// Content-Length before a byte of it is read, or as soon as a chunked body passes the limit;
// `headCheck` sees each request head before its body is read (authentication goes there).
// Request heads are bounded by NIO's decoder (80 KiB of header fields).
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import Synchronization

/// Answers one request. Runs concurrently for different connections.
public typealias HTTPHandler = @Sendable (HTTPRequest) async -> HTTPResponse

/// Adds handlers to a new connection's pipeline before the HTTP codec, e.g. a TLS handler.
public typealias HTTPChannelInitializer = @Sendable (Channel) throws -> Void

/// The bounds of an `HTTPServer` (see the top of this file).
public struct HTTPServerLimits: Sendable, Equatable {
    /// Largest request body; larger ones are answered 413 without being read.
    public var maxBodyBytes: Int
    /// From accepting a connection (TLS handshake included) to a complete request head
    /// (Kubernetes: 32 s).
    public var readHeaderTimeout: Duration
    /// From a request head to the end of its body.
    public var readBodyTimeout: Duration
    /// How long a keep-alive connection may wait for its next request (Kubernetes: 90 s).
    public var idleTimeout: Duration
    /// Most connections open at once; 0: no limit.
    public var maxConnections: Int

    public init(maxBodyBytes: Int = 3 << 20, readHeaderTimeout: Duration = .seconds(32), readBodyTimeout: Duration = .seconds(60),
                idleTimeout: Duration = .seconds(90), maxConnections: Int = 4096) {
        self.maxBodyBytes = maxBodyBytes
        self.readHeaderTimeout = readHeaderTimeout
        self.readBodyTimeout = readBodyTimeout
        self.idleTimeout = idleTimeout
        self.maxConnections = maxConnections
    }
}

/// Looks at a request before its body is read (`body` is empty): a response refuses it (the
/// body is then never read), nil lets it through. Authentication from headers goes here.
public typealias HTTPHeadCheck = @Sendable (HTTPRequest) -> HTTPResponse?

public final class HTTPServer: Sendable {
    /// The address actually bound (the port is the kernel's choice when 0 was asked for).
    public let localAddress: SocketAddress
    private let serverChannel: NIOAsyncChannel<PendingConnection, Never>
    private let handler: HTTPHandler
    public let limits: HTTPServerLimits
    private let headCheck: HTTPHeadCheck?
    private let tooLarge: HTTPResponse?
    private let logger: Logger
    private let shutdownGrace = Mutex<Duration?>(nil)
    private let connections = Mutex((open: 0, refused: 0))

    /// Binds `host:port`. Call `run()` to serve, `close()` to stop.
    /// `channelInitializer` runs first on every accepted connection (TLS goes there);
    /// `tooLargeResponse` replaces the plain-text 413 sent for bodies over `maxBodyBytes`.
    public convenience init(host: String, port: Int, maxBodyBytes: Int = 3 << 20, logger: Logger,
                            group: MultiThreadedEventLoopGroup = .singleton,
                            channelInitializer: HTTPChannelInitializer? = nil, tooLargeResponse: HTTPResponse? = nil,
                            handler: @escaping HTTPHandler) async throws {
        try await self.init(host: host, port: port, limits: HTTPServerLimits(maxBodyBytes: maxBodyBytes), logger: logger, group: group,
                            channelInitializer: channelInitializer, tooLargeResponse: tooLargeResponse, handler: handler)
    }

    /// Binds `host:port` with `limits`; `headCheck` may refuse a request from its head;
    /// `webSocket` may take the first request of a connection over as a WebSocket (see
    /// `WebSocketRoute`).
    public init(host: String, port: Int, limits: HTTPServerLimits, logger: Logger,
                group: MultiThreadedEventLoopGroup = .singleton,
                channelInitializer: HTTPChannelInitializer? = nil, tooLargeResponse: HTTPResponse? = nil,
                headCheck: HTTPHeadCheck? = nil, webSocket: WebSocketRoute? = nil, handler: @escaping HTTPHandler) async throws {
        self.handler = handler
        self.limits = limits
        self.headCheck = headCheck
        self.tooLarge = tooLargeResponse
        self.logger = logger
        serverChannel = try await ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 256)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channelInitializer?(channel)
                    guard let webSocket else {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                        let http = try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(wrappingChannelSynchronously: channel)
                        return PendingConnection(channel: channel, connection: channel.eventLoop.makeSucceededFuture(.http(http)))
                    }
                    return PendingConnection(channel: channel,
                                             connection: try WebSocketUpgrade.configure(channel, route: webSocket, headCheck: headCheck))
                }
            }
        guard let address = serverChannel.channel.localAddress else {
            throw HTTPServerError.notBound(host: host, port: port)
        }
        localAddress = address
    }

    /// Connections open now, and connections closed at once because `maxConnections` were open.
    public var connectionCounts: (open: Int, refused: Int) { connections.withLock { $0 } }

    /// The bound port.
    public var port: Int { localAddress.port ?? 0 }

    /// Serves connections until `close()` is called or the task is cancelled.
    public func run() async throws {
        do {
            try await withThrowingDiscardingTaskGroup { group in
                try await serverChannel.executeThenClose { connections in
                    for try await accepted in connections {
                        let admitted = self.connections.withLock { c -> Bool in
                            if self.limits.maxConnections > 0 && c.open >= self.limits.maxConnections {
                                c.refused += 1
                                return false
                            }
                            c.open += 1
                            return true
                        }
                        guard admitted else {
                            // Closed at once, nothing read; the async channel, once made, is closed
                            // through executeThenClose, which finishes its writer (NIO traps on a
                            // writer dropped unfinished).
                            accepted.channel.close(promise: nil)
                            group.addTask { await accepted.discard() }
                            continue
                        }
                        group.addTask {
                            defer { self.connections.withLock { $0.open -= 1 } }
                            guard let connection = try? await accepted.connection.get() else { return }
                            switch connection {
                            case .http(let http):
                                await self.serve(http)
                            case .webSocket(let socket, let acceptance):
                                await WebSocketUpgrade.serve(socket, acceptance: acceptance, logger: self.logger)
                            }
                        }
                    }
                }
                if let grace = shutdownGrace.withLock({ $0 }) {
                    // Connections still open after the grace period (idle keep-alives, watches)
                    // are cancelled: the deadline task's error cancels the whole group.
                    group.addTask {
                        try await Task.sleep(for: grace)
                        throw ShutdownDeadline()
                    }
                }
            }
        } catch is ShutdownDeadline {
            logger.debug("closed the connections left open at shutdown")
        }
    }

    private struct ShutdownDeadline: Error {}

    /// Stops accepting connections; `run()` returns once the open ones have finished.
    public func close() {
        serverChannel.channel.close(promise: nil)
    }

    /// Stops accepting connections and gives the open ones `grace` to finish; then the ones
    /// still open (idle keep-alive connections, streams) are cancelled and `run()` returns.
    public func shutdown(grace: Duration) {
        shutdownGrace.withLock { $0 = grace }
        serverChannel.channel.close(promise: nil)
    }

    private func serve(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>) async {
        let deadline = ConnectionDeadline(connection.channel)
        deadline.set(limits.readHeaderTimeout)
        defer { deadline.set(nil) }
        do {
            try await connection.executeThenClose { inbound, outbound in
                var head: HTTPRequestHead?
                var body = ByteBuffer()
                // A refusal decided from the head of a request without a body, sent at its end.
                var refusal: HTTPResponse?
                // After refusing a request with a body: bytes of it read and dropped. A little of
                // what is in flight is read so that closing does not reset the connection before
                // the client has read the answer (as Go's server does).
                var draining: Int?
                func refuse(_ response: HTTPResponse, version: HTTPVersion) async throws {
                    try await write(response, keepAlive: false, version: version, to: outbound)
                    draining = 0
                    deadline.set(Self.drainTime)
                }
                for try await part in inbound {
                    if let dropped = draining {
                        guard case .body(let chunk) = part, dropped + chunk.readableBytes <= Self.drainBytes else { return }
                        draining = dropped + chunk.readableBytes
                        continue
                    }
                    switch part {
                    case .head(let requestHead):
                        deadline.set(limits.readBodyTimeout)
                        head = requestHead
                        body.clear()
                        refusal = nil
                        let hasBody = Self.declaresBody(requestHead)
                        if let length = requestHead.headers.first(name: "Content-Length").flatMap({ Int($0) }), length > limits.maxBodyBytes {
                            // Refused before reading: the body is not read and the connection closes.
                            try await refuse(tooLargeResponse, version: requestHead.version)
                            continue
                        }
                        if let headCheck, let refused = headCheck(HTTPRequest(method: requestHead.method, uri: requestHead.uri,
                                                                             headers: requestHead.headers, body: Data())) {
                            guard !hasBody else {
                                try await refuse(refused, version: requestHead.version)
                                continue
                            }
                            refusal = refused
                        }
                    case .body(var chunk):
                        guard let requestHead = head, refusal == nil else { continue }
                        if body.readableBytes + chunk.readableBytes > limits.maxBodyBytes {
                            // A chunked body past the limit: refused now, the rest not kept.
                            try await refuse(tooLargeResponse, version: requestHead.version)
                            continue
                        }
                        body.writeBuffer(&chunk)
                    case .end:
                        guard let requestHead = head else { continue }
                        deadline.set(nil)
                        let response: HTTPResponse
                        if let refusal {
                            response = refusal
                        } else {
                            let request = HTTPRequest(method: requestHead.method, uri: requestHead.uri,
                                                      headers: requestHead.headers, body: Data(body.readableBytesView))
                            response = await handler(request)
                        }
                        let keepAlive = requestHead.isKeepAlive
                        if let stream = response.stream {
                            try await writeStreaming(response, stream: stream, keepAlive: keepAlive, version: requestHead.version,
                                                     to: outbound, channel: connection.channel)
                        } else {
                            try await write(response, keepAlive: keepAlive, version: requestHead.version, to: outbound)
                        }
                        head = nil
                        refusal = nil
                        if !keepAlive { return }
                        deadline.set(limits.idleTimeout)
                    }
                }
            }
        } catch {
            logger.debug("HTTP connection ended with an error", metadata: ["error": "\(error)"])
        }
    }

    /// After a refusal: how long, and how much of the refused body, is read before closing.
    static let drainTime: Duration = .seconds(1)
    static let drainBytes = 256 << 10

    private var tooLargeResponse: HTTPResponse {
        tooLarge ?? .text("request body over \(limits.maxBodyBytes) bytes: send a smaller body\n", status: .payloadTooLarge)
    }

    /// Whether a request head announces a body (a positive Content-Length, or chunked).
    static func declaresBody(_ head: HTTPRequestHead) -> Bool {
        if let length = head.headers.first(name: "Content-Length").flatMap({ Int($0) }) { return length > 0 }
        return head.headers[canonicalForm: "Transfer-Encoding"].contains { $0.lowercased() == "chunked" }
    }

    private func write(_ response: HTTPResponse, keepAlive: Bool, version: HTTPVersion,
                       to outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>) async throws {
        var headers = response.headers
        headers.replaceOrAdd(name: "Content-Length", value: String(response.body.count))
        headers.replaceOrAdd(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        // Head, body and end in one write: one hop to the event loop and one flush per response.
        var parts: [HTTPServerResponsePart] = [.head(HTTPResponseHead(version: version, status: response.status, headers: headers))]
        if !response.body.isEmpty {
            parts.append(.body(.byteBuffer(ByteBuffer(bytes: response.body))))
        }
        parts.append(.end(nil))
        try await outbound.write(contentsOf: parts)
    }
}

extension HTTPServer {
    /// Writes the head, then the chunks `stream` produces, then the end. The stream is
    /// cancelled when the connection closes (client gone, or shutdown).
    fileprivate func writeStreaming(_ response: HTTPResponse, stream: @escaping HTTPBodyStream, keepAlive: Bool, version: HTTPVersion,
                                    to outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>,
                                    channel: any Channel) async throws {
        var headers = response.headers
        headers.remove(name: "Content-Length")
        headers.replaceOrAdd(name: "Transfer-Encoding", value: "chunked")
        headers.replaceOrAdd(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        try await outbound.write(.head(HTTPResponseHead(version: version, status: response.status, headers: headers)))
        let writer = HTTPBodyWriter(direct: HTTPDirectBody(channel: channel)) { data in
            try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: data))))
        }
        // The stream is cancelled when the connection closes under it (client gone, shutdown).
        let task = Task { try await stream(writer) }
        channel.closeFuture.whenComplete { _ in task.cancel() }
        try await withTaskCancellationHandler {
            try await task.value
        } onCancel: {
            task.cancel()
        }
        try await outbound.write(.end(nil))
    }
}

/// Closes a connection that has not reached its next step in time: the one scheduled close
/// is replaced at each step (head, end of body, response written), cancelled while a
/// request is being handled.
final class ConnectionDeadline: Sendable {
    private let channel: any Channel
    private let scheduled = Mutex<Scheduled<Void>?>(nil)

    init(_ channel: any Channel) { self.channel = channel }

    /// Closes the connection `timeout` from now (nil: never), replacing the previous deadline.
    func set(_ timeout: Duration?) {
        let channel = self.channel
        let next = timeout.map { t in
            channel.eventLoop.scheduleTask(in: .nanoseconds(t.nanosecondsClamped)) { channel.close(promise: nil) }
        }
        let previous = scheduled.withLock { current -> Scheduled<Void>? in
            let old = current
            current = next
            return old
        }
        previous?.cancel()
    }
}

extension Duration {
    /// Whole nanoseconds, saturating at `Int64.max`.
    var nanosecondsClamped: Int64 {
        let (seconds, attoseconds) = components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        let (sum, overflow2) = product.addingReportingOverflow(attoseconds / 1_000_000_000)
        return overflow2 ? .max : sum
    }
}

public enum HTTPServerError: Error, CustomStringConvertible {
    case notBound(host: String, port: Int)

    public var description: String {
        switch self {
        case .notBound(let host, let port): "could not bind \(host):\(port): pick a free address with --listen"
        }
    }
}

/// The connection of a streamed response, written from its event loop: for a producer that
/// feeds many streams (a watch fan-out) without a task and a hop per write. What it writes
/// follows everything `HTTPBodyWriter.write` sent before (both reach the channel through the
/// event loop's queue of tasks, in order) and precedes the response's end, which the server
/// writes once the stream returns.
public struct HTTPDirectBody: Sendable {
    let channel: any Channel

    public var eventLoop: any EventLoop { channel.eventLoop }
    /// False while the client does not read: what was written waits in the connection's buffers.
    public var isWritable: Bool { channel.isWritable }
    public var isActive: Bool { channel.isActive }
    public var allocator: ByteBufferAllocator { channel.allocator }

    /// On the event loop: adds `bytes` as one chunk of the body, sent at the next `flush()`.
    public func write(_ bytes: ByteBuffer) {
        channel.eventLoop.preconditionInEventLoop()
        channel.pipeline.syncOperations.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(bytes))), promise: nil)
    }

    /// On the event loop: sends what was written.
    public func flush() {
        channel.eventLoop.preconditionInEventLoop()
        channel.pipeline.syncOperations.flush()
    }
}
