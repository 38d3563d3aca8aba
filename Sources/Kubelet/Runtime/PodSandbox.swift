// A pod's shared namespaces without an infrastructure container, as CRI-O's pinns does: a UTS
// namespace (hostname = the pod's name), an IPC namespace and — unless the pod uses the host's
// network — a network namespace (its `lo` up) are created on a thread of the kubelet's
// (`ckl_make_pod_namespaces`: unshare(2) there, no helper process) and kept alive by bind mounts of their
// nsfs files; every container of the pod joins them by path (`linux.namespaces[].path`), and
// the CNI plugins set up the network one by that path (CNI_NETNS). The UTS and IPC pins are in
// the node's namespace holder's mount namespace (NamespaceHolder), out of the host's mount
// table; without a holder (it could not start, or a sandbox made for a benchmark or test) they
// are under the pod's directory. Removing the sandbox unmounts them, which frees the namespaces
// once no container is in them (and with the network namespace its veth).
//
//     /proc/<holder>/root/<uid>/uts          nsfs bind mount in the holder (<uid>/sandbox/uts without one)
//     /proc/<holder>/root/<uid>/ipc          nsfs bind mount in the holder (<uid>/sandbox/ipc without one)
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
    /// The pid of the node's namespace holder that keeps the UTS and IPC pins; nil: they are in
    /// `directory`.
    public let holder: Int32?
    /// The holder's mount namespace as this process enters it (NamespaceHolder.mountNamespace).
    let holderNamespace: String?
    public var utsNamespace: String { pinPath("uts") }
    public var ipcNamespace: String { pinPath("ipc") }
    public var netNamespace: String { directory + "/net" }
    public var hostsFile: String { directory + "/hosts" }
    public var resolvConfFile: String { directory + "/resolv.conf" }

    public init(directory: String) {
        self.directory = directory
        holder = nil
        holderNamespace = nil
    }

    /// A sandbox whose UTS and IPC pins are in `holder`'s namespace (nil: in `directory`).
    public init(directory: String, holder: NamespaceHolder?) {
        self.directory = directory
        let location = holder?.location
        self.holder = location?.pid
        holderNamespace = location?.mountNamespace
    }

    /// The pod's uid: the name of the directory above `sandbox`.
    var podUID: String { ((directory as NSString).deletingLastPathComponent as NSString).lastPathComponent }

    /// The pod's directory in the holder's namespace.
    var holderDirectory: String { "/" + podUID }

    func pinPath(_ kind: String) -> String {
        guard let holder else { return directory + "/" + kind }
        return "/proc/\(holder)/root" + holderDirectory + "/" + kind
    }

    /// True when the UTS and IPC namespaces are pinned: each file a mount point of nsfs (asked
    /// of the kernel for these paths, not read from the whole mount table).
    public var isReady: Bool { isReady(network: false) }

    /// True when the namespaces are pinned, the network one too when `network`.
    public func isReady(network: Bool) -> Bool {
        namespaces(network: network).allSatisfy(Self.isPinned)
    }

    /// True when the network namespace is pinned.
    public var hasNetworkNamespace: Bool { Self.isPinned(netNamespace) }

    /// A file of nsfs is always a mount point (a bind mount of a namespace): what is not pinned
    /// is a plain file of the directory's file system, or nothing.
    static func isPinned(_ path: String) -> Bool { ckl_is_nsfs(path) == 1 }

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
        // The files the pins are mounted on: here, or made in the holder by the C side.
        for path in namespaces(network: network) where holder == nil || path == netNamespace {
            let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
            if fd >= 0 { close(fd) }
        }
        let pinDirectory = holderDirectory
        let holderNamespace = self.holderNamespace
        let (uts, ipc) = holderNamespace != nil ? ("\(pinDirectory)/uts", "\(pinDirectory)/ipc") : (utsNamespace, ipcNamespace)
        // On a thread of its own, in this process: `unshare … hostname` cost two processes per pod.
        let made = await onOwnThread(named: "pod namespaces") { () -> String? in
            var step: UnsafePointer<CChar>?
            guard ckl_make_pod_namespaces(hostname, uts, ipc, network ? netNamespace : nil, holderNamespace,
                                          holderNamespace == nil ? nil : pinDirectory, &step) == 0 else {
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
        if let holderNamespace {
            let directory = holderDirectory
            let failure = await onOwnThread(named: "pod namespaces") { () -> String? in
                var step: UnsafePointer<CChar>?
                guard ckl_unpin_pod_namespaces(holderNamespace, directory, &step) == 0 else {
                    // A holder that is gone took its pins with it.
                    if errno == ENOENT || errno == EBADF { return nil }
                    return "\(step.map { String(cString: $0) } ?? "?"): \(String(cString: strerror(errno)))"
                }
                return nil
            }
            if let failure { throw KubeletError(.runtime, "cannot unpin the pod's namespaces in the namespace holder (\(failure))") }
        }
        // What is pinned under the directory: the network namespace, and the UTS and IPC ones of
        // a sandbox made without a holder (or by a kubelet before the holder).
        for path in ["uts", "ipc", "net"].map({ directory + "/" + $0 }) {
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
