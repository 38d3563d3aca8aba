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
        let received = Mutex(Data())
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            received.withLock { $0.append(contentsOf: buffer.readableBytesView) }
        }
    }

    private let channel: any Channel
    private let collector: Collector

    /// Connects to 127.0.0.1:`port`. With `reading: false` the socket is never read (the
    /// kernel's receive buffer fills and the server's writes stall), and its receive buffer
    /// is kept small.
    public init(port: Int, reading: Bool = true) async throws {
        let collector = Collector()
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
