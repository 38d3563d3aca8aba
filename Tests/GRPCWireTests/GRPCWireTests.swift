import Synchronization
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCWire
import NIOCore
import NIOPosix
import Testing

// The wire server against two real clients: grpc-swift's (a full HTTP/2 gRPC
// client) and GRPCUnaryClient. etcdctl (Go's gRPC) drives it in EtcdAPITests.

/// Raw bytes as gRPC messages, for grpc-swift's client.
struct RawBytes: MessageSerializer, MessageDeserializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes { Bytes(message) }
    func deserialize<Bytes: GRPCContiguousBytes>(_ bytes: Bytes) throws -> [UInt8] { bytes.withUnsafeBytes { Array($0) } }
}

/// Records what streaming handlers saw, for assertions after the call.
final class Observations: Sendable {
    private let state = Mutex<(items: [String], running: Int, peak: Int)>(([], 0, 0))
    func add(_ s: String) { state.withLock { $0.items.append(s) } }
    var all: [String] { state.withLock { $0.items } }
    /// A handler started / finished: `peakRunning` is the most that ran at once.
    func enter() { state.withLock { $0.running += 1; $0.peak = max($0.peak, $0.running) } }
    func leave() { state.withLock { $0.running -= 1 } }
    var peakRunning: Int { state.withLock { $0.peak } }
}

/// A server with test methods on a free loopback port.
struct TestServer {
    let server: GRPCWireServer
    let port: Int
    /// What the streaming handlers saw.
    let seen: Observations

    static func start(maxRequest: Int = 8 << 20, limits: GRPCWireLimits = GRPCWireLimits()) async throws -> TestServer {
        let observations = Observations()
        var router = GRPCRouter()
        router.maxRequestMessageBytes = maxRequest
        router.register("/test.Echo/Reverse", .unary { request, responder in responder.succeed(request.reversed()) })
        router.register("/test.Echo/Later", .unary { request, responder in
            // Answered from another thread, as the store's writer does.
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(Int.random(in: 0...5))) { responder.succeed(request) }
        })
        router.register("/test.Echo/Slow", .unary { request, responder in
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(300)) { responder.succeed(request) }
        })
        router.register("/test.Echo/Async", .unaryAsync { request in
            try await Task.sleep(for: .milliseconds(1))
            return [UInt8(request.count & 0xFF)]
        })
        router.register("/test.Echo/Fail", .unaryAsync { request in
            throw GRPCStatus(.failedPrecondition, String(decoding: request, as: UTF8.self))
        })
        router.register("/test.Echo/Chat", .streaming { requests, responses in
            for try await message in requests { try await responses.send(message) }
        })
        router.register("/test.Echo/Download", .streaming { requests, responses in
            var size = 0
            for try await m in requests { size = Int(m.first ?? 0) }
            let chunk = [UInt8](repeating: 7, count: 64 << 10)
            for _ in 0..<(size * 16) { try await responses.send(chunk) }  // size MiB
        })
        router.register("/test.Echo/Hold", .streaming { requests, responses in
            observations.add("hold started")
            do {
                // Only the task's cancellation (the stream reset) ends this; a half-close does not.
                try await Task.sleep(for: .seconds(30))
                observations.add("hold slept")
            } catch {
                observations.add("hold cancelled")
            }
        })
        router.register("/test.Echo/Sleepy", .unaryAsync { request in
            do {
                try await Task.sleep(for: .seconds(30))
            } catch {
                observations.add("sleepy cancelled")
                throw error
            }
            return request
        })
        router.register("/test.Echo/Gauge", .unary { request, responder in
            observations.enter()
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(200)) {
                observations.leave()
                responder.succeed(request)
            }
        })
        let server = GRPCWireServer(router: router, limits: limits)
        let port = try await server.bind(host: "127.0.0.1", port: 0)
        return TestServer(server: server, port: port, seen: observations)
    }

    /// Runs `body` with a GRPCUnaryClient connected to this server, on an event loop group of
    /// its own, removed afterwards even when `body` throws.
    func withLeanClient<T>(_ body: (GRPCUnaryClient, MultiThreadedEventLoopGroup) async throws -> T) async throws -> T {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            let lean = try await GRPCUnaryClient.connect(host: "127.0.0.1", port: port, group: group)
            let result = try await body(lean, group)
            await lean.close()
            try await group.shutdownGracefully()
            return result
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    /// Runs `body` with a grpc-swift client connected to this server.
    func withClient<T: Sendable>(_ body: @Sendable (GRPCClient<HTTP2ClientTransport.Posix>) async throws -> T) async throws -> T {
        let transport = try HTTP2ClientTransport.Posix(target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext)
        return try await withGRPCClient(transport: transport) { client in try await body(client) }
    }
}

func method(_ name: String) -> MethodDescriptor { MethodDescriptor(fullyQualifiedService: "test.Echo", method: name) }

@Suite("GRPCWire server") struct GRPCWireTests {
    @Test func unaryCallsFromBothClients() async throws {
        let s = try await TestServer.start()
        let reversed = try await s.withClient { client in
            try await client.unary(request: ClientRequest(message: Array("abc".utf8)), descriptor: method("Reverse"),
                                   serializer: RawBytes(), deserializer: RawBytes(), options: .defaults) { try $0.message }
        }
        #expect(reversed == Array("cba".utf8))
        let async = try await s.withLeanClient { lean, _ in try await lean.call("/test.Echo/Async", [1, 2, 3]).get() }
        #expect(async == [3])
        await s.server.shutdown()
    }

    @Test func manyConcurrentCallsAnsweredFromOtherThreadsEachGetTheirOwnAnswer() async throws {
        let s = try await TestServer.start()
        try await s.withLeanClient { lean, _ in
            let futures = (0..<500).map { i in lean.call("/test.Echo/Later", Array("call \(i)".utf8)) }
            for (i, f) in futures.enumerated() {
                let answer = try await f.get()
                #expect(answer == Array("call \(i)".utf8))
            }
            // Every finished call has left the connection's books: draining closes it at once
            // instead of waiting out the 2 s grace for calls it believes are open.
            let t0 = ContinuousClock.now
            await s.server.shutdown()
            #expect(ContinuousClock.now - t0 < .seconds(1.5))
        }
    }

    @Test func statusesReachTheClientWithTheirMessages() async throws {
        let s = try await TestServer.start(maxRequest: 1024)
        try await s.withClient { client in
            let message = "100% wrong: ümlaut"
            do {
                _ = try await client.unary(request: ClientRequest(message: Array(message.utf8)), descriptor: method("Fail"),
                                           serializer: RawBytes(), deserializer: RawBytes(), options: .defaults) { try $0.message }
                Issue.record("a failing method succeeded")
            } catch let e as RPCError {
                #expect(e.code == .failedPrecondition)
                #expect(e.message == message)  // percent-encoded on the wire, decoded by the client
            }
            do {
                _ = try await client.unary(request: ClientRequest(message: [1]), descriptor: MethodDescriptor(fullyQualifiedService: "test.Echo", method: "Nope"),
                                           serializer: RawBytes(), deserializer: RawBytes(), options: .defaults) { try $0.message }
                Issue.record("an unknown method succeeded")
            } catch let e as RPCError {
                #expect(e.code == .unimplemented)
                #expect(e.message == "unknown method /test.Echo/Nope")
            }
            do {
                _ = try await client.unary(request: ClientRequest(message: [1]), descriptor: MethodDescriptor(fullyQualifiedService: "other.Svc", method: "X"),
                                           serializer: RawBytes(), deserializer: RawBytes(), options: .defaults) { try $0.message }
                Issue.record("an unknown service succeeded")
            } catch let e as RPCError {
                #expect(e.code == .unimplemented)
                #expect(e.message == "unknown service other.Svc")
            }
            do {
                _ = try await client.unary(request: ClientRequest(message: [UInt8](repeating: 1, count: 2048)), descriptor: method("Reverse"),
                                           serializer: RawBytes(), deserializer: RawBytes(), options: .defaults) { try $0.message }
                Issue.record("an oversized request succeeded")
            } catch let e as RPCError {
                #expect(e.code == .resourceExhausted)
                #expect(e.message == "grpc: received message larger than max (2048 vs. 1024)")
            }
        }
        await s.server.shutdown()
    }

    @Test func requestsLargerThanTheFlowControlWindowsArrive() async throws {
        // 3 MiB: three stream windows (grpc-swift's client takes at most 4 MiB back); the server must return credit.
        let s = try await TestServer.start()
        let big = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let back = try await s.withClient { client in
            try await client.unary(request: ClientRequest(message: big), descriptor: method("Reverse"),
                                   serializer: RawBytes(), deserializer: RawBytes(), options: .defaults) { try $0.message }
        }
        #expect(back == big.reversed())
        await s.server.shutdown()
    }

    @Test func bidirectionalStreamsKeepOrderAndLargeDownloadsRespectFlowControl() async throws {
        let s = try await TestServer.start()
        try await s.withClient { client in
            let echoed = try await client.bidirectionalStreaming(
                request: StreamingClientRequest(producer: { writer in
                    for i in 0..<1000 { try await writer.write(Array("m\(i)".utf8)) }
                }),
                descriptor: method("Chat"), serializer: RawBytes(), deserializer: RawBytes(), options: .defaults
            ) { response in
                var all: [String] = []
                for try await m in response.messages { all.append(String(decoding: m, as: UTF8.self)) }
                return all
            }
            #expect(echoed == (0..<1000).map { "m\($0)" })
            // 20 MiB down a 1 MiB stream window: the server's sends wait for the client to read.
            let received = try await client.bidirectionalStreaming(
                request: StreamingClientRequest(producer: { writer in try await writer.write([20]) }),
                descriptor: method("Download"), serializer: RawBytes(), deserializer: RawBytes(), options: .defaults
            ) { response in
                var bytes = 0
                for try await m in response.messages {
                    bytes += m.count
                    if bytes < 1 << 20 { try await Task.sleep(for: .milliseconds(1)) }  // a slow reader at first
                }
                return bytes
            }
            #expect(received == 20 << 20)
        }
        await s.server.shutdown()
    }

    @Test func aClientThatGoesAwayCancelsItsStreamsHandler() async throws {
        let s = try await TestServer.start()
        try await s.withClient { client in
            let call = Task {
                try await client.bidirectionalStreaming(
                    request: StreamingClientRequest(producer: { writer in
                        try await writer.write([1])
                        try await Task.sleep(for: .seconds(30))
                    }),
                    descriptor: method("Hold"), serializer: RawBytes(), deserializer: RawBytes(), options: .defaults
                ) { response in for try await _ in response.messages {} }
            }
            try await waitFor("the handler starts") { s.seen.all.contains("hold started") }
            call.cancel()
            _ = await call.result
            try await waitFor("the handler is cancelled (seen: \(s.seen.all))") { s.seen.all.contains("hold cancelled") }
        }
        // The server still answers on new connections.
        let answer = try await s.withLeanClient { lean, _ in try await lean.call("/test.Echo/Reverse", [1, 2]).get() }
        #expect(answer == [2, 1])
        await s.server.shutdown()
    }

    @Test func shutdownLetsCallsInFlightFinishThenRefusesConnections() async throws {
        let s = try await TestServer.start()
        try await s.withLeanClient { lean, group in
            let inFlight = lean.call("/test.Echo/Slow", [9])
            try await Task.sleep(for: .milliseconds(100))  // the server has it
            await s.server.shutdown()
            #expect(try await inFlight.get() == [9])
            await #expect(throws: (any Error).self) {
                _ = try await GRPCUnaryClient.connect(host: "127.0.0.1", port: s.port, group: group)
            }
        }
    }
}

/// Polls `condition` for up to 5 seconds.
func waitFor(_ what: String, _ condition: () -> Bool) async throws {
    for _ in 0..<500 {
        if condition() { return }
        try await Task.sleep(for: .milliseconds(10))
    }
    Issue.record("not within 5 s: \(what)")
}
