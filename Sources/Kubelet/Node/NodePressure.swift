// The node's pressure conditions, judged as the kubelet's eviction manager judges them against
// Kubernetes' default hard thresholds: MemoryPressure when memory.available (MemAvailable) is
// under 100Mi; DiskPressure when the file system of the kubelet's root (nodefs) has under 10%
// of its bytes or 5% of its inodes free, or the image store's (imagefs) under 15% of its bytes;
// PIDPressure when fewer than 10% of kernel.pid_max are free (Kubernetes has no default
// there). Nothing is evicted: the conditions say it, the scheduler's users see it.
import Foundation
import HostSystem

struct NodePressure: Equatable {
    var memory: String?
    var disk: String?
    var pids: String?

    /// What is under its threshold now, each with what was measured (nil: fine, or unknown).
    static func measure(rootDirectory: String, imageDirectory: String) -> NodePressure {
        var pressure = NodePressure()
        if let available = memoryAvailable(), available < 100 << 20 {
            pressure.memory = "memory.available \(available >> 20)Mi < 100Mi"
        }
        var disk: [String] = []
        if let root = usage(rootDirectory) {
            if below(root.availableBytes, 0.10, of: root.totalBytes) { disk.append("nodefs.available \(percent(root.availableBytes, root.totalBytes)) < 10%") }
            if root.totalInodes > 0 && below(root.freeInodes, 0.05, of: root.totalInodes) {
                disk.append("nodefs.inodesFree \(percent(root.freeInodes, root.totalInodes)) < 5%")
            }
        }
        if let images = usage(imageDirectory), below(images.availableBytes, 0.15, of: images.totalBytes) {
            disk.append("imagefs.available \(percent(images.availableBytes, images.totalBytes)) < 15%")
        }
        if !disk.isEmpty { pressure.disk = disk.joined(separator: ", ") }
        if let (used, max) = pidUsage(), max > 0, below(max - used, 0.10, of: max) {
            pressure.pids = "pid.available \(max - used) of \(max) < 10%"
        }
        return pressure
    }

    /// Whether `part` is under `share` of `whole` (in floating point: a file system's numbers
    /// are not trusted to leave room for integer arithmetic).
    static func below(_ part: Int64, _ share: Double, of whole: Int64) -> Bool {
        Double(part) < Double(whole) * share
    }

    static func percent(_ part: Int64, _ whole: Int64) -> String {
        whole > 0 ? String(format: "%.1f%%", Double(part) * 100 / Double(whole)) : "?"
    }

    /// MemAvailable of /proc/meminfo, in bytes.
    static func memoryAvailable() -> Int64? {
        guard let text = FileSystem.readVirtualFile("/proc/meminfo") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("MemAvailable:") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 2, let kib = Int64(fields[1]), kib < Int64.max / 1024 else { return nil }
            return kib * 1024
        }
        return nil
    }

    static func usage(_ path: String) -> FileSystemUsage? { try? SystemMounter().usage(of: path) }

    /// Processes (tasks) running and kernel.pid_max.
    static func pidUsage() -> (used: Int64, max: Int64)? {
        guard let maxText = FileSystem.readVirtualFile("/proc/sys/kernel/pid_max"),
              let max = Int64(maxText.trimmingCharacters(in: .whitespacesAndNewlines)),
              let loadavg = FileSystem.readVirtualFile("/proc/loadavg") else { return nil }
        // The fourth field of loadavg is "running/total" scheduling entities (threads).
        let fields = loadavg.split(separator: " ")
        guard fields.count >= 4, let total = fields[3].split(separator: "/").last.flatMap({ Int64($0) }) else { return nil }
        return (total, max)
    }
}
