// A raw TCP client for tests of servers' bounds: it sends exactly the bytes a test gives it
// (a partial request head, a lying Content-Length, three bytes of a TLS handshake), keeps
// what the server sends, and tells when the server closed the connection. It never reads
// unless told to (`reading: false` makes a client that never reads).
import Foundation
import NIOCore
import NIOPosix
import Synchronization

public final class RawConnection: Sendable {
    private final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let keep: Bool
        let received = Mutex(Data())
        let counts = Mutex((bytes: 0, newlines: 0))
        init(keep: Bool) { self.keep = keep }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            // memchr: a byte-by-byte loop in a debug build kept the event loop busy for seconds.
            let newlines = buffer.withUnsafeReadableBytes { raw -> Int in
                guard var p = raw.baseAddress else { return 0 }
                let end = p + raw.count
                var n = 0
                while p < end, let hit = memchr(p, 0x0A, end - p) {
                    n += 1
                    p = UnsafeRawPointer(hit) + 1
                }
                return n
            }
            counts.withLock {
                $0.bytes += buffer.readableBytes
                $0.newlines += newlines
            }
            if keep { received.withLock { $0.append(contentsOf: buffer.readableBytesView) } }
        }
    }

    private let channel: any Channel
    private let collector: Collector

    /// Connects to 127.0.0.1:`port`. With `reading: false` the socket is never read (the
    /// kernel's receive buffer fills and the server's writes stall), and its receive buffer
    /// is kept small.
    /// With `keep: false` only the bytes and newlines received are counted (a watch client that
    /// reads everything without holding it).
    public init(port: Int, reading: Bool = true, keep: Bool = true) async throws {
        let collector = Collector(keep: keep)
        var bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(ChannelOptions.autoRead, value: reading)
        if !reading {
            bootstrap = bootstrap.channelOption(ChannelOptions.socketOption(.so_rcvbuf), value: 16 << 10)
        }
        channel = try await bootstrap
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector) }
            }
            .connect(host: "127.0.0.1", port: port).get()
        self.collector = collector
    }

    public func send(_ bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes))
    }

    public func send(_ text: String) async throws { try await send(Array(text.utf8)) }

    /// Everything received so far.
    public var received: Data { collector.received.withLock { $0 } }
    public var receivedText: String { String(decoding: received, as: UTF8.self) }

    /// Bytes and newlines received so far.
    public var counts: (bytes: Int, newlines: Int) { collector.counts.withLock { $0 } }

    /// Starts reading a connection made with `reading: false` (a closed connection is only
    /// noticed by reading it).
    public func startReading() async throws {
        try await channel.setOption(ChannelOptions.autoRead, value: true)
        channel.read()
    }

    /// Whether the server has closed the connection (or it broke).
    public var isClosed: Bool { !channel.isActive }

    /// Waits until `condition` holds or `timeout` passes; returns whether it held.
    public func wait(timeout: Duration, until condition: @Sendable (RawConnection) -> Bool) async -> Bool {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            if condition(self) { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return condition(self)
    }

    public func close() async {
        try? await channel.close()
    }
}
