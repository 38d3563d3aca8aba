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
}
