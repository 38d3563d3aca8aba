// A minimal HTTP/1.1 client on SwiftNIO: one connection per request, the whole body in memory.
// What a JSON API client on loopback needs, without another package to build.
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

public struct HTTPClient: Sendable {
    public let host: String
    public let port: Int
    /// Time allowed for connecting and for the whole exchange.
    public var timeout: Duration

    public init(host: String, port: Int, timeout: Duration = .seconds(30)) {
        self.host = host
        self.port = port
        self.timeout = timeout
    }

    /// Sends `request` and returns the response. Throws `HTTPClientError` when no response
    /// arrives (connection refused, reset, timeout).
    public func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        let channel: NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>
        do {
            channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000))
                .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
                .connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw HTTPClientError.connect(host: host, port: port, underlying: "\(error)")
        }
        let deadline = timeout
        return try await withThrowingTaskGroup(of: HTTPResponse?.self) { group in
            group.addTask {
                try await channel.executeThenClose { inbound, outbound in
                    var headers = request.headers
                    headers.replaceOrAdd(name: "Host", value: "\(host):\(port)")
                    headers.replaceOrAdd(name: "Content-Length", value: String(request.body.count))
                    headers.replaceOrAdd(name: "Connection", value: "close")
                    try await outbound.write(.head(HTTPRequestHead(version: .http1_1, method: request.method,
                                                                    uri: request.uri, headers: headers)))
                    if !request.body.isEmpty { try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: request.body)))) }
                    try await outbound.write(.end(nil))
                    var head: HTTPResponseHead?
                    var body = ByteBuffer()
                    for try await part in inbound {
                        switch part {
                        case .head(let responseHead): head = responseHead
                        case .body(var chunk): body.writeBuffer(&chunk)
                        case .end:
                            guard let head else { throw HTTPClientError.malformed("response ended before its head") }
                            return HTTPResponse(status: head.status, headers: head.headers, body: Data(body.readableBytesView))
                        }
                    }
                    throw HTTPClientError.closed(host: host, port: port)
                }
            }
            group.addTask {
                try await Task.sleep(for: deadline)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let response = first else {
                channel.channel.close(promise: nil)
                throw HTTPClientError.timeout(host: host, port: port, after: deadline)
            }
            return response
        }
    }
}

public enum HTTPClientError: Error, CustomStringConvertible, Equatable {
    case connect(host: String, port: Int, underlying: String)
    case closed(host: String, port: Int)
    case timeout(host: String, port: Int, after: Duration)
    case malformed(String)

    public var description: String {
        switch self {
        case .connect(let host, let port, let underlying): "cannot connect to \(host):\(port): \(underlying); is the server running?"
        case .closed(let host, let port): "\(host):\(port) closed the connection before answering"
        case .timeout(let host, let port, let after): "\(host):\(port) did not answer within \(after)"
        case .malformed(let what): "malformed HTTP response: \(what)"
        }
    }
}
