// A DNS client over real sockets for the tests (NIO: nothing blocks the cooperative pool).
import NIOCore
import NIOPosix
@testable import ClusterDNS

enum DNSTestClient {
    struct Timeout: Error {}

    /// One query over UDP; the raw reply.
    static func udp(_ bytes: [UInt8], port: Int, host: String = "127.0.0.1") async throws -> [UInt8] {
        let group = MultiThreadedEventLoopGroup.singleton
        let promise = group.next().makePromise(of: [UInt8].self)
        let channel = try await DatagramBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Collector(promise: promise)) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let remote = try SocketAddress(ipAddress: host, port: port)
        try await channel.writeAndFlush(AddressedEnvelope(remoteAddress: remote, data: channel.allocator.buffer(bytes: bytes))).get()
        let timeout = channel.eventLoop.scheduleTask(in: .seconds(5)) { promise.fail(Timeout()) }
        defer { timeout.cancel(); channel.close(promise: nil) }
        return try await promise.futureResult.get()
    }

    static func udp(_ query: DNSMessage, port: Int) async throws -> DNSMessage {
        try DNSMessage(parsing: try await udp(query.encoded(), port: port))
    }

    /// Messages over one TCP connection; the replies in order (as many as `expect`).
    static func tcp(_ messages: [[UInt8]], expect: Int, port: Int, host: String = "127.0.0.1") async throws -> [[UInt8]] {
        let group = MultiThreadedEventLoopGroup.singleton
        let promise = group.next().makePromise(of: [[UInt8]].self)
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(FrameCollector(promise: promise, expect: expect))
                }
            }
            .connect(host: host, port: port).get()
        var buffer = channel.allocator.buffer(capacity: 512)
        for message in messages {
            buffer.writeInteger(UInt16(message.count))
            buffer.writeBytes(message)
        }
        do {
            try await channel.writeAndFlush(buffer).get()
        } catch {
            // The server closed the connection at once (its connection limit): no answers.
            channel.close(promise: nil)
            return []
        }
        let timeout = channel.eventLoop.scheduleTask(in: .seconds(5)) { promise.fail(Timeout()) }
        defer { timeout.cancel(); channel.close(promise: nil) }
        return try await promise.futureResult.get()
    }

    final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let promise: EventLoopPromise<[UInt8]>
        init(promise: EventLoopPromise<[UInt8]>) { self.promise = promise }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            promise.succeed(Array(unwrapInboundIn(data).data.readableBytesView))
        }
    }

    final class FrameCollector: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let promise: EventLoopPromise<[[UInt8]]>
        let expect: Int
        var buffer = ByteBuffer()
        var frames: [[UInt8]] = []
        init(promise: EventLoopPromise<[[UInt8]]>, expect: Int) {
            self.promise = promise
            self.expect = expect
        }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var incoming = unwrapInboundIn(data)
            buffer.writeBuffer(&incoming)
            while let length = buffer.getInteger(at: buffer.readerIndex, as: UInt16.self), buffer.readableBytes >= 2 + Int(length) {
                buffer.moveReaderIndex(forwardBy: 2)
                frames.append(Array(buffer.readSlice(length: Int(length))!.readableBytesView))
            }
            if frames.count >= expect { promise.succeed(frames) }
        }
        func channelInactive(context: ChannelHandlerContext) { promise.succeed(frames) }
    }
}
