import Foundation

/// A small tmpfs mounted for one test and unmounted (and removed) when the
/// value goes, whatever the test did. Needs root; `available` says whether
/// this machine lets the tests mount one, and the tests that need it say so
/// loudly when it does not.
public final class Tmpfs: @unchecked Sendable {
    public let path: String

    public init(size: String) throws {
        path = FileManager.default.temporaryDirectory.path + "/ballast-tmpfs-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let mounted = "size=\(size),mode=0700".withCString { mount("tmpfs", path, "tmpfs", 0, $0) }
        guard mounted == 0 else {
            let reason = String(cString: strerror(errno))
            rmdir(path)
            throw TmpfsError(reason: "mount -t tmpfs -o size=\(size) tmpfs \(path): \(reason)")
        }
    }

    /// Gives the file system a new size, as an operator who adds space to a full disk would.
    public func resize(to size: String) throws {
        let remounted = "size=\(size),mode=0700".withCString {
            mount("tmpfs", path, "tmpfs", UInt(MS_REMOUNT), $0)
        }
        guard remounted == 0 else {
            throw TmpfsError(reason: "mount -o remount,size=\(size) \(path): \(String(cString: strerror(errno)))")
        }
    }

    deinit {
        umount2(path, 2)  // MNT_DETACH: even if something still has a file open there
        rmdir(path)
    }

    /// Whether a tmpfs can be mounted here (root, and a kernel that lets it); printed once when not.
    public static let available: Bool = {
        do {
            _ = try Tmpfs(size: "64k")
            return true
        } catch {
            print("⚠️  SKIPPED: the disk-full tests need to mount a small tmpfs and cannot (\(error)); run them as root")
            return false
        }
    }()
}

public struct TmpfsError: Error, CustomStringConvertible {
    public let reason: String
    public var description: String { reason }
}

