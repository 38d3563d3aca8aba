import NIOCore
import NIOHTTP1

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
