import Foundation

/// The resident memory of a process (this one unless `pid` is given), from /proc/<pid>/status;
/// 0 when it cannot be read.
///
/// Suites that measure this process's memory have "MemoryBound" in their names: `make test`
/// runs them after the others, each in a test process of its own, so that no other test's
/// allocations count.
public func residentBytes(pid: pid_t? = nil) -> Int {
    let path = pid.map { "/proc/\($0)/status" } ?? "/proc/self/status"
    guard let status = try? String(contentsOfFile: path, encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return (line.split(separator: " ").compactMap { Int($0) }.first ?? 0) * 1024
    }
    return 0
}
