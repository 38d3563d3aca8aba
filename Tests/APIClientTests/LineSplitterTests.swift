import Foundation
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
}
