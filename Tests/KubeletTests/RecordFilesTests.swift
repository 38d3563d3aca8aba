// The container shim (`ballast-shim`, C) writes `state.json` and `exit.json` through CKubelet;
// the kubelet decodes them as `ContainerStarted` and `ContainerExit` (Codable, through
// ClusterAPI's JSON tree, which reads as JSONDecoder's defaults). These tests hold the two to one format: field names, the dates (seconds since
// 2001), an optional signal and start, and a start failure's message escaped as JSON.
import CKubelet
import Foundation
import Kubelet
import Testing

@Suite("Container records: the shim's C and the kubelet's decoder agree")
struct RecordFilesTests {
    static func directory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("records-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func timespec(_ date: Date) -> timespec {
        let seconds = date.timeIntervalSince1970.rounded(.down)
        return Glibc.timespec(tv_sec: Int(seconds), tv_nsec: Int((date.timeIntervalSince1970 - seconds) * 1e9))
    }

    @Test("state.json: the pid and the start time")
    func started() throws {
        let dir = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/" + RecordFiles.started
        #expect(RecordFiles.started == "state.json" && RecordFiles.exit == "exit.json" && RecordFiles.shimPID == "shim.pid")
        let when = Date(timeIntervalSince1970: 1_765_000_000.123456)
        var time = Self.timespec(when)
        #expect(ckl_write_started(path, 4242, 77, &time) == 0)
        let record = try #require(RecordFiles.read(ContainerStarted.self, from: path))
        #expect(record.pid == 4242)
        #expect(record.shimPID == 77)
        #expect(abs(record.startedAt.timeIntervalSince(when)) < 1e-6)
        #expect((try? FileManager.default.contentsOfDirectory(atPath: dir)) == ["state.json"], "no temporary file is left")
    }

    @Test("exit.json: a container that ran and was killed by a signal, OOM")
    func exitOfARun() throws {
        let dir = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/" + RecordFiles.exit
        let started = Date(timeIntervalSince1970: 1_765_000_000.5), finished = Date(timeIntervalSince1970: 1_765_000_042.25)
        var start = Self.timespec(started), end = Self.timespec(finished)
        #expect(ckl_write_exit(path, 137, SIGKILL, 1, &start, &end, nil) == 0)
        let exit = try #require(RecordFiles.read(ContainerExit.self, from: path))
        #expect(exit.exitCode == 137 && exit.signal == SIGKILL && exit.oomKilled && exit.startFailure == nil)
        #expect(abs(try #require(exit.startedAt).timeIntervalSince(started)) < 1e-6)
        #expect(abs(exit.finishedAt.timeIntervalSince(finished)) < 1e-6)
    }

    @Test("exit.json: a start failure with quotes, control characters, Unicode and invalid UTF-8 in its message")
    func startFailure() throws {
        let dir = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/" + RecordFiles.exit
        var end = Self.timespec(Date())
        // "exec: \"nope\": not found\n\ttab \\ é ✓ 😀 \u{1}" followed by the byte 0xFF.
        let message = "exec: \"nope\": not found\n\ttab \\ é ✓ 😀 \u{1}"
        var bytes = Array(message.utf8).map { CChar(bitPattern: $0) }
        bytes += [CChar(bitPattern: 0xFF), 0]
        #expect(ckl_write_exit(path, 128, 0, 0, nil, &end, bytes) == 0)
        let exit = try #require(RecordFiles.read(ContainerExit.self, from: path))
        #expect(exit.exitCode == 128 && exit.signal == nil && !exit.oomKilled && exit.startedAt == nil)
        #expect(exit.startFailure == message + "\u{FFFD}")
    }
}
