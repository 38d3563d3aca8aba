import Foundation
import HTTPKit
import Testing

/// `HTTPClient.readStream` against a server that takes the connection and never answers: the
/// call fails with the client's timeout instead of waiting for a head forever.
@Suite struct StreamReadingTimeoutTests {
    @Test func aHeadThatNeverComesTimesOut() async throws {
        // A listening socket nobody accepts on: the kernel completes the connection from its
        // backlog, and nothing is ever written back.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #expect(fd >= 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        #expect(bound == 0 && listen(fd, 8) == 0)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        let port = Int(UInt16(bigEndian: addr.sin_port))

        let client = HTTPClient(host: "127.0.0.1", port: port, timeout: .milliseconds(300))
        let started = ContinuousClock.now
        do {
            _ = try await client.readStream(HTTPRequest(method: .GET, path: "/watch")) { _ in }
            Issue.record("a stream whose head never comes must fail")
        } catch let error as HTTPClientError {
            #expect(error.isTimeout, "\(error)")
        }
        #expect(started.duration(to: .now) < .seconds(10))
    }
}
