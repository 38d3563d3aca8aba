// What the node plugin has staged and published, kept in a JSON file written atomically (temp
// file, fsync, rename, fsync of the directory), so that a restarted plugin knows its volumes and
// reconciles them with the mounts it finds.
import Foundation
import Synchronization
import HostSystem
import Logging
#if canImport(Glibc)
import Glibc
#endif

struct NodeVolume: Codable, Equatable, Sendable {
    var devicePath: String
    var block: Bool
    var fsType: String?
    var mountFlags: [String]
    /// The access mode's raw value.
    var mode: Int
    var stagingPath: String?
    /// Published targets and whether each is read-only.
    var targets: [String: Bool] = [:]
}

final class NodeState: Sendable {
    private let path: String
    /// The records; held while the file is written, so that the file and memory agree.
    private let volumes: Mutex<[String: NodeVolume]>

    /// Loads `directory/node-state.json` (empty when absent).
    init(directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        path = directory + "/node-state.json"
        if let data = FileManager.default.contents(atPath: path) {
            do {
                volumes = Mutex(try JSONDecoder().decode([String: NodeVolume].self, from: data))
            } catch {
                throw CSIError(.internalError, "\(path) is not a node state file (\(error)); move it away to start afresh")
            }
        } else {
            volumes = Mutex([:])
        }
    }

    subscript(volumeID: String) -> NodeVolume? {
        volumes.withLock { $0[volumeID] }
    }

    var all: [String: NodeVolume] { volumes.withLock { $0 } }

    /// Changes one volume's record (nil removes it) and writes the file before returning.
    func update(_ volumeID: String, _ change: (inout NodeVolume?) -> Void) throws {
        try volumes.withLock { volumes in
            var record = volumes[volumeID]
            change(&record)
            var next = volumes
            next[volumeID] = record
            try write(next)
            volumes = next
        }
    }

    /// Drops what the mount table no longer shows (a reboot, an unmount behind our back).
    func reconcile(mounter: any Mounter, logger: Logger) throws {
        for id in all.keys {
            try update(id) { record in
                guard var current = record else { return }
                if !current.block, let staging = current.stagingPath, mounter.mount(at: staging).map({ mounter.mount($0, shows: current.devicePath) }) != true {
                    logger.warning("staged volume is no longer mounted; forgetting it", metadata: ["volume": "\(id)", "path": "\(staging)"])
                    current.stagingPath = nil
                }
                for target in current.targets.keys where mounter.mount(at: target) == nil {
                    logger.warning("published volume is no longer mounted; forgetting it", metadata: ["volume": "\(id)", "path": "\(target)"])
                    current.targets[target] = nil
                }
                record = current.stagingPath == nil && current.targets.isEmpty ? nil : current
            }
        }
    }

    private func write(_ volumes: [String: NodeVolume]) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        let data = try encoder.encode(volumes)
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CSIError(.internalError, "cannot write \(temporary): \(String(cString: strerror(errno)))") }
        let written = data.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == data.count, synced else { throw CSIError(.internalError, "cannot write \(temporary): \(String(cString: strerror(errno)))") }
        guard rename(temporary, path) == 0 else { throw CSIError(.internalError, "cannot rename \(temporary): \(String(cString: strerror(errno)))") }
        let directory = open((path as NSString).deletingLastPathComponent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directory >= 0 {
            fsync(directory)
            close(directory)
        }
    }
}
