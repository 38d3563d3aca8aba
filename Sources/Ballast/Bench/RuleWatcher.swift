// When a change is in the kernel: `nft monitor` prints every change of the machine's ruleset as
// the kernel reports it, on netlink, once the transaction that made it has been committed (a
// `# new generation N` line closes each transaction). `bench network` reads it and takes the
// moment a line it expects arrives — the element of a Service's address added to or deleted
// from a proxy's `service-ips` map, a Service's chain rewritten with its new endpoints — as the
// moment the rule is in place in that table. It is the kernel's ruleset, not what a proxy
// meant to do; nft flushes each event to its output at once (checked through a pipe).
import Foundation
import HostSystem

actor RuleWatcher {
    /// The proxies' tables (family ip) a change must reach.
    let tables: [String]
    private var child: ChildProcess?
    private var reader: Task<Void, Never>?
    /// Lines about `tables` seen lately, with when (so that a wait registered after its line
    /// arrived still finds it).
    private var recent: [(line: String, at: ContinuousClock.Instant)] = []
    private var waits: [Int: Wait] = [:]
    private var nextID = 0
    /// `tables` and the probe's.
    private var watched: Set<String>
    private var ended: String?

    private struct Wait {
        /// Table → the start of the line that puts the change in place there.
        var prefixes: [String: String]
        var seen: [String: ContinuousClock.Instant] = [:]
    }

    init(tables: [String]) {
        self.tables = tables
        watched = Set(tables)
    }

    /// Starts `nft monitor` and returns once it is seen to report a change (a probe table
    /// `probe`, added and deleted).
    func start(probe: String) async throws {
        let child: ChildProcess
        do {
            child = try ChildProcess(["nft", "monitor"], standardOutput: .stream, standardError: .sameAsOutput)
        } catch {
            throw BenchFailure("cannot run `nft monitor`: \(error)")
        }
        self.child = child
        watched.insert(probe)
        let output = child.standardOutput!
        reader = Task {
            do {
                for try await line in output.lines {
                    let now = ContinuousClock.now
                    await self.saw(line, at: now)
                }
            } catch {}
            await self.end()
        }
        let id = expect(["add table ip \(probe)"], tables: [probe], since: .now)
        let deadline = ContinuousClock.now + .seconds(10)
        repeat {
            _ = try? await SystemCommand.run(["nft", "add", "table", "ip", probe], timeout: .seconds(10))
            _ = try? await SystemCommand.run(["nft", "delete", "table", "ip", probe], timeout: .seconds(10))
            try await Task.sleep(for: .milliseconds(200))
            if waits[id]?.seen[probe] != nil { break }
        } while ContinuousClock.now < deadline
        guard waits.removeValue(forKey: id)?.seen[probe] != nil else {
            throw BenchFailure("`nft monitor` reported nothing within 10 s\(ended.map { ": \($0)" } ?? "")")
        }
        recent.removeAll()
    }

    func stop() async {
        reader?.cancel()
        if let child { _ = await child.terminate(grace: .seconds(2)) }
        child = nil
    }

    private func end() {
        ended = "nft monitor ended (\(child?.termination.map { "\($0)" } ?? "running"))"
    }

    private func saw(_ line: String, at now: ContinuousClock.Instant) {
        // "<verb> <object> ip <table> …"
        let words = line.split(separator: " ", maxSplits: 4)
        guard words.count >= 4, words[2] == "ip", watched.contains(String(words[3])) else { return }
        recent.append((line, now))
        if recent.count > 20_000 { recent.removeFirst(10_000) }
        for (id, wait) in waits {
            for (table, prefix) in wait.prefixes where wait.seen[table] == nil && line.hasPrefix(prefix) {
                waits[id]!.seen[table] = now
            }
        }
    }

    /// Registers a change made since `since`: in each table, a line starting with
    /// `"<verbObject> ip <table> <rest>"`, arriving at `since` or later.
    func expect(_ verbObject: String, _ rest: String, since: ContinuousClock.Instant) -> Int {
        expect(tables.map { "\(verbObject) ip \($0) \(rest)" }, tables: tables, since: since)
    }

    private func expect(_ prefixes: [String], tables: [String], since: ContinuousClock.Instant) -> Int {
        nextID += 1
        var wait = Wait(prefixes: Dictionary(uniqueKeysWithValues: zip(tables, prefixes)))
        for (line, at) in recent where at >= since {
            for (table, prefix) in wait.prefixes where wait.seen[table] == nil && line.hasPrefix(prefix) { wait.seen[table] = at }
        }
        waits[nextID] = wait
        return nextID
    }

    /// When the change `id` was in every table (the last of them); throws after `timeout`.
    func wait(_ id: Int, timeout: Duration, what: String) async throws -> ContinuousClock.Instant {
        let deadline = ContinuousClock.now + timeout
        while true {
            guard let wait = waits[id] else { throw BenchFailure("no such change \(id)") }
            if wait.seen.count == wait.prefixes.count {
                waits[id] = nil
                return wait.seen.values.max()!
            }
            if let ended { throw BenchFailure("\(what): \(ended)") }
            guard ContinuousClock.now < deadline else {
                waits[id] = nil
                let missing = wait.prefixes.filter { wait.seen[$0.key] == nil }.map(\.value)
                throw BenchFailure("\(what): not in the kernel within \(timeout): no `\(missing.joined(separator: "`, `"))`")
            }
            try await Task.sleep(for: .milliseconds(1))
        }
    }
}
