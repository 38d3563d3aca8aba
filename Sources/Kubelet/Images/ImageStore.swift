// The node's image store: OCI image layouts under `--image-dir`, and each layer unpacked once
// for overlayfs. Nothing is ever pulled over the network: images come from `ballast images
// import` (an OCI layout tar or a `docker save` tar) or, for `busybox`, are built on first use
// from Debian's busybox-static. Several kubelets of one machine may share a directory: writes
// take an exclusive flock on `lock`.
//
//     IMAGE_DIR/
//       oci-layout                 {"imageLayoutVersion": "1.0.0"}
//       index.json                 one manifest descriptor per name (annotation
//                                  org.opencontainers.image.ref.name = docker.io/library/busybox:latest)
//       blobs/sha256/<hex>         manifests, configs, layer tars (verified by digest)
//       layers/<hex of diff id>/   a layer unpacked, whiteouts as overlayfs wants them
//       lock                       flock(2) of writers
import Crypto
import Foundation
import HostSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// An image found in the store, ready to be a container's root.
public struct ResolvedImage: Sendable, Equatable {
    /// The normalised name asked for: `docker.io/library/busybox:latest`.
    public var reference: String
    /// What `status.containerStatuses[].imageID` reports: `docker.io/library/busybox@sha256:…`.
    public var imageID: String
    /// The manifest's digest.
    public var manifestDigest: String
    /// The image configuration (entrypoint, cmd, env, working directory).
    public var config: OCIImageConfig
    /// The layers, bottom first, as their digests and media types.
    public var layers: [OCIDescriptor]
}

/// One line of `ballast images list`.
public struct ImageSummary: Sendable, Equatable {
    public var reference: String
    public var manifestDigest: String
    public var configDigest: String
    public var sizeBytes: Int64
}

public actor ImageStore {
    public let directory: String
    private var blobs: String { directory + "/blobs/sha256" }
    private var layersDirectory: String { directory + "/layers" }
    /// `index.json` as last read, with the file's identity then: every container start resolves
    /// its image, and a `stat` says whether the index changed (it is replaced by a rename, by
    /// this process or another kubelet sharing the directory).
    private var cachedIndex: (stamp: FileStamp, index: OCIIndex)?
    /// Manifests and configurations decoded so far, by digest: a blob's content is its digest,
    /// so what was decoded stays true. Bounded: emptied when it reaches `decodedBlobLimit`.
    private var decodedBlobs: [String: any Sendable] = [:]
    private static let decodedBlobLimit = 512

    /// Opens (creating) the store at `directory`.
    public init(directory: String) throws {
        self.directory = directory
        for path in [directory, directory + "/blobs/sha256", directory + "/layers", directory + "/tmp"] {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        }
        let layout = directory + "/oci-layout"
        if !FileManager.default.fileExists(atPath: layout) {
            try Data(#"{"imageLayoutVersion":"1.0.0"}"#.utf8).write(to: URL(fileURLWithPath: layout), options: .atomic)
        }
    }

    // MARK: Reading

    /// The image `reference` names, building busybox on first use. Throws `.invalidImage`
    /// for a malformed reference and `.imageNotPresent` (with the import command) when the
    /// store does not hold it.
    public func resolve(_ reference: String) async throws -> ResolvedImage {
        guard let parsed = ImageReference(reference) else {
            throw KubeletError(.invalidImage, "Failed to apply default image tag \"\(reference)\": couldn't parse image name \"\(reference)\": invalid reference format")
        }
        if let found = try find(parsed) { return found }
        if parsed.repository == BusyboxImage.repository && (parsed.tag == "latest" || parsed.tag == nil) && parsed.digest == nil {
            try await withWriteLock { try await BusyboxImage.build(into: self) }
            if let found = try find(parsed) { return found }
        }
        throw KubeletError(.imageNotPresent, "Container image \"\(reference)\" is not present with pull policy of Never: Ballast pulls nothing over the network; import it on the node with `ballast images import IMAGE.tar --image-dir \(directory)` (an OCI layout or `docker save` tar)")
    }

    /// Every named image, sorted by name.
    public func list() throws -> [ImageSummary] {
        try readIndex().manifests.compactMap { descriptor -> ImageSummary? in
            guard let name = descriptor.annotations?[OCIMediaType.refName] else { return nil }
            let manifest = try readJSON(OCIManifest.self, digest: descriptor.digest)
            let size = manifest.layers.reduce(manifest.config.size) { $0 + $1.size }
            return ImageSummary(reference: name, manifestDigest: descriptor.digest, configDigest: manifest.config.digest, sizeBytes: size)
        }.sorted { $0.reference < $1.reference }
    }

    private func find(_ reference: ImageReference) throws -> ResolvedImage? {
        let index = try readIndex()
        let descriptor: OCIDescriptor?
        if let digest = reference.digest {
            descriptor = index.manifests.first { $0.digest == digest && ImageReference($0.annotations?[OCIMediaType.refName] ?? "")?.repository == reference.repository }
                ?? index.manifests.first { $0.digest == digest }
        } else {
            descriptor = index.manifests.first { $0.annotations?[OCIMediaType.refName] == reference.description }
        }
        guard let descriptor else { return nil }
        let manifest = try readJSON(OCIManifest.self, digest: descriptor.digest)
        let config = try readJSON(OCIImageConfig.self, digest: manifest.config.digest)
        return ResolvedImage(reference: reference.description, imageID: reference.repository + "@" + descriptor.digest,
                             manifestDigest: descriptor.digest, config: config, layers: manifest.layers)
    }

    /// `index.json`; as last read while its stamp is the same, unless `fresh` (a writer,
    /// under the write lock, changes what is on disk now).
    func readIndex(fresh: Bool = false) throws -> OCIIndex {
        let path = directory + "/index.json"
        let stamp = FileStamp(path)
        if !fresh, let stamp, let cachedIndex, cachedIndex.stamp == stamp { return cachedIndex.index }
        guard let data = FileManager.default.contents(atPath: path) else {
            cachedIndex = nil
            return OCIIndex()
        }
        let index: OCIIndex
        do {
            index = try JSONDecoder().decode(OCIIndex.self, from: data)
        } catch {
            throw KubeletError(.configuration, "\(path) is not an OCI image index (\(error)); remove it and import the images again")
        }
        // Taken before the read: a replacement during it makes the next call read again.
        cachedIndex = stamp.map { ($0, index) }
        return index
    }

    func readJSON<T: Decodable & Sendable>(_ type: T.Type, digest: String) throws -> T {
        if let decoded = decodedBlobs[digest] as? T { return decoded }
        let path = try blobPath(digest)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw KubeletError(.notFound, "blob \(digest) is missing from the image store \(directory); import the image again")
        }
        // Checked once, before it is kept: every later start takes the decoded copy.
        guard Self.sha256(data) == digest else {
            throw KubeletError(.configuration, "blob \(digest) in \(directory) does not match its digest (damaged on disk); import the image again")
        }
        let decoded: T
        do {
            decoded = try JSONDecoder().decode(T.self, from: data)
        } catch {
            throw KubeletError(.configuration, "blob \(digest) in \(directory) is not a valid \(T.self): \(error)")
        }
        if decodedBlobs.count >= Self.decodedBlobLimit { decodedBlobs.removeAll() }
        decodedBlobs[digest] = decoded
        return decoded
    }

    /// The path of blob `digest` ("sha256:<64 hex>").
    func blobPath(_ digest: String) throws -> String {
        guard digest.hasPrefix("sha256:"), digest.count == 71, digest.dropFirst(7).allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else {
            throw KubeletError(.invalidImage, "digest \"\(digest)\" is not sha256:<64 lower-case hex digits>")
        }
        return blobs + "/" + digest.dropFirst(7)
    }

    // MARK: Layers

    /// The unpacked directories of `image`'s layers, top first (overlayfs' lowerdir order),
    /// unpacking those not yet unpacked.
    public func layerDirectories(of image: ResolvedImage) async throws -> [String] {
        var directories: [String] = []
        for layer in image.layers {
            let target = layersDirectory + "/" + layer.digest.dropFirst(7)
            if !FileManager.default.fileExists(atPath: target) {
                let blob = try blobPath(layer.digest)
                try await withWriteLock {
                    if !FileManager.default.fileExists(atPath: target) {
                        try await LayerUnpacker.unpack(blob, into: target, scratch: directory + "/tmp")
                    }
                }
            }
            directories.append(target)
        }
        return directories.reversed()
    }

    // MARK: Writing

    /// Adds a blob from the file at `path` (moved into the store); returns its descriptor.
    func addBlob(file path: String, mediaType: String) throws -> OCIDescriptor {
        let digest = try Self.sha256(file: path)
        let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.int64Value ?? 0
        let target = try blobPath(digest)
        if FileManager.default.fileExists(atPath: target) {
            try? FileManager.default.removeItem(atPath: path)
        } else {
            try FileSystem.commit(path, to: target)
        }
        return OCIDescriptor(mediaType: mediaType, digest: digest, size: size)
    }

    /// Adds a blob holding `data`; returns its descriptor.
    func addBlob(_ data: Data, mediaType: String) throws -> OCIDescriptor {
        let temporary = directory + "/tmp/blob-" + UUID().uuidString
        try data.write(to: URL(fileURLWithPath: temporary))
        return try addBlob(file: temporary, mediaType: mediaType)
    }

    /// Names `manifest` `reference` in the index (replacing what had that name).
    func tag(_ reference: ImageReference, manifest: OCIDescriptor) throws {
        var index = try readIndex(fresh: true)
        index.manifests.removeAll { $0.annotations?[OCIMediaType.refName] == reference.description }
        var descriptor = manifest
        descriptor.mediaType = OCIMediaType.manifest
        descriptor.annotations = [OCIMediaType.refName: reference.description]
        index.manifests.append(descriptor)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let temporary = directory + "/tmp/index-" + UUID().uuidString
        try encoder.encode(index).write(to: URL(fileURLWithPath: temporary))
        try FileSystem.commit(temporary, to: directory + "/index.json")
    }

    /// Runs `body` holding the store's cross-process write lock (flock on `lock`), waiting
    /// for it without blocking a thread.
    func withWriteLock<T>(_ body: () async throws -> T) async throws -> T {
        let fd = open(directory + "/lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw KubeletError(.configuration, "cannot open \(directory)/lock: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let deadline = ContinuousClock.now + .seconds(300)
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR, ContinuousClock.now < deadline else {
                throw KubeletError(.timeout, "the image store \(directory) stayed locked by another process for 300 s")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        defer { flock(fd, LOCK_UN) }
        return try await body()
    }

    /// The `sha256:<hex>` digest of a file, read in 1 MiB pieces.
    static func sha256(file path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw KubeletError(.notFound, "cannot read \(path)")
        }
        defer { try? handle.close() }
        var hasher = SHA256()
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
        return "sha256:" + hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// The `sha256:<hex>` digest of `data`.
    static func sha256(_ data: Data) -> String {
        "sha256:" + SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }
}

/// Which file a path names and when it last changed (device, inode, size, and the modification
/// and status-change times — the kernel sets the latter on every write and rename, and no tool
/// can set it back): a file replaced by a rename, or written in place, has another stamp.
struct FileStamp: Equatable {
    let device: UInt64
    let inode: UInt64
    let size: Int64
    let modifiedSeconds: Int
    let modifiedNanoseconds: Int
    let changedSeconds: Int
    let changedNanoseconds: Int

    /// The stamp of the file at `path`, nil when it cannot be stat'ed.
    init?(_ path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        modifiedSeconds = info.st_mtim.tv_sec
        modifiedNanoseconds = info.st_mtim.tv_nsec
        changedSeconds = info.st_ctim.tv_sec
        changedNanoseconds = info.st_ctim.tv_nsec
    }
}
