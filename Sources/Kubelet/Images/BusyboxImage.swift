// The `busybox` image, built on the node from Debian's busybox-static (`/bin/busybox`, a
// static binary): one layer with the binary, a symlink per applet in /bin, and the few files
// an image has (/etc/passwd, /etc/group, /tmp, /root). Tagged `busybox:latest` and
// `busybox:<version>`. The layer is reproducible: sorted names, mtime 0, owner root.
import Foundation
import HostSystem

enum BusyboxImage {
    static let repository = "docker.io/library/busybox"
    /// Where Debian's busybox-static puts the binary.
    static let binary = "/bin/busybox"
    static let path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    /// Builds the image into `store` unless it is there already (call with the write lock held).
    static func build(into store: ImageStore) async throws {
        guard let latest = ImageReference(repository + ":latest") else { return }
        if try await store.list().contains(where: { $0.reference == latest.description }) { return }
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw KubeletError(.imageNotPresent, "Container image \"busybox\" is not present: it is built from Debian's busybox-static, and \(binary) is missing; run `make deps` (apt-get install busybox-static) or import a busybox image with `ballast images import`")
        }
        let scratch = store.directory + "/tmp/busybox-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let root = scratch + "/rootfs"
        let fm = FileManager.default
        for directory in ["bin", "etc", "tmp", "root", "var", "home", "usr/bin", "usr/sbin", "dev", "proc", "sys"] {
            try fm.createDirectory(atPath: root + "/" + directory, withIntermediateDirectories: true)
        }
        chmod(root + "/tmp", 0o1777)
        chmod(root + "/root", 0o700)
        try fm.copyItem(atPath: binary, toPath: root + "/bin/busybox")
        let applets = try await SystemCommand.check([binary, "--list"]).split(separator: "\n").map(String.init)
        for applet in applets where applet != "busybox" && !applet.contains("/") && !applet.isEmpty {
            try fm.createSymbolicLink(atPath: root + "/bin/" + applet, withDestinationPath: "busybox")
        }
        try "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"
            .write(toFile: root + "/etc/passwd", atomically: true, encoding: .utf8)
        try "root:x:0:\nnobody:x:65534:\n".write(toFile: root + "/etc/group", atomically: true, encoding: .utf8)
        let layerTar = scratch + "/layer.tar"
        try await SystemCommand.check(["tar", "--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner",
                                       "-cf", layerTar, "-C", root, "."])
        let layer = try await store.addBlob(file: layerTar, mediaType: OCIMediaType.layer)
        let config = OCIImageConfig(architecture: Platform.architecture, os: "linux", created: "1970-01-01T00:00:00Z",
                                    config: .init(Env: ["PATH=" + path], Entrypoint: nil, Cmd: ["sh"], WorkingDir: nil, User: nil),
                                    rootfs: .init(type: "layers", diff_ids: [layer.digest]))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let configBlob = try await store.addBlob(try encoder.encode(config), mediaType: OCIMediaType.config)
        let manifest = OCIManifest(config: configBlob, layers: [layer])
        let manifestBlob = try await store.addBlob(try encoder.encode(manifest), mediaType: OCIMediaType.manifest)
        try await store.tag(latest, manifest: manifestBlob)
        let banner = (try? await SystemCommand.run([binary])).map { $0.stdout + $0.stderr } ?? ""
        if let version = banner.split(separator: " ").first(where: { $0.hasPrefix("v") && $0.dropFirst().first?.isNumber == true }),
           let versioned = ImageReference(repository + ":" + version.dropFirst()) {
            try await store.tag(versioned, manifest: manifestBlob)
        }
    }
}

/// This machine as the OCI image spec names platforms.
enum Platform {
    static var architecture: String {
        var info = utsname()
        uname(&info)
        let machine = withUnsafeBytes(of: &info.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        switch machine {
        case "x86_64": return "amd64"
        case "aarch64": return "arm64"
        default: return machine
        }
    }
}
