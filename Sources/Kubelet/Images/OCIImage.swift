// The OCI image-spec documents the image store reads and writes (image-layout 1.0, image
// manifest and index v1, image config), and Docker's `docker save` manifest.json.

/// A content descriptor: what a blob is, its digest and size.
public struct OCIDescriptor: Codable, Sendable, Equatable {
    public var mediaType: String
    public var digest: String
    public var size: Int64
    public var annotations: [String: String]?
    public var platform: Platform?

    public struct Platform: Codable, Sendable, Equatable {
        public var architecture: String
        public var os: String
        public var variant: String?
    }

    public init(mediaType: String, digest: String, size: Int64, annotations: [String: String]? = nil) {
        self.mediaType = mediaType
        self.digest = digest
        self.size = size
        self.annotations = annotations
    }
}

/// `index.json` of an image layout, or an image index blob.
public struct OCIIndex: Codable, Sendable, Equatable {
    public var schemaVersion = 2
    public var mediaType: String? = OCIMediaType.index
    public var manifests: [OCIDescriptor] = []
}

/// An image manifest.
public struct OCIManifest: Codable, Sendable, Equatable {
    public var schemaVersion = 2
    public var mediaType: String? = OCIMediaType.manifest
    public var config: OCIDescriptor
    public var layers: [OCIDescriptor]
}

/// An image configuration: the defaults of a container (`config`) and the layers' diff ids.
public struct OCIImageConfig: Codable, Sendable, Equatable {
    public var architecture: String
    public var os: String
    public var created: String?
    public var config: Config?
    public var rootfs: RootFS

    public struct Config: Codable, Sendable, Equatable {
        public var Env: [String]?
        public var Entrypoint: [String]?
        public var Cmd: [String]?
        public var WorkingDir: String?
        public var User: String?
    }

    public struct RootFS: Codable, Sendable, Equatable {
        public var type: String
        public var diff_ids: [String]
    }
}

/// One entry of `docker save`'s manifest.json.
struct DockerSaveEntry: Codable {
    var Config: String
    var RepoTags: [String]?
    var Layers: [String]
}

/// Media types of the OCI and Docker image formats.
public enum OCIMediaType {
    public static let index = "application/vnd.oci.image.index.v1+json"
    public static let manifest = "application/vnd.oci.image.manifest.v1+json"
    public static let config = "application/vnd.oci.image.config.v1+json"
    public static let layer = "application/vnd.oci.image.layer.v1.tar"
    public static let layerGzip = "application/vnd.oci.image.layer.v1.tar+gzip"
    public static let dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
    public static let dockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
    /// The annotation naming an image in an image layout's index.
    public static let refName = "org.opencontainers.image.ref.name"
    /// containerd's (and Docker's) annotation with the full image name.
    public static let containerdName = "io.containerd.image.name"
}
