import Foundation
import Synchronization
@testable import GRPCWire
import NIOCore
import NIOPosix
import Testing
import TestSupport

extension RawHTTP2Connection {
    /// Writes `build`'s bytes again and again for `seconds` (or until the
    /// server stops taking them or closes); returns how many bytes it took
    /// by each whole second.
    func flood(seconds: Int, _ build: (inout ByteBuffer) -> Void) async -> [Int] {
        var chunk = ByteBuffer()
        build(&chunk)
        let piece = chunk
        let sent = Mutex(0)
        let writer = Task {
            while !Task.isCancelled {
                do { try await self.sendBuffer(piece) } catch { break }
                sent.withLock { $0 += piece.readableBytes }
            }
        }
        var timeline: [Int] = []
        for _ in 0..<seconds {
            try? await Task.sleep(for: .seconds(1))
            timeline.append(sent.withLock { $0 })
        }
        writer.cancel()
        // A write the server no longer takes may not end on cancellation: don't wait for it.
        return timeline
    }

    /// The frames the server sent since the last call, after waiting
    /// `seconds` (less once the server has closed). A background reader
    /// collects them from the first call on; don't mix with `next()`.
    func frames(for seconds: Double) async -> [ReceivedFrame] {
        startCollecting()
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline && !collected.withLock({ $0.closed }) {
            try? await Task.sleep(for: .milliseconds(10))
        }
        return collected.withLock { state in
            defer { state.frames.removeAll() }
            return state.frames
        }
    }

    private func startCollecting() {
        let start = collected.withLock { state -> Bool in
            defer { state.reading = true }
            return !state.reading
        }
        guard start else { return }
        Task {
            while let frame = try? await self.next() {
                self.collected.withLock { $0.frames.append(frame) }
            }
            self.collected.withLock { $0.closed = true }
        }
    }

    func request(_ stream: UInt32, _ path: String, _ message: [UInt8] = [1, 2, 3], reset: Bool = false, into b: inout ByteBuffer) {
        b.writeHeaders(stream: stream, block: requestBlock(path), endStream: false, maxFrameSize: 16_384)
        let framed = grpcFramed(message)
        b.writeFrameHeader(length: framed.count, type: .data, flags: FrameFlag.endStream, stream: stream)
        b.writeBytes(framed)
        if reset {
            b.writeFrameHeader(length: 4, type: .rstStream, stream: stream)
            b.writeInteger(HTTP2ErrorCode.cancel.rawValue)
        }
    }
}

func goAwayCode(_ frames: [ReceivedFrame]) -> UInt32? {
    frames.first { $0.type == .goAway }.flatMap { $0.payload.getInteger(at: $0.payload.readerIndex + 4, as: UInt32.self) }
}

/// The wire server's bounds (issue 12, finding 11): each hostile client is
/// measured against a limit while it runs, then a well-behaved call must
/// still be answered.
@Suite("GRPCWire bounds", .serialized, .timeLimit(.minutes(1)))
struct HardeningTests {
    /// Opening and resetting streams in a loop ("rapid reset", CVE-2023-44487):
    /// the work started never exceeds the stream limit, and the flood ends in
    /// GOAWAY ENHANCE_YOUR_CALM.
    @Test func rapidResetIsCappedAndAnsweredWithEnhanceYourCalm() async throws {
        var limits = GRPCWireLimits()
        limits.maxConcurrentStreams = 20
        try await RawHTTP2Connection.withServer(limits: limits) { connection, server in
            try await connection.start()
            var b = ByteBuffer()
            for i in 0..<2000 { connection.request(UInt32(2 * i + 1), "/test.Echo/Gauge", reset: true, into: &b) }
            try await connection.sendBuffer(b)
            let frames = await connection.frames(for: 3)
            #expect(goAwayCode(frames) == HTTP2ErrorCode.enhanceYourCalm.rawValue)
            #expect(server.seen.peakRunning <= 20, "\(server.seen.peakRunning) calls ran at once on a limit of 20")
            try await expectServed(server)
        }
    }

    @Test func resetCallsStillRunningCountAgainstTheStreamLimit() async throws {
        var limits = GRPCWireLimits()
        limits.maxConcurrentStreams = 10
        limits.resetBurst = 100_000  // no flood verdict here: only the cap
        try await RawHTTP2Connection.withServer(limits: limits) { connection, server in
            try await connection.start()
            var b = ByteBuffer()
            for i in 0..<100 { connection.request(UInt32(2 * i + 1), "/test.Echo/Gauge", reset: true, into: &b) }
            try await connection.sendBuffer(b)
            let frames = await connection.frames(for: 1)
            #expect(server.seen.peakRunning <= 10, "\(server.seen.peakRunning) calls ran at once on a limit of 10")
            #expect(frames.contains { $0.type == .rstStream && $0.payload.getInteger(at: $0.payload.readerIndex, as: UInt32.self) == HTTP2ErrorCode.refusedStream.rawValue })
        }
    }

    /// RST_STREAM cancels the unary work it started.
    @Test func aResetCancelsTheCallsTask() async throws {
        try await RawHTTP2Connection.withServer(limits: GRPCWireLimits()) { connection, server in
            try await connection.start()
            var b = ByteBuffer()
            connection.request(1, "/test.Echo/Sleepy", into: &b)
            try await connection.sendBuffer(b)
            try await Task.sleep(for: .milliseconds(100))
            try await connection.send {
                $0.writeFrameHeader(length: 4, type: .rstStream, stream: 1)
                $0.writeInteger(HTTP2ErrorCode.cancel.rawValue)
            }
            let deadline = ContinuousClock.now + .seconds(3)
            while !server.seen.all.contains("sleepy cancelled") && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(server.seen.all.contains("sleepy cancelled"))
        }
    }

    /// A streaming call that does not read its requests gets no more of them
    /// than its window: credit comes back only as messages are consumed.
    @Test func streamCreditComesBackOnlyAsMessagesAreConsumed() async throws {
        try await RawHTTP2Connection.withServer(limits: GRPCWireLimits()) { connection, _ in
            try await connection.start()
            var b = ByteBuffer()
            b.writeHeaders(stream: 1, block: requestBlock("/test.Echo/Hold"), endStream: false, maxFrameSize: 16_384)
            // 1 MiB (the stream's window) of 4 KiB messages.
            let framed = grpcFramed([UInt8](repeating: 3, count: 4091))
            for _ in 0..<256 {
                b.writeFrameHeader(length: framed.count, type: .data, stream: 1)
                b.writeBytes(framed)
            }
            try await connection.sendBuffer(b)
            let frames = await connection.frames(for: 1)
            let credit = frames.filter { $0.type == .windowUpdate && $0.stream == 1 }
                .compactMap { $0.payload.getInteger(at: $0.payload.readerIndex, as: UInt32.self) }.reduce(0, +)
            #expect(credit == 0, "the server gave \(credit) bytes of credit for messages nobody read")
        }
    }

    /// Requests that never end cannot make one connection hold more than its buffer bound.
    @Test func partialRequestsHoldAtMostTheConnectionsBuffer() async throws {
        var limits = GRPCWireLimits()
        limits.maxConnectionBufferedBytes = 16 << 20  // the test server's 8 MiB messages need at least that
        try await RawHTTP2Connection.withServer(limits: limits) { connection, server in
            try await connection.start()
            var window = HTTP2.defaultWindow
            var sent = 0
            let streams: [UInt32] = (0..<40).map { UInt32(2 * $0 + 1) }
            var opening = ByteBuffer()
            for id in streams {
                opening.writeHeaders(stream: id, block: requestBlock("/test.Echo/Reverse"), endStream: false, maxFrameSize: 16_384)
            }
            try await connection.sendBuffer(opening)
            var round = 0
            while sent < 64 << 20 {
                // Whatever credit arrived, then as many 16 KiB frames as it allows, round robin.
                for frame in await connection.frames(for: window < 16_384 ? 0.3 : 0.01) where frame.type == .windowUpdate && frame.stream == 0 {
                    window += Int(frame.payload.getInteger(at: frame.payload.readerIndex, as: UInt32.self)!)
                }
                guard window >= 16_384 else { break }  // no credit came back: the server holds what it may
                var b = ByteBuffer()
                while window >= 16_384 {
                    let id = streams[round % streams.count]
                    b.writeFrameHeader(length: 16_384, type: .data, stream: id)
                    if round < streams.count {
                        b.writeInteger(UInt8(0))
                        b.writeInteger(UInt32(8 << 20 - 16))  // each message declares 8 MiB and never ends
                        b.writeBytes([UInt8](repeating: 0, count: 16_384 - 5))
                    } else {
                        b.writeBytes([UInt8](repeating: 0, count: 16_384))
                    }
                    round += 1
                    window -= 16_384
                    sent += 16_384
                }
                try await connection.sendBuffer(b)
            }
            #expect(sent <= 16 << 20 + 16_384, "the client could send \(sent >> 20) MiB of requests that never end")
            try await expectServed(server)
        }
    }

    @Test func aConnectionThatNeverSaysAnythingIsClosed() async throws {
        var limits = GRPCWireLimits()
        limits.handshakeTimeout = .milliseconds(300)
        try await RawHTTP2Connection.withServer(limits: limits) { connection, _ in
            let frames = await connection.frames(for: 3)
            #expect(frames.isEmpty)
            #expect(!connection.channel.isActive, "the server closes a connection that sends nothing")
        }
        try await RawHTTP2Connection.withServer(limits: limits) { connection, _ in
            try await connection.send { $0.writeBytes(HTTP2.clientPreface) }  // and no SETTINGS
            #expect(goAwayCode(await connection.frames(for: 3)) == HTTP2ErrorCode.protocolError.rawValue)
        }
    }

    @Test func anIdleConnectionIsSentGoAway() async throws {
        var limits = GRPCWireLimits()
        limits.idleTimeout = .milliseconds(300)
        try await RawHTTP2Connection.withServer(limits: limits) { connection, _ in
            try await connection.start()
            var b = ByteBuffer()
            connection.request(1, "/test.Echo/Reverse", into: &b)
            try await connection.sendBuffer(b)
            let frames = await connection.frames(for: 3)
            #expect(frames.contains { $0.type == .headers && $0.stream == 1 }, "the call is answered first")
            #expect(goAwayCode(frames) == HTTP2ErrorCode.noError.rawValue)
        }
    }

    @Test func connectionsBeyondTheCapAreClosed() async throws {
        var limits = GRPCWireLimits()
        limits.maxConnections = 3
        let server = try await TestServer.start(limits: limits)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            try await Self.fillAndServe(server, group)
        } catch {
            try? await group.shutdownGracefully()
            await server.server.shutdown()
            throw error
        }
        try await group.shutdownGracefully()
        await server.server.shutdown()
    }

    private static func fillAndServe(_ server: TestServer, _ group: MultiThreadedEventLoopGroup) async throws {
        var open: [RawHTTP2Connection] = []
        for _ in 0..<3 { open.append(try await RawHTTP2Connection.connect(port: server.port, group: group)) }
        let extra = try await RawHTTP2Connection.connect(port: server.port, group: group)
        let extraFrames = await extra.frames(for: 2)
        let extraActive = extra.channel.isActive
        #expect(extraFrames.isEmpty && !extraActive, "a fourth connection is closed")
        try await open.removeLast().channel.close()
        let deadline = ContinuousClock.now + .seconds(3)
        while server.server.connectionCount >= 3 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        let next = try await RawHTTP2Connection.connect(port: server.port, group: group)
        try await next.start()
        var b = ByteBuffer()
        next.request(1, "/test.Echo/Reverse", into: &b)
        try await next.sendBuffer(b)
        let frames = await next.frames(for: 2)
        #expect(frames.contains { $0.type == .headers && $0.stream == 1 }, "a connection under the cap is served")
        for c in open + [next] { try? await c.channel.close() }
    }
}

/// A well-behaved client on a new connection is answered.
func expectServed(_ server: TestServer, sourceLocation: SourceLocation = #_sourceLocation) async throws {
    let reversed = try await server.withLeanClient { client, _ in
        try await client.call("/test.Echo/Reverse", Array("ok".utf8)).get()
    }
    #expect(reversed == Array("ko".utf8), sourceLocation: sourceLocation)
}

/// Measures this process's memory (the test server runs in it), so it runs alone (see `residentBytes`).
@Suite(.timeLimit(.minutes(1))) struct PingFloodMemoryBoundTests {
    /// A client that reads nothing cannot make the server queue PING
    /// acknowledgements without bound: the server stops reading it (or ends
    /// the connection with ENHANCE_YOUR_CALM).
    @Test func aPingFloodFromAClientThatNeverReadsIsBounded() async throws {
        try await RawHTTP2Connection.withServer(limits: GRPCWireLimits()) { connection, server in
            try await connection.start()
            let before = residentBytes()
            let sent = await connection.flood(seconds: 4) { b in
                for i in 0..<4096 {
                    b.writeFrameHeader(length: 8, type: .ping, stream: 0)
                    b.writeInteger(UInt64(i))
                }
            }
            let grown = residentBytes() - before
            // The server stops reading (or hangs up) once its answers wait for the socket: the
            // client's writes stall, instead of going on as fast as the server reads them.
            let lastSecond = sent[3] - sent[2]
            #expect(lastSecond < 1 << 20, "the server still took \(lastSecond >> 10) KiB of PINGs in the 4th second (of \(sent[3] >> 20) MiB)")
            #expect(grown < 24 << 20, "RSS grew by \(grown >> 20) MiB while the client sent \(sent[3] >> 20) MiB of PINGs")
            try await expectServed(server)
        }
    }
}
