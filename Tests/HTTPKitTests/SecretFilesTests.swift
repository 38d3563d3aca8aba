import Foundation
import HTTPKit
import Testing

@Suite struct SecretFilesTests {
    func mode(_ path: String) throws -> Int {
        try #require(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
    }

    @Test func secretsAreCreatedPrivateAndOpenOnesRefused() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("secrets-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try SecretFiles.makePrivateDirectory(root + "/a/b")
        #expect(try mode(root + "/a") == 0o700 && mode(root + "/a/b") == 0o700)
        let key = root + "/a/b/admin.key"
        // A stale temporary file from a crash, world-readable: never reused with its mode.
        FileManager.default.createFile(atPath: key + ".tmp-\(getpid())", contents: Data("old".utf8), attributes: [.posixPermissions: 0o644])
        try SecretFiles.write(key, text: "secret\n")
        #expect(try mode(key) == 0o600)
        #expect(try SecretFiles.readText(key) == "secret")
        #expect(try SecretFiles.readText(root + "/missing") == nil)
        try FileManager.default.setAttributes([.posixPermissions: 0o640], ofItemAtPath: key)
        #expect { try SecretFiles.read(key) } throws: { error in
            let text = "\(error)"
            return text.contains("mode 0640") && text.contains("chmod 600 \(key)")
        }
        try SecretFiles.createPrivateFile(root + "/a/db")
        #expect(try mode(root + "/a/db") == 0o600)
        try SecretFiles.createPrivateFile(root + "/a/db")  // an existing file is kept
    }
}
