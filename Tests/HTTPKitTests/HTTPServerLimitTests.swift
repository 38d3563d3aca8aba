import Foundation
import HTTPKit
import Logging
import NIOHTTP1
import Testing
import TestSupport

/// The HTTP server's bounds against hostile clients, each followed by a well-behaved client
/// that must still be served.
@Suite struct HTTPServerLimitTests {
    /// A server on 127.0.0.1 answering "ok" (and the body's length for POST), stopped on every exit path.
    func withServer(_ limits: HTTPServerLimits, headCheck: HTTPHeadCheck? = nil,
                    _ body: (HTTPServer) async throws -> Void) async throws {
        let server = try await HTTPServer(host: "127.0.0.1", port: 0, limits: limits, logger: Logger(label: "test"),
                                          headCheck: headCheck) { request in
            .text(request.method == .POST ? "got \(request.body.count)\n" : "ok\n")
        }
        let running = Task { try await server.run() }
        do {
            try await body(server)
        } catch {
            server.shutdown(grace: .zero)
            _ = try? await running.value
            throw error
        }
        server.shutdown(grace: .zero)
        _ = try? await running.value
    }

    func wellBehavedClientIsServed(_ server: HTTPServer) async throws {
        let client = HTTPClient(host: "127.0.0.1", port: server.port, timeout: .seconds(5))
        let response = try await client.send(HTTPRequest(method: .GET, path: "/"))
        #expect(response.status == .ok && String(decoding: response.body, as: UTF8.self) == "ok\n")
    }

    @Test func slowHeadersAreCutOffAfterTheReadHeaderTimeout() async throws {
        var limits = HTTPServerLimits()
        limits.readHeaderTimeout = .milliseconds(500)
        try await withServer(limits) { server in
            // 100 sockets holding three bytes of a TLS handshake, and one sending half a request head.
            var hostile: [RawConnection] = []
            defer { for c in hostile { Task { await c.close() } } }
            for _ in 0..<100 {
                let c = try await RawConnection(port: server.port)
                try await c.send([0x16, 0x03, 0x01])
                hostile.append(c)
            }
            let partial = try await RawConnection(port: server.port)
            hostile.append(partial)
            try await partial.send("GET / HTTP/1.1\r\nHost: x\r\n")
            let started = ContinuousClock.now
            for c in hostile {
                #expect(await c.wait(timeout: .seconds(5)) { $0.isClosed }, "the server closes a connection without a whole head")
            }
            #expect(started.duration(to: .now) < .seconds(4))
            #expect(await eventually { server.connectionCounts.open == 0 })
            try await wellBehavedClientIsServed(server)
        }
    }

    @Test func idleKeepAliveConnectionsAreClosed() async throws {
        var limits = HTTPServerLimits()
        limits.idleTimeout = .milliseconds(300)
        try await withServer(limits) { server in
            let c = try await RawConnection(port: server.port)
            defer { Task { await c.close() } }
            try await c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(await c.wait(timeout: .seconds(2)) { $0.receivedText.hasSuffix("ok\n") })
            #expect(await c.wait(timeout: .seconds(3)) { $0.isClosed }, "an idle keep-alive connection is closed")
            try await wellBehavedClientIsServed(server)
        }
    }

    @Test func connectionsBeyondTheCapAreClosed() async throws {
        var limits = HTTPServerLimits()
        limits.maxConnections = 10
        try await withServer(limits) { server in
            var held: [RawConnection] = []
            for _ in 0..<30 { held.append(try await RawConnection(port: server.port)) }
            #expect(await eventually { server.connectionCounts.refused == 20 }, "\(server.connectionCounts)")
            #expect(server.connectionCounts.open == 10)
            #expect(await eventually { held.filter(\.isClosed).count == 20 })
            for c in held { await c.close() }
            #expect(await eventually { server.connectionCounts.open == 0 })
            try await wellBehavedClientIsServed(server)
        }
    }

    @Test func aBodyOverTheLimitIsRefusedFromItsContentLength() async throws {
        try await withServer(HTTPServerLimits(maxBodyBytes: 1 << 20)) { server in
            // A gigabyte announced, nothing sent: the 413 comes at once.
            let c = try await RawConnection(port: server.port)
            defer { Task { await c.close() } }
            try await c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\n\r\n")
            #expect(await c.wait(timeout: .seconds(2)) { $0.receivedText.hasPrefix("HTTP/1.1 413") }, "\(c.receivedText)")
            #expect(await c.wait(timeout: .seconds(3)) { $0.isClosed })
            // A chunked body is refused as soon as it passes the limit.
            let chunked = try await RawConnection(port: server.port)
            defer { Task { await chunked.close() } }
            try await chunked.send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            let chunk = String(repeating: "a", count: 64 << 10)
            for _ in 0..<20 where !chunked.isClosed && chunked.received.isEmpty {
                try? await chunked.send("10000\r\n" + chunk + "\r\n")
            }
            #expect(await chunked.wait(timeout: .seconds(2)) { $0.receivedText.hasPrefix("HTTP/1.1 413") }, "\(chunked.receivedText)")
            // Under the limit, a body is read whole.
            let client = HTTPClient(host: "127.0.0.1", port: server.port, timeout: .seconds(5))
            let ok = try await client.send(HTTPRequest(method: .POST, path: "/", body: Data(count: 1000)))
            #expect(String(decoding: ok.body, as: UTF8.self) == "got 1000\n")
        }
    }

    @Test func theHeadCheckRefusesBeforeTheBodyIsRead() async throws {
        let check: HTTPHeadCheck = { request in request.bearerToken == "good" ? nil : .text("no\n", status: .unauthorized) }
        try await withServer(HTTPServerLimits(), headCheck: check) { server in
            let c = try await RawConnection(port: server.port)
            defer { Task { await c.close() } }
            // 2 MiB announced, nothing sent: without credentials the answer comes from the head alone.
            try await c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\n\r\n")
            #expect(await c.wait(timeout: .seconds(2)) { $0.receivedText.hasPrefix("HTTP/1.1 401") }, "\(c.receivedText)")
            #expect(await c.wait(timeout: .seconds(3)) { $0.isClosed })
            let client = HTTPClient(host: "127.0.0.1", port: server.port, timeout: .seconds(5))
            let ok = try await client.send(HTTPRequest(method: .POST, path: "/", headers: ["Authorization": "Bearer good"], body: Data(count: 10)))
            #expect(String(decoding: ok.body, as: UTF8.self) == "got 10\n")
            let refused = try await client.send(HTTPRequest(method: .GET, path: "/"))
            #expect(refused.status == .unauthorized)
        }
    }
}

/// Polls `condition` for up to `timeout`.
func eventually(_ timeout: Duration = .seconds(5), _ condition: () async -> Bool) async -> Bool {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return await condition()
}
