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
    private let http1: (@Sendable (ChannelPipeline.SynchronousOperations) throws -> Void)?
    private let group: MultiThreadedEventLoopGroup
    private let listener: NIOLockedValueBox<(any Channel)?> = NIOLockedValueBox(nil)
    private let connections = NIOLockedValueBox<[ObjectIdentifier: any Channel]>([:])
    /// One per event loop, shared by its connections.
    private let inboxes: [ObjectIdentifier: CompletionInbox]

    /// - Parameters:
    ///   - threads: event loops; connections are spread over them.
    ///   - http1: configures the pipeline of a connection that speaks HTTP/1.
    public init(router: GRPCRouter, threads: Int = 1,
                http1: (@Sendable (ChannelPipeline.SynchronousOperations) throws -> Void)? = nil) {
        self.router = router
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
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                let key = ObjectIdentifier(channel)
                connections.withLockedValue { $0[key] = channel }
                channel.closeFuture.whenComplete { _ in _ = connections.withLockedValue { $0.removeValue(forKey: key) } }
                return channel.eventLoop.makeCompletedFuture {
                    let inbox = inboxes[ObjectIdentifier(channel.eventLoop)]!
                    try channel.pipeline.syncOperations.addHandler(ProtocolSniffer(router: router, inbox: inbox, http1: http1))
                }
            }
            .bind(host: host, port: port).get()
        listener.withLockedValue { $0 = channel }
        return channel.localAddress?.port ?? port
    }

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
/// the gRPC pipeline, anything else the HTTP/1 one.
final class ProtocolSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    private let router: GRPCRouter
    private let inbox: CompletionInbox
    private let http1: (@Sendable (ChannelPipeline.SynchronousOperations) throws -> Void)?
    private var buffered: ByteBuffer?
    private static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    init(router: GRPCRouter, inbox: CompletionInbox, http1: (@Sendable (ChannelPipeline.SynchronousOperations) throws -> Void)?) {
        self.router = router
        self.inbox = inbox
        self.http1 = http1
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
                try ops.addHandler(GRPCConnectionHandler(router: router, inbox: inbox))
            } else if let http1 {
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
