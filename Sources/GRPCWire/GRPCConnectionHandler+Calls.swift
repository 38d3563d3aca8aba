import NIOCore
import NIOHPACK

// Calls on one connection: opening them, taking their messages, answering
// them, the flow-control credit they hold and give back, and their ends.

extension GRPCConnectionHandler {
    // MARK: Calls

    func open(_ id: UInt32, _ headers: HPACKHeaders, endStream: Bool) {
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
            let loop = NIOLoopBound(self, eventLoop: context!.eventLoop)
            let requests = InboundMessages { bytes in
                loop.eventLoop.execute { loop.value.consumed(id, bytes) }
            }
            call.requests = requests
            let writer = ResponseWriter(connection: loop, streamID: id)
            let stream = requests.stream
            call.task = Task {
                let status: GRPCStatus
                do {
                    try await body(stream, writer)
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
    func receive(_ call: Call, _ incoming: inout ByteBuffer) -> GRPCStatus? {
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
                requests.add(message)
            } else if call.request == nil {
                call.request = message
            } else {
                return GRPCStatus(.internalError, "grpc: a unary call got more than one request message")
            }
        }
        return nil
    }

    /// The client has sent everything: run a unary call, end a stream's requests.
    func remoteClosed(_ id: UInt32) {
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
            let cancellation = CallCancellation()
            call.cancellation = cancellation
            body(request, UnaryResponder(inbox: inbox, connection: NIOLoopBound(self, eventLoop: inbox.eventLoop), streamID: id,
                                         cancellation: cancellation))
        case .streaming:
            call.requests?.finish()
        }
    }

    /// A streaming call's task took a message of `bytes` (framing included): its credit goes back.
    func consumed(_ id: UInt32, _ bytes: Int) {
        guard let call = calls[id], !call.answered else { return }  // ended: what it held was released then
        let n = min(bytes, call.held)
        call.held -= n
        held -= n
        if !call.remoteClosed {
            call.unacknowledged += n
            if call.unacknowledged >= Self.streamWindow / 2 {
                out.writeWindowUpdate(stream: id, increment: call.unacknowledged)
                call.unacknowledged = 0
                controlFrames += 1
            }
        }
        returnConnectionCredit()
        flushIfNeeded()
    }

    /// Gives the client connection credit back for what is no longer held,
    /// keeping what it may send plus what the server holds within the
    /// connection's buffer bound. In the common case (little held) this is
    /// all it sent, in one WINDOW_UPDATE per half window.
    func returnConnectionCredit() {
        let sendable = connectionWindow - connectionOwed
        let credit = min(connectionOwed, bufferLimit - held - sendable)
        guard credit > 0, credit >= connectionWindow / 2 || connectionOwed >= connectionWindow / 2 else { return }
        out.writeWindowUpdate(stream: 0, increment: credit)
        connectionOwed -= credit
        controlFrames += 1
    }

    private func release(_ call: Call) {
        held -= call.held
        call.held = 0
        returnConnectionCredit()
    }

    // MARK: Frames out

    /// Ends a call: its response and OK, or its status alone.
    func answer(_ id: UInt32, _ outcome: CompletionInbox.Outcome) {
        guard let call = calls[id] else {
            // The answer of a call the client reset: what it held is free now.
            if let bytes = abandoned.removeValue(forKey: id) {
                held -= bytes
                returnConnectionCredit()
                noteIfIdle()
                closeIfDrained()
            }
            return
        }
        guard !call.answered else { return }
        call.answered = true
        release(call)
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
    func send(_ message: [UInt8], on id: UInt32, ticket: SendTicket, then resume: CheckedContinuation<Void, any Error>) {
        guard let call = calls[id], !call.answered, let context else {
            return resume.resume(throwing: CancellationError())
        }
        sendResponseHeaders(id, call)
        writeMessage(message, on: id, call)
        sendQueued(id, call)
        flushIfNeeded()
        if call.queuedBytes > Self.outboundLimit || !context.channel.isWritable {
            if ticket.cancelled.withLockedValue({ $0 }) { return resume.resume(throwing: CancellationError()) }
            call.waiters.append((ticket, resume))
        } else {
            resume.resume()
        }
    }

    /// The task waiting in `send` with `ticket` was cancelled: it stops waiting (its message stays queued).
    func cancelWait(on id: UInt32, ticket: SendTicket) {
        guard let call = calls[id], let i = call.waiters.firstIndex(where: { $0.ticket === ticket }) else { return }
        call.waiters.remove(at: i).continuation.resume(throwing: CancellationError())
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
    func sendQueued(_ id: UInt32, _ call: Call) {
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
    func sendBlocked() {
        guard connectionSendWindow > 0, !blockedStreams.isEmpty else { return }
        let waiting = blockedStreams
        blockedStreams.removeAll()
        for id in waiting {
            guard let call = calls[id] else { continue }
            call.blocked = false
            sendQueued(id, call)
        }
    }

    func wakeSenders(_ call: Call) {
        guard !call.waiters.isEmpty, call.queuedBytes <= Self.outboundLimit, context?.channel.isWritable == true else { return }
        let waiters = call.waiters
        call.waiters.removeAll()
        for w in waiters { w.continuation.resume() }
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
    func reset(_ id: UInt32, _ code: HTTP2ErrorCode) {
        out.writeRSTStream(stream: id, code: code)
        controlFrames += 1
        closeStream(id)
    }

    func flushIfNeeded() {
        guard out.readableBytes > 0, let context else { return }
        let bytes = out
        out = context.channel.allocator.buffer(capacity: 256)
        context.writeAndFlush(wrapOutboundOut(bytes), promise: nil)
    }

    // MARK: Ends and timers

    func closeStream(_ id: UInt32) {
        guard let call = calls.removeValue(forKey: id) else { return }
        end(call)
        noteIfIdle()
        closeIfDrained()
    }

    /// A call the client reset: a unary call whose handler works keeps its
    /// place (and what it holds) until its answer arrives; anything else ends now.
    func abandon(_ id: UInt32, _ call: Call) {
        if let cancellation = call.cancellation, !call.answered {
            abandoned[id] = call.held
            call.held = 0
            cancellation.cancel()
            return
        }
        end(call)
        noteIfIdle()
    }

    func closeIfDrained() {
        if draining && calls.isEmpty && abandoned.isEmpty { closeSoon() }
    }

    func noteIfIdle() {
        if calls.isEmpty && abandoned.isEmpty { idleSince = .now() }
    }

    /// Closes the connection once it has had no call for `idleTimeout` (GOAWAY NO_ERROR first).
    func scheduleIdleCheck(in delay: TimeAmount) {
        guard let context, let timeout = limits.idleTimeout else { return }
        idleTimer = context.eventLoop.assumeIsolated().scheduleTask(in: delay) { [self] in
            guard !closed else { return }
            guard calls.isEmpty && abandoned.isEmpty else { return scheduleIdleCheck(in: timeout) }
            let idle = NIODeadline.now() - idleSince
            guard idle >= timeout else { return scheduleIdleCheck(in: timeout - idle) }
            draining = true
            out.writeGoAway(lastStream: lastStreamID, code: .noError, message: "idle for \(timeout.nanoseconds / 1_000_000_000) s")
            closeSoon()
        }
    }

    /// A connection error: GOAWAY with its code and reason, then close.
    func fail(_ error: HTTP2ConnectionError) {
        guard !closed, let context else { return }
        closed = true
        out.writeGoAway(lastStream: lastStreamID, code: error.code, message: error.message)
        flushIfNeeded()
        context.close(promise: nil)
    }

    /// Closes the connection after what is being written now has been flushed.
    func closeSoon() {
        guard let context, !closed else { return }
        closed = true
        context.eventLoop.assumeIsolated().execute { [self] in
            flushIfNeeded()
            context.close(promise: nil)
        }
    }

    func end(_ call: Call) {
        held -= call.held
        call.held = 0
        call.requests?.finish(throwing: CancellationError())
        if !call.answered {
            call.task?.cancel()
            call.cancellation?.cancel()
        }
        for w in call.waiters { w.continuation.resume(throwing: CancellationError()) }
        call.waiters.removeAll()
        returnConnectionCredit()
    }

    func tearDown() {
        handshakeTimer?.cancel()
        handshakeTimer = nil
        idleTimer?.cancel()
        idleTimer = nil
        let all = calls.values
        calls.removeAll()
        abandoned.removeAll()
        for call in all { end(call) }
    }
}
