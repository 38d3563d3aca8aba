// Crash-safe file steps: a file is made under a temporary name, synced, then renamed into place
// and its directory synced, so after a crash it is either whole or absent. The cloud makes its
// disks' backing files and snapshots with them.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public enum FileSystem {
    /// The whole of a kernel-generated file (/proc, /sys), read to its end. Foundation's
    /// `String(contentsOfFile:)` trusts the size such files report (0) and returns only the
    /// first page: a mount table of more than ~25 entries came back cut short.
    public static func readVirtualFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count > 0 {
                bytes += buffer[..<count]
            } else if count == 0 {
                return String(decoding: bytes, as: UTF8.self)
            } else if errno != EINTR {
                return nil
            }
        }
    }

    /// Creates (or truncates) `path` as a sparse file of `size` bytes, mode 0600, synced.
    public static func createSparseFile(_ path: String, size: Int64) throws(HostSystemError) {
        guard size >= 0 else { throw HostSystemError(.invalidArgument, "cannot size \(path) to \(size) bytes") }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .system("create \(path)") }
        defer { close(fd) }
        guard ftruncate(fd, off_t(size)) == 0 else { throw .system("size \(path) to \(size) bytes") }
        guard fsync(fd) == 0 else { throw .system("sync \(path)") }
    }

    /// Grows `path` to `size` bytes (never shrinks it) and syncs it.
    public static func grow(_ path: String, to size: Int64) throws(HostSystemError) {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .system("open \(path)") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .system("stat \(path)") }
        if Int64(info.st_size) < size {
            guard ftruncate(fd, off_t(size)) == 0 else { throw .system("grow \(path) to \(size) bytes") }
        }
        guard fsync(fd) == 0 else { throw .system("sync \(path)") }
    }

    /// Copies `source` to `destination`, sharing blocks where the file system can (reflink) and
    /// keeping holes otherwise; the copy is synced. On failure nothing is left at `destination`.
    public static func copy(_ source: String, to destination: String) async throws {
        guard FileManager.default.fileExists(atPath: source) else {
            throw HostSystemError(.notFound, "cannot copy \(source): it is missing")
        }
        do {
            try await SystemCommand.check(["cp", "--reflink=auto", "--sparse=always", source, destination])
            let fd = open(destination, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw HostSystemError.system("open \(destination)") }
            defer { close(fd) }
            // Without reflinks this writes the whole copy back (seconds for a large disk): on a
            // thread of its own, not one of the cooperative pool's.
            let failure = await onOwnThread(named: "fsync") { fsync(fd) == 0 ? 0 : errno }
            guard failure == 0 else { throw HostSystemError.system("sync \(destination)", errno: failure) }
        } catch {
            unlink(destination)
            throw error
        }
    }

    /// Renames `temporary` to `path` and syncs the directory.
    public static func commit(_ temporary: String, to path: String) throws(HostSystemError) {
        guard rename(temporary, path) == 0 else { throw .system("rename \(temporary) to \(path)") }
        syncDirectory(of: path)
    }

    /// Removes `path` (gone already is fine) and syncs the directory.
    public static func remove(_ path: String) throws(HostSystemError) {
        guard unlink(path) == 0 || errno == ENOENT else { throw .system("remove \(path)") }
        syncDirectory(of: path)
    }

    /// Syncs the directory holding `path`, so that a rename or unlink in it survives a crash.
    public static func syncDirectory(of path: String) {
        let fd = open((path as NSString).deletingLastPathComponent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }
}
