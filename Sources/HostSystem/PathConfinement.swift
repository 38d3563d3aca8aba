// Confining paths that come from a request (a CSI staging or target path, a kubelet pod
// directory) to a root directory, by what the file system resolves them to rather than by their
// spelling: a symlink under the root that points outside it is refused, as is a path that is
// itself a symlink. The resolved path is what callers then mount on and unmount, and what the
// mount table shows.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public enum PathConfinement {
    /// The longest path accepted.
    public static let maxLength = 4096

    /// `path` resolved under `root`, or `.invalidArgument` saying why not.
    ///
    /// Rules: `path` is absolute, at most 4096 bytes, without NUL and without "." or ".."
    /// components; the part of it that exists, resolved through symlinks (realpath), stays
    /// strictly under the resolved `root`; the part that does not exist yet is appended as
    /// given (it holds no symlink, since it does not exist); and when the whole path exists, it
    /// is not itself a symlink. Returns the resolved path.
    ///
    /// What was checked can change afterwards (someone with write access under `root` could
    /// swap a directory for a symlink): callers use the returned path at once, and unmount
    /// without following symlinks (`SystemMounter.unmount`).
    public static func resolve(_ path: String, under root: String) throws(HostSystemError) -> String {
        guard path.hasPrefix("/") else { throw invalid("\"\(printable(path))\" is not an absolute path") }
        guard path.utf8.count <= maxLength, !path.utf8.contains(0) else {
            throw invalid("is not a valid path (longer than \(maxLength) bytes, or holding NUL)")
        }
        let components = path.split(separator: "/", omittingEmptySubsequences: true)
        guard !components.contains(".."), !components.contains(".") else {
            throw invalid("\"\(printable(path))\" must not contain . or .. components")
        }
        let lexicalRoot = normalise(root)
        let realRoot = realPath(lexicalRoot) ?? lexicalRoot
        let normalised = "/" + components.joined(separator: "/")
        guard normalised.hasPrefix(lexicalRoot + "/") || normalised.hasPrefix(realRoot + "/") else {
            throw invalid("\"\(printable(path))\" is outside \(lexicalRoot)")
        }
        // The longest prefix that exists, and what is below it.
        var existing = normalised
        var missing: [String] = []
        var info = stat()
        while existing != "/", lstat(existing, &info) != 0 {
            let cut = existing.lastIndex(of: "/")!
            missing.insert(String(existing[existing.index(after: cut)...]), at: 0)
            existing = cut == existing.startIndex ? "/" : String(existing[..<cut])
        }
        if missing.isEmpty, (info.st_mode & S_IFMT) == S_IFLNK {
            throw invalid("\"\(printable(path))\" is a symlink; symlinks are refused here")
        }
        guard let resolvedPrefix = realPath(existing) else {
            throw invalid("\"\(printable(existing))\" cannot be resolved: \(String(cString: strerror(errno)))")
        }
        let resolved = ([resolvedPrefix == "/" ? "" : resolvedPrefix] + missing).joined(separator: "/")
        guard resolved.hasPrefix(realRoot + "/") else {
            throw invalid("\"\(printable(path))\" resolves to \(printable(resolved)), outside \(realRoot): a symlink leads out of it")
        }
        return resolved
    }

    /// True when `path` is `root` or under it, lexically (both normalised).
    public static func isLexically(_ path: String, under root: String) -> Bool {
        let root = normalise(root), path = normalise(path)
        return path == root || path.hasPrefix(root == "/" ? "/" : root + "/")
    }

    static func normalise(_ path: String) -> String {
        "/" + path.split(separator: "/", omittingEmptySubsequences: true).joined(separator: "/")
    }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    private static func invalid(_ message: String) -> HostSystemError { HostSystemError(.invalidArgument, message) }

    /// `text` cut to 200 characters with control characters escaped, safe to echo.
    static func printable(_ text: String) -> String {
        let cut = text.count > 200 ? String(text.prefix(200)) + "…" : text
        return cut.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7f ? $0.escaped(asASCII: true) : String($0) }.joined()
    }
}
