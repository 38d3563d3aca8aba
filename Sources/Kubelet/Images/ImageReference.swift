// Image references as Kubernetes users write them, normalised as containerd and the Docker CLI
// do: `busybox` is `docker.io/library/busybox:latest`, `quay.io/x/y` is `quay.io/x/y:latest`,
// a digest reference (`name@sha256:…`) keeps its digest.

/// A parsed, normalised image reference.
public struct ImageReference: Sendable, Hashable, CustomStringConvertible {
    /// `docker.io/library/busybox`.
    public var repository: String
    /// `latest` (nil when the reference is by digest only).
    public var tag: String?
    /// `sha256:…` for a digest reference.
    public var digest: String?

    /// Parses `text`; nil when it is empty or malformed (spaces, upper-case repository, empty parts).
    public init?(_ text: String) {
        var rest = Substring(text)
        guard !rest.isEmpty, !rest.contains(where: { $0 == " " || $0 == "\t" || $0 == "\n" }) else { return nil }
        if let at = rest.firstIndex(of: "@") {
            let digest = rest[rest.index(after: at)...]
            guard digest.hasPrefix("sha256:"), digest.count == 71, digest.dropFirst(7).allSatisfy(\.isHexDigit) else { return nil }
            self.digest = String(digest)
            rest = rest[..<at]
        }
        // A tag is after the last ":" that follows the last "/" (a registry may have a port).
        let lastSlash = rest.lastIndex(of: "/")
        if let colon = rest.lastIndex(of: ":"), lastSlash.map({ colon > $0 }) ?? true {
            let tag = rest[rest.index(after: colon)...]
            guard !tag.isEmpty, tag.count <= 128, tag.allSatisfy({ $0.isLetter || $0.isNumber || "_.-".contains($0) }) else { return nil }
            self.tag = String(tag)
            rest = rest[..<colon]
        }
        guard !rest.isEmpty else { return nil }
        var components = rest.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard components.allSatisfy({ !$0.isEmpty }) else { return nil }
        let first = components[0]
        let hasRegistry = components.count > 1 && (first.contains(".") || first.contains(":") || first == "localhost")
        if !hasRegistry {
            if components.count == 1 { components.insert("library", at: 0) }
            components.insert("docker.io", at: 0)
        }
        let path = components.dropFirst()
        guard path.allSatisfy({ $0.allSatisfy { $0.isLowercase || $0.isNumber || "._-".contains($0) } }) else { return nil }
        repository = components.joined(separator: "/")
        if tag == nil && digest == nil { tag = "latest" }
    }

    /// `docker.io/library/busybox:latest` (or `…@sha256:…`).
    public var description: String {
        if let digest { return repository + "@" + digest }
        return repository + ":" + (tag ?? "latest")
    }

    /// The short form `docker images` prints: `busybox` for Docker Hub's library images.
    public var familiarRepository: String {
        if repository.hasPrefix("docker.io/library/") { return String(repository.dropFirst("docker.io/library/".count)) }
        if repository.hasPrefix("docker.io/") { return String(repository.dropFirst("docker.io/".count)) }
        return repository
    }
}
