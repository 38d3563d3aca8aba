import Foundation
import MVCCStore
import NIOCore
import NIOHTTP1

/// A JSON string literal of `s` (quotes, backslashes and control characters escaped).
func jsonString(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where u.value < 0x20: out += String(format: "\\u%04x", u.value)
        default: out.unicodeScalars.append(u)
        }
    }
    return out + "\""
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
                // etcd's shape: {"health":"true","reason":""}, or 503 with why (an alarm, a storage failure).
                let health = metrics.health
                (status, type, body) = (health.isHealthy ? .ok : .serviceUnavailable, "application/json",
                                        "{\"health\":\"\(health.isHealthy)\",\"reason\":\(jsonString(health.reason ?? ""))}")
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
