// Keep-alive connections for `HTTPClient`: a request takes an idle connection (or opens one),
// and gives it back when its response has arrived, so a client that makes many requests pays
// for a TCP (and TLS) handshake once per connection rather than once per request.
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization

/// One keep-alive HTTP/1.1 connection, used by one request at a time.
final class PooledConnection: Sendable {
    private struct Job {
        let request: HTTPRequest
        let continuation: CheckedContinuation<HTTPResponse, any Error>
    }

    private let jobs: AsyncStream<Job>.Continuation
    private let open = Mutex(true)
    private let channel: Channel

    var isOpen: Bool { open.withLock { $0 } && channel.isActive }

    init(_ connection: NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>, host: String, port: Int) {
        let (stream, jobs) = AsyncStream<Job>.makeStream()
        self.jobs = jobs
        self.channel = connection.channel
        Task { [weak self] in
            var queued = stream.makeAsyncIterator()
            var pending: Job?
            do {
                try await connection.executeThenClose { inbound, outbound in
                    var responses = inbound.makeAsyncIterator()
                    while let job = await queued.next() {
                        pending = job
                        try await HTTPClient.write(job.request, host: host, port: port, keepAlive: true, to: outbound)
                        var head: HTTPResponseHead?
                        var body = ByteBuffer()
                        reading: while true {
                            guard let part = try await responses.next() else { throw HTTPClientError.closed(host: host, port: port) }
                            switch part {
                            case .head(let responseHead):
                                head = responseHead
                                // Room for the whole body at once (a 6 MiB list was copied a dozen
                                // times as the buffer doubled), up to a bound a lying server cannot abuse.
                                if let length = responseHead.headers.first(name: "Content-Length").flatMap({ Int($0) }), length > 0 {
                                    body.reserveCapacity(min(length, HTTPClient.maxReservedBody))
                                }
                            case .body(var chunk): body.writeBuffer(&chunk)
                            case .end: break reading
                            }
                        }
                        guard let head else { throw HTTPClientError.malformed("response ended before its head") }
                        pending = nil
                        // A response that ends the connection: closed before its caller can give
                        // the connection back to the pool for another request.
                        if !head.isKeepAlive { self?.closed() }
                        job.continuation.resume(returning: HTTPResponse(status: head.status, headers: head.headers, body: Data(body.readableBytesView)))
                        if !head.isKeepAlive { break }
                    }
                }
            } catch {
                pending?.continuation.resume(throwing: error)
                pending = nil
            }
            pending?.continuation.resume(throwing: HTTPClientError.closed(host: host, port: port))
            self?.closed()
            jobs.finish()
            // Requests queued after the last one was taken are refused, not left waiting.
            while let job = await queued.next() {
                job.continuation.resume(throwing: HTTPClientError.closed(host: host, port: port))
            }
        }
    }

    /// Sends one request on this connection; throws when the connection fails.
    func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        try await withCheckedThrowingContinuation { continuation in
            let accepted = open.withLock { $0 }
            guard accepted, case .enqueued = jobs.yield(Job(request: request, continuation: continuation)) else {
                continuation.resume(throwing: HTTPClientError.closed(host: "", port: 0))
                return
            }
        }
    }

    func close() {
        closed()
        channel.close(promise: nil)
    }

    private func closed() {
        open.withLock { $0 = false }
        jobs.finish()
    }
}

/// Idle connections of one client, at most `maxIdle` kept.
final class ConnectionPool: Sendable {
    private let idle = Mutex<[PooledConnection]>([])
    private let maxIdle: Int

    init(maxIdle: Int) { self.maxIdle = maxIdle }

    func take() -> PooledConnection? {
        idle.withLock { idle in
            while let connection = idle.popLast() {
                if connection.isOpen { return connection }
            }
            return nil
        }
    }

    func give(_ connection: PooledConnection) {
        let keep = idle.withLock { idle in
            guard connection.isOpen, idle.count < maxIdle else { return false }
            idle.append(connection)
            return true
        }
        if !keep { connection.close() }
    }

    deinit {
        for connection in idle.withLock({ $0 }) { connection.close() }
    }
}
