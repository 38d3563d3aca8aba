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

@Suite("CRI log reading")
struct CRILogTailTests {
    /// Everything `stream` gives until it finishes or has caught up.
    static func drain(_ stream: CRILogStream) -> String {
        var out = Data()
        while case .text(let data) = stream.next() { out += data }
        return String(decoding: out, as: UTF8.self)
    }

    static func read(_ path: String, from offset: Int = 0, _ options: CRILogStream.Options = .init()) throws -> String {
        drain(try #require(CRILogStream(path: path, from: offset, options: options)))
    }

    @Test("a large log read in pieces from where its tail starts gives the same lines as the whole log, within its limit and since")
    func tailsPiecesLimitsAndSince() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("crilog-tail-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/0.log"
        // 40,000 logical lines, every seventh cut into three partial pieces, and a malformed
        // line: ~3.6 MiB, so that the forward reads cross pieces and the backward ones blocks.
        var text = ""
        for index in 0..<40_000 {
            let time = "2026-12-07T10:00:\(String(format: "%02d", index / 1000)).\(String(format: "%09d", index))Z"
            if index % 7 == 0 {
                text += "\(time) stdout P line \(index) a\n\(time) stdout P b\n\(time) stdout F c\n"
            } else {
                text += "\(time) stdout F line \(index) with some words to make it longer than a few bytes\n"
            }
            if index == 20_000 { text += "not a CRI line\n" }
        }
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        let whole = CRILog.render(CRILog.select(text, tailLines: nil, since: nil), timestamps: false)
        #expect(try Self.read(path) == whole)
        for lines in [0, 1, 2, 7, 100, 1500, 39_999, 40_000, 90_000, -1] {
            let start = CRILog.tailStart(path, logicalLines: lines)
            let expected = lines < 0 ? whole : CRILog.render(CRILog.select(text, tailLines: lines, since: nil), timestamps: false)
            #expect(try Self.read(path, from: start) == expected, "tail \(lines)")
            if (0...100).contains(lines) { #expect(text.utf8.count - start < 16 << 10, "only the end is where \(lines) lines start") }
        }
        #expect(try Self.read(path, .init(limitBytes: 1000)) == String(decoding: whole.utf8.prefix(1000), as: UTF8.self))
        #expect(try Self.read(path, .init(limitBytes: 0)) == "")
        let since = "2026-12-07T10:00:39.000039990Z"
        let stamped = try Self.read(path, .init(timestamps: true, since: since))
        #expect(stamped == CRILog.render(CRILog.select(text, tailLines: nil, since: since), timestamps: true))
        #expect(stamped.split(separator: "\n").count == 10, "\(stamped)")
    }

    @Test("a followed log is read to its end, then from the file at its path once it was rotated")
    func followsARotation() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("crilog-follow-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/0.log"
        func append(_ line: String, to file: String) throws {
            if !FileManager.default.fileExists(atPath: file) { FileManager.default.createFile(atPath: file, contents: nil) }
            let handle = try #require(FileHandle(forWritingAtPath: file))
            defer { try? handle.close() }
            try handle.seekToEnd()
            try handle.write(contentsOf: Data("2026-12-07T10:00:00Z stdout F \(line)\n".utf8))
        }
        try append("a", to: path)
        let stream = try #require(CRILogStream(path: path, from: 0, options: .init(follow: true)))
        #expect(Self.drain(stream) == "a\n")
        #expect(stream.next() == .caughtUp)
        try append("b", to: path)
        try FileManager.default.moveItem(atPath: path, toPath: path + ".20261207-100000")
        try append("c", to: path + ".20261207-100000")   // the shim, before it reopened the path
        #expect(Self.drain(stream) == "b\nc\n")         // the path is not there yet
        try append("d", to: path)
        #expect(Self.drain(stream) == "d\n")
        #expect(stream.next() == .caughtUp)
        // Without follow, a read ends where the log ended when it was opened.
        let once = try #require(CRILogStream(path: path, from: 0, options: .init()))
        try append("e", to: path)
        #expect(Self.drain(once) == "d\n")
        #expect(once.next() == .finished)
    }
}

@Suite("container log files")
struct ContainerLogFilesTests {
    @Test("the logs of a container's attempts but the newest two go, with their rotations; other files stay")
    func earlierAttemptsAreRemoved() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("podlogs-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let layout = [
            "ns_a_1/c": ["0.log", "1.log", "1.log.20261208-000000", "2.log", "3.log", "3.log.20261208-000010", "notes.txt", "x.log"],
            "ns_a_1/d": ["0.log"],
            "ns_b_2/c": ["7.log", "12.log", "12.log.20261208-000000", "9.log"],
        ]
        for (directory, names) in layout {
            try FileManager.default.createDirectory(atPath: root + "/" + directory, withIntermediateDirectories: true)
            for name in names { FileManager.default.createFile(atPath: root + "/\(directory)/\(name)", contents: Data("x".utf8)) }
        }
        let removed = ContainerLogFiles.removeEarlierAttempts(under: root).map { String($0.dropFirst(root.count + 1)) }.sorted()
        #expect(removed == ["ns_a_1/c/0.log", "ns_a_1/c/1.log", "ns_a_1/c/1.log.20261208-000000", "ns_b_2/c/7.log"])
        let left = try FileManager.default.contentsOfDirectory(atPath: root + "/ns_a_1/c").sorted()
        #expect(left == ["2.log", "3.log", "3.log.20261208-000010", "notes.txt", "x.log"])
        #expect(ContainerLogFiles.removeEarlierAttempts(under: root).isEmpty)
    }
}
