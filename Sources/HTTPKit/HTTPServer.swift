// A small HTTP/1.1 server on SwiftNIO's async channels: one task per connection, keep-alive,
// whole bodies up to a limit, one handler closure. Enough for JSON APIs such as the simulated
// cloud's; it listens where it is told (tests use 127.0.0.1).
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// Answers one request. Runs concurrently for different connections.
public typealias HTTPHandler = @Sendable (HTTPRequest) async -> HTTPResponse

public final class HTTPServer: Sendable {
    /// The address actually bound (the port is the kernel's choice when 0 was asked for).
    public let localAddress: SocketAddress
    private let serverChannel: NIOAsyncChannel<NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, Never>
    private let handler: HTTPHandler
    private let maxBodyBytes: Int
    private let logger: Logger

    /// Binds `host:port`. Call `run()` to serve, `close()` to stop.
    public init(host: String, port: Int, maxBodyBytes: Int = 3 << 20, logger: Logger,
                group: MultiThreadedEventLoopGroup = .singleton, handler: @escaping HTTPHandler) async throws {
        self.handler = handler
        self.maxBodyBytes = maxBodyBytes
        self.logger = logger
        serverChannel = try await ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 256)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
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
        try await withThrowingDiscardingTaskGroup { group in
            try await serverChannel.executeThenClose { connections in
                for try await connection in connections {
                    group.addTask { await self.serve(connection) }
                }
            }
        }
    }

    /// Stops accepting connections; `run()` returns once the open ones have finished.
    public func close() {
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
                            response = .text("request body over \(maxBodyBytes) bytes: send a smaller body\n", status: .payloadTooLarge)
                        } else {
                            let request = HTTPRequest(method: requestHead.method, uri: requestHead.uri,
                                                      headers: requestHead.headers, body: Data(body.readableBytesView))
                            response = await handler(request)
                        }
                        let keepAlive = requestHead.isKeepAlive && !tooLarge
                        try await write(response, keepAlive: keepAlive, version: requestHead.version, to: outbound)
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

public enum HTTPServerError: Error, CustomStringConvertible {
    case notBound(host: String, port: Int)

    public var description: String {
        switch self {
        case .notBound(let host, let port): "could not bind \(host):\(port): pick a free address with --listen"
        }
    }
}
