import EtcdAPI
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Testing
import TestSupport

/// Watch progress over the wire, as Kubernetes' API server uses it
/// (RequestWatchProgress for consistent reads from its watch cache).
@Suite(.serialized)
struct WatchProgressTests {
    @Test func progressRequestAnswersWithTheCurrentRevisionAfterPendingEvents() async throws {
        let server = try await StoreServer.start()
        let transport = try HTTP2ClientTransport.Posix(
            target: ResolvableTargets.IPv4(addresses: [SocketAddress.IPv4(host: "127.0.0.1", port: server.port)]),
            transportSecurity: .plaintext)
        try await withGRPCClient(transport: transport) { grpc in
            let kv = Etcdserverpb_KV.Client(wrapping: grpc)
            var put = Etcdserverpb_PutRequest()
            put.key = Data("p/a".utf8)
            put.value = Data("1".utf8)
            _ = try await kv.put(put)  // revision 2
            let watch = Etcdserverpb_Watch.Client(wrapping: grpc)
            var create = Etcdserverpb_WatchCreateRequest()
            create.key = Data("p/".utf8)
            create.rangeEnd = Data("p0".utf8)
            create.startRevision = 2
            var createRequest = Etcdserverpb_WatchRequest()
            createRequest.createRequest = create
            var progressRequest = Etcdserverpb_WatchRequest()
            progressRequest.progressRequest = Etcdserverpb_WatchProgressRequest()
            let (createReq, progressReq) = (createRequest, progressRequest)
            let responses: [Etcdserverpb_WatchResponse] = try await watch.watch(requestProducer: { writer in
                try await writer.write(createReq)
                try await writer.write(progressReq)
                try await Task.sleep(for: .seconds(5))
            }, onResponse: { response in
                var got: [Etcdserverpb_WatchResponse] = []
                for try await message in response.messages {
                    got.append(message)
                    if message.watchID == -1 { break }  // the progress answer
                }
                return got
            })
            // created first, then the replayed event at revision 2, then progress at revision 2 — never before the event.
            #expect(responses.first?.created == true)
            let eventIndex = responses.firstIndex { !$0.events.isEmpty }
            let progressIndex = responses.firstIndex { $0.watchID == -1 }
            #expect(eventIndex != nil && progressIndex != nil && eventIndex! < progressIndex!)
            #expect(responses.last?.header.revision == 2 && responses.last?.events.isEmpty == true)
            grpc.beginGracefulShutdown()
        }
    }

    @Test func sigtermStopsTheServerCleanly() async throws {
        let server = try await StoreServer.start()
        try await server.etcdctl(["put", "k", "v"])
        let status = await await server.stop(signal: SIGTERM)
        #expect(status == 0, "ballast store serve exited with \(status) on SIGTERM")
        try await server.start()
        #expect(try await server.etcdctl(["get", "k"]).stdout == "k\nv\n")
    }
}
