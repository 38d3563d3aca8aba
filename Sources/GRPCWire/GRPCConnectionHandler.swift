import NIOConcurrencyHelpers
import NIOCore
import NIOHPACK
import NIOHTTP2

/// The methods a server answers, by path (`/package.Service/Method`).
public struct GRPCRouter: Sendable {
    public var methods: [String: GRPCMethod] = [:]
    /// Largest request message accepted; larger ones end the call with RESOURCE_EXHAUSTED.
    public var maxRequestMessageBytes = 4 << 20
    /// Called once per call of a registered method as it ends, with its path and status code (metrics).
    public var observer: (@Sendable (_ path: String, _ code: GRPCStatus.Code) -> Void)?

    public init() {}

    public mutating func register(_ path: String, _ method: GRPCMethod) { methods[path] = method }
}

/// Answers that arrive from other threads for the unary calls of one event
/// loop's connections, delivered in batches: the first answer of a batch
/// schedules one task on the loop, later ones join it, and the batch ends
/// with one flush per connection it touched. One group commit of the store
/// thus costs each event loop one wake-up, however many connections it answers.
final class CompletionInbox: @unchecked Sendable {
    enum Outcome {
        case message([UInt8])
        case status(GRPCStatus)
    }

    let eventLoop: any EventLoop
    private let lock = NIOLock()
    private var pending: [(NIOLoopBound<GRPCConnectionHandler>, HTTP2StreamID, Outcome)] = []
    private var scheduled = false

    init(eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    func post(_ connection: NIOLoopBound<GRPCConnectionHandler>, _ id: HTTP2StreamID, _ outcome: Outcome) {
        let schedule = lock.withLock {
            pending.append((connection, id, outcome))
            defer { scheduled = true }
            return !scheduled
        }
        if schedule { eventLoop.execute { self.drain() } }
    }

    private func drain() {
        let batch = lock.withLock {
            scheduled = false
            defer { pending.removeAll(keepingCapacity: true) }
            return pending
        }
        var touched: [GRPCConnectionHandler] = []
        for (bound, id, outcome) in batch {
            let connection = bound.value
            connection.answer(id, outcome)
            if !connection.inFlushList {
                connection.inFlushList = true
                touched.append(connection)
            }
        }
        for connection in touched {
            connection.inFlushList = false
            connection.flushIfNeeded()
        }
    }
}

/// gRPC over one HTTP/2 connection, at the frame level: no channel per
/// stream and no task per unary call. Sits after `NIOHTTP2Handler`, which
/// does framing, HPACK, settings, pings and outbound flow control; this
/// handler returns inbound flow-control credit itself.
final class GRPCConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    /// Inbound credit: the connection window is raised to this at start and
    /// topped up when half is used; streams get the same treatment at `streamWindow`.
    static let connectionWindow = 16 << 20
    static let streamWindow = 1 << 20
    /// Bytes of one stream's responses allowed to wait for the socket before `send` waits.
    static let outboundLimit = 1 << 20

    /// One call's state; a class, so that the handler updates it in place.
    private final class Call {
        let path: String
        let method: GRPCMethod
        /// The start of a message whose end has not arrived yet.
        var pendingBytes: ByteBuffer?
        var request: [UInt8]?
        var remoteClosed = false
        var answered = false
        var headersSent = false
        var requests: RequestStream.Continuation?
        var task: Task<Void, Never>?
        var unacknowledged = 0
        var outstanding = 0
        var waiters: [CheckedContinuation<Void, any Error>] = []
        let observed: Bool
        init(path: String, method: GRPCMethod, observed: Bool = true) {
            self.path = path
            self.method = method
            self.observed = observed
        }
    }

    private let router: GRPCRouter
    private var calls: [HTTP2StreamID: Call] = [:]
    private var context: ChannelHandlerContext?
    private let inbox: CompletionInbox
    /// Set while a batch of answers is being delivered (see `CompletionInbox`).
    var inFlushList = false
    private var connectionUnacknowledged = 0
    private var needsFlush = false
    private var draining = false
    private var lastStreamID = HTTP2StreamID(0)

    private static let responseHeaders = HPACKHeaders([(":status", "200"), ("content-type", "application/grpc")])
    private static let okTrailers = HPACKHeaders([("grpc-status", "0")])

    init(router: GRPCRouter, inbox: CompletionInbox) {
        self.router = router
        self.inbox = inbox
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        context.writeAndFlush(wrapOutboundOut(GRPCMessage.openingWindowUpdate), promise: nil)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        tearDown()
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        tearDown()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.payload {
        case .headers(let h):
            if calls[frame.streamID] == nil {
                open(frame.streamID, h.headers, endStream: h.endStream)
            } else if h.endStream {
                remoteClosed(frame.streamID)
            }
        case .data(let d):
            receive(frame.streamID, d)
        default:
            break  // settings, pings, window updates: NIOHTTP2Handler's; resets arrive as StreamClosedEvent
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushIfNeeded()
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let closed = event as? StreamClosedEvent {
            streamClosed(closed.streamID)
        } else if event is GRPCWireServer.Drain {
            draining = true
            context.writeAndFlush(wrapOutboundOut(HTTP2Frame(streamID: .rootStream,
                                                            payload: .goAway(lastStreamID: lastStreamID, errorCode: .noError, opaqueData: nil))),
                                  promise: nil)
            if calls.isEmpty { closeSoon() }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A stream-level protocol error has already reset that stream; anything else ends the connection.
        if error is NIOHTTP2Errors.StreamError { return }
        context.close(promise: nil)
    }

    // MARK: Inbound

    private func open(_ id: HTTP2StreamID, _ headers: HPACKHeaders, endStream: Bool) {
        if id > lastStreamID { lastStreamID = id }
        let path = headers.first(name: ":path") ?? ""
        guard let method = router.methods[path] else {
            let service = path.split(separator: "/").first.map(String.init) ?? path
            let known = router.methods.keys.contains { $0.hasPrefix("/\(service)/") }
            // Not counted by the observer: clients choose paths, metrics must not grow with them.
            calls[id] = Call(path: path, method: .unary { _, _ in }, observed: false)
            answer(id, .status(GRPCStatus(.unimplemented, known ? "unknown method \(path)" : "unknown service \(service)")))
            return
        }
        calls[id] = Call(path: path, method: method)
        if headers.first(name: ":method") != "POST" {
            return answer(id, .status(GRPCStatus(.unimplemented, "gRPC needs POST, not \(headers.first(name: ":method") ?? "no method")")))
        }
        if let type = headers.first(name: "content-type"), !type.hasPrefix("application/grpc") {
            return answer(id, .status(GRPCStatus(.invalidArgument, "content-type \(type) is not gRPC: use application/grpc")))
        }
        if let encoding = headers.first(name: "grpc-encoding"), encoding != "identity" {
            return answer(id, .status(GRPCStatus(.unimplemented, "compressed messages (grpc-encoding \(encoding)) are not supported: send them uncompressed")))
        }
        if case .streaming(let body) = method {
            let (requests, continuation) = RequestStream.makeStream()
            calls[id]?.requests = continuation
            let writer = ResponseWriter(connection: NIOLoopBound(self, eventLoop: context!.eventLoop), streamID: id)
            let loop = NIOLoopBound(self, eventLoop: context!.eventLoop)
            calls[id]?.task = Task {
                let status: GRPCStatus
                do {
                    try await body(requests, writer)
                    status = .ok
                } catch {
                    status = GRPCStatus(error)
                }
                loop.eventLoop.execute {
                    loop.value.answer(id, .status(status))
                    loop.value.flushIfNeeded()
                }
            }
        }
        if endStream { remoteClosed(id) }
    }

    private func receive(_ id: HTTP2StreamID, _ data: HTTP2Frame.FramePayload.Data) {
        guard case .byteBuffer(var bytes) = data.data else { return }
        let flowed = bytes.readableBytes + (data.paddingBytes.map { $0 + 1 } ?? 0)
        connectionUnacknowledged += flowed
        if connectionUnacknowledged >= Self.connectionWindow / 2 {
            write(HTTP2Frame(streamID: .rootStream, payload: .windowUpdate(windowSizeIncrement: connectionUnacknowledged)))
            connectionUnacknowledged = 0
        }
        guard let call = calls[id], !call.answered else { return }
        if var pending = call.pendingBytes {
            pending.writeBuffer(&bytes)
            bytes = pending
        }
        var failure: GRPCStatus?
        while failure == nil, let length = bytes.getInteger(at: bytes.readerIndex + 1, as: UInt32.self) {
            let compressed = bytes.getInteger(at: bytes.readerIndex, as: UInt8.self)!
            if compressed != 0 {
                failure = GRPCStatus(.unimplemented, "compressed messages are not supported: send them uncompressed")
            } else if Int(length) > router.maxRequestMessageBytes {
                failure = GRPCStatus(.resourceExhausted,
                                     "grpc: received message larger than max (\(length) vs. \(router.maxRequestMessageBytes))")
            } else if bytes.readableBytes >= 5 + Int(length) {
                bytes.moveReaderIndex(forwardBy: 5)
                let message = bytes.readBytes(length: Int(length))!
                if let requests = call.requests {
                    requests.yield(message)
                } else if call.request == nil {
                    call.request = message
                } else {
                    failure = GRPCStatus(.internalError, "grpc: a unary call got more than one request message")
                }
            } else {
                break
            }
        }
        call.pendingBytes = bytes.readableBytes > 0 ? bytes : nil
        if !data.endStream {
            call.unacknowledged += flowed
            if call.unacknowledged >= Self.streamWindow / 2 {
                write(HTTP2Frame(streamID: id, payload: .windowUpdate(windowSizeIncrement: call.unacknowledged)))
                call.unacknowledged = 0
            }
        }
        if let failure { return answer(id, .status(failure)) }
        if data.endStream { remoteClosed(id) }
    }

    /// The client has sent everything: run a unary call, end a stream's requests.
    private func remoteClosed(_ id: HTTP2StreamID) {
        guard let call = calls[id], !call.remoteClosed else { return }
        call.remoteClosed = true
        if call.answered { return }
        if call.pendingBytes != nil {
            return answer(id, .status(GRPCStatus(.internalError, "grpc: the request ended inside a message")))
        }
        switch call.method {
        case .unary(let body):
            guard let request = call.request else {
                return answer(id, .status(GRPCStatus(.internalError, "grpc: a unary call ended without its request message")))
            }
            call.request = nil
            body(request, UnaryResponder(inbox: inbox, connection: NIOLoopBound(self, eventLoop: inbox.eventLoop), streamID: id))
        case .streaming:
            call.requests?.finish()
        }
    }

    // MARK: Outbound

    /// Ends a call: its response and OK, or its status alone.
    func answer(_ id: HTTP2StreamID, _ outcome: CompletionInbox.Outcome) {
        guard let call = calls[id], !call.answered else { return }
        let headersSent = call.headersSent
        call.answered = true
        call.headersSent = true
        let status: GRPCStatus
        switch outcome {
        case .message(let message):
            status = .ok
            if !headersSent { write(HTTP2Frame(streamID: id, payload: .headers(.init(headers: Self.responseHeaders)))) }
            write(HTTP2Frame(streamID: id, payload: .data(.init(data: .byteBuffer(framed(message))))))
            write(HTTP2Frame(streamID: id, payload: .headers(.init(headers: Self.okTrailers, endStream: true))))
        case .status(let s):
            status = s
            var trailers: HPACKHeaders = headersSent ? [:] : Self.responseHeaders
            trailers.add(name: "grpc-status", value: String(s.code.rawValue))
            if !s.message.isEmpty { trailers.add(name: "grpc-message", value: s.percentEncodedMessage) }
            write(HTTP2Frame(streamID: id, payload: .headers(.init(headers: trailers, endStream: true))))
        }
        if call.observed { router.observer?(call.path, status.code) }
    }

    /// One response message of a streaming call; `then` resumes when the stream has room for more.
    func send(_ message: [UInt8], on id: HTTP2StreamID, then resume: CheckedContinuation<Void, any Error>) {
        guard let call = calls[id], !call.answered, let context else {
            return resume.resume(throwing: CancellationError())
        }
        let headersSent = call.headersSent
        let size = message.count + 5
        call.headersSent = true
        call.outstanding += size
        let full = call.outstanding > Self.outboundLimit
        if full { call.waiters.append(resume) }
        if !headersSent { write(HTTP2Frame(streamID: id, payload: .headers(.init(headers: Self.responseHeaders)))) }
        let written = context.eventLoop.makePromise(of: Void.self)
        written.futureResult.assumeIsolated().whenComplete { [self] _ in drained(size, on: id) }
        context.write(wrapOutboundOut(HTTP2Frame(streamID: id, payload: .data(.init(data: .byteBuffer(framed(message)))))), promise: written)
        needsFlush = false
        context.flush()
        if !full { resume.resume() }
    }

    private func drained(_ size: Int, on id: HTTP2StreamID) {
        guard let call = calls[id] else { return }
        call.outstanding -= size
        if call.outstanding <= Self.outboundLimit {
            for w in call.waiters { w.resume() }
            call.waiters.removeAll()
        }
    }

    private func framed(_ message: [UInt8]) -> ByteBuffer {
        GRPCMessage.framed(message, allocator: context!.channel.allocator)
    }

    private func write(_ frame: HTTP2Frame) {
        context?.write(wrapOutboundOut(frame), promise: nil)
        needsFlush = true
    }

    func flushIfNeeded() {
        if needsFlush {
            needsFlush = false
            context?.flush()
        }
    }

    // MARK: Ends

    private func streamClosed(_ id: HTTP2StreamID) {
        guard let call = calls.removeValue(forKey: id) else { return }
        end(call)
        if draining && calls.isEmpty { closeSoon() }
    }

    /// Closes the connection after what is being written now has been flushed
    /// (a stream closes in the middle of the flush that carries its last frame).
    private func closeSoon() {
        guard let context else { return }
        context.eventLoop.assumeIsolated().execute {
            context.flush()
            context.close(promise: nil)
        }
    }

    private func end(_ call: Call) {
        call.requests?.finish(throwing: CancellationError())
        if !call.answered { call.task?.cancel() }
        for w in call.waiters { w.resume(throwing: CancellationError()) }
    }

    private func tearDown() {
        let all = calls.values
        calls.removeAll()
        for call in all { end(call) }
    }
}
