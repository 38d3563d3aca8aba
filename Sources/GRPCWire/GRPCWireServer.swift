import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A gRPC server for plaintext HTTP/2 (h2c) on TCP, written at the frame
/// level for throughput: unary calls are answered on the connection's event
/// loop, in batches, with one flush per batch. See docs/store.md ("Wire").
///
/// A connection that does not start with the HTTP/2 preface is handed to
/// `http1`, if given (etcd serves /metrics and /health on its client port
/// that way); otherwise it is closed.
public final class GRPCWireServer: Sendable {
    /// Sent down every connection's pipeline to begin a graceful shutdown.
    struct Drain {}

    private let router: GRPCRouter
    public let limits: GRPCWireLimits
    private let http1: (@Sendable (ChannelPipeline.SynchronousOperations) throws -> Void)?
    private let group: MultiThreadedEventLoopGroup
    private let listener: NIOLockedValueBox<(any Channel)?> = NIOLockedValueBox(nil)
    private let connections = NIOLockedValueBox<[ObjectIdentifier: any Channel]>([:])
    /// One per event loop, shared by its connections.
    private let inboxes: [ObjectIdentifier: CompletionInbox]

    /// - Parameters:
    ///   - threads: event loops; connections are spread over them.
    ///   - limits: what clients may make the server hold or do.
    ///   - http1: configures the pipeline of a connection that speaks HTTP/1.
    public init(router: GRPCRouter, threads: Int = 1, limits: GRPCWireLimits = GRPCWireLimits(),
                http1: (@Sendable (ChannelPipeline.SynchronousOperations) throws -> Void)? = nil) {
        self.router = router
        self.limits = limits
        self.http1 = http1
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        self.group = group
        var inboxes: [ObjectIdentifier: CompletionInbox] = [:]
        for loop in group.makeIterator() { inboxes[ObjectIdentifier(loop)] = CompletionInbox(eventLoop: loop) }
        self.inboxes = inboxes
    }

    /// Starts listening; returns the bound port (useful with port 0).
    @discardableResult
    public func bind(host: String, port: Int) async throws -> Int {
        let router = self.router
        let http1 = self.http1
        let connections = self.connections
        let inboxes = self.inboxes
        let limits = self.limits
        let high = max(64 << 10, limits.writeBufferHighWaterMark)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.writeBufferWaterMark, value: .init(low: high / 2, high: high))
            .childChannelInitializer { channel in
                let key = ObjectIdentifier(channel)
                let admitted = connections.withLockedValue { open -> Bool in
                    guard open.count < limits.maxConnections else { return false }
                    open[key] = channel
                    return true
                }
                guard admitted else {
                    // Over the connection cap: the bootstrap closes it before anything is read or allocated for it.
                    return channel.eventLoop.makeFailedFuture(ConnectionLimitReached(limit: limits.maxConnections))
                }
                channel.closeFuture.whenComplete { _ in _ = connections.withLockedValue { $0.removeValue(forKey: key) } }
                return channel.eventLoop.makeCompletedFuture {
                    let inbox = inboxes[ObjectIdentifier(channel.eventLoop)]!
                    try channel.pipeline.syncOperations.addHandler(ProtocolSniffer(router: router, inbox: inbox, limits: limits, http1: http1))
                }
            }
            .bind(host: host, port: port).get()
        listener.withLockedValue { $0 = channel }
        return channel.localAddress?.port ?? port
    }

    /// Connections open now (both protocols).
    public var connectionCount: Int { connections.withLockedValue { $0.count } }

    /// Completes when the listener closes.
    public func wait() async throws {
        try await listener.withLockedValue { $0 }?.closeFuture.get()
    }

    /// Stops accepting, lets every connection finish its calls (GOAWAY) for
    /// up to `grace`, then closes what is left and stops the event loops.
    public func shutdown(grace: TimeAmount = .seconds(2)) async {
        try? await listener.withLockedValue { $0 }?.close()
        let open = connections.withLockedValue { Array($0.values) }
        for c in open { c.pipeline.fireUserInboundEventTriggered(Drain()) }
        let deadline = NIODeadline.now() + grace
        while NIODeadline.now() < deadline, !connections.withLockedValue({ $0.isEmpty }) {
            try? await Task.sleep(for: .milliseconds(20))
        }
        for c in connections.withLockedValue({ Array($0.values) }) { try? await c.close() }
        try? await group.shutdownGracefully()
    }
}

/// Looks at the first bytes of a connection: the HTTP/2 client preface gets
/// the gRPC pipeline, anything else the HTTP/1 one. A connection that has not
/// said which within the handshake timeout is closed.
final class ProtocolSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    private let router: GRPCRouter
    private let inbox: CompletionInbox
    private let limits: GRPCWireLimits
    private let http1: (@Sendable (ChannelPipeline.SynchronousOperations) throws -> Void)?
    private var buffered: ByteBuffer?
    private var timer: Scheduled<Void>?
    private static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    init(router: GRPCRouter, inbox: CompletionInbox, limits: GRPCWireLimits,
         http1: (@Sendable (ChannelPipeline.SynchronousOperations) throws -> Void)?) {
        self.router = router
        self.inbox = inbox
        self.limits = limits
        self.http1 = http1
    }

    func handlerAdded(context: ChannelHandlerContext) {
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: limits.handshakeTimeout) {
            context.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if buffered == nil { buffered = incoming } else { buffered!.writeBuffer(&incoming) }
        let head = Array(buffered!.readableBytesView.prefix(Self.preface.count))
        let isHTTP2 = head == Array(Self.preface.prefix(head.count))
        if isHTTP2 && head.count < Self.preface.count { return }  // need more to decide
        let first = buffered!
        buffered = nil
        do {
            let ops = context.pipeline.syncOperations
            if isHTTP2 {
                // Stops reading while the answers wait for the socket: a client that does not read
                // cannot make the server queue more.
                try ops.addHandler(BackPressureHandler())
                try ops.addHandler(GRPCConnectionHandler(router: router, inbox: inbox, limits: limits))
            } else if let http1 {
                try ops.addHandler(BackPressureHandler())
                try ops.addHandler(IdleStateHandler(allTimeout: limits.http1IdleTimeout))
                try ops.addHandler(IdleCloser())
                try http1(ops)
            } else {
                context.close(promise: nil)
                return
            }
            context.fireChannelRead(NIOAny(first))
            ops.removeHandler(context: context, promise: nil)
        } catch {
            context.close(promise: nil)
        }
    }
}

/// Why a connection was closed as it was accepted.
struct ConnectionLimitReached: Error, CustomStringConvertible {
    let limit: Int
    var description: String { "connection refused: \(limit) connections are open (the server's limit)" }
}

/// Closes a connection on `IdleStateHandler`'s event.
final class IdleCloser: ChannelInboundHandler {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}
