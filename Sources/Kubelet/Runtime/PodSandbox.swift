// A pod's shared namespaces without an infrastructure container, as CRI-O's pinns does: a UTS
// namespace (hostname = the pod's name), an IPC namespace and — unless the pod uses the host's
// network — a network namespace (its `lo` up) are created on a thread of the kubelet's
// (`ckl_make_pod_namespaces`: unshare(2) there, no helper process) and kept alive by bind mounts of their
// nsfs files under the pod's directory; every container of the pod joins them by path
// (`linux.namespaces[].path`), and the CNI plugins set up the network one by that path
// (CNI_NETNS). Removing the sandbox unmounts the files, which frees the namespaces once no
// container is in them (and with the network namespace its veth).
//
//     <root>/pods/<uid>/sandbox/uts          nsfs bind mount
//     <root>/pods/<uid>/sandbox/ipc          nsfs bind mount
//     <root>/pods/<uid>/sandbox/net          nsfs bind mount (not for hostNetwork pods)
//     <root>/pods/<uid>/sandbox/pid          nsfs bind mount, with a pause process (shareProcessNamespace only: PodSandbox+Pause)
//     <root>/pods/<uid>/sandbox/hosts        /etc/hosts of the pod's containers
//     <root>/pods/<uid>/sandbox/resolv.conf  /etc/resolv.conf of the pod's containers
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
    public var netNamespace: String { directory + "/net" }
    public var hostsFile: String { directory + "/hosts" }
    public var resolvConfFile: String { directory + "/resolv.conf" }

    public init(directory: String) { self.directory = directory }

    /// True when the UTS and IPC namespaces are pinned: each file a mount point of nsfs (asked
    /// of the kernel for these paths, not read from the whole mount table).
    public var isReady: Bool { isReady(network: false) }

    /// True when the namespaces are pinned, the network one too when `network`.
    public func isReady(network: Bool) -> Bool {
        namespaces(network: network).allSatisfy(Self.isPinned)
    }

    /// True when the network namespace is pinned.
    public var hasNetworkNamespace: Bool { Self.isPinned(netNamespace) }

    static func isPinned(_ path: String) -> Bool { SystemMounter().isMountPoint(path) && ckl_is_nsfs(path) == 1 }

    func namespaces(network: Bool) -> [String] { [utsNamespace, ipcNamespace] + (network ? [netNamespace] : []) }

    /// Makes the namespaces (unless pinned already) with `hostname` — a network namespace too
    /// when `network` — and the hosts and resolv.conf files. True when it made new namespaces
    /// (what was set up in earlier ones is gone).
    @discardableResult
    public func create(hostname: String, nodeIP: String, network: Bool = false,
                       resolver: ResolverConfig = ResolverConfig()) async throws -> Bool {
        let hosts = """
            # Kubernetes-managed hosts file (ballast).
            127.0.0.1\tlocalhost
            ::1\tlocalhost ip6-localhost ip6-loopback
            \(nodeIP)\t\(hostname)

            """
        // The files are written once, after the directory is what it will be: every atomic
        // write is a new inode, and inode allocation is a good part of a pod start's CPU on
        // ext4 without a journal (it skips inodes freed in the last minute, one block read each).
        // Not synced (UnsyncedFile): a machine crash ends the namespaces, and the sandbox made
        // again after it writes them again.
        if isReady(network: network) {
            try UnsyncedFile.write(hosts, to: hostsFile, atomically: true)
            try UnsyncedFile.write(resolver.text, to: resolvConfFile, atomically: true)
            return false
        }
        try? await remove()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for path in namespaces(network: network) {
            let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
            if fd >= 0 { close(fd) }
        }
        // On a thread of its own, in this process: `unshare … hostname` cost two processes per pod.
        let made = await onOwnThread(named: "pod namespaces") { () -> String? in
            var step: UnsafePointer<CChar>?
            guard ckl_make_pod_namespaces(hostname, utsNamespace, ipcNamespace, network ? netNamespace : nil, &step) == 0 else {
                return "\(step.map { String(cString: $0) } ?? "?"): \(String(cString: strerror(errno)))"
            }
            return nil
        }
        if let failure = made {
            try? await remove()
            throw KubeletError(.runtime, "cannot create the pod's namespaces (\(failure))")
        }
        do {
            try UnsyncedFile.write(hosts, to: hostsFile, atomically: true)
            try UnsyncedFile.write(resolver.text, to: resolvConfFile, atomically: true)
        } catch {
            try? await remove()
            throw error
        }
        return true
    }

    /// Rewrites the hosts file with the pod's own address (once its network is set up).
    public func writeHosts(hostname: String, ip: String) throws {
        let hosts = """
            # Kubernetes-managed hosts file (ballast).
            127.0.0.1\tlocalhost
            ::1\tlocalhost ip6-localhost ip6-loopback
            \(ip)\t\(hostname)

            """
        try UnsyncedFile.write(hosts, to: hostsFile, atomically: true)
    }

    /// Stops the pause process (if any), unmounts the namespaces and removes the directory.
    public func remove() async throws {
        try await stopPause()
        for path in [utsNamespace, ipcNamespace, netNamespace] {
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
