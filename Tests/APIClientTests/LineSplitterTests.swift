import ClusterAPI
import Foundation
import HTTPKit
import Testing
@testable import APIClient

/// Watch lines out of chunks cut anywhere: a line may span chunks, a chunk may hold many.
@Suite struct LineSplitterTests {
    @Test func linesCutAnywhereComeOutWhole() throws {
        let text = "{\"a\":1}\n\n  \r\n{\"b\":\"two\"}\n{\"c\":3}\n{\"tail\":true}"
        let bytes = Array(text.utf8)
        for size in 1...bytes.count {
            var splitter = LineSplitter()
            var lines: [String] = []
            for start in stride(from: 0, to: bytes.count, by: size) {
                let chunk = Data(bytes[start..<min(bytes.count, start + size)])
                lines += try splitter.split(chunk).map { String(decoding: $0, as: UTF8.self) }
            }
            if let last = splitter.remainder { lines.append(String(decoding: last, as: UTF8.self)) }
            #expect(lines == ["{\"a\":1}", "{\"b\":\"two\"}", "{\"c\":3}", "{\"tail\":true}"], "chunks of \(size)")
        }
    }

    @Test func anEndlessLineIsAnError() throws {
        var splitter = LineSplitter()
        let chunk = Data(repeating: 0x41, count: 1 << 20)
        #expect(throws: APIError.self) {
            for _ in 0...(LineSplitter.maxLineBytes >> 20) { _ = try splitter.split(chunk) }
        }
    }

    /// The same, read in place: whole lines handed over where they arrived, a cut one completed
    /// from the next chunks; the last line, without its newline, is not handed over.
    @Test func inPlaceLinesCutAnywhereComeOutWhole() throws {
        let text = "{\"a\":1}\n\n  \r\n{\"b\":\"two\"}\r\n{\"c\":3}\n{\"tail\":true}"
        let bytes = Array(text.utf8)
        for size in 1...bytes.count {
            let splitter = InPlaceLineSplitter()
            var lines: [String] = []
            var calls = 0
            for start in stride(from: 0, to: bytes.count, by: size) {
                try bytes[start..<min(bytes.count, start + size)].withUnsafeBytes { raw in
                    try splitter.feed(raw) { whole in
                        calls += 1
                        #expect(whole.bytes.last == 0x0A, "only whole lines are handed over")
                        whole.forEachLine { lines.append(String(decoding: $0, as: UTF8.self)) }
                    }
                }
            }
            #expect(lines == ["{\"a\":1}", "{\"b\":\"two\"}", "{\"c\":3}"], "chunks of \(size)")
            if size >= bytes.count { #expect(calls == 1, "one chunk's lines in one call") }
        }
    }

    @Test func anEndlessLineReadInPlaceIsAnError() throws {
        let splitter = InPlaceLineSplitter()
        let chunk = [UInt8](repeating: 0x41, count: 1 << 20)
        #expect(throws: APIError.self) {
            for _ in 0...(LineSplitter.maxLineBytes >> 20) { try chunk.withUnsafeBytes { try splitter.feed($0) { _ in } } }
        }
    }

    /// Read in place through a transport without sockets (`HandlerTransport`, the default
    /// `readStream` over `stream`): the same lines, in order, and a refusal thrown as its error.
    @Test func inPlaceWatchThroughAHandlerTransport() async throws {
        let body = "{\"type\":\"ADDED\",\"n\":1}\n{\"type\":\"MODIFIED\",\"n\":2}\n{\"type\":\"DELETED\",\"n\":3}\n"
        let transport = HandlerTransport { request in
            guard request.uri.contains("resourceVersion=5") else {
                return HTTPResponse(status: .gone, headers: ["Content-Type": "application/json"],
                                    body: Data(#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"too old","reason":"Expired","code":410}"#.utf8))
            }
            return .streaming(headers: ["Content-Type": "application/json"]) { writer in
                let bytes = Array(body.utf8)
                for start in stride(from: 0, to: bytes.count, by: 7) {
                    try await writer.write(Data(bytes[start..<min(bytes.count, start + 7)]))
                }
            }
        }
        let client = KubeClient(Connection(server: URL(string: "http://127.0.0.1:1")!, token: "t"), transport: transport)
        let (lines, arriving) = AsyncStream<String>.makeStream()
        let reading = try await client.watchLinesInPlace(Pod.self, namespace: "default", resourceVersion: "5") { whole in
            whole.forEachLine { arriving.yield(String(decoding: $0, as: UTF8.self)) }
        }
        try await reading.finished()
        arriving.finish()
        var got: [String] = []
        for await line in lines { got.append(line) }
        #expect(got == body.split(separator: "\n").map(String.init))
        do {
            _ = try await client.watchLinesInPlace(Pod.self, namespace: "default", resourceVersion: "4") { _ in }
            Issue.record("a refused watch must throw")
        } catch let error as APIError {
            #expect(error.code == 410, "\(error)")
        }
    }
}
