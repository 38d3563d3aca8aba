// The small files a pod start writes — the sandbox's `hosts` and `resolv.conf`, the pod's
// `etc-hostname`, each container's `config.json` — without an fsync. Foundation's
// `String.write(toFile:…)` and `Data.write(to:)` fsync every file they write, atomically or not
// (swift-foundation's `writeToFileAux`/`writeToFileNoAux`), and on ext4 an fsync is the file's
// data, its inode and a cache flush of the whole disk: 1–10 ms of waiting on this machine, in
// uninterruptible sleep on one of the cooperative pool's threads (two on two cores), during
// which no other pod's work, no informer event and no shim's "started" line is handled. Four
// of them per pod were two thirds of the kubelet's uninterruptible sleep in a burst of 30 pods
// while other work kept the disk busy (docs/kubelet-bench.md, "the wait that is not CPU"). None of these files needs to survive a
// machine crash: the crash ends the pod's namespaces and containers, and the kubelet writes them
// again when it makes the sandbox and the containers anew.
import CKubelet
import Foundation
#if canImport(Glibc)
import Glibc
#endif

package enum UnsyncedFile {
    /// Writes `text` to `path` without syncing it. `atomically`: to a temporary file beside it,
    /// renamed over `path`, so that a reader sees the old or the new contents, never a part
    /// (one new inode, as a plain write). Throws `.runtime` naming the file and the reason.
    package static func write(_ text: String, to path: String, atomically: Bool) throws {
        var text = text
        try text.withUTF8 { try write(UnsafeRawBufferPointer($0), to: path, atomically: atomically) }
    }

    /// Writes `data` to `path` without syncing it (see above).
    package static func write(_ data: Data, to path: String, atomically: Bool) throws {
        try data.withUnsafeBytes { try write($0, to: path, atomically: atomically) }
    }

    /// Writes `bytes` to `path` without syncing it (see above).
    package static func write(_ bytes: [UInt8], to path: String, atomically: Bool) throws {
        try bytes.withUnsafeBytes { try write($0, to: path, atomically: atomically) }
    }

    private static func write(_ bytes: UnsafeRawBufferPointer, to path: String, atomically: Bool) throws {
        let base = bytes.baseAddress?.assumingMemoryBound(to: CChar.self)
        let written = atomically ? ckl_write_file_atomic(path, base, bytes.count, 0) : ckl_write_file(path, base, bytes.count, 0)
        guard written == 0 else { throw failure(path, errno) }
    }

    private static func failure(_ path: String, _ code: Int32) -> KubeletError {
        KubeletError(.runtime, "cannot write \(path): \(String(cString: strerror(code)))")
    }
}
