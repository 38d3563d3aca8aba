import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix

/// A minimal gRPC client for unary calls over one plaintext HTTP/2
/// connection, at the frame level like the server: no task, no stream
/// channel per call. It exists for load generation (`ballast bench store
/// --via etcd`), where the client shares the machine with the server and
/// must cost as little CPU as possible; applications use grpc-swift.
public final class GRPCUnaryClient: Sendable {
    public let eventLoop: any EventLoop
    private let handler: NIOLoopBound<GRPCClientHandler>
    private let channel: any Channel

    private init(channel: any Channel, handler: NIOLoopBound<GRPCClientHandler>) {
        self.channel = channel
        self.eventLoop = channel.eventLoop
        self.handler = handler
    }

    /// Connects to `host:port` on one of `group`'s event loops.
    public static func connect(host: String, port: Int, group: any EventLoopGroup) async throws -> GRPCUnaryClient {
        let authority = "\(host):\(port)"
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connect(host: host, port: port).get()
        return try await channel.eventLoop.submit {
            var settings = nioDefaultSettings
            settings.append(HTTP2Setting(parameter: .initialWindowSize, value: GRPCConnectionHandler.streamWindow))
            var connection = NIOHTTP2Handler.ConnectionConfiguration()
            connection.initialSettings = settings
            // Go servers send a PING or WINDOW_UPDATE with nearly every response (flow-control
            // and bandwidth probes); a load generator must not take that for an attack.
            connection.controlFrameRateLimit.maximumCount = Int.max
            var streams = NIOHTTP2Handler.StreamConfiguration()
            // Go servers reset each stream they answered before its client half-closed;
            // these calls half-close with their request, but allow for it anyway.
            streams.streamResetFrameRateLimit.maximumCount = Int.max
            let handler = GRPCClientHandler(authority: authority)
            try channel.pipeline.syncOperations.addHandler(
                NIOHTTP2Handler(mode: .client, connectionConfiguration: connection, streamConfiguration: streams))
            try channel.pipeline.syncOperations.addHandler(handler)
            return GRPCUnaryClient(channel: channel, handler: NIOLoopBound(handler, eventLoop: channel.eventLoop))
        }.get()
    }

    /// Calls `path` with `request`; the future completes on this client's
    /// event loop with the response message, or fails with a ``GRPCStatus``.
    public func call(_ path: String, _ request: [UInt8]) -> EventLoopFuture<[UInt8]> {
        if eventLoop.inEventLoop { return handler.value.call(path, request) }
        let handler = self.handler
        return eventLoop.flatSubmit { handler.value.call(path, request) }
    }

    public func close() async {
        try? await channel.close()
    }
}

/// Sends each call as HEADERS + DATA(END_STREAM) on a new stream and matches
/// the response frames back by stream.
final class GRPCClientHandler: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    private struct Call {
        let promise: EventLoopPromise<[UInt8]>
        var body = ByteBuffer()
        var status: GRPCStatus?
    }

    private let authority: String
    private var context: ChannelHandlerContext?
    private var calls: [HTTP2StreamID: Call] = [:]
    private var nextStreamID = HTTP2StreamID(1)
    private var unacknowledged = 0

    init(authority: String) {
        self.authority = authority
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        context.writeAndFlush(wrapOutboundOut(GRPCMessage.openingWindowUpdate), promise: nil)
    }

    func call(_ path: String, _ request: [UInt8]) -> EventLoopFuture<[UInt8]> {
        guard let context else {
            return MultiThreadedEventLoopGroup.currentEventLoop!.makeFailedFuture(GRPCStatus(.unavailable, "the connection is closed"))
        }
        let promise = context.eventLoop.makePromise(of: [UInt8].self)
        let id = nextStreamID
        nextStreamID = HTTP2StreamID(Int32(id) + 2)
        calls[id] = Call(promise: promise)
        // Pseudo-headers first, as HTTP/2 requires.
        let headers: HPACKHeaders = [":method": "POST", ":scheme": "http", ":path": path, ":authority": authority,
                                     "content-type": "application/grpc", "te": "trailers"]
        let sent = context.eventLoop.makePromise(of: Void.self)
        context.write(wrapOutboundOut(HTTP2Frame(streamID: id, payload: .headers(.init(headers: headers)))), promise: nil)
        let data = HTTP2Frame(streamID: id, payload: .data(.init(data: .byteBuffer(GRPCMessage.framed(request, allocator: context.channel.allocator)),
                                                                endStream: true)))
        context.writeAndFlush(wrapOutboundOut(data), promise: sent)
        sent.futureResult.assumeIsolated().whenFailure { [self] error in
            calls.removeValue(forKey: id)?.promise.fail(GRPCStatus(.unavailable, "the request could not be sent: \(error)"))
        }
        return promise.futureResult
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.payload {
        case .headers(let h):
            if let code = h.headers.first(name: "grpc-status").flatMap(Int.init) {
                let message = h.headers.first(name: "grpc-message") ?? ""
                calls[frame.streamID]?.status = GRPCStatus(GRPCStatus.Code(rawValue: code), message)
            }
            if h.endStream { finish(frame.streamID) }
        case .data(let d):
            guard case .byteBuffer(var bytes) = d.data else { return }
            unacknowledged += bytes.readableBytes
            if unacknowledged >= GRPCMessage.clientWindow / 2 {
                context.write(wrapOutboundOut(HTTP2Frame(streamID: .rootStream, payload: .windowUpdate(windowSizeIncrement: unacknowledged))),
                              promise: nil)
                unacknowledged = 0
            }
            calls[frame.streamID]?.body.writeBuffer(&bytes)
            if d.endStream { finish(frame.streamID) }
        case .rstStream(let code):
            calls.removeValue(forKey: frame.streamID)?.promise.fail(GRPCStatus(.unavailable, "the server reset the stream (\(code))"))
        default:
            break
        }
    }

    private func finish(_ id: HTTP2StreamID) {
        guard let call = calls.removeValue(forKey: id) else { return }
        let status = call.status ?? GRPCStatus(.internalError, "the response ended without a grpc-status")
        guard status.code == .ok else { return call.promise.fail(status) }
        guard let length = call.body.getInteger(at: call.body.readerIndex + 1, as: UInt32.self), call.body.readableBytes == 5 + Int(length) else {
            return call.promise.fail(GRPCStatus(.internalError, "the response is not exactly one message"))
        }
        call.promise.succeed(call.body.getBytes(at: call.body.readerIndex + 5, length: Int(length))!)
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(GRPCStatus(.unavailable, "the connection closed"))
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        fail(GRPCStatus(.unavailable, "the connection closed"))
        self.context = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is NIOHTTP2Errors.StreamError { return }
        fail(GRPCStatus(.unavailable, "connection error: \(error)"))
        context.close(promise: nil)
    }

    private func fail(_ status: GRPCStatus) {
        let all = calls.values
        calls.removeAll()
        for c in all { c.promise.fail(status) }
    }
}

/// What both ends of a connection share: gRPC's message framing (a
/// compressed-flag byte and a 4-byte big-endian length) and the opening
/// flow-control credit.
enum GRPCMessage {
    /// The client's inbound connection window (credit is given back as responses arrive).
    static let clientWindow = 16 << 20
    /// Raises the connection's inbound window from HTTP/2's 64 KiB to `clientWindow` in one go.
    static let openingWindowUpdate = HTTP2Frame(streamID: .rootStream,
                                                payload: .windowUpdate(windowSizeIncrement: GRPCMessage.clientWindow - 65_535))

    static func framed(_ message: [UInt8], allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: message.count + 5)
        buffer.writeInteger(UInt8(0))
        buffer.writeInteger(UInt32(message.count))
        buffer.writeBytes(message)
        return buffer
    }
}
