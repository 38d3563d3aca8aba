// The machine's processes by their command lines (/proc/<pid>/cmdline): how the kubelet finds
// the shims of containers it adopted, `ballast up`/`down` the processes of a cluster, and tests
// what a component left running.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public enum ProcessTable {
    /// The arguments of process `pid`; nil when it is gone (or is a kernel thread).
    public static func arguments(of pid: Int32) -> [String]? {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"), !data.isEmpty else { return nil }
        return data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Every process but this one whose arguments satisfy `matches`.
    public static func pids(where matches: ([String]) -> Bool) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry in
            guard let pid = Int32(entry), pid != getpid(), let arguments = arguments(of: pid), matches(arguments) else { return nil }
            return pid
        }
    }
}
