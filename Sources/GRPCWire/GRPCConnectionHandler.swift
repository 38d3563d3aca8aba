import NIOCore
import NIOHPACK

/// gRPC over one HTTP/2 connection, server side, reading and writing the
/// frames itself (`HTTP2Framing.swift`): no channel per stream, no task per
/// unary call, and every frame of a batch of answers lands in one buffer
/// written with one flush.
///
/// What it does of HTTP/2: the preface and SETTINGS exchange, PING, GOAWAY
/// (both ways), RST_STREAM, header blocks split over CONTINUATION, padding,
/// flow control in both directions (outbound DATA waits for the peer's
/// credit; inbound credit is given back in bulk), and stream and connection
/// errors as RFC 9113 words them. Server push and priorities are not used.
final class GRPCConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Inbound credit: the connection window is raised to this at start and
    /// topped up when half is used; streams get the same treatment at `streamWindow`.
    static let connectionWindow = 16 << 20
    static let streamWindow = 1 << 20
    /// Bytes of one stream's responses allowed to wait for flow-control credit before `send` waits.
    static let outboundLimit = 1 << 20
    static let maxConcurrentStreams = 10_000
    static let maxHeaderListSize = 16 << 10

    /// One call's state; a class, so that the handler updates it in place.
    private final class Call {
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
        var requests: RequestStream.Continuation?
        var task: Task<Void, Never>?
        /// Inbound bytes not yet credited back to the client.
        var unacknowledged = 0
        /// Outbound credit the client has given this stream.
        var sendWindow: Int
        /// gRPC-framed response bytes waiting for credit, then the trailers that follow them.
        var queued: ByteBuffer?
        var queuedBytes: Int { queued?.readableBytes ?? 0 }
        var trailers: [UInt8]?
        var blocked = false
        var waiters: [CheckedContinuation<Void, any Error>] = []

        init(path: String, method: GRPCMethod, observed: Bool = true, sendWindow: Int) {
            self.path = path
            self.method = method
            self.observed = observed
            self.sendWindow = sendWindow
        }
    }

    private let router: GRPCRouter
    private let inbox: CompletionInbox
    private var context: ChannelHandlerContext?
    private var calls: [UInt32: Call] = [:]
    /// Set while a batch of answers is being delivered (see `CompletionInbox`).
    var inFlushList = false

    private var reader = FrameReader()
    private var decoder: HPACKDecoder
    /// A header block waiting for its CONTINUATION frames.
    private var partialBlock: (stream: UInt32, endStream: Bool, bytes: ByteBuffer)?
    private var settingsReceived = false
    /// Frames written since the last flush.
    private var out = ByteBuffer()

    private var peerInitialWindow = HTTP2.defaultWindow
    private var peerMaxFrameSize = HTTP2.defaultMaxFrameSize
    private var connectionSendWindow = HTTP2.defaultWindow
    private var tableSizeUpdatePending = false
    /// Streams with responses waiting for credit, oldest first.
    private var blockedStreams: [UInt32] = []
    private var connectionUnacknowledged = 0
    private var lastStreamID: UInt32 = 0
    /// We sent GOAWAY (server shutdown), or the client did: close once the calls are done.
    private var draining = false
    private var closed = false

    init(router: GRPCRouter, inbox: CompletionInbox) {
        self.router = router
        self.inbox = inbox
        var decoder = HPACKDecoder(allocator: ByteBufferAllocator())
        decoder.maxHeaderListSize = Self.maxHeaderListSize
        self.decoder = decoder
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        out = context.channel.allocator.buffer(capacity: 256)
        // The server preface: our SETTINGS, then the connection window raised in one go.
        out.writeSettings([(0x3, UInt32(Self.maxConcurrentStreams)), (0x4, UInt32(Self.streamWindow)),
                           (0x6, UInt32(Self.maxHeaderListSize))])
        out.writeWindowUpdate(stream: 0, increment: Self.connectionWindow - HTTP2.defaultWindow)
        flushIfNeeded()
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
            }
        case .rstStream:
            guard frame.stream != 0 else { throw HTTP2ConnectionError(.protocolError, "RST_STREAM on stream 0") }
            guard frame.payload.readableBytes == 4 else { throw HTTP2ConnectionError(.frameSizeError, "RST_STREAM of \(frame.payload.readableBytes) bytes, not 4") }
            guard frame.stream <= lastStreamID else { throw HTTP2ConnectionError(.protocolError, "RST_STREAM on idle stream \(frame.stream)") }
            if let call = calls.removeValue(forKey: frame.stream) { end(call) }
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
        settingsReceived = true
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
        if draining || calls.count >= Self.maxConcurrentStreams {
            return out.writeRSTStream(stream: stream, code: .refusedStream)
        }
        open(stream, headers, endStream: endStream)
    }

    private func data(_ frame: Frame) throws(HTTP2ConnectionError) {
        guard frame.stream != 0 else { throw HTTP2ConnectionError(.protocolError, "DATA on stream 0") }
        let flowed = frame.payload.readableBytes
        var bytes = try frame.unpadded()
        connectionUnacknowledged += flowed
        if connectionUnacknowledged >= Self.connectionWindow / 2 {
            out.writeWindowUpdate(stream: 0, increment: connectionUnacknowledged)
            connectionUnacknowledged = 0
        }
        guard let call = calls[frame.stream] else {
            guard frame.stream <= lastStreamID else { throw HTTP2ConnectionError(.protocolError, "DATA on idle stream \(frame.stream)") }
            return  // a stream this server already ended
        }
        guard !call.remoteClosed else { return reset(frame.stream, .streamClosed) }
        let endStream = frame.has(FrameFlag.endStream)
        if !endStream {
            call.unacknowledged += flowed
            if call.unacknowledged >= Self.streamWindow / 2 {
                out.writeWindowUpdate(stream: frame.stream, increment: call.unacknowledged)
                call.unacknowledged = 0
            }
        }
        if !call.answered, let failure = receive(call, &bytes) {
            return answer(frame.stream, .status(failure))
        }
        if endStream { remoteClosed(frame.stream) }
    }

    // MARK: Calls

    private func open(_ id: UInt32, _ headers: HPACKHeaders, endStream: Bool) {
        let path = headers.first(name: ":path") ?? ""
        guard let method = router.methods[path] else {
            let service = path.split(separator: "/").first.map(String.init) ?? path
            let known = router.methods.keys.contains { $0.hasPrefix("/\(service)/") }
            // Not counted by the observer: clients choose paths, metrics must not grow with them.
            calls[id] = Call(path: path, method: .unary { _, _ in }, observed: false, sendWindow: peerInitialWindow)
            if endStream { calls[id]?.remoteClosed = true }
            return answer(id, .status(GRPCStatus(.unimplemented, known ? "unknown method \(path)" : "unknown service \(service)")))
        }
        let call = Call(path: path, method: method, sendWindow: peerInitialWindow)
        calls[id] = call
        if headers.first(name: ":method") != "POST" {
            call.remoteClosed = endStream
            return answer(id, .status(GRPCStatus(.unimplemented, "gRPC needs POST, not \(headers.first(name: ":method") ?? "no method")")))
        }
        if let type = headers.first(name: "content-type"), !type.hasPrefix("application/grpc") {
            call.remoteClosed = endStream
            return answer(id, .status(GRPCStatus(.invalidArgument, "content-type \(type) is not gRPC: use application/grpc")))
        }
        if let encoding = headers.first(name: "grpc-encoding"), encoding != "identity" {
            call.remoteClosed = endStream
            return answer(id, .status(GRPCStatus(.unimplemented, "compressed messages (grpc-encoding \(encoding)) are not supported: send them uncompressed")))
        }
        if case .streaming(let body) = method {
            let (requests, continuation) = RequestStream.makeStream()
            call.requests = continuation
            let loop = NIOLoopBound(self, eventLoop: context!.eventLoop)
            let writer = ResponseWriter(connection: loop, streamID: id)
            call.task = Task {
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

    /// Takes the gRPC messages out of a DATA frame's payload; returns the status to end the call with if they are bad.
    private func receive(_ call: Call, _ incoming: inout ByteBuffer) -> GRPCStatus? {
        var bytes = incoming
        if var pending = call.pendingBytes {
            pending.writeBuffer(&bytes)
            bytes = pending
        }
        defer { call.pendingBytes = bytes.readableBytes > 0 ? bytes : nil }
        while let length = bytes.getInteger(at: bytes.readerIndex + 1, as: UInt32.self) {
            if bytes.getInteger(at: bytes.readerIndex, as: UInt8.self)! != 0 {
                return GRPCStatus(.unimplemented, "compressed messages are not supported: send them uncompressed")
            }
            if Int(length) > router.maxRequestMessageBytes {
                return GRPCStatus(.resourceExhausted, "grpc: received message larger than max (\(length) vs. \(router.maxRequestMessageBytes))")
            }
            guard bytes.readableBytes >= 5 + Int(length) else { break }
            bytes.moveReaderIndex(forwardBy: 5)
            let message = bytes.readBytes(length: Int(length))!
            if let requests = call.requests {
                requests.yield(message)
            } else if call.request == nil {
                call.request = message
            } else {
                return GRPCStatus(.internalError, "grpc: a unary call got more than one request message")
            }
        }
        return nil
    }

    /// The client has sent everything: run a unary call, end a stream's requests.
    private func remoteClosed(_ id: UInt32) {
        guard let call = calls[id], !call.remoteClosed else { return }
        call.remoteClosed = true
        if call.answered { return }  // its trailers wait for credit; the stream closes once they are sent
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

    // MARK: Frames out

    /// Ends a call: its response and OK, or its status alone.
    func answer(_ id: UInt32, _ outcome: CompletionInbox.Outcome) {
        guard let call = calls[id], !call.answered else { return }
        call.answered = true
        let status: GRPCStatus
        switch outcome {
        case .message(let message):
            status = .ok
            sendResponseHeaders(id, call)
            writeMessage(message, on: id, call)
            call.trailers = HeaderBlock.ok
        case .status(let s):
            status = s
            call.trailers = HeaderBlock.trailers(s, withResponseHeaders: !call.headersSent)
            call.headersSent = true
        }
        sendQueued(id, call)
        if call.observed { router.observer?(call.path, status.code) }
    }

    /// One response message of a streaming call; `then` resumes when the stream has room for more.
    func send(_ message: [UInt8], on id: UInt32, then resume: CheckedContinuation<Void, any Error>) {
        guard let call = calls[id], !call.answered, let context else {
            return resume.resume(throwing: CancellationError())
        }
        sendResponseHeaders(id, call)
        writeMessage(message, on: id, call)
        sendQueued(id, call)
        flushIfNeeded()
        if call.queuedBytes > Self.outboundLimit || !context.channel.isWritable {
            call.waiters.append(resume)
        } else {
            resume.resume()
        }
    }

    private func sendResponseHeaders(_ id: UInt32, _ call: Call) {
        guard !call.headersSent else { return }
        call.headersSent = true
        writeHeaders(id, HeaderBlock.response, endStream: false)
    }

    /// One gRPC-framed message: written now if the windows allow, else queued behind what waits for credit.
    private func writeMessage(_ message: [UInt8], on id: UInt32, _ call: Call) {
        let framedSize = 5 + message.count
        if call.queued == nil && framedSize <= min(call.sendWindow, connectionSendWindow, peerMaxFrameSize) {
            // The common case, a small answer with credit to spare: straight into the output.
            out.writeFrameHeader(length: framedSize, type: .data, stream: id)
            out.writeInteger(UInt8(0))
            out.writeInteger(UInt32(message.count))
            out.writeBytes(message)
            call.sendWindow -= framedSize
            connectionSendWindow -= framedSize
            return
        }
        if call.queued == nil { call.queued = context!.channel.allocator.buffer(capacity: framedSize) }
        call.queued!.writeInteger(UInt8(0))
        call.queued!.writeInteger(UInt32(message.count))
        call.queued!.writeBytes(message)
    }

    /// Sends as much of a stream's queued responses as the windows allow,
    /// then its trailers once nothing is left; a stream short of credit
    /// waits in `blockedStreams`.
    private func sendQueued(_ id: UInt32, _ call: Call) {
        while let waiting = call.queued?.readableBytes, waiting > 0 {
            let n = min(waiting, call.sendWindow, connectionSendWindow, peerMaxFrameSize)
            guard n > 0 else {
                // What was sent no longer needs keeping (a stream that never drains would grow forever).
                if call.queued!.readerIndex >= Self.outboundLimit { call.queued!.discardReadBytes() }
                if !call.blocked {
                    call.blocked = true
                    blockedStreams.append(id)
                }
                return
            }
            var chunk = call.queued!.readSlice(length: n)!
            out.writeFrameHeader(length: n, type: .data, stream: id)
            out.writeBuffer(&chunk)
            call.sendWindow -= n
            connectionSendWindow -= n
        }
        call.queued = nil
        if let trailers = call.trailers {
            call.trailers = nil
            writeHeaders(id, trailers, endStream: true)
            // An answer complete before its request: ask the client to stop sending (RFC 9113 §8.1).
            if !call.remoteClosed { out.writeRSTStream(stream: id, code: .noError) }
            closeStream(id)
        } else {
            wakeSenders(call)
        }
    }

    /// Gives streams waiting for credit another go, oldest first.
    private func sendBlocked() {
        guard connectionSendWindow > 0, !blockedStreams.isEmpty else { return }
        let waiting = blockedStreams
        blockedStreams.removeAll()
        for id in waiting {
            guard let call = calls[id] else { continue }
            call.blocked = false
            sendQueued(id, call)
        }
    }

    private func wakeSenders(_ call: Call) {
        guard !call.waiters.isEmpty, call.queuedBytes <= Self.outboundLimit, context?.channel.isWritable == true else { return }
        let waiters = call.waiters
        call.waiters.removeAll()
        for w in waiters { w.resume() }
    }

    private func writeHeaders(_ id: UInt32, _ block: [UInt8], endStream: Bool) {
        if tableSizeUpdatePending {
            tableSizeUpdatePending = false
            out.writeHeaders(stream: id, block: [HeaderBlock.emptyTable] + block, endStream: endStream, maxFrameSize: peerMaxFrameSize)
        } else {
            out.writeHeaders(stream: id, block: block, endStream: endStream, maxFrameSize: peerMaxFrameSize)
        }
    }

    /// Ends a stream with RST_STREAM (a stream error, RFC 9113 §5.4.2).
    private func reset(_ id: UInt32, _ code: HTTP2ErrorCode) {
        out.writeRSTStream(stream: id, code: code)
        closeStream(id)
    }

    func flushIfNeeded() {
        guard out.readableBytes > 0, let context else { return }
        let bytes = out
        out = context.channel.allocator.buffer(capacity: 256)
        context.writeAndFlush(wrapOutboundOut(bytes), promise: nil)
    }

    // MARK: Ends

    private func closeStream(_ id: UInt32) {
        guard let call = calls.removeValue(forKey: id) else { return }
        end(call)
        closeIfDrained()
    }

    private func closeIfDrained() {
        if draining && calls.isEmpty { closeSoon() }
    }

    /// A connection error: GOAWAY with its code and reason, then close.
    private func fail(_ error: HTTP2ConnectionError) {
        guard !closed, let context else { return }
        closed = true
        out.writeGoAway(lastStream: lastStreamID, code: error.code, message: error.message)
        flushIfNeeded()
        context.close(promise: nil)
    }

    /// Closes the connection after what is being written now has been flushed.
    private func closeSoon() {
        guard let context, !closed else { return }
        closed = true
        context.eventLoop.assumeIsolated().execute { [self] in
            flushIfNeeded()
            context.close(promise: nil)
        }
    }

    private func end(_ call: Call) {
        call.requests?.finish(throwing: CancellationError())
        if !call.answered { call.task?.cancel() }
        for w in call.waiters { w.resume(throwing: CancellationError()) }
        call.waiters.removeAll()
    }

    private func tearDown() {
        let all = calls.values
        calls.removeAll()
        for call in all { end(call) }
    }
}
