// What a container leaves on disk, so that a restarted kubelet knows it: the kubelet writes
// `meta.json` before it starts the shim; the shim (`ballast-shim`, C) writes `state.json` once
// the container runs and `exit.json` once it has ended, through CKubelet's `ckl_write_started`
// and `ckl_write_exit` (the names of these files are CKubelet's too; RecordFilesTests checks
// that what the C writes decodes as `ContainerStarted` and `ContainerExit`). All are written
// atomically (temporary file, rename); `exit.json` durably (fsync of the file and the directory),
// `meta.json` and `state.json` not (a machine crash ends the container they describe).
//
//     <root>/containers/<id>/
//       meta.json      ContainerRecord (kubelet; atomic, not fsynced: OCIRuntime.start)
//       config.json    the OCI bundle's spec (kubelet)
//       rootfs/        overlayfs: image layers + upper/ (kubelet mounts, unmounts)
//       upper/ work/   the container's writable layer
//       state.json     ContainerStarted (shim)
//       exit.json      ContainerExit (shim)
//       pid            the container's init pid (runtime)
//       runtime.log    the runtime's own messages, JSON lines (runtime)
//       shim.log       the shim's messages
import CKubelet
import ClusterAPI
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A container as the kubelet started it.
public struct ContainerRecord: Codable, Sendable, Equatable {
    /// 32 hex digits; also the runtime's container id.
    public var id: String
    public var podUID: String
    public var podNamespace: String
    public var podName: String
    /// The container's name in the pod spec.
    public var name: String
    /// The restart count it was started with (its log is `<attempt>.log`).
    public var attempt: Int
    public var isInit: Bool
    /// The normalised image reference and the image id reported in status.
    public var image: String
    public var imageID: String
    public var logPath: String
    public var cgroupsPath: String
    public var createdAt: Date
    /// A hash of the container's spec, to see that the pod spec asks for something else.
    public var specHash: String
}

/// Written by the shim once the container's process runs (`ckl_write_started`).
public struct ContainerStarted: Codable, Sendable, Equatable {
    public var pid: Int32
    public var startedAt: Date
    /// The shim that owns the container (nil from shims that wrote it to `shim.pid` instead).
    public var shimPID: Int32? = nil

    enum CodingKeys: String, CodingKey {
        case pid, startedAt
        case shimPID = "shimPid"
    }
}

/// Written by the shim once the container has ended or failed to start (`ckl_write_exit`), or
/// by the kubelet for a container whose shim never wrote it.
public struct ContainerExit: Codable, Sendable, Equatable {
    /// The exit status; 128 + the signal when a signal ended it; 128 when it never started.
    public var exitCode: Int32
    public var signal: Int32?
    public var oomKilled: Bool
    public var startedAt: Date?
    public var finishedAt: Date
    /// Why it never started (the runtime's message), for reason `StartError`.
    public var startFailure: String?
}

/// Reading and writing the records.
package enum RecordFiles {
    package static let meta = "meta.json"
    package static let started = CKL_RECORD_STARTED
    package static let exit = CKL_RECORD_EXIT
    /// The shim's pid as shims wrote it before `state.json` carried it (read for those).
    package static let shimPID = CKL_RECORD_SHIM_PID

    /// Writes `value` as JSON to a temporary file beside `path` (one new inode: FileManager's
    /// `createFile` is itself atomic, a second temporary file and rename, and on ext4 without a
    /// journal every new inode is a scan past the recently freed ones), syncs it and renames it
    /// over `path`, then syncs the directory (`ckl_write_file_atomic`, as the shim writes its
    /// records). Not `durable`: neither sync (the rename still makes it atomic for every reader
    /// while the machine runs; a machine crash may lose it).
    package static func write<T: Encodable>(_ value: T, to path: String, durable: Bool = true) throws {
        let data = try JSONValue(encoding: value).jsonBytes
        let failure = data.withUnsafeBytes { bytes -> Int32 in
            ckl_write_file_atomic(path, bytes.baseAddress?.assumingMemoryBound(to: CChar.self), bytes.count, durable ? 1 : 0) == 0 ? 0 : errno
        }
        guard failure == 0 else { throw KubeletError(.runtime, "cannot write \(path): \(String(cString: strerror(failure)))") }
    }

    package static func read<T: Decodable>(_ type: T.Type, from path: String) -> T? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? JSONValue(parsing: data).decode(as: T.self)
    }
}
