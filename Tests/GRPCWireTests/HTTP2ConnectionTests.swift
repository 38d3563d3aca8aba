import Foundation
import Synchronization
@testable import GRPCWire
import NIOCore
import NIOHPACK
import NIOPosix
import Testing

// The server's HTTP/2 at the frame level, driven by hand-written frames:
// the parts real clients seldom exercise (CONTINUATION, padding, tiny
// windows, protocol errors) but are entitled to.

/// One frame the server sent.
struct ReceivedFrame: Sendable {
    var type: FrameType?
    var flags: UInt8
    var stream: UInt32
    var payload: ByteBuffer
}

/// A TCP connection that speaks HTTP/2 one frame at a time. Used by one
/// task at a time (or by `frames(for:)`'s reader alone).
final class RawHTTP2Connection: @unchecked Sendable {
    /// What `frames(for:)`'s background reader collected.
    let collected = Mutex<(frames: [ReceivedFrame], reading: Bool, closed: Bool)>(([], false, false))
    private let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    private var inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    private var buffer = ByteBuffer()
    private var decoder = HPACKDecoder(allocator: ByteBufferAllocator())

    private init(_ channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>) {
        inbound = channel.inbound.makeAsyncIterator()
        outbound = channel.outbound
        self.channel = channel.channel
    }

    deinit { outbound.finish() }

    /// Starts a test server, connects to it, runs `body`, and removes the
    /// connection, its event loop and the server, even when `body` throws.
    static func withServer(_ body: (RawHTTP2Connection) async throws -> Void) async throws {
        try await withServer(limits: GRPCWireLimits()) { connection, _ in try await body(connection) }
    }

    /// The same with the server's limits given, and the server (for more connections and observations).
    static func withServer(limits: GRPCWireLimits, _ body: (RawHTTP2Connection, TestServer) async throws -> Void) async throws {
        let server = try await TestServer.start(limits: limits)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            let connection = try await connect(port: server.port, group: group)
            try await body(connection, server)
            try? await connection.channel.close()
        } catch {
            try? await group.shutdownGracefully()
            await server.server.shutdown()
            throw error
        }
        try await group.shutdownGracefully()
        await server.server.shutdown()
    }

    let channel: any Channel

    static func connect(port: Int, group: MultiThreadedEventLoopGroup) async throws -> RawHTTP2Connection {
        let channel = try await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: port) { channel in
            channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
        }
        return RawHTTP2Connection(channel)
    }

    func sendBuffer(_ bytes: ByteBuffer) async throws {
        try await outbound.write(bytes)
    }

    func send(_ build: (inout ByteBuffer) -> Void) async throws {
        var bytes = ByteBuffer()
        build(&bytes)
        try await outbound.write(bytes)
    }

    /// The preface and an empty SETTINGS frame (or the given settings).
    func start(_ settings: [(id: UInt16, value: UInt32)] = []) async throws {
        try await send {
            $0.writeBytes(HTTP2.clientPreface)
            $0.writeSettings(settings)
        }
    }

    /// The next frame, or nil once the server has closed the connection.
    func next() async throws -> ReceivedFrame? {
        while true {
            if buffer.readableBytes >= 9, let head = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self),
               buffer.readableBytes >= 9 + Int(head >> 8) {
                let flags = buffer.getInteger(at: buffer.readerIndex + 4, as: UInt8.self)!
                let stream = buffer.getInteger(at: buffer.readerIndex + 5, as: UInt32.self)!
                buffer.moveReaderIndex(forwardBy: 9)
                return ReceivedFrame(type: FrameType(rawValue: UInt8(head & 0xFF)), flags: flags, stream: stream,
                                     payload: buffer.readSlice(length: Int(head >> 8))!)
            }
            guard var more = try await inbound.next() else { return nil }
            buffer.writeBuffer(&more)
        }
    }

    /// The next frame that is not part of the server's preface or a SETTINGS acknowledgement.
    func nextOnStreams() async throws -> ReceivedFrame? {
        while let frame = try await next() {
            if frame.type == .settings || (frame.type == .windowUpdate && frame.stream == 0) { continue }
            return frame
        }
        return nil
    }

    /// Decodes a HEADERS frame's block, as the client's HPACK decoder would.
    func headers(_ frame: ReceivedFrame) throws -> [String: String] {
        var block = frame.payload
        var result: [String: String] = [:]
        for (name, value, _) in try decoder.decodeHeaders(from: &block) { result[name] = value }
        return result
    }

    /// The GOAWAY error code the server closes with, skipping what comes before it.
    func goAwayCode() async throws -> UInt32? {
        while let frame = try await next() {
            if frame.type == .goAway { return frame.payload.getInteger(at: frame.payload.readerIndex + 4, as: UInt32.self) }
        }
        return nil
    }
}

/// A request's header block: POST to `path`, as literals (no HPACK state needed).
func requestBlock(_ path: String) -> [UInt8] {
    [0x83, 0x86] + HeaderBlock.literal(index: 4, path) + HeaderBlock.literal(index: 1, "localhost")
        + HeaderBlock.literal(index: 31, "application/grpc") + HeaderBlock.literal("te", "trailers")
}

func bytes(_ build: (inout ByteBuffer) -> Void) -> [UInt8] {
    var buffer = ByteBuffer()
    build(&buffer)
    return Array(buffer.readableBytesView)
}

func grpcFramed(_ message: [UInt8]) -> [UInt8] {
    [0] + withUnsafeBytes(of: UInt32(message.count).bigEndian) { Array($0) } + message
}

@Suite("GRPCWire HTTP/2 framing", .timeLimit(.minutes(1)))
struct HTTP2ConnectionTests {
    @Test func prefaceSettingsAndPingsAreAnswered() async throws {
        try await RawHTTP2Connection.withServer { connection in
            try await connection.start()
            try await connection.send {
                $0.writeFrameHeader(length: 8, type: .ping, stream: 0)
                $0.writeBytes([1, 2, 3, 4, 5, 6, 7, 8])
            }
            var settings: [UInt16: UInt32] = [:]
            var connectionCredit: UInt32?
            var acknowledged = false
            var pong: [UInt8]?
            while pong == nil, let frame = try await connection.next() {
                var payload = frame.payload
                switch frame.type {
                case .settings where frame.flags & FrameFlag.ack != 0: acknowledged = true
                case .settings:
                    while let id = payload.readInteger(as: UInt16.self), let value = payload.readInteger(as: UInt32.self) { settings[id] = value }
                case .windowUpdate: connectionCredit = payload.readInteger(as: UInt32.self)
                case .ping:
                    #expect(frame.flags & FrameFlag.ack != 0)
                    pong = payload.readBytes(length: 8)
                default: Issue.record("unexpected frame \(String(describing: frame.type))")
                }
            }
            #expect(settings[0x4] == 1 << 20, "SETTINGS_INITIAL_WINDOW_SIZE")
            #expect(settings[0x3] == 1000, "SETTINGS_MAX_CONCURRENT_STREAMS")
            #expect(connectionCredit == UInt32((16 << 20) - 65_535))
            #expect(acknowledged)
            #expect(pong == [1, 2, 3, 4, 5, 6, 7, 8])
        }
    }

    @Test func aRequestSplitOverContinuationAndPaddedFramesIsAnswered() async throws {
        try await RawHTTP2Connection.withServer { connection in
            // A zero-size header table: the server's next block must start by saying so.
            try await connection.start([(0x1, 0)])
            let block = requestBlock("/test.Echo/Reverse")
            let message = grpcFramed(Array("hello, frames".utf8))
            try await connection.send {
                // HEADERS: padded, with a priority, carrying half the block.
                let half = block.count / 2
                $0.writeFrameHeader(length: 1 + 5 + half + 3, type: .headers, flags: FrameFlag.padded | FrameFlag.priority, stream: 1)
                $0.writeInteger(UInt8(3))
                $0.writeBytes([0, 0, 0, 0, 16])
                $0.writeBytes(block[..<half])
                $0.writeBytes([0, 0, 0])
                $0.writeFrameHeader(length: block.count - half, type: .continuation, flags: FrameFlag.endHeaders, stream: 1)
                $0.writeBytes(block[half...])
                // The message over two DATA frames, the first padded.
                $0.writeFrameHeader(length: 1 + 4 + 5, type: .data, flags: FrameFlag.padded, stream: 1)
                $0.writeInteger(UInt8(5))
                $0.writeBytes(message[..<4])
                $0.writeBytes([0, 0, 0, 0, 0])
                $0.writeFrameHeader(length: message.count - 4, type: .data, flags: FrameFlag.endStream, stream: 1)
                $0.writeBytes(message[4...])
            }
            let head = try #require(try await connection.nextOnStreams())
            #expect(head.type == .headers && head.stream == 1)
            #expect(head.payload.getInteger(at: head.payload.readerIndex, as: UInt8.self) == HeaderBlock.emptyTable)
            #expect(try connection.headers(head)[":status"] == "200")
            let data = try #require(try await connection.nextOnStreams())
            #expect(data.type == .data)
            #expect(data.payload.getBytes(at: data.payload.readerIndex, length: data.payload.readableBytes) == grpcFramed(Array("hello, frames".utf8).reversed()))
            let trailers = try #require(try await connection.nextOnStreams())
            #expect(trailers.type == .headers && trailers.flags & FrameFlag.endStream != 0)
            #expect(try connection.headers(trailers)["grpc-status"] == "0")
        }
    }

    @Test func responsesWaitForTheClientsFlowControlCredit() async throws {
        try await RawHTTP2Connection.withServer { connection in
            try await connection.start([(0x4, 10)])  // SETTINGS_INITIAL_WINDOW_SIZE: 10 bytes per stream
            let block = requestBlock("/test.Echo/Reverse")
            let message = grpcFramed([UInt8](repeating: 9, count: 100))
            try await connection.send {
                $0.writeHeaders(stream: 1, block: block, endStream: false, maxFrameSize: 16_384)
                $0.writeFrameHeader(length: message.count, type: .data, flags: FrameFlag.endStream, stream: 1)
                $0.writeBytes(message)
            }
            #expect(try await connection.nextOnStreams()?.type == .headers)
            let first = try #require(try await connection.nextOnStreams())
            #expect(first.type == .data && first.payload.readableBytes == 10)
            // A PING is answered in order: nothing more of the stream may come before its ACK.
            try await connection.send {
                $0.writeFrameHeader(length: 8, type: .ping, stream: 0)
                $0.writeBytes([UInt8](repeating: 0, count: 8))
            }
            #expect(try await connection.nextOnStreams()?.type == .ping)
            try await connection.send { $0.writeWindowUpdate(stream: 1, increment: 1000) }
            let rest = try #require(try await connection.nextOnStreams())
            #expect(rest.type == .data && rest.payload.readableBytes == message.count - 10)
            let trailers = try #require(try await connection.nextOnStreams())
            #expect(try connection.headers(trailers)["grpc-status"] == "0")
        }
    }

    @Test func anAnswerBeforeTheRequestEndsIsTrailersOnlyThenReset() async throws {
        try await RawHTTP2Connection.withServer { connection in
            try await connection.start()
            try await connection.send { $0.writeHeaders(stream: 1, block: requestBlock("/test.Nope/Call"), endStream: false, maxFrameSize: 16_384) }
            let trailers = try #require(try await connection.nextOnStreams())
            #expect(trailers.type == .headers && trailers.flags & FrameFlag.endStream != 0)
            let fields = try connection.headers(trailers)
            #expect(fields[":status"] == "200")
            #expect(fields["grpc-status"] == "12")
            #expect(fields["grpc-message"] == "unknown service test.Nope")
            let reset = try #require(try await connection.nextOnStreams())
            #expect(reset.type == .rstStream && reset.stream == 1)
            #expect(reset.payload.getInteger(at: reset.payload.readerIndex, as: UInt32.self) == HTTP2ErrorCode.noError.rawValue)
        }
    }

    /// Protocol violations end the connection with GOAWAY and the error code RFC 9113 names.
    @Test(arguments: [
        ("PING before SETTINGS", HTTP2ErrorCode.protocolError, bytes { b in
            b.writeBytes(HTTP2.clientPreface)
            b.writeFrameHeader(length: 8, type: .ping, stream: 0)
            b.writeBytes([UInt8](repeating: 0, count: 8))
        }),
        ("a frame over 16 KiB", .frameSizeError, bytes { b in
            b.writeBytes(HTTP2.clientPreface)
            b.writeSettings([])
            b.writeFrameHeader(length: 20_000, type: .data, stream: 1)
        }),
        ("a stream opened with an even number", .protocolError, bytes { b in
            b.writeBytes(HTTP2.clientPreface)
            b.writeSettings([])
            b.writeHeaders(stream: 2, block: requestBlock("/test.Echo/Reverse"), endStream: true, maxFrameSize: 16_384)
        }),
        ("a header block interrupted by DATA", .protocolError, bytes { b in
            b.writeBytes(HTTP2.clientPreface)
            b.writeSettings([])
            b.writeFrameHeader(length: 2, type: .headers, stream: 1)
            b.writeBytes([0x83, 0x86])
            b.writeFrameHeader(length: 0, type: .data, stream: 1)
        }),
        ("a connection WINDOW_UPDATE of 0", .protocolError, bytes { b in
            b.writeBytes(HTTP2.clientPreface)
            b.writeSettings([])
            b.writeWindowUpdate(stream: 0, increment: 0)
        }),
    ])
    func protocolErrorsEndTheConnectionWithGoAway(_ what: String, _ code: HTTP2ErrorCode, _ bytes: [UInt8]) async throws {
        try await RawHTTP2Connection.withServer { connection in
            try await connection.send { $0.writeBytes(bytes) }
            #expect(try await connection.goAwayCode() == code.rawValue, "\(what)")
            #expect(try await connection.next() == nil, "\(what): the server closes the connection")
        }
    }
}
