// Unpacks an image layer (a tar, compressed or not) into a directory that overlayfs can use
// as a lower layer: the OCI whiteouts become overlayfs' — `.wh.NAME` a character device 0/0
// named NAME, `.wh..wh..opq` the `trusted.overlay.opaque` attribute on its directory. The
// directory appears whole or not at all (unpacked beside it, then renamed).
import CKubelet
import Foundation
import HostSystem
#if canImport(Glibc)
import Glibc
#endif

enum LayerUnpacker {
    static let whiteoutPrefix = ".wh."
    static let opaqueMarker = ".wh..wh..opq"

    static func unpack(_ blob: String, into target: String, scratch: String) async throws {
        let temporary = scratch + "/layer-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: temporary, withIntermediateDirectories: true)
        do {
            // GNU tar recognises gzip, zstd and xz archives by their signature when reading a file.
            try await SystemCommand.check(["tar", "-x", "--numeric-owner", "--same-permissions", "--no-overwrite-dir",
                                           "-f", blob, "-C", temporary], timeout: .seconds(600))
            try convertWhiteouts(in: temporary)
            try FileSystem.commit(temporary, to: target)
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw KubeletError(.runtime, "cannot unpack layer \(blob): \(error)", cause: error)
        }
    }

    /// Replaces OCI whiteout files under `root` with overlayfs whiteouts.
    static func convertWhiteouts(in root: String) throws {
        guard let walker = FileManager.default.enumerator(atPath: root) else { return }
        var found: [String] = []
        while let relative = walker.nextObject() as? String {
            let name = (relative as NSString).lastPathComponent
            if name.hasPrefix(whiteoutPrefix) { found.append(relative) }
        }
        for relative in found {
            let path = root + "/" + relative
            let directory = (path as NSString).deletingLastPathComponent
            let name = (path as NSString).lastPathComponent
            unlink(path)
            if name == opaqueMarker {
                guard ckl_make_opaque(directory) == 0 else {
                    throw KubeletError(.runtime, "cannot mark \(directory) opaque: \(String(cString: strerror(errno)))")
                }
            } else {
                let hidden = directory + "/" + name.dropFirst(whiteoutPrefix.count)
                guard ckl_make_whiteout(hidden) == 0 else {
                    throw KubeletError(.runtime, "cannot make the whiteout \(hidden): \(String(cString: strerror(errno)))")
                }
            }
        }
    }
}
