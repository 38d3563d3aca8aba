// The node's cgroups as the OCI runtime lays them out with its cgroupfs driver: a container's
// `linux.cgroupsPath` (`/ballast/<node>/pod<uid>/<container id>`) is a directory of that path in
// every v1 hierarchy under /sys/fs/cgroup (cgroup v1, or the hybrid layout this machine has), or
// in the one unified hierarchy (cgroup v2, when /sys/fs/cgroup/cgroup.controllers exists).
// The runtime makes and removes a container's own directory; the kubelet removes what is left
// of a pod's (and reads the OOM kill counter before the runtime removes a container's).
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The cgroup layout of this machine.
public struct Cgroups: Sendable, Equatable {
    public enum Version: String, Sendable { case v1, v2 }
    public let version: Version
    /// /sys/fs/cgroup (or a test's root).
    public let root: String

    /// Looks at `root` (/sys/fs/cgroup): v2 when it is the unified hierarchy, v1 otherwise.
    public static func detect(root: String = "/sys/fs/cgroup") -> Cgroups {
        let unified = FileManager.default.fileExists(atPath: root + "/cgroup.controllers")
        return Cgroups(version: unified ? .v2 : .v1, root: root)
    }

    /// The path of a container (what `linux.cgroupsPath` says).
    /// cgroup v1 hierarchies beside a v2 one at `unified` (systemd's hybrid layout, this
    /// machine's): runc drives it, crun refuses it.
    public var isHybrid: Bool {
        version == .v1 && FileManager.default.fileExists(atPath: root + "/unified/cgroup.procs")
    }

    public static func containerPath(parent: String, podUID: String, containerID: String) -> String {
        podPath(parent: parent, podUID: podUID) + "/" + containerID
    }

    /// The parent of a pod's containers, under its node's cgroup (`nodePath`).
    public static func podPath(parent: String, podUID: String) -> String {
        "\(parent)/pod\(podUID.replacingOccurrences(of: "-", with: "_"))"
    }

    /// The cgroup of a node's pods: `<root>/<node>` (`--cgroup-root`, `/ballast` by default).
    public static func nodePath(root: String = "/ballast", node: String) -> String {
        (root.hasSuffix("/") ? String(root.dropLast()) : root) + "/" + node
    }

    /// The directories that hold `path`: one per v1 hierarchy, or the one v2 directory.
    public func directories(of path: String) -> [String] {
        switch version {
        case .v2:
            return [root + path]
        case .v1:
            let hierarchies = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
            return hierarchies.sorted().compactMap { name in
                var info = stat()
                let base = root + "/" + name
                guard lstat(base, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else { return nil }
                return base + path
            }
        }
    }

    /// How many times the OOM killer killed a process of the cgroup `path`; nil when unknown.
    public func oomKills(_ path: String) -> Int? {
        let file: String
        switch version {
        case .v2: file = root + path + "/memory.events"
        case .v1: file = root + "/memory" + path + "/memory.oom_control"
        }
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count == 2 && fields[0] == "oom_kill" { return Int(fields[1]) }
        }
        return nil
    }

    /// Whether a memory limit was ever hit in `path` (v1 `memory.failcnt`, v2 `max` events):
    /// with an exit by SIGKILL, what an OOM kill looks like on kernels without `oom_kill`.
    public func memoryLimitHit(_ path: String) -> Bool {
        switch version {
        case .v2:
            guard let text = try? String(contentsOfFile: root + path + "/memory.events", encoding: .utf8) else { return false }
            return text.split(separator: "\n").contains { $0.hasPrefix("max ") && $0 != "max 0" }
        case .v1:
            let text = (try? String(contentsOfFile: root + "/memory" + path + "/memory.failcnt", encoding: .utf8)) ?? "0"
            return (Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) > 0
        }
    }

    /// Removes the directories of `path` and everything below it (children first) in every
    /// hierarchy; a directory with processes left stays (EBUSY), and is reported.
    @discardableResult
    public func remove(_ path: String) -> [String] {
        var busy: [String] = []
        for directory in directories(of: path) where FileManager.default.fileExists(atPath: directory) {
            busy += removeTree(directory)
        }
        return busy
    }

    private func removeTree(_ directory: String) -> [String] {
        var busy: [String] = []
        let children = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for child in children {
            var info = stat()
            let path = directory + "/" + child
            if lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR { busy += removeTree(path) }
        }
        if rmdir(directory) != 0 && errno != ENOENT { busy.append(directory) }
        return busy
    }

    /// The processes in `path` and the cgroups below it (every hierarchy's view, merged).
    public func processes(_ path: String) -> Set<Int32> {
        var pids = Set<Int32>()
        func collect(_ directory: String) {
            let text = (try? String(contentsOfFile: directory + "/cgroup.procs", encoding: .utf8)) ?? ""
            for line in text.split(separator: "\n") { if let pid = Int32(line) { pids.insert(pid) } }
            for child in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
                var info = stat()
                let path = directory + "/" + child
                if lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR { collect(path) }
            }
        }
        for directory in directories(of: path) { collect(directory) }
        return pids
    }

    /// Moves process `pid` into cgroup `path`, made (with its parents) in every hierarchy where
    /// it is missing; a new cpuset cgroup gets its parent's CPUs and memory nodes (cgroup v1
    /// leaves them empty, and an empty cpuset takes no process). What the runtime does for a
    /// container, for the pod's pause process.
    public func join(_ path: String, pid: Int32) throws {
        let parts = path.split(separator: "/").map(String.init)
        for base in directories(of: "") {
            var current = base
            for part in parts {
                let parent = current
                current += "/" + part
                guard !FileManager.default.fileExists(atPath: current) else { continue }
                guard mkdir(current, 0o755) == 0 || errno == EEXIST else {
                    throw KubeletError(.runtime, "cannot make the cgroup \(current): \(String(cString: strerror(errno)))")
                }
                for file in ["cpuset.cpus", "cpuset.mems"] {
                    let own = (try? String(contentsOfFile: current + "/" + file, encoding: .utf8)) ?? "x"
                    guard own.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty,
                          let inherited = try? String(contentsOfFile: parent + "/" + file, encoding: .utf8) else { continue }
                    try? inherited.write(toFile: current + "/" + file, atomically: false, encoding: .utf8)
                }
            }
            do {
                try "\(pid)\n".write(toFile: current + "/cgroup.procs", atomically: false, encoding: .utf8)
            } catch {
                throw KubeletError(.runtime, "cannot move process \(pid) into the cgroup \(current): \(error)")
            }
        }
    }

    /// Whether any directory of `path` exists.
    public func exists(_ path: String) -> Bool {
        directories(of: path).contains { FileManager.default.fileExists(atPath: $0) }
    }
}
