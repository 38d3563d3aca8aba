// A small HTTP/1.1 server on SwiftNIO's async channels: one task per connection, keep-alive,
// whole bodies up to a limit, one handler closure. Enough for JSON APIs such as the simulated
// cloud's; it listens where it is told (tests use 127.0.0.1).
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// Answers one request. Runs concurrently for different connections.
public typealias HTTPHandler = @Sendable (HTTPRequest) async -> HTTPResponse

/// Adds handlers to a new connection's pipeline before the HTTP codec, e.g. a TLS handler.
public typealias HTTPChannelInitializer = @Sendable (Channel) throws -> Void

public final class HTTPServer: Sendable {
    /// The address actually bound (the port is the kernel's choice when 0 was asked for).
    public let localAddress: SocketAddress
    private let serverChannel: NIOAsyncChannel<NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, Never>
    private let handler: HTTPHandler
    private let maxBodyBytes: Int
    private let tooLarge: HTTPResponse?
    private let logger: Logger
    private let shutdownGrace = Mutex<Duration?>(nil)

    /// Binds `host:port`. Call `run()` to serve, `close()` to stop.
    /// `channelInitializer` runs first on every accepted connection (TLS goes there);
    /// `tooLargeResponse` replaces the plain-text 413 sent for bodies over `maxBodyBytes`.
    public init(host: String, port: Int, maxBodyBytes: Int = 3 << 20, logger: Logger,
                group: MultiThreadedEventLoopGroup = .singleton,
                channelInitializer: HTTPChannelInitializer? = nil, tooLargeResponse: HTTPResponse? = nil,
                handler: @escaping HTTPHandler) async throws {
        self.handler = handler
        self.maxBodyBytes = maxBodyBytes
        self.tooLarge = tooLargeResponse
        self.logger = logger
        serverChannel = try await ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 256)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channelInitializer?(channel)
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(wrappingChannelSynchronously: channel)
                }
            }
        guard let address = serverChannel.channel.localAddress else {
            throw HTTPServerError.notBound(host: host, port: port)
        }
        localAddress = address
    }

    /// The bound port.
    public var port: Int { localAddress.port ?? 0 }

    /// Serves connections until `close()` is called or the task is cancelled.
    public func run() async throws {
        do {
            try await withThrowingDiscardingTaskGroup { group in
                try await serverChannel.executeThenClose { connections in
                    for try await connection in connections {
                        group.addTask { await self.serve(connection) }
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
        do {
            try await connection.executeThenClose { inbound, outbound in
                var head: HTTPRequestHead?
                var body = ByteBuffer()
                var tooLarge = false
                for try await part in inbound {
                    switch part {
                    case .head(let requestHead):
                        head = requestHead
                        body.clear()
                        tooLarge = false
                    case .body(var chunk):
                        if body.readableBytes + chunk.readableBytes > maxBodyBytes { tooLarge = true }
                        if !tooLarge { body.writeBuffer(&chunk) }
                    case .end:
                        guard let requestHead = head else { continue }
                        let response: HTTPResponse
                        if tooLarge {
                            response = self.tooLarge
                                ?? .text("request body over \(maxBodyBytes) bytes: send a smaller body\n", status: .payloadTooLarge)
                        } else {
                            let request = HTTPRequest(method: requestHead.method, uri: requestHead.uri,
                                                      headers: requestHead.headers, body: Data(body.readableBytesView))
                            response = await handler(request)
                        }
                        let keepAlive = requestHead.isKeepAlive && !tooLarge
                        if let stream = response.stream {
                            try await writeStreaming(response, stream: stream, keepAlive: keepAlive, version: requestHead.version,
                                                     to: outbound, closed: connection.channel.closeFuture)
                        } else {
                            try await write(response, keepAlive: keepAlive, version: requestHead.version, to: outbound)
                        }
                        head = nil
                        if !keepAlive { return }
                    }
                }
            }
        } catch {
            logger.debug("HTTP connection ended with an error", metadata: ["error": "\(error)"])
        }
    }

    private func write(_ response: HTTPResponse, keepAlive: Bool, version: HTTPVersion,
                       to outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>) async throws {
        var headers = response.headers
        headers.replaceOrAdd(name: "Content-Length", value: String(response.body.count))
        headers.replaceOrAdd(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        try await outbound.write(.head(HTTPResponseHead(version: version, status: response.status, headers: headers)))
        if !response.body.isEmpty {
            try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: response.body))))
        }
        try await outbound.write(.end(nil))
    }
}

extension HTTPServer {
    /// Writes the head, then the chunks `stream` produces, then the end. The stream is
    /// cancelled when the connection closes (client gone, or shutdown).
    fileprivate func writeStreaming(_ response: HTTPResponse, stream: @escaping HTTPBodyStream, keepAlive: Bool, version: HTTPVersion,
                                    to outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>,
                                    closed: EventLoopFuture<Void>) async throws {
        var headers = response.headers
        headers.remove(name: "Content-Length")
        headers.replaceOrAdd(name: "Transfer-Encoding", value: "chunked")
        headers.replaceOrAdd(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        try await outbound.write(.head(HTTPResponseHead(version: version, status: response.status, headers: headers)))
        let writer = HTTPBodyWriter { data in
            try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: data))))
        }
        // The stream is cancelled when the connection closes under it (client gone, shutdown).
        let task = Task { try await stream(writer) }
        closed.whenComplete { _ in task.cancel() }
        try await withTaskCancellationHandler {
            try await task.value
        } onCancel: {
            task.cancel()
        }
        try await outbound.write(.end(nil))
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
