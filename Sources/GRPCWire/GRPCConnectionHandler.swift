import NIOCore
import NIOHPACK

/// gRPC over one HTTP/2 connection, server side, reading and writing the
/// frames itself (`HTTP2Framing.swift`): no channel per stream, no task per
/// unary call, and every frame of a batch of answers lands in one buffer
/// written with one flush.
///
/// What it does of HTTP/2: the preface and SETTINGS exchange, PING, GOAWAY
/// (both ways), RST_STREAM, header blocks split over CONTINUATION, padding,
/// flow control in both directions, and stream and connection errors as RFC
/// 9113 words them. Server push and priorities are not used.
///
/// Bounds (`GRPCWireLimits`): inbound credit is given back as requests are
/// answered or consumed, so what one connection holds of requests never
/// exceeds `maxConnectionBufferedBytes`; calls (reset ones whose work still
/// runs included) never exceed `maxConcurrentStreams`; resets and refused
/// streams beyond a token bucket, and control frames piling up unread, end
/// the connection with ENHANCE_YOUR_CALM; the handshake and idleness are
/// timed. The connection stops being read while its output waits for the
/// socket (`BackPressureHandler` before this handler).
final class GRPCConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Inbound credit per stream: raised to this by SETTINGS; given back on
    /// arrival for unary calls (whose one message must arrive whole anyway,
    /// up to the router's limit) and on consumption for streaming calls.
    static let streamWindow = 1 << 20
    /// Bytes of one stream's responses allowed to wait for flow-control credit before `send` waits.
    static let outboundLimit = 1 << 20
    static let maxHeaderListSize = 16 << 10
    /// Answered control frames between two checks of the socket.
    static let controlFramesPerCheck = 256

    /// One call's state; a class, so that the handler updates it in place.
    final class Call {
        let path: String
        let method: GRPCMethod
        let observed: Bool
        /// The start of a message whose end has not arrived yet.
        var pendingBytes: ByteBuffer?
        var request: [UInt8]?
        var remoteClosed = false
        /// The call's outcome is known: its trailers are sent or queued.
        var answered = false
        var headersSent = false
        var requests: InboundMessages?
        var task: Task<Void, Never>?
        /// Set once a unary call is handed to its handler.
        var cancellation: CallCancellation?
        /// Inbound bytes not yet credited back to the client on this stream.
        var unacknowledged = 0
        /// Request bytes of this call counted in the connection's `held`.
        var held = 0
        /// Outbound credit the client has given this stream.
        var sendWindow: Int
        /// gRPC-framed response bytes waiting for credit, then the trailers that follow them.
        var queued: ByteBuffer?
        var queuedBytes: Int { queued?.readableBytes ?? 0 }
        var trailers: [UInt8]?
        var blocked = false
        var waiters: [(ticket: SendTicket, continuation: CheckedContinuation<Void, any Error>)] = []

        init(path: String, method: GRPCMethod, observed: Bool = true, sendWindow: Int) {
            self.path = path
            self.method = method
            self.observed = observed
            self.sendWindow = sendWindow
        }
    }

    let router: GRPCRouter
    let inbox: CompletionInbox
    let limits: GRPCWireLimits
    /// `limits.maxConnectionBufferedBytes`, raised to hold two of the largest requests.
    let bufferLimit: Int
    let connectionWindow: Int
    var context: ChannelHandlerContext?
    var calls: [UInt32: Call] = [:]
    /// Unary calls the client reset while their handler works: stream → bytes they hold.
    /// They count against `maxConcurrentStreams` until their answer arrives.
    var abandoned: [UInt32: Int] = [:]
    /// Set while a batch of answers is being delivered (see `CompletionInbox`).
    var inFlushList = false

    var reader = FrameReader()
    var decoder: HPACKDecoder
    /// A header block waiting for its CONTINUATION frames.
    var partialBlock: (stream: UInt32, endStream: Bool, bytes: ByteBuffer)?
    var settingsReceived = false
    /// Frames written since the last flush.
    var out = ByteBuffer()

    var peerInitialWindow = HTTP2.defaultWindow
    var peerMaxFrameSize = HTTP2.defaultMaxFrameSize
    var connectionSendWindow = HTTP2.defaultWindow
    var tableSizeUpdatePending = false
    /// Streams with responses waiting for credit, oldest first.
    var blockedStreams: [UInt32] = []
    /// Request bytes received and not yet answered or consumed (every call's `held`).
    var held = 0
    /// Bytes received on the connection whose credit the client has not got back.
    var connectionOwed = 0
    var lastStreamID: UInt32 = 0
    /// We sent GOAWAY (server shutdown, idleness), or the client did: close once the calls are done.
    var draining = false
    var closed = false
    /// Resets of running calls and refused streams the client may still cause.
    var resets: TokenBucket
    /// Control frames answered since the socket was last seen writable.
    var controlFrames = 0
    var handshakeTimer: Scheduled<Void>?
    var idleTimer: Scheduled<Void>?
    /// When the connection last had no call open.
    var idleSince = NIODeadline.now()

    init(router: GRPCRouter, inbox: CompletionInbox, limits: GRPCWireLimits) {
        self.router = router
        self.inbox = inbox
        self.limits = limits
        bufferLimit = max(limits.maxConnectionBufferedBytes, 2 * (router.maxRequestMessageBytes + 5))
        var l = limits
        l.maxConnectionBufferedBytes = bufferLimit
        connectionWindow = l.connectionWindow
        resets = TokenBucket(burst: limits.resetBurst, perSecond: limits.resetsPerSecond)
        var decoder = HPACKDecoder(allocator: ByteBufferAllocator())
        decoder.maxHeaderListSize = Self.maxHeaderListSize
        self.decoder = decoder
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        out = context.channel.allocator.buffer(capacity: 256)
        // The server preface: our SETTINGS, then the connection window raised in one go.
        out.writeSettings([(0x3, UInt32(clamping: limits.maxConcurrentStreams)), (0x4, UInt32(Self.streamWindow)),
                           (0x6, UInt32(Self.maxHeaderListSize))])
        out.writeWindowUpdate(stream: 0, increment: connectionWindow - HTTP2.defaultWindow)
        flushIfNeeded()
        let loop = context.eventLoop.assumeIsolated()
        handshakeTimer = loop.scheduleTask(in: limits.handshakeTimeout) { [self] in
            fail(HTTP2ConnectionError(.protocolError, "no SETTINGS frame within \(limits.handshakeTimeout.nanoseconds / 1_000_000_000) s of the preface"))
        }
        if let idle = limits.idleTimeout { scheduleIdleCheck(in: idle) }
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
        guard !closed else { return }
        var bytes = unwrapInboundIn(data)
        reader.append(&bytes)
        do throws(HTTP2ConnectionError) {
            while !closed, let frame = try reader.next() {
                try process(frame)
            }
        } catch {
            fail(error)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushIfNeeded()
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            controlFrames = 0
            for call in calls.values { wakeSenders(call) }
        }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is GRPCWireServer.Drain, !closed {
            draining = true
            out.writeGoAway(lastStream: lastStreamID, code: .noError)
            flushIfNeeded()
            if calls.isEmpty { closeSoon() }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    // MARK: Frames in

    private func process(_ frame: Frame) throws(HTTP2ConnectionError) {
        if let partial = partialBlock {
            guard frame.type == FrameType.continuation.rawValue, frame.stream == partial.stream else {
                throw HTTP2ConnectionError(.protocolError, "stream \(partial.stream): a header block was interrupted by another frame")
            }
        }
        guard settingsReceived || frame.type == FrameType.settings.rawValue else {
            throw HTTP2ConnectionError(.protocolError, "the first frame after the preface must be SETTINGS")
        }
        switch FrameType(rawValue: frame.type) {
        case .data: try data(frame)
        case .headers: try headers(frame)
        case .continuation: try continuation(frame)
        case .settings: try settings(frame)
        case .windowUpdate: try windowUpdate(frame)
        case .ping:
            guard frame.stream == 0 else { throw HTTP2ConnectionError(.protocolError, "PING on stream \(frame.stream)") }
            guard frame.payload.readableBytes == 8 else { throw HTTP2ConnectionError(.frameSizeError, "PING of \(frame.payload.readableBytes) bytes, not 8") }
            if !frame.has(FrameFlag.ack) {
                var payload = frame.payload
                out.writeFrameHeader(length: 8, type: .ping, flags: FrameFlag.ack, stream: 0)
                out.writeBuffer(&payload)
                try controlFrameQueued()
            }
        case .rstStream:
            guard frame.stream != 0 else { throw HTTP2ConnectionError(.protocolError, "RST_STREAM on stream 0") }
            guard frame.payload.readableBytes == 4 else { throw HTTP2ConnectionError(.frameSizeError, "RST_STREAM of \(frame.payload.readableBytes) bytes, not 4") }
            guard frame.stream <= lastStreamID else { throw HTTP2ConnectionError(.protocolError, "RST_STREAM on idle stream \(frame.stream)") }
            if let call = calls.removeValue(forKey: frame.stream) {
                if !call.answered {
                    // Work started for nothing: the token bucket decides when that is a flood (rapid reset).
                    try chargeReset("streams reset while the server was working on them")
                }
                abandon(frame.stream, call)
            }
            closeIfDrained()
        case .goAway:
            guard frame.stream == 0 else { throw HTTP2ConnectionError(.protocolError, "GOAWAY on stream \(frame.stream)") }
            draining = true
            closeIfDrained()
        case .priority:
            guard frame.stream != 0 else { throw HTTP2ConnectionError(.protocolError, "PRIORITY on stream 0") }
        case .pushPromise:
            throw HTTP2ConnectionError(.protocolError, "clients must not send PUSH_PROMISE")
        case nil:
            break  // unknown frame types are ignored (RFC 9113 §4.1)
        }
    }

    private func settings(_ frame: Frame) throws(HTTP2ConnectionError) {
        guard frame.stream == 0 else { throw HTTP2ConnectionError(.protocolError, "SETTINGS on stream \(frame.stream)") }
        if frame.has(FrameFlag.ack) {
            guard frame.payload.readableBytes == 0 else { throw HTTP2ConnectionError(.frameSizeError, "a SETTINGS acknowledgement with a payload") }
            return
        }
        guard frame.payload.readableBytes % 6 == 0 else {
            throw HTTP2ConnectionError(.frameSizeError, "SETTINGS of \(frame.payload.readableBytes) bytes, not a multiple of 6")
        }
        if !settingsReceived {
            settingsReceived = true
            handshakeTimer?.cancel()
            handshakeTimer = nil
        }
        var payload = frame.payload
        while let id = payload.readInteger(as: UInt16.self), let value = payload.readInteger(as: UInt32.self) {
            switch id {
            case 0x1:  // HEADER_TABLE_SIZE: our blocks never use the table; say it is empty
                tableSizeUpdatePending = true
            case 0x2:  // ENABLE_PUSH
                guard value <= 1 else { throw HTTP2ConnectionError(.protocolError, "SETTINGS_ENABLE_PUSH \(value) is not 0 or 1") }
            case 0x4:  // INITIAL_WINDOW_SIZE: applies to open streams too
                guard value <= HTTP2.maxWindow else {
                    throw HTTP2ConnectionError(.flowControlError, "SETTINGS_INITIAL_WINDOW_SIZE \(value) exceeds 2^31-1")
                }
                let delta = Int(value) - peerInitialWindow
                peerInitialWindow = Int(value)
                for call in calls.values { call.sendWindow += delta }
            case 0x5:  // MAX_FRAME_SIZE
                guard (HTTP2.defaultMaxFrameSize...(1 << 24) - 1).contains(Int(value)) else {
                    throw HTTP2ConnectionError(.protocolError, "SETTINGS_MAX_FRAME_SIZE \(value) is outside 16384...16777215")
                }
                peerMaxFrameSize = Int(value)
            default:
                break  // MAX_CONCURRENT_STREAMS (the server opens none), MAX_HEADER_LIST_SIZE, unknown ones
            }
        }
        out.writeFrameHeader(length: 0, type: .settings, flags: FrameFlag.ack, stream: 0)
        try controlFrameQueued()
        sendBlocked()
    }

    private func windowUpdate(_ frame: Frame) throws(HTTP2ConnectionError) {
        guard frame.payload.readableBytes == 4, let raw = frame.payload.getInteger(at: frame.payload.readerIndex, as: UInt32.self) else {
            throw HTTP2ConnectionError(.frameSizeError, "WINDOW_UPDATE of \(frame.payload.readableBytes) bytes, not 4")
        }
        let increment = Int(raw & 0x7FFF_FFFF)
        if frame.stream == 0 {
            guard increment > 0 else { throw HTTP2ConnectionError(.protocolError, "a connection WINDOW_UPDATE of 0") }
            connectionSendWindow += increment
            guard connectionSendWindow <= HTTP2.maxWindow else {
                throw HTTP2ConnectionError(.flowControlError, "the connection's send window exceeds 2^31-1")
            }
            sendBlocked()
            return
        }
        guard let call = calls[frame.stream] else {
            guard frame.stream <= lastStreamID else { throw HTTP2ConnectionError(.protocolError, "WINDOW_UPDATE on idle stream \(frame.stream)") }
            return  // a stream closed a moment ago
        }
        guard increment > 0 else { return reset(frame.stream, .protocolError) }
        call.sendWindow += increment
        guard call.sendWindow <= HTTP2.maxWindow else { return reset(frame.stream, .flowControlError) }
        sendQueued(frame.stream, call)
    }

    private func headers(_ frame: Frame) throws(HTTP2ConnectionError) {
        guard frame.stream != 0 else { throw HTTP2ConnectionError(.protocolError, "HEADERS on stream 0") }
        var block = try frame.unpadded()
        if frame.has(FrameFlag.priority) {
            guard block.readableBytes >= 5 else { throw HTTP2ConnectionError(.frameSizeError, "stream \(frame.stream): HEADERS too short for its priority") }
            block.moveReaderIndex(forwardBy: 5)
        }
        if frame.has(FrameFlag.endHeaders) {
            try headerBlock(frame.stream, &block, endStream: frame.has(FrameFlag.endStream))
        } else {
            partialBlock = (frame.stream, frame.has(FrameFlag.endStream), block)
        }
    }

    private func continuation(_ frame: Frame) throws(HTTP2ConnectionError) {
        guard var partial = partialBlock else {
            throw HTTP2ConnectionError(.protocolError, "stream \(frame.stream): CONTINUATION without HEADERS")
        }
        var more = frame.payload
        partial.bytes.writeBuffer(&more)
        guard partial.bytes.readableBytes <= 4 * Self.maxHeaderListSize else {
            throw HTTP2ConnectionError(.enhanceYourCalm, "stream \(frame.stream): a header block longer than \(4 * Self.maxHeaderListSize) bytes")
        }
        if frame.has(FrameFlag.endHeaders) {
            partialBlock = nil
            try headerBlock(partial.stream, &partial.bytes, endStream: partial.endStream)
        } else {
            partialBlock = partial
        }
    }

    /// A complete header block: a new call, or the client's trailers. Every
    /// block is decoded, even one that is then ignored, to keep HPACK's table in step.
    private func headerBlock(_ stream: UInt32, _ block: inout ByteBuffer, endStream: Bool) throws(HTTP2ConnectionError) {
        let headers: HPACKHeaders
        do {
            headers = try decoder.decodeHeaders(from: &block)
        } catch {
            throw HTTP2ConnectionError(.compressionError, "stream \(stream): the header block does not decode: \(error)")
        }
        if calls[stream] != nil {
            if endStream { remoteClosed(stream) }
            return
        }
        guard stream % 2 == 1 else { throw HTTP2ConnectionError(.protocolError, "stream \(stream): clients open odd-numbered streams") }
        guard stream > lastStreamID else { return }  // trailers of a stream this server already ended
        lastStreamID = stream
        if draining || calls.count + abandoned.count >= limits.maxConcurrentStreams {
            if !draining { try chargeReset("streams opened beyond SETTINGS_MAX_CONCURRENT_STREAMS \(limits.maxConcurrentStreams)") }
            out.writeRSTStream(stream: stream, code: .refusedStream)
            return try controlFrameQueued()
        }
        open(stream, headers, endStream: endStream)
    }

    private func data(_ frame: Frame) throws(HTTP2ConnectionError) {
        guard frame.stream != 0 else { throw HTTP2ConnectionError(.protocolError, "DATA on stream 0") }
        let flowed = frame.payload.readableBytes
        var bytes = try frame.unpadded()
        connectionOwed += flowed
        guard connectionOwed <= connectionWindow else {
            throw HTTP2ConnectionError(.flowControlError, "the client sent \(connectionOwed) bytes on a connection window of \(connectionWindow)")
        }
        defer { returnConnectionCredit() }
        guard let call = calls[frame.stream] else {
            guard frame.stream <= lastStreamID else { throw HTTP2ConnectionError(.protocolError, "DATA on idle stream \(frame.stream)") }
            return  // a stream this server already ended: nothing is kept, the credit comes back
        }
        guard !call.remoteClosed else { return reset(frame.stream, .streamClosed) }
        let endStream = frame.has(FrameFlag.endStream)
        if call.answered {
            // Its outcome is known (RST_STREAM NO_ERROR asked the client to stop): nothing is kept.
            if endStream { remoteClosed(frame.stream) }
            return
        }
        // The payload is held (by the call) until the call is answered or the message consumed; padding is not.
        call.held += bytes.readableBytes
        held += bytes.readableBytes
        if !endStream {
            call.unacknowledged += call.requests == nil ? flowed : flowed - bytes.readableBytes
            if call.unacknowledged >= Self.streamWindow / 2 {
                out.writeWindowUpdate(stream: frame.stream, increment: call.unacknowledged)
                call.unacknowledged = 0
                try controlFrameQueued()
            }
        }
        if let failure = receive(call, &bytes) {
            return answer(frame.stream, .status(failure))
        }
        if endStream { remoteClosed(frame.stream) }
    }

    /// Counts a reset of a running call or a refused stream against the
    /// client's allowance; past it, the connection ends (ENHANCE_YOUR_CALM).
    private func chargeReset(_ what: String) throws(HTTP2ConnectionError) {
        guard resets.take() else {
            throw HTTP2ConnectionError(.enhanceYourCalm, "too many \(what): more than \(limits.resetBurst) at once or \(Int(limits.resetsPerSecond))/s")
        }
    }

    /// Counts a frame written only to answer the client. Every few of them the
    /// output is flushed and the socket looked at: while the client does not
    /// read, they may pile up only to `maxQueuedControlFrames`.
    func controlFrameQueued() throws(HTTP2ConnectionError) {
        controlFrames += 1
        guard controlFrames % Self.controlFramesPerCheck == 0, let context else { return }
        flushIfNeeded()
        if context.channel.isWritable {
            controlFrames = 0
        } else if controlFrames > limits.maxQueuedControlFrames {
            throw HTTP2ConnectionError(.enhanceYourCalm, "more than \(limits.maxQueuedControlFrames) frames to acknowledge while the client reads none")
        }
    }
}
