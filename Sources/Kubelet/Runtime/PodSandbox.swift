// A pod's shared namespaces without an infrastructure container, as CRI-O's pinns does: a UTS
// namespace (hostname = the pod's name) and an IPC namespace are created by `unshare` and kept
// alive by bind mounts of their nsfs files under the pod's directory; every container of the
// pod joins them by path (`linux.namespaces[].path`). The network namespace is the node's
// until pod networking exists. Removing the sandbox unmounts the files, which frees the
// namespaces once no container is in them.
//
//     <root>/pods/<uid>/sandbox/uts    nsfs bind mount
//     <root>/pods/<uid>/sandbox/ipc    nsfs bind mount
//     <root>/pods/<uid>/sandbox/hosts  /etc/hosts of the pod's containers
import CKubelet
import Foundation
import HostSystem
#if canImport(Glibc)
import Glibc
#endif

/// The pinned namespaces and files of one pod.
public struct PodSandbox: Sendable, Equatable {
    public let directory: String
    public var utsNamespace: String { directory + "/uts" }
    public var ipcNamespace: String { directory + "/ipc" }
    public var hostsFile: String { directory + "/hosts" }

    public init(directory: String) { self.directory = directory }

    /// True when both namespaces are pinned: each file a mount point of nsfs (asked of the
    /// kernel for these two paths, not read from the whole mount table).
    public var isReady: Bool {
        [utsNamespace, ipcNamespace].allSatisfy { SystemMounter().isMountPoint($0) && ckl_is_nsfs($0) == 1 }
    }

    /// Makes the namespaces (unless pinned already) with `hostname`, and the hosts file.
    public func create(hostname: String, nodeIP: String) async throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let hosts = """
            # Kubernetes-managed hosts file (ballast).
            127.0.0.1\tlocalhost
            ::1\tlocalhost ip6-localhost ip6-loopback
            \(nodeIP)\t\(hostname)

            """
        try hosts.write(toFile: hostsFile, atomically: true, encoding: .utf8)
        if isReady { return }
        try? await remove()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for path in [utsNamespace, ipcNamespace] {
            let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
            if fd >= 0 { close(fd) }
        }
        let result = try await SystemCommand.run(["unshare", "--uts=" + utsNamespace, "--ipc=" + ipcNamespace, "hostname", hostname],
                                                 timeout: .seconds(30))
        guard result.status == 0 else {
            try? await remove()
            throw KubeletError(.runtime, "cannot create the pod's namespaces: unshare failed (\(result.status)): \(result.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        try? hosts.write(toFile: hostsFile, atomically: true, encoding: .utf8)
    }

    /// Unmounts the namespaces and removes the directory.
    public func remove() async throws {
        for path in [utsNamespace, ipcNamespace] {
            var attempts = 0
            while SystemMounter().isMountPoint(path) && attempts < 4 {
                if ckl_unmount(path, 0) != 0 && errno != EINVAL && errno != ENOENT {
                    throw KubeletError(.runtime, "cannot unmount the pod namespace \(path): \(String(cString: strerror(errno)))")
                }
                attempts += 1
            }
        }
        if FileManager.default.fileExists(atPath: directory) {
            try FileManager.default.removeItem(atPath: directory)
        }
    }
}
