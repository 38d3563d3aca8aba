// The DNS server on one address: UDP and TCP on the same port (RFC 1035 §4.2, RFC 7766), on
// NIO's shared event loops. Bounded in what a client can make it hold or do:
//
//   UDP   a datagram is answered in at most 512 bytes, or the client's EDNS payload size up to
//         4096; a longer answer goes out truncated (TC) and the client asks again over TCP
//   TCP   two-byte length-prefixed messages, several per connection, answered in order; at
//         most `maxConnections` open, each closed after `idleTimeout` without a query and
//         `connectionLifetime` in all; a connection buffers at most one message (65535 bytes)
//
// Packets that are responses, or shorter than a header, are dropped; a message that cannot
// be read gets FORMERR.
#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// What clients may make the server hold or do.
public struct DNSServerLimits: Sendable {
    public var maxConnections = 64
    public var idleTimeout: TimeAmount = .seconds(10)
    public var connectionLifetime: TimeAmount = .seconds(60)
    /// The largest UDP answer, whatever EDNS payload size a client offers.
    public static let maxUDPPayload = 4096
    /// The EDNS payload size the server offers in its OPT record.
    public static let ednsPayloadSize = 1232

    public init() {}
}

/// Answers queries with the current resolver's responses.
public final class DNSServer: Sendable {
    public let limits: DNSServerLimits
    private let resolver: NIOLockedValueBox<DNSResolver>
    /// NIO's shared event loops: nothing to shut down but the server's own channels (a group
    /// of its own would be stopped through a callback on Dispatch's global queue).
    private let group = MultiThreadedEventLoopGroup.singleton
    private let channels = NIOLockedValueBox<[any Channel]>([])
    private let connections = NIOLockedValueBox<[ObjectIdentifier: any Channel]>([:])
    private let logger: Logger

    public init(records: ClusterRecords, limits: DNSServerLimits = DNSServerLimits(), logger: Logger) {
        resolver = NIOLockedValueBox(DNSResolver(records: records))
        self.limits = limits
        self.logger = logger
    }

    /// Swaps in new records; queries from now on see them.
    public func update(_ records: ClusterRecords) {
        resolver.withLockedValue { $0 = DNSResolver(records: records) }
    }

    public var records: ClusterRecords { resolver.withLockedValue { $0.records } }

    public enum Transport: Sendable { case udp, tcp }

    /// The answer to the message `bytes` on the wire, or nil when it is to be dropped.
    public func answer(_ bytes: [UInt8], over transport: Transport) -> [UInt8]? {
        guard let header = DNSMessage.header(of: bytes), !header.isResponse else { return nil }
        let query: DNSMessage
        do {
            query = try DNSMessage(parsing: bytes)
        } catch {
            var response = DNSMessage(header: DNSHeader(id: header.id))
            response.header.isResponse = true
            response.header.opcode = header.opcode
            response.header.responseCode = .formatError
            return response.encoded()
        }
        let response = resolver.withLockedValue { $0 }.respond(to: query)
        switch transport {
        case .tcp:
            return response.encoded()
        case .udp:
            let offered = query.ednsPayloadSize ?? 512
            return response.encoded(limit: min(max(512, offered), DNSServerLimits.maxUDPPayload))
        }
    }

    /// Listens on `host`:`port` over UDP and TCP; returns the port. With port 0 the UDP socket
    /// takes a free port and the TCP one the same (tried again with another when that one is
    /// taken for TCP).
    @discardableResult
    public func bind(host: String, port: Int) async throws -> Int {
        var attempt = 0
        while true {
            attempt += 1
            let udp = try await DatagramBootstrap(group: group)
                .channelOption(.socketOption(.so_reuseaddr), value: 1)
                .channelInitializer { [self] channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(UDPHandler(server: self)) }
                }
                .bind(host: host, port: port).get()
            let bound = udp.localAddress?.port ?? port
            do {
                let tcp = try await bindTCP(host: host, port: bound)
                channels.withLockedValue { $0 += [udp, tcp] }
                return bound
            } catch let error as IOError where error.errnoCode == EADDRINUSE && port == 0 && attempt < 5 {
                try? await udp.close()
            } catch {
                try? await udp.close()
                throw error
            }
        }
    }

    private func bindTCP(host: String, port: Int) async throws -> any Channel {
        let limits = self.limits, connections = self.connections, logger = self.logger
        return try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 128)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [self] channel in
                let key = ObjectIdentifier(channel)
                let admitted = connections.withLockedValue { open -> Bool in
                    guard open.count < limits.maxConnections else { return false }
                    open[key] = channel
                    return true
                }
                guard admitted else {
                    logger.debug("TCP connection refused: the limit is reached", metadata: ["limit": "\(limits.maxConnections)"])
                    return channel.eventLoop.makeFailedFuture(DNSConnectionLimit(limit: limits.maxConnections))
                }
                channel.closeFuture.whenComplete { _ in _ = connections.withLockedValue { $0.removeValue(forKey: key) } }
                return channel.eventLoop.makeCompletedFuture {
                    let operations = channel.pipeline.syncOperations
                    try operations.addHandler(IdleStateHandler(readTimeout: limits.idleTimeout))
                    try operations.addHandler(TCPHandler(server: self, lifetime: limits.connectionLifetime))
                }
            }
            .bind(host: host, port: port).get()
    }

    /// TCP connections open now.
    public var connectionCount: Int { connections.withLockedValue { $0.count } }

    /// Closes the sockets and connections (idempotent).
    public func shutdown() async {
        let listeners = channels.withLockedValue { open in
            defer { open = [] }
            return open
        }
        for channel in listeners { try? await channel.close() }
        for channel in connections.withLockedValue({ Array($0.values) }) { try? await channel.close() }
    }
}

struct DNSConnectionLimit: Error, CustomStringConvertible {
    let limit: Int
    var description: String { "DNS TCP connection refused: \(limit) connections are open (the server's limit)" }
}

/// One datagram in, at most one out.
final class UDPHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>
    let server: DNSServer

    init(server: DNSServer) { self.server = server }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        let bytes = Array(envelope.data.readableBytesView)
        guard let reply = server.answer(bytes, over: .udp) else { return }
        let buffer = context.channel.allocator.buffer(bytes: reply)
        context.write(wrapOutboundOut(AddressedEnvelope(remoteAddress: envelope.remoteAddress, data: buffer)), promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) { context.flush() }

    /// ICMP errors of earlier answers (a client gone) arrive here: the socket stays open.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {}
}

/// Length-prefixed messages on one connection.
final class TCPHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let server: DNSServer
    let lifetime: TimeAmount
    private var pending: ByteBuffer?
    private var timer: Scheduled<Void>?

    init(server: DNSServer, lifetime: TimeAmount) {
        self.server = server
        self.lifetime = lifetime
    }

    func handlerAdded(context: ChannelHandlerContext) {
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: lifetime) { context.close(promise: nil) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if pending == nil { pending = incoming } else { pending!.writeBuffer(&incoming) }
        // At most one message plus its prefix is ever held: each is answered once complete.
        while let length = pending?.getInteger(at: pending!.readerIndex, as: UInt16.self),
              pending!.readableBytes >= 2 + Int(length) {
            pending!.moveReaderIndex(forwardBy: 2)
            let message = Array(pending!.readSlice(length: Int(length))!.readableBytesView)
            if let reply = server.answer(message, over: .tcp) {
                var buffer = context.channel.allocator.buffer(capacity: reply.count + 2)
                buffer.writeInteger(UInt16(reply.count))
                buffer.writeBytes(reply)
                context.write(wrapOutboundOut(buffer), promise: nil)
            }
        }
        if pending?.readableBytes == 0 { pending = nil } else { pending?.discardReadBytes() }
    }

    func channelReadComplete(context: ChannelHandlerContext) { context.flush() }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
}
