// `ballast images import FILE`: an OCI image layout in a tar (what `docker buildx --output
// type=oci`, `skopeo copy … oci-archive:`, and `docker save` from Docker 25 on write), or a
// classic `docker save` tar (manifest.json, a config file and a layer.tar per layer). Every
// blob is verified against its digest before it is stored; an image index (several platforms)
// contributes the manifest of this machine's platform.
import Foundation
import HostSystem

extension ImageStore {
    /// Imports every image of the archive at `path`; returns their names.
    public func importArchive(_ path: String) async throws -> [String] {
        guard FileManager.default.fileExists(atPath: path) else {
            throw KubeletError(.notFound, "\(path) does not exist: give an OCI layout tar or a `docker save` tar")
        }
        let scratch = directory + "/tmp/import-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        try await SystemCommand.check(["tar", "-x", "--no-same-owner", "-f", path, "-C", scratch], timeout: .seconds(600))
        return try await withWriteLock {
            if FileManager.default.fileExists(atPath: scratch + "/index.json") {
                return try await importLayout(scratch, archive: path)
            }
            if FileManager.default.fileExists(atPath: scratch + "/manifest.json") {
                return try await importDockerSave(scratch, archive: path)
            }
            throw KubeletError(.invalidImage, "\(path) is neither an OCI image layout (no index.json) nor a `docker save` archive (no manifest.json)")
        }
    }

    private func importLayout(_ root: String, archive: String) async throws -> [String] {
        let index = try decode(OCIIndex.self, root + "/index.json")
        var names: [String] = []
        for entry in index.manifests {
            guard let manifestDescriptor = try platformManifest(entry, root: root) else { continue }
            let manifest = try decode(OCIManifest.self, try layoutBlob(root, manifestDescriptor))
            for blob in [manifest.config] + manifest.layers {
                _ = try importBlob(try layoutBlob(root, blob), expected: blob)
            }
            let stored = try importBlob(try layoutBlob(root, manifestDescriptor), expected: manifestDescriptor)
            let annotated = entry.annotations?[OCIMediaType.containerdName] ?? entry.annotations?[OCIMediaType.refName]
            guard let name = annotated, let reference = ImageReference(name.contains(":") || name.contains("/") ? name : "imported:" + name) else {
                throw KubeletError(.invalidImage, "\(archive): manifest \(entry.digest) has no image name (annotation \(OCIMediaType.refName) or \(OCIMediaType.containerdName))")
            }
            try tag(reference, manifest: stored)
            names.append(reference.description)
        }
        guard !names.isEmpty else { throw KubeletError(.invalidImage, "\(archive) holds no image for linux/\(Platform.architecture)") }
        return names
    }

    /// The manifest of `descriptor`, or of this platform when it is an index.
    private func platformManifest(_ descriptor: OCIDescriptor, root: String) throws -> OCIDescriptor? {
        switch descriptor.mediaType {
        case OCIMediaType.manifest, OCIMediaType.dockerManifest:
            return descriptor
        case OCIMediaType.index, OCIMediaType.dockerManifestList:
            let nested = try decode(OCIIndex.self, try layoutBlob(root, descriptor))
            guard let mine = nested.manifests.first(where: { $0.platform?.os == "linux" && $0.platform?.architecture == Platform.architecture }) else {
                return nil
            }
            var found = try platformManifest(mine, root: root)
            found?.annotations = descriptor.annotations
            return found
        default:
            return nil
        }
    }

    private func importDockerSave(_ root: String, archive: String) async throws -> [String] {
        let entries = try decode([DockerSaveEntry].self, root + "/manifest.json")
        var names: [String] = []
        for entry in entries {
            let configPath = try confined(root, entry.Config)
            let configDigest = try Self.sha256(file: configPath)
            let config = try addBlobCopy(configPath, mediaType: OCIMediaType.config)
            var layers: [OCIDescriptor] = []
            for layer in entry.Layers {
                layers.append(try addBlobCopy(try confined(root, layer), mediaType: OCIMediaType.layer))
            }
            let manifest = OCIManifest(config: config, layers: layers)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let stored = try addBlob(try encoder.encode(manifest), mediaType: OCIMediaType.manifest)
            let tags = entry.RepoTags ?? []
            if tags.isEmpty, let reference = ImageReference("imported:" + configDigest.dropFirst(7).prefix(12)) {
                try tag(reference, manifest: stored)
                names.append(reference.description)
            }
            for name in tags {
                guard let reference = ImageReference(name) else { throw KubeletError(.invalidImage, "\(archive): RepoTag \"\(name)\" is not an image name") }
                try tag(reference, manifest: stored)
                names.append(reference.description)
            }
        }
        return names
    }

    /// Copies the blob at `path` into the store after checking its digest and size.
    private func importBlob(_ path: String, expected: OCIDescriptor) throws -> OCIDescriptor {
        let digest = try Self.sha256(file: path)
        guard digest == expected.digest else {
            throw KubeletError(.invalidImage, "blob \(expected.digest) does not match its content (\(digest)): the archive is damaged")
        }
        var stored = try addBlobCopy(path, mediaType: expected.mediaType)
        stored.annotations = expected.annotations
        return stored
    }

    private func addBlobCopy(_ path: String, mediaType: String) throws -> OCIDescriptor {
        let temporary = directory + "/tmp/blob-" + UUID().uuidString
        try FileManager.default.copyItem(atPath: path, toPath: temporary)
        return try addBlob(file: temporary, mediaType: mediaType)
    }

    private func layoutBlob(_ root: String, _ descriptor: OCIDescriptor) throws -> String {
        _ = try blobPath(descriptor.digest)
        return root + "/blobs/sha256/" + descriptor.digest.dropFirst(7)
    }

    /// `relative` inside `root`: no absolute paths or `..` from an archive's manifest.
    private func confined(_ root: String, _ relative: String) throws -> String {
        guard !relative.hasPrefix("/"), !relative.split(separator: "/").contains("..") else {
            throw KubeletError(.invalidImage, "the archive names \"\(relative)\", outside the archive")
        }
        return root + "/" + relative
    }

    private func decode<T: Decodable>(_ type: T.Type, _ path: String) throws -> T {
        guard let data = FileManager.default.contents(atPath: path) else { throw KubeletError(.invalidImage, "\(path) is missing from the archive") }
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch {
            throw KubeletError(.invalidImage, "\((path as NSString).lastPathComponent) in the archive is not valid: \(error)")
        }
    }
}
