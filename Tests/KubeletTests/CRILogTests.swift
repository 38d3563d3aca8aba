import CKubelet
import Foundation
import Kubelet
import Testing

@Suite("CRI log format")
struct CRILogTests {
    @Test("lines are written full, long ones cut into partial pieces, and rendered back")
    func writeAndRender() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("crilog-\(UUID().uuidString)/0.log").path
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        // What the shim (`ballast-shim`) does with a container's output: CKubelet's CRI stream.
        let fd = ckl_cri_open_log(path)
        try #require(fd >= 0, "ckl_cri_open_log \(path): \(String(cString: strerror(errno)))")
        defer { close(fd) }
        let long = String(repeating: "x", count: CRILog.maxLineBytes + 10)
        let stream = try #require(ckl_cri_stream_new(fd, "stdout"))
        for chunk in ["one\ntw", "o\n\(long)\nlast"] {
            let bytes = Array(chunk.utf8)
            bytes.withUnsafeBufferPointer { ckl_cri_stream_feed(stream, UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), $0.count) }
        }
        ckl_cri_stream_end(stream)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let entries = CRILog.select(text, tailLines: nil, since: nil)
        #expect(entries.map(\.partial) == [false, false, true, false, false])
        #expect(CRILog.render(entries, timestamps: false) == "one\ntwo\n\(long)\nlast\n")
        #expect(CRILog.render(CRILog.select(text, tailLines: 2, since: nil), timestamps: false) == "\(long)\nlast\n")
        #expect(CRILog.select(text, tailLines: 0, since: nil).isEmpty)
        let stamped = CRILog.render(CRILog.select(text, tailLines: 1, since: nil), timestamps: true)
        #expect(stamped.hasSuffix("Z last\n"))
    }

    @Test("timestamps are RFC 3339 in UTC with trimmed nanoseconds, and compare in time order")
    func timestamps() {
        #expect(CRILog.timestamp(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00Z")
        #expect(CRILog.timestamp(Date(timeIntervalSince1970: 1.5)) == "1970-01-01T00:00:01.5Z")
        #expect(CRILog.timestamp(Date(timeIntervalSince1970: 1_733_000_000.000_000_25)).hasPrefix("2024-11-30T20:53:20.00000"))
        let entries = CRILog.select("2024-01-01T00:00:01.5Z stdout F a\n2024-01-01T00:00:02Z stdout F b\n", tailLines: nil,
                                    since: "2024-01-01T00:00:01.6Z")
        #expect(entries.map(\.content) == ["b"])
    }
}

@Suite("CRI log tails")
struct CRILogTailTests {
    @Test("the end of a large log read backwards selects the same last lines as the whole log")
    func tailsReadFromTheEnd() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("crilog-tail-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/0.log"
        // 5,000 logical lines, every seventh cut into three partial pieces: ~300 KiB, several blocks.
        var text = ""
        for index in 0..<5000 {
            let time = "2026-12-07T10:00:00.\(String(format: "%09d", index))Z"
            if index % 7 == 0 {
                text += "\(time) stdout P line \(index) a\n\(time) stdout P b\n\(time) stdout F c\n"
            } else {
                text += "\(time) stdout F line \(index) with some words to make it longer than a few bytes\n"
            }
        }
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        for lines in [0, 1, 2, 7, 100, 1500, 4999, 5000, 9000] {
            let (end, size) = CRILog.readEnd(path, logicalLines: lines)
            #expect(size == text.utf8.count)
            #expect(CRILog.select(end, tailLines: lines, since: nil) == CRILog.select(text, tailLines: lines, since: nil), "tail \(lines)")
            if lines <= 100 { #expect(end.utf8.count < 200 << 10, "only the end was read for \(lines) lines") }
        }
    }
}
