// The image store keeps what it decoded — `index.json` while the file is the same, manifests
// and configurations by digest — so that a container start does not read and decode them
// again. These tests hold it to seeing every change — two stores over one directory (two
// kubelets of one machine sharing `--image-dir`), one importing and retagging images between
// the other's resolves — and to refusing a blob that no longer matches its digest.
import Foundation
import HostSystem
import Kubelet
import Testing

@Suite("Image store: what it keeps decoded follows the directory")
struct ImageStoreTests {
    /// A `docker save` archive of one image, `name`, whose configuration's Cmd is `command`.
    static func archive(in directory: String, name: String, command: String) async throws -> String {
        let content = directory + "/content-" + command
        let staging = directory + "/staging-" + command
        for path in [content, staging] { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
        try Data("\(command)\n".utf8).write(to: URL(fileURLWithPath: content + "/hello.txt"))
        try await SystemCommand.check(["tar", "--mtime=@0", "--owner=0", "--group=0", "-cf", staging + "/layer.tar", "-C", content, "."])
        let config = #"{"architecture":"amd64","os":"linux","config":{"Cmd":["\#(command)"]},"rootfs":{"type":"layers","diff_ids":[]}}"#
        try Data(config.utf8).write(to: URL(fileURLWithPath: staging + "/config.json"))
        let manifest = #"[{"Config":"config.json","RepoTags":["\#(name)"],"Layers":["layer.tar"]}]"#
        try Data(manifest.utf8).write(to: URL(fileURLWithPath: staging + "/manifest.json"))
        let tar = directory + "/image-" + command + ".tar"
        try await SystemCommand.check(["tar", "-cf", tar, "-C", staging, "manifest.json", "config.json", "layer.tar"])
        return tar
    }

    /// Runs `body` with a new directory, removed after.
    static func inDirectory(_ body: (String) async throws -> Void) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("image-store-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await body(directory)
    }

    @Test("an image imported or retagged by another store over the same directory is resolved as it is now")
    func followsTheIndex() async throws {
        try await Self.inDirectory { directory in
            let reader = try ImageStore(directory: directory + "/images")
            let writer = try ImageStore(directory: directory + "/images")
            let name = "example.com/team/app:v1"

            // Not there yet: the reader has read (and may keep) an index without it.
            await #expect(throws: KubeletError.self) { try await reader.resolve(name) }

            _ = try await writer.importArchive(try await Self.archive(in: directory, name: name, command: "one"))
            let first = try await reader.resolve(name)
            #expect(first.config.config?.Cmd == ["one"])
            #expect(try await reader.resolve(name) == first)

            // The same name, another image: the index is replaced, and the reader sees it.
            _ = try await writer.importArchive(try await Self.archive(in: directory, name: name, command: "two"))
            let second = try await reader.resolve(name)
            #expect(second.config.config?.Cmd == ["two"])
            #expect(second.manifestDigest != first.manifestDigest)
            #expect(try await reader.list().map(\.reference) == [name])
        }
    }

    @Test("a manifest damaged on disk is refused with the import command, not decoded")
    func refusesADamagedBlob() async throws {
        try await Self.inDirectory { directory in
            let store = try ImageStore(directory: directory + "/images")
            let name = "example.com/team/app:v1"
            _ = try await store.importArchive(try await Self.archive(in: directory, name: name, command: "one"))
            let image = try await ImageStore(directory: directory + "/images").resolve(name)
            // The same JSON with a space more: still a valid manifest, no longer its digest.
            let blob = directory + "/images/blobs/sha256/" + image.manifestDigest.dropFirst(7)
            let text = try Data(contentsOf: URL(fileURLWithPath: blob))
            try (text + Data(" ".utf8)).write(to: URL(fileURLWithPath: blob))
            do {
                _ = try await store.resolve(name)
                Issue.record("a damaged manifest was decoded")
            } catch let error as KubeletError {
                #expect(error.message.contains("does not match its digest"))
                #expect(error.message.contains("import the image again"))
            }
        }
    }
}
