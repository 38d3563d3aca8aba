import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// The public listener: HTTP/2 (gRPC) connections are spliced to the gRPC
/// server's unix socket; HTTP/1.1 requests get /metrics, /health, /version.
/// Without a gRPC socket it is a plain HTTP/1.1 metrics listener.
enum FrontDoor {
    static func bind(host: String, port: Int, grpcSocket: String?, group: EventLoopGroup, metrics: Metrics) async throws -> Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.addHandler(ProtocolSniffer(grpcSocket: grpcSocket, metrics: metrics))
            }
            .bind(host: host, port: port).get()
    }
}

/// Buffers the first bytes of a connection and decides what it speaks.
final class ProtocolSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    private let grpcSocket: String?
    private let metrics: Metrics
    private var buffered: ByteBuffer?
    private static let preface = Array("PRI * HTTP/2.0".utf8)

    init(grpcSocket: String?, metrics: Metrics) {
        self.grpcSocket = grpcSocket
        self.metrics = metrics
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if buffered == nil { buffered = incoming } else { buffered!.writeBuffer(&incoming) }
        let bytes = buffered!.readableBytesView
        let n = min(bytes.count, Self.preface.count)
        if grpcSocket != nil, Array(bytes.prefix(n)) == Array(Self.preface.prefix(n)) {
            guard bytes.count >= Self.preface.count else { return }  // need more to decide
            splice(context: context)
        } else {
            serveHTTP1(context: context)
        }
    }

    private func splice(context: ChannelHandlerContext) {
        let inbound = context.channel
        let first = buffered!
        buffered = nil
        inbound.setOption(.autoRead, value: false).whenComplete { _ in }
        let (localGlue, peerGlue) = GlueHandler.matchedPair()
        let loopBound = NIOLoopBound((context, self, localGlue), eventLoop: context.eventLoop)
        let peerBound = NIOLoopBound(peerGlue, eventLoop: context.eventLoop)
        ClientBootstrap(group: context.eventLoop)
            .channelInitializer { channel in channel.pipeline.addHandler(peerBound.value) }
            .connect(unixDomainSocketPath: grpcSocket!)
            .whenComplete { result in
                let (context, sniffer, localGlue) = loopBound.value
                switch result {
                case .success(let upstream):
                    upstream.writeAndFlush(first, promise: nil)
                    context.pipeline.addHandler(localGlue).whenSuccess {
                        context.pipeline.removeHandler(sniffer, promise: nil)
                        inbound.setOption(.autoRead, value: true).whenComplete { _ in }
                    }
                case .failure:
                    context.close(promise: nil)
                }
            }
    }

    private func serveHTTP1(context: ChannelHandlerContext) {
        let first = buffered!
        buffered = nil
        do {
            let ops = context.pipeline.syncOperations
            try ops.configureHTTPServerPipeline(position: .last)
            try ops.addHandler(HTTPEndpoints(metrics: metrics))
            context.fireChannelRead(NIOAny(first))
            ops.removeHandler(context: context, promise: nil)
        } catch {
            context.close(promise: nil)
        }
    }
}

/// Forwards bytes between two channels, with backpressure (the shape of
/// swift-nio's proxy example).
final class GlueHandler: ChannelDuplexHandler {
    typealias InboundIn = NIOAny
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny
    private var partner: GlueHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false

    static func matchedPair() -> (GlueHandler, GlueHandler) {
        let a = GlueHandler()
        let b = GlueHandler()
        a.partner = b
        b.partner = a
        return (a, b)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        // The partner may have deferred a read while this side was not in place yet.
        partner?.partnerBecameWritable()
    }
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    private func partnerWrite(_ data: NIOAny) { context?.write(data, promise: nil) }
    private func partnerFlush() { context?.flush() }
    private func partnerWriteEOF() { context?.close(mode: .output, promise: nil) }
    private func partnerCloseFull() { context?.close(promise: nil) }
    private var partnerWritable: Bool { context?.channel.isWritable ?? false }
    private func partnerBecameWritable() {
        if pendingRead {
            pendingRead = false
            context?.read()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) { partner?.partnerWrite(data) }
    func channelReadComplete(context: ChannelHandlerContext) { partner?.partnerFlush() }
    func channelInactive(context: ChannelHandlerContext) { partner?.partnerCloseFull() }
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, case .inputClosed = e { partner?.partnerWriteEOF() }
    }
    func errorCaught(context: ChannelHandlerContext, error: Error) { partner?.partnerCloseFull() }
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.partnerBecameWritable() }
    }
    func read(context: ChannelHandlerContext) {
        if let partner, partner.partnerWritable { context.read() } else { pendingRead = true }
    }
}

/// /metrics (Prometheus text), /health and /version over HTTP/1.1.
final class HTTPEndpoints: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    private let metrics: Metrics
    private var path = ""

    init(metrics: Metrics) { self.metrics = metrics }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): path = String(head.uri.split(separator: "?").first ?? "")
        case .body: break
        case .end:
            let (status, type, body): (HTTPResponseStatus, String, String)
            switch path {
            case "/metrics": (status, type, body) = (.ok, "text/plain; version=0.0.4", metrics.prometheusText())
            case "/health", "/livez", "/readyz":
                let ok = metrics.healthy
                (status, type, body) = (ok ? .ok : .serviceUnavailable, "application/json",
                                        ok ? "{\"health\":\"true\",\"reason\":\"\"}" : "{\"health\":\"false\",\"reason\":\"ALARM NOSPACE\"}")
            case "/version":
                (status, type, body) = (.ok, "application/json", "{\"etcdserver\":\"\(reportedEtcdVersion)\",\"etcdcluster\":\"3.5.0\"}")
            default: (status, type, body) = (.notFound, "text/plain", "404 page not found\n")
            }
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: type)
            headers.add(name: "Content-Length", value: String(body.utf8.count))
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}
