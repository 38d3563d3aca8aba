import Foundation
@testable import HTTPKit
import Logging
import NIOHTTP1
import Synchronization
import Testing
import TestSupport

/// WebSockets between HTTPKit's server and client: unread messages are bounded, and a session
/// learns at once that its peer is gone.
@Suite(.serialized) struct WebSocketTests {
    /// A server whose one WebSocket session is `session`, stopped on every exit path.
    func withServer(_ session: @escaping @Sendable (WebSocketConnection) async -> Void,
                    _ body: (HTTPServer) async throws -> Void) async throws {
        let server = try await HTTPServer(host: "127.0.0.1", port: 0, limits: HTTPServerLimits(), logger: Logger(label: "test"),
                                          webSocket: { _ in WebSocketAcceptance(subprotocol: "test", session: session) }) { _ in
            .text("no\n", status: .notFound)
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

    @Test("the queue of unread messages holds its reader back past 4 MiB, and lets it go as the session reads")
    func unreadMessagesHoldTheReaderBack() async throws {
        let messages = WebSocketMessages()
        let pushed = Mutex(0)
        let reader = Task {
            for index in 0..<8 {
                await messages.push(WebSocketMessage(bytes: [UInt8(index)] + [UInt8](repeating: 0, count: (1 << 20) - 1), isText: false))
                pushed.withLock { $0 += 1 }
            }
            messages.finish()
        }
        // Four messages fit, the fifth goes over the bound: its push waits.
        #expect(await waitUntil(timeout: .seconds(5), interval: .milliseconds(10)) { pushed.withLock { $0 } == 4 })
        try await Task.sleep(for: .milliseconds(300))
        #expect(pushed.withLock { $0 } == 4, "the reader went on past 4 MiB unread")
        var received: [UInt8] = []
        for await message in messages { received.append(message.bytes[0]) }
        #expect(received == Array(0..<8))
        await reader.value
        // A session that is over drops what still comes, and never holds the reader.
        messages.abandon()
        for _ in 0..<8 { await messages.push(WebSocketMessage(bytes: [UInt8](repeating: 0, count: 1 << 20), isText: false)) }
    }

    @Test("messages cross a real connection in order, through a session that reads them late")
    func lateReadingSessionGetsEverythingInOrder() async throws {
        let reading = Mutex(false)
        let received = Mutex<[UInt8]>([])
        let count = 24, size = 1 << 20
        try await withServer({ connection in
            while !reading.withLock({ $0 }) { try? await Task.sleep(for: .milliseconds(20)) }
            for await message in connection.messages {
                received.withLock { $0.append(message.bytes.first ?? 0) }
                if received.withLock({ $0.count }) == count { break }
            }
        }) { server in
            let client = Task {
                try await WebSocketClient.connect(host: "127.0.0.1", port: server.port, tls: nil, uri: "/", headers: [:], subprotocols: ["test"]) { connection in
                    for index in 0..<count {
                        guard (try? await connection.send([UInt8(index)] + [UInt8](repeating: 0x61, count: size - 1))) != nil else { return }
                    }
                    for await _ in connection.messages {}   // until the server has read everything and closed
                }
            }
            try await Task.sleep(for: .seconds(1))
            reading.withLock { $0 = true }
            try await client.value
            #expect(received.withLock { $0 } == (0..<count).map(UInt8.init))
        }
    }

    @Test("closed() returns as soon as the peer's connection drops, while messages it sent are still unread")
    func closedComesBeforeTheUnreadMessages() async throws {
        let ended = Mutex<ContinuousClock.Instant?>(nil)
        try await withServer({ connection in
            await connection.closed()
            ended.withLock { $0 = .now }
        }) { server in
            try await WebSocketClient.connect(host: "127.0.0.1", port: server.port, tls: nil, uri: "/", headers: [:], subprotocols: ["test"]) { connection in
                for _ in 0..<3 { try? await connection.send([UInt8](repeating: 1, count: 1 << 20)) }
                connection.abort()
            }
            let dropped = ContinuousClock.now
            #expect(await waitUntil(timeout: .seconds(5), interval: .milliseconds(10)) { ended.withLock { $0 } != nil })
            if let at = ended.withLock({ $0 }) { #expect(at - dropped < .seconds(2)) }
        }
    }
}
