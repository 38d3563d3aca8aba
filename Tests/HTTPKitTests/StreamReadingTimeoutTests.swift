import Foundation
import HTTPKit
import Testing
import TestSupport

/// `HTTPClient.readStream` against a server that takes the connection and never answers: the
/// call fails with the client's timeout instead of waiting for a head forever.
@Suite struct StreamReadingTimeoutTests {
    @Test func aHeadThatNeverComesTimesOut() async throws {
        // A listening socket nobody accepts on: the kernel completes the connection from its
        // backlog, and nothing is ever written back.
        let (fd, port) = boundLoopbackSocket()
        defer { close(fd) }
        #expect(fd >= 0 && listen(fd, 8) == 0)

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
