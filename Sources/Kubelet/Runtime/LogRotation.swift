// Container log rotation, as the kubelet's container log manager does it upstream: a running
// container's log larger than `maxBytes` is renamed to `<log>.<UTC yyyyMMdd-HHmmss>` and its
// shim asked (SIGUSR1) to reopen the path, where it goes on in a new file; of the rotated files
// the newest `maxFiles - 1` are kept. `kubectl logs` reads the current file only (as upstream's);
// a follower (`-f`) goes on into the new one. The rotated files are not compressed (upstream
// gzips all but the newest). The same pass removes the logs of containers' earlier attempts.
import Foundation
import HostSystem
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// How large a container's log may grow, and how many files of it are kept.
public struct LogRotationPolicy: Sendable, Equatable {
    /// The size past which the log is rotated (upstream's `containerLogMaxSize`, 10Mi).
    public var maxBytes: Int64
    /// The files kept per container, the current one included (`containerLogMaxFiles`, 5; at least 2).
    public var maxFiles: Int

    public init(maxBytes: Int64 = 10 << 20, maxFiles: Int = 5) {
        self.maxBytes = maxBytes
        self.maxFiles = maxFiles
    }
}

extension OCIRuntime {
    /// Rotates the log of every running container that has outgrown `policy`; the logs
    /// rotated. A shim that cannot reopen its log (one from before it could: it would die of
    /// SIGUSR1) keeps its file. Blocking file calls: call it off the cooperative pool.
    @discardableResult
    public func rotateLogs(_ policy: LogRotationPolicy, now: Date = Date()) -> [String] {
        var rotated: [String] = []
        for record in records() {
            // The size first: one stat, where the state reads the container's record files.
            guard let size = Self.size(record.logPath), size > policy.maxBytes,
                  case .running(let started) = state(record.id), let shim = started.shimPID,
                  ProcessTable.arguments(of: shim).map({ Self.isShim($0, of: directory(record.id)) }) == true,
                  Self.blocksSIGUSR1(shim) else { continue }
            let target = record.logPath + "." + Self.rotationStamp(now)
            guard !FileManager.default.fileExists(atPath: target) else { continue }
            guard rename(record.logPath, target) == 0 else {
                logger.warning("cannot rotate a container log", metadata: ["log": "\(record.logPath)", "error": "\(String(cString: strerror(errno)))"])
                continue
            }
            Glibc.kill(shim, SIGUSR1)
            rotated.append(record.logPath)
            ContainerLogFiles.removeOldRotations(of: record.logPath, keeping: max(1, policy.maxFiles - 1))
        }
        return rotated
    }

    static func rotationStamp(_ date: Date) -> String {
        var time = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&time, &parts)
        return String(format: "%04d%02d%02d-%02d%02d%02d", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday),
                      Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec))
    }

    static func size(_ path: String) -> Int64? {
        var info = stat()
        return stat(path, &info) == 0 ? Int64(info.st_size) : nil
    }

    /// Whether process `pid` blocks SIGUSR1 (`SigBlk` in /proc/<pid>/status): the shim does,
    /// reading it from its signalfd.
    static func blocksSIGUSR1(_ pid: Int32) -> Bool {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("SigBlk:") }),
              let mask = UInt64(line.dropFirst("SigBlk:".count).trimmingCharacters(in: .whitespaces), radix: 16) else { return false }
        return mask & (1 << (UInt64(SIGUSR1) - 1)) != 0
    }
}

/// The files of containers' logs: `<container>/<attempt>.log` and its rotations `<attempt>.log.<stamp>`.
public enum ContainerLogFiles {
    /// The rotated files of `log` (`<log>.<stamp>`), oldest first.
    public static func rotations(of log: String) -> [String] {
        let directory = (log as NSString).deletingLastPathComponent, prefix = (log as NSString).lastPathComponent + "."
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasPrefix(prefix) }.sorted().map { directory + "/" + $0 }
    }

    static func removeOldRotations(of log: String, keeping count: Int) {
        for old in rotations(of: log).dropLast(count) { unlink(old) }
    }

    /// Removes, under `podLogsDirectory` (`<pod>/<container>/…`), the logs of each container's
    /// attempts but the newest two — the current one and the one `--previous` reads — with
    /// their rotations: a container that restarts for days would otherwise fill the disk with
    /// them (upstream's container garbage collection keeps one dead container per name, and its
    /// log). The files removed.
    @discardableResult
    public static func removeEarlierAttempts(under podLogsDirectory: String) -> [String] {
        let files = FileManager.default
        var removed: [String] = []
        for pod in (try? files.contentsOfDirectory(atPath: podLogsDirectory)) ?? [] {
            for container in (try? files.contentsOfDirectory(atPath: podLogsDirectory + "/" + pod)) ?? [] {
                let directory = podLogsDirectory + "/" + pod + "/" + container
                let names = (try? files.contentsOfDirectory(atPath: directory)) ?? []
                let attempts = names.map { name in (name, attempt(of: name)) }
                let kept = Set(Set(attempts.compactMap(\.1)).sorted().suffix(2))
                for case let (name, attempt?) in attempts where !kept.contains(attempt) && unlink(directory + "/" + name) == 0 {
                    removed.append(directory + "/" + name)
                }
            }
        }
        return removed
    }

    /// 3 for `3.log` and `3.log.20261208-101500`; nil for other names.
    static func attempt(of name: String) -> Int? {
        guard let dot = name.firstIndex(of: "."), name[dot...].hasPrefix(".log"),
              name[dot...] == ".log" || name[dot...].hasPrefix(".log.") else { return nil }
        return Int(name[..<dot])
    }
}
