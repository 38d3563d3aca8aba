// The volumes that live on the node alone: emptyDir (a directory, or a tmpfs with
// `medium: Memory` sized by `sizeLimit`), hostPath (with its type checks), and configMap and
// secret (the object's keys as files, written as Kubernetes' AtomicWriter does: a timestamped
// directory, `..data` pointing at it, and each key a symlink through `..data`; secrets on tmpfs).
import APIClient
import CKubelet
import ClusterAPI
import Foundation
import HostSystem
#if canImport(Glibc)
import Glibc
#endif

extension VolumeManager {
    func setUpEmptyDir(pod uid: String, volume: String, source: EmptyDirVolumeSource) async throws -> PodVolume {
        let path = paths.emptyDir(pod: uid, volume: volume)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        if source.medium == "Memory" && !mounter.isMountPoint(path) {
            var options = "mode=0777"
            if let limit = source.sizeLimit, limit.value > 0 { options += ",size=\(limit.value)" }
            guard ckl_mount_fs("tmpfs", path, options, 1) == 0 else {
                throw KubeletError(.volume, "MountVolume.SetUp failed for volume \"\(volume)\" : mount tmpfs at \(path): \(String(cString: strerror(errno)))")
            }
        } else if source.medium != nil && source.medium != "" && source.medium != "Memory" {
            throw KubeletError(.volume, "MountVolume.SetUp failed for volume \"\(volume)\" : emptyDir medium \"\(source.medium ?? "")\" is not supported (\"\" or Memory)")
        }
        chmod(path, 0o777)
        return PodVolume(kind: .path(path), readOnly: false)
    }

    func setUpHostPath(volume: String, source: HostPathVolumeSource) throws -> PodVolume {
        let path = source.path
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        let exists = fm.fileExists(atPath: path, isDirectory: &isDirectory)
        func fail(_ what: String) -> KubeletError {
            KubeletError(.volume, "MountVolume.SetUp failed for volume \"\(volume)\" : hostPath type check failed: \(path) \(what)")
        }
        func kind() -> mode_t {
            var info = stat()
            return stat(path, &info) == 0 ? info.st_mode & S_IFMT : 0
        }
        switch source.type ?? "" {
        case "":
            break
        case "DirectoryOrCreate":
            if !exists { try fm.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755]) }
            else if !isDirectory.boolValue { throw fail("is not a directory") }
        case "Directory":
            guard exists && isDirectory.boolValue else { throw fail("is not a directory") }
        case "FileOrCreate":
            if !exists {
                try fm.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                guard fm.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o644]) else { throw fail("cannot be created") }
            } else if isDirectory.boolValue { throw fail("is not a file") }
        case "File":
            guard exists && !isDirectory.boolValue else { throw fail("is not a file") }
        case "Socket":
            guard kind() == S_IFSOCK else { throw fail("is not a socket file") }
        case "CharDevice":
            guard kind() == S_IFCHR else { throw fail("is not a character device") }
        case "BlockDevice":
            guard kind() == S_IFBLK else { throw fail("is not a block device") }
        case let other:
            throw KubeletError(.volume, "MountVolume.SetUp failed for volume \"\(volume)\" : hostPath type \"\(other)\" is not valid")
        }
        if source.type == nil || source.type == "" {
            guard exists || fm.fileExists(atPath: path) else {
                // Kubernetes leaves a missing path to the runtime, which creates a directory.
                try fm.createDirectory(atPath: path, withIntermediateDirectories: true)
                return PodVolume(kind: .path(path), readOnly: false)
            }
        }
        return PodVolume(kind: .path(path), readOnly: false)
    }

    /// A configMap or secret volume: the object's data written into the volume.
    func setUpKeyed(pod: Pod, volume: String, source json: JSONValue, secret: Bool) async throws -> PodVolume {
        let source: KeyedVolumeSource
        do { source = try json.decode(as: KeyedVolumeSource.self) } catch {
            throw KubeletError(.volume, "MountVolume.SetUp failed for volume \"\(volume)\" : the \(secret ? "secret" : "configMap") source is malformed: \(error)")
        }
        let objectName = (secret ? source.secretName : source.name) ?? ""
        let namespace = pod.metadata.namespace ?? "default"
        let fetched: [String: Data]?
        do {
            fetched = try await KeyedData.fetch(client, namespace: namespace, name: objectName, secret: secret)
        } catch let error as KubeletError {
            throw KubeletError(.volume, "MountVolume.SetUp failed for volume \"\(volume)\" : \(error.message)")
        }
        if fetched == nil && source.optional != true {
            throw KubeletError(.volume, "MountVolume.SetUp failed for volume \"\(volume)\" : \(secret ? "secret" : "configmap") \"\(objectName)\" not found")
        }
        let files = fetched ?? [:]
        var projected: [String: (Data, Int32)] = [:]
        let mode = source.defaultMode ?? 0o644
        if let items = source.items {
            for item in items {
                guard let data = files[item.key] else {
                    if source.optional == true { continue }
                    throw KubeletError(.volume, "MountVolume.SetUp failed for volume \"\(volume)\" : configmap references non-existent config key: \(item.key)")
                }
                projected[item.path] = (data, item.mode ?? mode)
            }
        } else {
            for (key, data) in files { projected[key] = (data, mode) }
        }
        let plugin = secret ? "kubernetes.io~secret" : "kubernetes.io~configmap"
        let path = paths.podVolumes(pod.uid, plugin: plugin) + "/" + volume
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        if secret && !mounter.isMountPoint(path) {
            guard ckl_mount_fs("tmpfs", path, "mode=0755", 1) == 0 else {
                throw KubeletError(.volume, "MountVolume.SetUp failed for volume \"\(volume)\" : mount tmpfs at \(path): \(String(cString: strerror(errno)))")
            }
        }
        try AtomicWriter.write(projected, into: path)
        return PodVolume(kind: .path(path), readOnly: true)
    }

    func tearDownLocal(podUID uid: String) async throws {
        let fm = FileManager.default
        for plugin in ["kubernetes.io~empty-dir", "kubernetes.io~secret", "kubernetes.io~configmap"] {
            let directory = paths.podVolumes(uid, plugin: plugin)
            for volume in (try? fm.contentsOfDirectory(atPath: directory)) ?? [] {
                let path = directory + "/" + volume
                if mounter.isMountPoint(path) {
                    try await mounter.unmountAll(path)
                }
                try? fm.removeItem(atPath: path)
            }
        }
    }
}

/// Kubernetes' AtomicWriter: the files of a projection appear all at once. Each version is a
/// directory `..<timestamp>`; `..data` is a symlink to the current one (replaced by rename);
/// each top-level name is a symlink through `..data`.
enum AtomicWriter {
    static func write(_ files: [String: (Data, Int32)], into directory: String) throws {
        let fm = FileManager.default
        for path in files.keys where path.hasPrefix("/") || path.split(separator: "/").contains("..") || path.hasPrefix("..") {
            throw KubeletError(.volume, "invalid path \"\(path)\" in a volume projection: relative, without \"..\"")
        }
        let dataLink = directory + "/..data"
        if let current = try? fm.destinationOfSymbolicLink(atPath: dataLink) {
            let existing = directory + "/" + current
            let same = files.allSatisfy { fm.contents(atPath: existing + "/" + $0.key) == $0.value.0 }
                && (try? fm.subpathsOfDirectory(atPath: existing).filter { path in
                    var isDirectory: ObjCBool = false
                    return fm.fileExists(atPath: existing + "/" + path, isDirectory: &isDirectory) && !isDirectory.boolValue
                }.count) == files.count
            if same { return }
        }
        let version = "..\(Int(Date().timeIntervalSince1970 * 1000))_\(UUID().uuidString.prefix(6))"
        let versionPath = directory + "/" + version
        try fm.createDirectory(atPath: versionPath, withIntermediateDirectories: true)
        for (path, (data, mode)) in files {
            let full = versionPath + "/" + path
            try fm.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            guard fm.createFile(atPath: full, contents: data, attributes: [.posixPermissions: Int(mode)]) else {
                throw KubeletError(.volume, "cannot write \(full)")
            }
        }
        let newLink = directory + "/..data_tmp"
        try? fm.removeItem(atPath: newLink)
        try fm.createSymbolicLink(atPath: newLink, withDestinationPath: version)
        guard rename(newLink, dataLink) == 0 else { throw KubeletError(.volume, "cannot replace \(dataLink): \(String(cString: strerror(errno)))") }
        for top in Set(files.keys.map { String($0.split(separator: "/").first ?? "") }) where !top.isEmpty {
            let link = directory + "/" + top
            if (try? fm.destinationOfSymbolicLink(atPath: link)) == nil {
                try? fm.removeItem(atPath: link)
                try fm.createSymbolicLink(atPath: link, withDestinationPath: "..data/" + top)
            }
        }
        for entry in (try? fm.contentsOfDirectory(atPath: directory)) ?? [] where entry.hasPrefix("..") && entry != "..data" && entry != version {
            try? fm.removeItem(atPath: directory + "/" + entry)
        }
    }
}
