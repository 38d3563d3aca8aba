import Foundation
import HTTPKit
import Testing
import TestSupport

/// A keep-alive client whose server answers `Connection: close` (and is slow to close): the
/// connection is not given back to the pool, and the next request opens a new one instead of
/// waiting on a connection nobody reads any more.
@Suite(.timeLimit(.minutes(1))) struct ConnectionPoolTests {
    @Test func aResponseThatClosesTheConnectionIsNotReused() async throws {
        let (fd, port) = boundLoopbackSocket()
        #expect(fd >= 0 && listen(fd, 8) == 0)
        let served = ServedCount()
        let server = Thread {
            // Each connection stays open until the next one is accepted: the client must go by
            // the header, not by the socket's end.
            var previous: Int32 = -1
            for _ in 0..<3 {
                let connection = accept(fd, nil, nil)
                if previous >= 0 { close(previous) }
                guard connection >= 0 else { return }
                previous = connection
                var request: [UInt8] = []
                var buffer = [UInt8](repeating: 0, count: 4096)
                while !request.suffix(4).elementsEqual([13, 10, 13, 10]) {
                    let count = read(connection, &buffer, buffer.count)
                    if count <= 0 { break }
                    request += buffer[..<count]
                }
                let answer = Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".utf8)
                served.add()   // before the answer: the client may check the count as soon as it has it
                _ = write(connection, answer, answer.count)
            }
            if previous >= 0 { close(previous) }
        }
        server.start()
        let client = HTTPClient(host: "127.0.0.1", port: port, timeout: .seconds(10), keepAlive: true)
        let started = ContinuousClock.now
        for _ in 0..<2 {
            let response = try await client.send(HTTPRequest(method: .GET, path: "/"))
            #expect(response.status == .ok)
        }
        #expect(served.value == 2)
        #expect(started.duration(to: .now) < .seconds(5), "the second request did not wait on the first connection")
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }
}

private final class ServedCount: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}
