// Where a benchmark phase's CPU goes, by group of processes, in nanoseconds: each group is a
// cgroup of the cgroup v1 `cpuacct` hierarchy (accounting only: it limits and weighs nothing),
// which a process's children inherit, so that the short-lived ones — `runc` started by a shim,
// or by the benchmark for its floor — are counted where they came from. Containers are counted
// in the cgroups the runtime puts them in (`runc init` from the moment it joins them, then the
// container's own process). Beside the groups, the machine's total from /proc/stat: what no
// group holds (kernel threads, interrupts, other users of the machine) is the rest.
//
// Only where `cpuacct` is a hierarchy of its own: mounted with `cpu` (the common `cpu,cpuacct`),
// a new cgroup would also get a scheduling weight of its own and change what it measures.
import Foundation
import EtcdAPI
#if canImport(Glibc)
import Glibc
#endif

final class CPUAccounting: Sendable {
    /// The cpuacct hierarchy (`/sys/fs/cgroup/cpuacct`).
    let hierarchy: String
    /// This run's cgroup under it (`/ballast/<name>`): one child per group.
    let base: String

    /// Nil (with why) when the machine has no cpuacct hierarchy of its own.
    static func make(name: String, cgroupRoot: String = "/sys/fs/cgroup") -> Result<CPUAccounting, BenchFailure> {
        let hierarchy = cgroupRoot + "/cpuacct"
        guard FileManager.default.fileExists(atPath: hierarchy + "/cpuacct.usage") else {
            return .failure(BenchFailure("no cgroup v1 cpuacct hierarchy at \(hierarchy)"))
        }
        guard !FileManager.default.fileExists(atPath: hierarchy + "/cpu.shares") else {
            return .failure(BenchFailure("cpuacct is mounted together with cpu at \(hierarchy): a group of its own would change the scheduling it measures"))
        }
        return .success(CPUAccounting(hierarchy: hierarchy, base: "/ballast/" + name))
    }

    private init(hierarchy: String, base: String) {
        self.hierarchy = hierarchy
        self.base = base
    }

    /// Moves process `pid` (all its threads) into group `group`, made if missing.
    func join(_ group: String, pid: Int32) throws {
        var current = hierarchy
        for part in (base + "/" + group).split(separator: "/") {
            current += "/" + part
            guard mkdir(current, 0o755) == 0 || errno == EEXIST else {
                throw BenchFailure("cannot make the cgroup \(current): \(String(cString: strerror(errno)))")
            }
        }
        do {
            try "\(pid)\n".write(toFile: current + "/cgroup.procs", atomically: false, encoding: .utf8)
        } catch {
            throw BenchFailure("cannot move process \(pid) into the cgroup \(current): \(error)")
        }
    }

    /// CPU nanoseconds of cgroup `path` of the hierarchy (a group: `base + "/" + name`; a
    /// node's containers: `Cgroups.nodePath`) and everything below it; 0 when it does not exist.
    func usage(path: String) -> UInt64 {
        guard let text = try? String(contentsOfFile: hierarchy + path + "/cpuacct.usage", encoding: .utf8) else { return 0 }
        return UInt64(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    }

    func usage(group: String) -> UInt64 { usage(path: base + "/" + group) }

    /// Moves this process back to the hierarchy's root (the groups' other processes have ended
    /// by now) and removes the groups; the ones left busy, to report.
    @discardableResult
    func remove() -> [String] {
        try? "\(getpid())\n".write(toFile: hierarchy + "/cgroup.procs", atomically: false, encoding: .utf8)
        func remove(_ directory: String) -> [String] {
            var busy: [String] = []
            for child in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
                var info = stat()
                if lstat(directory + "/" + child, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR { busy += remove(directory + "/" + child) }
            }
            if rmdir(directory) != 0 && errno != ENOENT { busy.append(directory) }
            return busy
        }
        return remove(hierarchy + base)
    }
}

/// The CPU of each group at one moment, and the machine's, to subtract.
struct CPUSnapshot: Sendable {
    var groups: [String: UInt64] = [:]
    /// The machine's busy CPU seconds (/proc/stat).
    var machine: Double = 0
    /// The machine's idle seconds with a disk read or write outstanding (/proc/stat iowait).
    var iowait: Double = 0
    /// This process's own CPU seconds (its threads, without the children it waited for).
    var selfSeconds: Double = 0
    /// Per process (by name) CPU seconds, from /proc/<pid>/stat.
    var processes: [String: Double] = [:]
    var at = ContinuousClock.now

    /// Seconds from `self` to `later`.
    func delta(to later: CPUSnapshot) -> CPUDelta {
        var groups: [String: Double] = [:]
        for (name, value) in later.groups { groups[name] = Double(value &- (self.groups[name] ?? 0)) / 1e9 }
        var processes: [String: Double] = [:]
        for (name, value) in later.processes { processes[name] = value - (self.processes[name] ?? 0) }
        return CPUDelta(groups: groups, machine: later.machine - machine, iowait: max(0, later.iowait - iowait),   // proc(5): the counter can go backwards
                         selfSeconds: later.selfSeconds - selfSeconds,
                        processes: processes, elapsed: (later.at - at).seconds)
    }
}

/// CPU seconds spent over a phase.
struct CPUDelta: Sendable {
    var groups: [String: Double]
    var machine: Double
    var iowait: Double
    var selfSeconds: Double
    var processes: [String: Double]
    var elapsed: Double

    /// The mean of two phases of the same work (two bursts of as many containers).
    static func mean(_ a: CPUDelta, _ b: CPUDelta) -> CPUDelta {
        func half(_ x: [String: Double], _ y: [String: Double]) -> [String: Double] {
            x.merging(y, uniquingKeysWith: +).mapValues { $0 / 2 }
        }
        return CPUDelta(groups: half(a.groups, b.groups), machine: (a.machine + b.machine) / 2, iowait: (a.iowait + b.iowait) / 2,
                        selfSeconds: (a.selfSeconds + b.selfSeconds) / 2, processes: half(a.processes, b.processes),
                        elapsed: (a.elapsed + b.elapsed) / 2)
    }
}

extension CPUAccounting {
    /// The groups' usage (and `paths`, named), the machine's, this process's and `processes`' now.
    func sample(paths: [String: String] = [:], processes: [String: Int32] = [:]) -> CPUSnapshot {
        var sample = CPUSnapshot()
        for group in ["bench", "kubelet", "apiserver", "cluster"] { sample.groups[group] = usage(group: group) }
        for (name, path) in paths { sample.groups[name] = usage(path: path) }
        let machine = ProcessInfoReader.machineCPUSeconds()
        sample.machine = machine?.busy ?? 0
        sample.iowait = machine?.iowait ?? 0
        var own = rusage()
        getrusage(RUSAGE_SELF.rawValue, &own)
        sample.selfSeconds = Double(own.ru_utime.tv_sec + own.ru_stime.tv_sec) + Double(own.ru_utime.tv_usec + own.ru_stime.tv_usec) / 1e6
        for (name, pid) in processes { sample.processes[name] = ProcessInfoReader.cpuSeconds(pid: String(pid)) ?? 0 }
        sample.at = .now
        return sample
    }
}
