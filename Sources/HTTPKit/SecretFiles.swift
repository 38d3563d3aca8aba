// Files that hold secrets (private keys, bearer tokens, API keys) and the directories that
// hold them, shared by the API server and the simulated cloud.
//
// - Directories are created 0700 and files 0600 from the start: the mode is given to
//   mkdir/open, never applied afterwards, so there is no moment at which others can read.
// - Files are replaced atomically: a new temporary file (O_EXCL, so a stale one from a crash
//   is never reused with its old mode), written, fsynced, renamed over the old one, and the
//   directory fsynced.
// - A secret that group or others can access is refused when loaded, as ssh refuses such a
//   private key, with the command that fixes it.
import Foundation

import Glibc

public struct SecretFileError: Error, CustomStringConvertible, Equatable {
    public enum Kind: Sendable, Equatable {
        /// Group or others may read or write the file.
        case tooOpen(mode: UInt32)
        /// A system call failed.
        case io(action: String, errno: Int32)
        /// The path is not a regular file.
        case notAFile
    }

    public let path: String
    public let kind: Kind

    public var description: String {
        switch kind {
        case .tooOpen(let mode):
            let octal = String(mode & 0o7777, radix: 8)
            return "\(path) has mode \(String(repeating: "0", count: max(0, 4 - octal.count)) + octal), so group or others can read it; "
                + "a key or token file must be private to its owner: run chmod 600 \(path)"
        case .io(let action, let code):
            return "cannot \(action) \(path): \(String(cString: strerror(code))); check the directory's permissions and free space"
        case .notAFile:
            return "\(path) is not a regular file: give the path of a key or token file"
        }
    }
}

public enum SecretFiles {
    /// Creates `path` (and missing parents) with mode 0700. An existing directory is kept as it is.
    public static func makePrivateDirectory(_ path: String) throws(SecretFileError) {
        var partial = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            partial += "/" + component
            if mkdir(partial, 0o700) != 0 && errno != EEXIST {
                throw SecretFileError(path: partial, kind: .io(action: "create the directory", errno: errno))
            }
        }
    }

    /// Replaces `path` atomically with `contents`, the new file created with `mode` (0600 unless
    /// said otherwise; 0644 for certificates others may read).
    public static func write(_ path: String, _ contents: some Collection<UInt8>, mode: mode_t = 0o600) throws(SecretFileError) {
        let directory = (path as NSString).deletingLastPathComponent
        let temporary = path + ".tmp-\(getpid())"
        unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
        guard fd >= 0 else { throw SecretFileError(path: temporary, kind: .io(action: "create", errno: errno)) }
        let bytes = Array(contents)
        var written = 0
        while written < bytes.count {
            let n = bytes[written...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                let e = errno
                close(fd)
                unlink(temporary)
                throw SecretFileError(path: temporary, kind: .io(action: "write", errno: e))
            }
            written += n
        }
        // umask may have narrowed the mode; never widen it beyond `mode`, but make it exact.
        fchmod(fd, mode)
        guard fsync(fd) == 0 else {
            let e = errno
            close(fd)
            unlink(temporary)
            throw SecretFileError(path: temporary, kind: .io(action: "sync", errno: e))
        }
        close(fd)
        guard rename(temporary, path) == 0 else {
            let e = errno
            unlink(temporary)
            throw SecretFileError(path: path, kind: .io(action: "rename \(temporary) to", errno: e))
        }
        let dfd = open(directory.isEmpty ? "." : directory, O_RDONLY | O_CLOEXEC)
        if dfd >= 0 {
            fsync(dfd)
            close(dfd)
        }
    }

    /// Writes text (UTF-8) as `write(_:_:mode:)` does.
    public static func write(_ path: String, text: String, mode: mode_t = 0o600) throws(SecretFileError) {
        try write(path, Array(text.utf8), mode: mode)
    }

    /// Creates an empty private file at `path` unless one exists (for a database the library
    /// then opens: SQLite keeps the mode of an existing file and gives it to its -wal and -shm).
    public static func createPrivateFile(_ path: String) throws(SecretFileError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        if fd >= 0 {
            close(fd)
            return
        }
        if errno != EEXIST { throw SecretFileError(path: path, kind: .io(action: "create", errno: errno)) }
    }

    /// The contents of the secret at `path`, or nil when there is no such file. Throws when
    /// group or others may access it (mode & 077), or when it cannot be read.
    public static func read(_ path: String) throws(SecretFileError) -> Data? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw SecretFileError(path: path, kind: .io(action: "open", errno: errno))
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw SecretFileError(path: path, kind: .io(action: "inspect", errno: errno)) }
        guard info.st_mode & S_IFMT == S_IFREG else { throw SecretFileError(path: path, kind: .notAFile) }
        if info.st_mode & 0o077 != 0 { throw SecretFileError(path: path, kind: .tooOpen(mode: UInt32(info.st_mode))) }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SecretFileError(path: path, kind: .io(action: "read", errno: errno))
            }
            if n == 0 { break }
            data.append(contentsOf: buffer[..<n])
        }
        return data
    }

    /// The secret at `path` as trimmed UTF-8 text, or nil when there is no such file.
    public static func readText(_ path: String) throws(SecretFileError) -> String? {
        try read(path).map { String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) }
    }
}
