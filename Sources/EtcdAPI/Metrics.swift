import Foundation
import GRPCWire
import MVCCStore
import NIOConcurrencyHelpers

/// Counts RPCs (the wire server reports every call's end) and renders Prometheus text
/// with etcd's metric names where they exist, plus the process metrics
/// `etcdctl check datascale` reads.
final class Metrics: Sendable {
    private let store: MVCCStore
    private let counters = NIOLockedValueBox<[String: (count: UInt64, failed: UInt64)]>([:])

    init(store: MVCCStore) { self.store = store }

    /// One call ended with `code`; `path` is /package.Service/Method.
    func observe(_ path: String, _ code: GRPCStatus.Code) {
        let name = String(path.dropFirst())
        counters.withLockedValue { c in
            c[name, default: (0, 0)].count += 1
            if code != .ok { c[name, default: (0, 0)].failed += 1 }
        }
    }

    var health: StoreHealth { store.currentHealth }

    func prometheusText() -> String {
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ lines: [String]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for l in lines { out += l + "\n" }
        }
        let stats = store.engineStatistics
        metric("etcd_mvcc_db_total_size_in_bytes", "gauge", "Total size of the underlying database in bytes.",
               ["etcd_mvcc_db_total_size_in_bytes \(stats.diskBytes)"])
        metric("etcd_debugging_mvcc_current_revision", "gauge", "The current revision of the store.",
               ["etcd_debugging_mvcc_current_revision \(store.revision)"])
        metric("etcd_debugging_mvcc_compact_revision", "gauge", "The revision of the last compaction.",
               ["etcd_debugging_mvcc_compact_revision \(store.compactedRevision)"])
        metric("etcd_debugging_mvcc_watcher_total", "gauge", "Total number of watchers.",
               ["etcd_debugging_mvcc_watcher_total \(store.watcherCount)"])
        metric("etcd_server_has_leader", "gauge", "Whether a leader exists (always 1: a single member).", ["etcd_server_has_leader 1"])
        metric("etcd_server_quota_backend_bytes", "gauge", "Current backend storage quota size in bytes.",
               ["etcd_server_quota_backend_bytes \(store.quotaBytes)"])
        metric("ballast_lsm_write_amplification", "gauge", "Engine write amplification.",
               ["ballast_lsm_write_amplification \(stats.writeAmplification)"])
        out += stats.walSyncMetrics
        metric("ballast_lsm_write_stalls_total", "counter", "Times writers stalled on flush or level 0.",
               ["ballast_lsm_write_stalls_total \(stats.stallCount)"])
        let calls = counters.withLockedValue { $0 }
        metric("grpc_server_handled_total", "counter", "Total number of RPCs completed on the server.",
               calls.keys.sorted().map { k in
                   let parts = k.split(separator: "/")
                   let service = parts.first.map(String.init) ?? k
                   let method = parts.dropFirst().first.map(String.init) ?? ""
                   return "grpc_server_handled_total{grpc_method=\"\(method)\",grpc_service=\"\(service)\"} \(calls[k]!.count)"
               })
        let (rss, cpu) = ProcessInfoReader.read()
        metric("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", ["process_resident_memory_bytes \(rss)"])
        metric("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", ["process_cpu_seconds_total \(cpu)"])
        return out
    }
}

/// Reads the process's resident memory and CPU time from /proc.
public enum ProcessInfoReader {
    /// Resident memory of this process and its CPU time so far.
    public static func read() -> (rssBytes: UInt64, cpuSeconds: Double) {
        var rss: UInt64 = 0
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) {
            for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
                let kb = line.split(separator: " ").compactMap { UInt64($0) }.first ?? 0
                rss = kb * 1024
            }
        }
        return (rss, cpuSeconds(pid: "self") ?? 0)
    }

    /// User + system CPU seconds of a process (`"self"` or a pid), from /proc; with
    /// `includingChildren`, also those of its children it waited for (the tools it ran).
    public static func cpuSeconds(pid: String, includingChildren: Bool = false) -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // utime, stime, cutime and cstime are fields 14 to 17 of the full line: 12 to 15 after
        // the command.
        guard fields.count > 15, let u = Double(fields[11]), let s = Double(fields[12]),
              let cu = Double(fields[13]), let cs = Double(fields[14]) else { return nil }
        return (u + s + (includingChildren ? cu + cs : 0)) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// CPU seconds this machine spent busy (every state of /proc/stat's first line but idle
    /// and iowait), and in all.
    public static func machineCPUSeconds() -> (busy: Double, total: Double, iowait: Double)? {
        guard let stat = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
              let line = stat.split(separator: "\n").first, line.hasPrefix("cpu ") else { return nil }
        // user nice system idle iowait irq softirq steal (guest time is already in user).
        let ticks = line.split(separator: " ").dropFirst().prefix(8).compactMap { Double($0) }
        guard ticks.count == 8 else { return nil }
        let hz = Double(sysconf(Int32(_SC_CLK_TCK)))
        let total = ticks.reduce(0, +)
        return ((total - ticks[3] - ticks[4]) / hz, total / hz, ticks[4] / hz)
    }
}
