// UnsyncedFile writes the small files of a pod start (hosts, resolv.conf, etc-hostname,
// config.json) without Foundation's fsync: these tests hold it to what the callers rely on —
// the contents, replacing what was there (atomically: by a rename, no temporary file left), the
// mode, and a failure that names the file and leaves nothing behind.
import Foundation
import Kubelet
import Testing

@Suite("Unsynced file writes")
struct UnsyncedFileTests {
    static func directory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("unsynced-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test("writes and replaces the contents, atomically or not, and leaves only the file", arguments: [true, false])
    func writes(atomically: Bool) throws {
        let dir = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/hosts"
        try UnsyncedFile.write("127.0.0.1\tlocalhost\n10.0.0.1\ta-much-longer-pod-name\n", to: path, atomically: atomically)
        try UnsyncedFile.write("127.0.0.1\tlocalhost\n", to: path, atomically: atomically)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "127.0.0.1\tlocalhost\n", "the shorter contents replace the longer")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["hosts"], "no temporary file is left")
        let mode = try #require(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)
        #expect(mode.intValue & 0o777 == 0o644 & ~Int(Self.umask()))

        let data = Data((0..<4096).map { UInt8($0 % 251) })
        try UnsyncedFile.write(data, to: dir + "/config.json", atomically: atomically)
        #expect(FileManager.default.contents(atPath: dir + "/config.json") == data)
        try UnsyncedFile.write("", to: dir + "/empty", atomically: atomically)
        #expect(FileManager.default.contents(atPath: dir + "/empty") == Data())
    }

    @Test("a file that cannot be written is an error naming it, and nothing is made", arguments: [true, false])
    func failure(atomically: Bool) throws {
        let dir = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/missing/hosts"
        do {
            try UnsyncedFile.write("x\n", to: path, atomically: atomically)
            Issue.record("writing into a missing directory succeeded")
        } catch {
            #expect("\(error)".contains(path) && "\(error)".contains("No such file or directory"), "\(error)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty)
    }

    /// This process's umask, read rather than set (setting it, even back, races other suites'
    /// file creations).
    static func umask() -> mode_t {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("Umask:") }
        return line.flatMap { mode_t($0.dropFirst(6).trimmingCharacters(in: .whitespaces), radix: 8) } ?? 0o022
    }
}
