// WebSockets on the HTTP server and client (RFC 6455 on NIOWebSocket): the server hands the
// first request of a connection to a `WebSocketRoute`, which may accept it as a WebSocket (with
// a subprotocol) after an asynchronous check — authentication, a lookup — or decline it, in
// which case the request is an ordinary HTTP request. Messages arrive whole (fragments are
// joined, at most 16 MiB), pings are answered, and closing is the RFC's handshake, bounded in
// time. `WebSocketClient` opens one (the API server relaying `kubectl exec` to a kubelet).
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOWebSocket
import Synchronization

/// One whole message.
public struct WebSocketMessage: Sendable, Equatable {
    public var bytes: [UInt8]
    public var isText: Bool

    public init(bytes: [UInt8], isText: Bool = false) {
        self.bytes = bytes
        self.isText = isText
    }
}

/// What a route does with an upgrade request it accepts.
public struct WebSocketAcceptance: Sendable {
    /// The `Sec-WebSocket-Protocol` to answer (one the client offered), if any.
    public var subprotocol: String?
    /// Runs the session; the connection is closed when it returns.
    public var session: @Sendable (WebSocketConnection) async -> Void

    public init(subprotocol: String?, session: @escaping @Sendable (WebSocketConnection) async -> Void) {
        self.subprotocol = subprotocol
        self.session = session
    }
}

/// Decides, from a request head (its body is empty), whether it becomes a WebSocket: nil
/// declines, and the request goes to the HTTP handler.
public typealias WebSocketRoute = @Sendable (HTTPRequest) async -> WebSocketAcceptance?

/// An open WebSocket: incoming messages as a sequence, sending, closing.
public final class WebSocketConnection: Sendable {
    /// The negotiated subprotocol.
    public let subprotocol: String?
    /// Data messages in order; ends when the peer closes or the connection drops.
    public let messages: AsyncStream<WebSocketMessage>
    private let outbound: NIOAsyncChannelOutboundWriter<WebSocketFrame>
    private let channel: any Channel
    private let masking: Bool
    private let closeSent = Mutex(false)

    init(subprotocol: String?, messages: AsyncStream<WebSocketMessage>, outbound: NIOAsyncChannelOutboundWriter<WebSocketFrame>,
         channel: any Channel, masking: Bool) {
        self.subprotocol = subprotocol
        self.messages = messages
        self.outbound = outbound
        self.channel = channel
        self.masking = masking
    }

    /// Sends one message (binary unless `text`).
    public func send(_ bytes: [UInt8], text: Bool = false) async throws {
        try await write(WebSocketFrame(fin: true, opcode: text ? .text : .binary, data: ByteBuffer(bytes: bytes)))
    }

    /// Starts the closing handshake (once); the connection closes when the peer answers, or
    /// 5 s later.
    public func close(code: WebSocketErrorCode = .normalClosure) async {
        let first = closeSent.withLock { sent -> Bool in
            defer { sent = true }
            return !sent
        }
        guard first else { return }
        var data = ByteBuffer()
        data.write(webSocketErrorCode: code)
        try? await write(WebSocketFrame(fin: true, opcode: .connectionClose, data: data))
        let channel = self.channel
        channel.eventLoop.scheduleTask(in: .seconds(5)) { channel.close(promise: nil) }
    }

    var isCloseSent: Bool { closeSent.withLock { $0 } }

    /// Returns once the connection has closed — the peer went, it dropped, or it was closed
    /// here — or the task is cancelled. Unlike the end of `messages`, which comes after every
    /// message still queued, this comes as soon as the connection is gone.
    public func closed() async {
        let waiter = ClosedWaiter()
        let closeFuture = channel.closeFuture
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                waiter.set(continuation)
                closeFuture.whenComplete { _ in waiter.resume() }
            }
        } onCancel: {
            waiter.resume()
        }
    }

    func write(_ frame: WebSocketFrame) async throws {
        var frame = frame
        if masking { frame.maskKey = .random() }
        try await outbound.write(frame)
    }

    /// Reads `inbound` into `continuation`: answers pings, ends at a close frame (answering it).
    func pump(_ inbound: NIOAsyncChannelInboundStream<WebSocketFrame>, into continuation: AsyncStream<WebSocketMessage>.Continuation) async {
        do {
            for try await var frame in inbound {
                let data = frame.unmaskedData
                switch frame.opcode {
                case .binary, .text:
                    continuation.yield(WebSocketMessage(bytes: Array(data.readableBytesView), isText: frame.opcode == .text))
                case .ping:
                    try await write(WebSocketFrame(fin: true, opcode: .pong, data: data))
                case .connectionClose:
                    frame.data = data
                    if !isCloseSent { await close(code: frame.data.readWebSocketErrorCode() ?? .normalClosure) }
                    continuation.finish()
                    return
                default:
                    continue
                }
            }
        } catch {}
        continuation.finish()
    }
}

/// A connection accepted by an `HTTPServer`: HTTP, or upgraded to a WebSocket.
enum AcceptedConnection: Sendable {
    case http(NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>)
    case webSocket(NIOAsyncChannel<WebSocketFrame, WebSocketFrame>, WebSocketAcceptance)
}

/// A connection being accepted: its channel, and what it becomes once its first request is in.
struct PendingConnection: Sendable {
    let channel: any Channel
    let connection: EventLoopFuture<AcceptedConnection>

    /// Closes a connection that will not be served (its channel closed already).
    func discard() async {
        switch try? await connection.get() {
        case .http(let http)?: try? await http.executeThenClose { _, _ in }
        case .webSocket(let socket, _)?: try? await socket.executeThenClose { _, _ in }
        case nil: break
        }
    }
}

enum WebSocketUpgrade {
    static let maxFrameSize = 1 << 20
    static let maxMessageSize = 16 << 20

    /// The pipeline of a server connection that may upgrade its first request.
    static func configure(_ channel: any Channel, route: @escaping WebSocketRoute, headCheck: HTTPHeadCheck?) throws
        -> EventLoopFuture<AcceptedConnection> {
        let accepted = NIOLockedValueBox<WebSocketAcceptance?>(nil)
        let upgrader = NIOTypedWebSocketServerUpgrader<AcceptedConnection>(
            maxFrameSize: maxFrameSize,
            shouldUpgrade: { channel, head in
                let promise = channel.eventLoop.makePromise(of: HTTPHeaders?.self)
                promise.completeWithTask {
                    let request = HTTPRequest(method: head.method, uri: head.uri, headers: head.headers, body: Data())
                    if let headCheck, headCheck(request) != nil { return nil }
                    guard let acceptance = await route(request) else { return nil }
                    accepted.withLockedValue { $0 = acceptance }
                    var headers = HTTPHeaders()
                    if let subprotocol = acceptance.subprotocol { headers.add(name: "Sec-WebSocket-Protocol", value: subprotocol) }
                    return headers
                }
                return promise.futureResult
            },
            upgradePipelineHandler: { channel, _ in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        NIOWebSocketFrameAggregator(minNonFinalFragmentSize: 0, maxAccumulatedFrameCount: 1 << 14,
                                                    maxAccumulatedFrameSize: maxMessageSize))
                    let socket = try NIOAsyncChannel<WebSocketFrame, WebSocketFrame>(wrappingChannelSynchronously: channel)
                    guard let acceptance = accepted.withLockedValue({ $0 }) else { throw ChannelError.ioOnClosedChannel }
                    return AcceptedConnection.webSocket(socket, acceptance)
                }
            })
        let configuration = NIOUpgradableHTTPServerPipelineConfiguration<AcceptedConnection>(
            upgradeConfiguration: .init(upgraders: [upgrader], notUpgradingCompletionHandler: { channel in
                channel.eventLoop.makeCompletedFuture {
                    .http(try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(wrappingChannelSynchronously: channel))
                }
            }))
        let result = try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(configuration: configuration)
        // A connection that never sends its first request head is closed (the HTTP path then
        // sets its own deadlines).
        let deadline = channel.eventLoop.scheduleTask(in: .seconds(32)) { channel.close(promise: nil) }
        result.whenComplete { _ in deadline.cancel() }
        return result
    }

    /// Runs an accepted WebSocket's session until it ends or the peer goes.
    static func serve(_ socket: NIOAsyncChannel<WebSocketFrame, WebSocketFrame>, acceptance: WebSocketAcceptance, logger: Logger) async {
        do {
            try await socket.executeThenClose { inbound, outbound in
                let (messages, continuation) = AsyncStream<WebSocketMessage>.makeStream()
                let connection = WebSocketConnection(subprotocol: acceptance.subprotocol, messages: messages, outbound: outbound,
                                                     channel: socket.channel, masking: false)
                let session = Task {
                    await acceptance.session(connection)
                    await connection.close()
                }
                await connection.pump(inbound, into: continuation)
                // The peer closed (or went away): a session still running is told to stop.
                if !connection.isCloseSent { session.cancel() }
                await session.value
            }
        } catch {
            logger.debug("WebSocket connection ended with an error", metadata: ["error": "\(error)"])
        }
    }
}

/// Opens WebSockets (client side; frames are masked).
public enum WebSocketClient {
    /// The server was reached but did not upgrade to a WebSocket (a connection that cannot be
    /// made throws the transport's error instead).
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Connects to `host:port` (TLS with `tls`), asks to upgrade `uri` with `headers` and the
    /// `subprotocols`, and runs `session` on the WebSocket until it returns.
    public static func connect(host: String, port: Int, tls: TLSConfiguration?, uri: String, headers: HTTPHeaders, subprotocols: [String],
                               timeout: Duration = .seconds(30),
                               session: @escaping @Sendable (WebSocketConnection) async -> Void) async throws {
        let context = try tls.map { try NIOSSLContext(configuration: $0) }
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: uri, headers: headers)
        head.headers.replaceOrAdd(name: "Host", value: "\(host):\(port)")
        if !subprotocols.isEmpty { head.headers.replaceOrAdd(name: "Sec-WebSocket-Protocol", value: subprotocols.joined(separator: ", ")) }
        let negotiated = NIOLockedValueBox<String?>(nil)
        let upgraded: EventLoopFuture<NIOAsyncChannel<WebSocketFrame, WebSocketFrame>?> = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.nanoseconds(timeout.nanosecondsClamped))
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let context {
                        let name = host.allSatisfy({ $0.isNumber || $0 == "." }) ? nil : host
                        try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: context, serverHostname: name))
                    }
                    let upgrader = NIOTypedWebSocketClientUpgrader<NIOAsyncChannel<WebSocketFrame, WebSocketFrame>?>(
                        maxFrameSize: WebSocketUpgrade.maxFrameSize,
                        upgradePipelineHandler: { channel, response in
                            negotiated.withLockedValue { $0 = response.headers.first(name: "Sec-WebSocket-Protocol") }
                            return channel.eventLoop.makeCompletedFuture {
                                try channel.pipeline.syncOperations.addHandler(
                                    NIOWebSocketFrameAggregator(minNonFinalFragmentSize: 0, maxAccumulatedFrameCount: 1 << 14,
                                                                maxAccumulatedFrameSize: WebSocketUpgrade.maxMessageSize))
                                return try NIOAsyncChannel<WebSocketFrame, WebSocketFrame>(wrappingChannelSynchronously: channel)
                            }
                        })
                    let configuration = NIOUpgradableHTTPClientPipelineConfiguration<NIOAsyncChannel<WebSocketFrame, WebSocketFrame>?>(
                        upgradeConfiguration: .init(upgradeRequestHead: head, upgraders: [upgrader], notUpgradingCompletionHandler: { channel in
                            channel.close(promise: nil)
                            return channel.eventLoop.makeSucceededFuture(nil)
                        }))
                    return try channel.pipeline.syncOperations.configureUpgradableHTTPClientPipeline(configuration: configuration)
                }
            }
        // Connected: whatever fails now is the server's answer to the upgrade (not 101).
        let answered: NIOAsyncChannel<WebSocketFrame, WebSocketFrame>?
        do {
            answered = try await upgraded.get()
        } catch {
            throw Failure(description: "\(host):\(port) refused to upgrade \(uri) to a WebSocket: \(error)")
        }
        guard let socket = answered else {
            throw Failure(description: "\(host):\(port) refused to upgrade \(uri) to a WebSocket")
        }
        try await socket.executeThenClose { inbound, outbound in
            let (messages, continuation) = AsyncStream<WebSocketMessage>.makeStream()
            let connection = WebSocketConnection(subprotocol: negotiated.withLockedValue { $0 }, messages: messages, outbound: outbound,
                                                 channel: socket.channel, masking: true)
            let running = Task {
                await session(connection)
                await connection.close()
            }
            await connection.pump(inbound, into: continuation)
            if !connection.isCloseSent { running.cancel() }
            await running.value
        }
    }
}

/// The one continuation of `WebSocketConnection.closed()`, resumed once by whichever comes
/// first: the close, or the cancellation (which may come before the continuation exists).
private final class ClosedWaiter: Sendable {
    private let state = Mutex<(continuation: CheckedContinuation<Void, Never>?, done: Bool)>((nil, false))

    func set(_ continuation: CheckedContinuation<Void, Never>) {
        let resumeNow = state.withLock { state -> Bool in
            if state.done { return true }
            state.continuation = continuation
            return false
        }
        if resumeNow { continuation.resume() }
    }

    func resume() {
        let continuation = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.done = true
            defer { state.continuation = nil }
            return state.continuation
        }
        continuation?.resume()
    }
}
