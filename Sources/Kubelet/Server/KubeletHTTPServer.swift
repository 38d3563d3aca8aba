// The kubelet's HTTPS server (port 10250 on the node IP), what the API server's `pods/log`
// and `pods/exec` reach:
//
//   GET /healthz                                               ok
//   GET /containerLogs/{namespace}/{pod}/{container}?follow=&tailLines=&previous=&timestamps=&sinceSeconds=&sinceTime=&limitBytes=
//   GET /exec/{namespace}/{pod}/{container}?command=…&stdin=&stdout=&stderr=&tty=     (WebSocket v5.channel.k8s.io)
//
// Every request but /healthz must carry `Authorization: Bearer <token>` with the token the API
// server presents (`--authentication-token-file`); others get 401.
import APIClient
import ClusterAPI
import Foundation
import HTTPKit
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL
import Synchronization

final class KubeletHTTPServer: Sendable {
    let kubelet: KubeletServer
    let server: HTTPServer

    init(kubelet: KubeletServer) async throws {
        self.kubelet = kubelet
        let configuration = kubelet.configuration
        let (certPEM, keyPEM) = try KubeletPKI.loadOrCreate(directory: configuration.rootDirectory + "/pki", nodeName: configuration.nodeName,
                                                            nodeIP: configuration.nodeIP)
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMBytes(Array(certPEM.utf8)).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(keyPEM.utf8), format: .pem)))
        tls.applicationProtocols = ["http/1.1"]
        let context = try NIOSSLContext(configuration: tls)
        let token = configuration.authenticationToken
        let handlerBox = HandlerBox()
        server = try await HTTPServer(
            host: configuration.nodeIP, port: configuration.port, limits: HTTPServerLimits(maxBodyBytes: 1 << 20), logger: kubelet.logger,
            channelInitializer: { channel in try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context)) },
            headCheck: { request in
                if request.path == "/healthz" { return nil }
                guard let token, request.bearerToken == token else {
                    return .text("Unauthorized\n", status: .unauthorized)
                }
                return nil
            },
            webSocket: { request in await handlerBox.handler?.webSocket(request) },
            handler: { request in await handlerBox.handler?.handle(request) ?? .text("starting\n", status: .serviceUnavailable) })
        handlerBox.handler = self
    }

    func run() async throws {
        kubelet.logger.info("serving logs and exec", metadata: ["address": "https://\(kubelet.configuration.nodeIP):\(server.port)"])
        try await withTaskCancellationHandler {
            try await server.run()
        } onCancel: {
            server.shutdown(grace: .seconds(1))
        }
    }

    func handle(_ request: HTTPRequest) async -> HTTPResponse {
        let segments = request.pathSegments
        switch (request.method, segments.first) {
        case (.GET, "healthz"):
            return .text("ok")
        case (.GET, "containerLogs") where segments.count == 4:
            return await containerLogs(namespace: segments[1], pod: segments[2], container: segments[3], query: request.query)
        case (_, "exec"):
            return .text("exec needs a WebSocket upgrade (v5.channel.k8s.io)\n", status: .badRequest)
        default:
            return .text("404 page not found\n", status: .notFound)
        }
    }

    /// The pod `namespace/name` bound to this node, from the API server's view through the workers.
    func findPod(namespace: String, name: String) async -> Pod? {
        try? await kubelet.client.get(Pod.self, name: name, namespace: namespace)
    }
}

/// The server's handler, set once the server exists (the socket accepts connections before: the
/// box answers nil until then). Weak: the server holds the box through its closures, and a strong
/// reference back would keep both alive after the kubelet let them go.
final class HandlerBox: Sendable {
    private struct Reference { weak var server: KubeletHTTPServer? }
    private let current = Mutex(Reference())

    var handler: KubeletHTTPServer? {
        get { current.withLock { $0.server } }
        set { current.withLock { $0.server = newValue } }
    }
}
