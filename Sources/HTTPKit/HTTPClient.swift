// A minimal HTTP/1.1 client on SwiftNIO, plain or TLS (trusting given CA certificates): `send`
// returns the whole body in memory, over a keep-alive connection from the client's
// `ConnectionPool` when made with `keepAlive` (one connection per request otherwise); `stream`,
// for long-lived answers such as a Kubernetes watch, opens a connection of its own, never
// pooled, and returns the body as a stream of chunks. What a JSON API client needs, without
// another package to build.
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

public struct HTTPClient: Sendable {
    public let host: String
    public let port: Int
    /// Time allowed for connecting and for the whole exchange (`send`), or for connecting and
    /// the response head (`stream`).
    public var timeout: Duration
    /// The TLS context (nil: plain HTTP); `readStream` connects with it too.
    let tls: NIOSSLContext?
    /// Keep-alive connections reused by `send`; nil: a connection per request.
    private let pool: ConnectionPool?

    /// A plain HTTP client. With `keepAlive`, `send` reuses up to `maxIdle` connections.
    public init(host: String, port: Int, timeout: Duration = .seconds(30), keepAlive: Bool = false, maxIdle: Int = 32) {
        self.host = host
        self.port = port
        self.timeout = timeout
        self.tls = nil
        self.pool = keepAlive ? ConnectionPool(maxIdle: maxIdle) : nil
    }

    /// An HTTPS client that trusts the CA certificates in `trustRootsPEM` (the system's when
    /// nil) and verifies the server's certificate against `host` (a name or an IP address).
    /// With `keepAlive`, `send` reuses up to `maxIdle` connections.
    public init(host: String, port: Int, trustRootsPEM: [UInt8]?, timeout: Duration = .seconds(30),
                keepAlive: Bool = false, maxIdle: Int = 32) throws {
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let trustRootsPEM {
            configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(trustRootsPEM))
        }
        configuration.applicationProtocols = ["http/1.1"]
        self.host = host
        self.port = port
        self.timeout = timeout
        self.tls = try NIOSSLContext(configuration: configuration)
        self.pool = keepAlive ? ConnectionPool(maxIdle: maxIdle) : nil
    }

    /// An HTTPS client with its own TLS configuration (e.g. a server whose self-signed
    /// certificate is not verified, as the API server reaches kubelets).
    public init(host: String, port: Int, tls: TLSConfiguration, timeout: Duration = .seconds(30), keepAlive: Bool = false,
                maxIdle: Int = 32) throws {
        self.init(host: host, port: port, sslContext: try NIOSSLContext(configuration: tls), timeout: timeout, keepAlive: keepAlive,
                  maxIdle: maxIdle)
    }

    /// An HTTPS client on a TLS context made once and shared (making one per request is costly).
    public init(host: String, port: Int, sslContext: NIOSSLContext, timeout: Duration = .seconds(30), keepAlive: Bool = false,
                maxIdle: Int = 32) {
        self.host = host
        self.port = port
        self.timeout = timeout
        self.tls = sslContext
        self.pool = keepAlive ? ConnectionPool(maxIdle: maxIdle) : nil
    }

    /// Sends `request` and returns the response. Throws `HTTPClientError` when no response
    /// arrives (connection refused, reset, timeout).
    public func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        do {
            return try await exchange(request)
        } catch let error as HTTPClientError {
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            // A connection that failed mid-exchange (reset, closed under us, TLS failure).
            throw HTTPClientError.io(host: host, port: port, underlying: "\(error)")
        }
    }

    private func exchange(_ request: HTTPRequest) async throws -> HTTPResponse {
        guard let pool else { return try await sendOnce(request) }
        // A reused connection may have been closed by the server while idle: an idempotent
        // request is retried once on a new connection; others fail and are retried by their caller.
        if let reused = pool.take() {
            do {
                let response = try await withTimeout(closing: reused) { try await reused.send(request) }
                pool.give(reused)
                return response
            } catch let error where Self.isIdempotent(request.method) && (error as? HTTPClientError)?.isTimeout != true {
                reused.close()
            } catch {
                reused.close()
                throw error
            }
        }
        let connection = PooledConnection(try await connect(), host: host, port: port)
        do {
            let response = try await withTimeout(closing: connection) { try await connection.send(request) }
            pool.give(connection)
            return response
        } catch {
            connection.close()
            throw error
        }
    }

    private static func isIdempotent(_ method: HTTPMethod) -> Bool {
        [.GET, .HEAD, .PUT, .DELETE, .OPTIONS].contains(method)
    }

    /// Runs `body` on `connection`, giving up with `HTTPClientError.timeout` after `timeout`
    /// (closing the connection, which ends the request in flight on it).
    private func withTimeout(closing connection: PooledConnection,
                             _ body: @escaping @Sendable () async throws -> HTTPResponse) async throws -> HTTPResponse {
        let (deadline, host, port) = (timeout, self.host, self.port)
        return try await withThrowingTaskGroup(of: HTTPResponse?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: deadline)
                connection.close()
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let response = first else {
                throw HTTPClientError.timeout(host: host, port: port, after: deadline)
            }
            return response
        }
    }

    /// One request on a new connection, closed afterwards.
    private func sendOnce(_ request: HTTPRequest) async throws -> HTTPResponse {
        let channel = try await connect()
        let deadline = timeout
        let (host, port) = (self.host, self.port)
        return try await withThrowingTaskGroup(of: HTTPResponse?.self) { group in
            group.addTask {
                try await channel.executeThenClose { inbound, outbound in
                    try await Self.write(request, host: host, port: port, keepAlive: false, to: outbound)
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

    /// Sends `request` and returns the response head at once and its body as it arrives. The
    /// connection closes when the body ends, or when the consumer stops iterating it.
    public func stream(_ request: HTTPRequest) async throws -> HTTPStreamingResponse {
        let channel = try await connect()
        let (host, port) = (self.host, self.port)
        let (body, chunks) = AsyncThrowingStream<Data, any Error>.makeStream()
        let head: HTTPResponseHead = try await withCheckedThrowingContinuation { headContinuation in
            let reader = Task {
                var headDelivered = false
                do {
                    try await channel.executeThenClose { inbound, outbound in
                        try await Self.write(request, host: host, port: port, keepAlive: false, to: outbound)
                        for try await part in inbound {
                            switch part {
                            case .head(let responseHead):
                                headDelivered = true
                                headContinuation.resume(returning: responseHead)
                            case .body(let chunk):
                                chunks.yield(Data(chunk.readableBytesView))
                            case .end:
                                chunks.finish()
                                return
                            }
                        }
                        throw HTTPClientError.closed(host: host, port: port)
                    }
                } catch {
                    if headDelivered { chunks.finish(throwing: error) } else { headContinuation.resume(throwing: error) }
                }
            }
            chunks.onTermination = { _ in
                reader.cancel()
                channel.channel.close(promise: nil)
            }
        }
        return HTTPStreamingResponse(status: head.status, headers: head.headers, body: body)
    }

    private func connect() async throws -> NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart> {
        let addHandlers = clientHandlers()
        do {
            return try await bootstrap(MultiThreadedEventLoopGroup.singleton)
                .connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try addHandlers(channel)
                        return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw HTTPClientError.connect(host: host, port: port, underlying: "\(error)")
        }
    }

    /// A bootstrap with this client's connect timeout and no Nagle delay.
    func bootstrap(_ group: any EventLoopGroup) -> ClientBootstrap {
        ClientBootstrap(group: group)
            .connectTimeout(.nanoseconds(timeout.nanosecondsClamped))
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
    }

    /// Adds TLS (when configured; the server name for SNI unless the host is an address) and
    /// the HTTP/1 client codec to a new channel's pipeline, on its event loop.
    func clientHandlers() -> @Sendable (any Channel) throws -> Void {
        let tls = self.tls
        let serverName = host.contains(":") || host.allSatisfy({ $0.isNumber || $0 == "." }) ? nil : host
        return { channel in
            if let tls {
                try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: serverName))
            }
            try channel.pipeline.syncOperations.addHTTPClientHandlers()
        }
    }

    /// The most a response's Content-Length makes a client reserve before the body arrives.
    static let maxReservedBody = 64 << 20

    static func write(_ request: HTTPRequest, host: String, port: Int, keepAlive: Bool,
                              to outbound: NIOAsyncChannelOutboundWriter<HTTPClientRequestPart>) async throws {
        // Head, body and end in one write: one flush, so one TLS write and one segment where
        // three would do (the server then reads the request at once).
        try await outbound.write(contentsOf: requestParts(request, host: host, port: port, keepAlive: keepAlive))
    }

    /// The parts of `request` on the wire: its head with Host, Content-Length and Connection
    /// set, its body if any, the end.
    static func requestParts(_ request: HTTPRequest, host: String, port: Int, keepAlive: Bool) -> [HTTPClientRequestPart] {
        var headers = request.headers
        headers.replaceOrAdd(name: "Host", value: "\(host):\(port)")
        headers.replaceOrAdd(name: "Content-Length", value: String(request.body.count))
        headers.replaceOrAdd(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        var parts: [HTTPClientRequestPart] = [.head(HTTPRequestHead(version: .http1_1, method: request.method, uri: request.uri, headers: headers))]
        if !request.body.isEmpty { parts.append(.body(.byteBuffer(ByteBuffer(bytes: request.body)))) }
        parts.append(.end(nil))
        return parts
    }
}

/// A response whose body arrives chunk by chunk.
public struct HTTPStreamingResponse: Sendable {
    public var status: HTTPResponseStatus
    public var headers: HTTPHeaders
    /// The body's chunks as they arrive (not aligned to any framing of the content).
    public var body: AsyncThrowingStream<Data, any Error>

    public init(status: HTTPResponseStatus, headers: HTTPHeaders, body: AsyncThrowingStream<Data, any Error>) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

public enum HTTPClientError: Error, CustomStringConvertible, Equatable {
    /// Nothing was sent: the connection could not be made.
    case connect(host: String, port: Int, underlying: String)
    case closed(host: String, port: Int)
    /// The connection failed during the exchange; the request may or may not have been handled.
    case io(host: String, port: Int, underlying: String)
    case timeout(host: String, port: Int, after: Duration)
    case malformed(String)

    public var isTimeout: Bool { if case .timeout = self { true } else { false } }

    public var description: String {
        switch self {
        case .connect(let host, let port, let underlying): "cannot connect to \(host):\(port): \(underlying); is the server running?"
        case .closed(let host, let port): "\(host):\(port) closed the connection before answering"
        case .io(let host, let port, let underlying): "the connection to \(host):\(port) failed: \(underlying)"
        case .timeout(let host, let port, let after): "\(host):\(port) did not answer within \(after)"
        case .malformed(let what): "malformed HTTP response: \(what)"
        }
    }
}
