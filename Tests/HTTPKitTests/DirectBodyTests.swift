import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Testing
@testable import HTTPKit

/// A streamed body written from the connection's event loop (`HTTPDirectBody`, as the API
/// server's watches are): each chunk framed once, in place, and decoded whole by a client.
@Suite struct DirectBodyTests {
    @Test(arguments: [0, 1, 15, 16, 255, 4096, 70_000])
    func chunksAreFramedInPlaceOrCopied(size: Int) {
        let content = [UInt8]((0..<size).map { UInt8(truncatingIfNeeded: $0 % 251) })
        let expected = Array((String(size, radix: 16) + "\r\n").utf8) + content + Array("\r\n".utf8)
        // With room kept before the content (a chunk buffer): framed there, no copy.
        var roomy = ByteBufferAllocator().buffer(capacity: HTTPDirectBody.chunkHeadroom + size + 2)
        roomy.moveWriterIndex(forwardBy: HTTPDirectBody.chunkHeadroom)
        roomy.moveReaderIndex(forwardBy: HTTPDirectBody.chunkHeadroom)
        roomy.writeBytes(content)
        #expect(Array(HTTPDirectBody.framedChunk(roomy, allocator: ByteBufferAllocator()).readableBytesView) == expected)
        // Without: copied once behind its size line.
        let tight = ByteBuffer(bytes: content)
        #expect(Array(HTTPDirectBody.framedChunk(tight, allocator: ByteBufferAllocator()).readableBytesView) == expected)
    }

    /// Chunks written from the loop, of many sizes, arrive as the body, byte for byte.
    @Test func directChunksReachTheClientWhole() async throws {
        let sizes = [1, 17, 300, 4095, 16_384, 40_000, 3]
        let parts = sizes.enumerated().map { index, size in [UInt8](repeating: UInt8(ascii: "a") + UInt8(index), count: size) }
        let server = try await HTTPServer(host: "127.0.0.1", port: 0, limits: HTTPServerLimits(), logger: Logger(label: "test")) { _ in
            .streaming(headers: ["Content-Type": "text/plain"]) { writer in
                guard let direct = writer.direct else {
                    Issue.record("a socket's stream has its connection")
                    return
                }
                let written = direct.eventLoop.submit {
                    for part in parts {
                        var buffer = direct.chunkBuffer(capacity: part.count)
                        buffer.writeBytes(part)
                        direct.write(buffer)
                    }
                    direct.flush()
                }
                try await written.get()
            }
        }
        let running = Task { try await server.run() }
        let fetched: Result<HTTPResponse, any Error>
        do {
            fetched = .success(try await HTTPClient(host: "127.0.0.1", port: server.port, timeout: .seconds(10))
                .send(HTTPRequest(method: .GET, path: "/")))
        } catch {
            fetched = .failure(error)
        }
        server.shutdown(grace: .zero)
        _ = try? await running.value
        let response = try fetched.get()
        #expect(response.status == .ok)
        #expect(response.headers["Transfer-Encoding"].first == "chunked")
        #expect(Array(response.body) == parts.flatMap { $0 })
    }
}
