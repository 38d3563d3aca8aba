// The nft scripts that bring the kernel from one `Ruleset` to another: a full rebuild (one
// atomic transaction that replaces the table: a restarted proxy's first sync) or only the
// changed elements, chains and sets, in an order where every prefix of whole steps is valid,
// so that a long change can go in bounded batches.

extension Ruleset {
    /// One step of a change: lines that belong in the same transaction (a flushed chain and its
    /// new rules).
    public typealias Step = [String]

    /// Replaces the whole table at once: created if missing, deleted, created again with
    /// everything. Established connections keep their conntrack DNAT.
    public func fullScript() -> String {
        let table = "ip \(base.table)"
        var lines = ["add table \(table)", "delete table \(table)"] + baseDefinition()
        for step in Ruleset(base: base, ports: []).changes(to: self) { lines += step }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The steps from `self` (what the kernel holds) to `new` (same base): new sets and chains,
    /// rewritten chains, map elements removed and added, then chains and sets no longer used.
    public func changes(to new: Ruleset) -> [Step] {
        precondition(base == new.base, "a changed base needs fullScript()")
        let table = "ip \(base.table)"
        var steps: [Step] = []
        // What differs is found first and only that is sorted: at 1,000 Services a change
        // touches a handful of the thousands of chains and elements (sorting all their names on
        // every sync was an eighth of a proxy's CPU, its nft processes included, in perf).
        for (name, timeout) in new.affinitySets.filter({ affinitySets[$0.key] != $0.value }).sorted(by: { $0.key < $1.key }) {
            if affinitySets[name] != nil { steps.append(["delete set \(table) \(Self.quoted(name))"]) }
            steps.append(["add set \(table) \(Self.quoted(name)) { type ipv4_addr ; flags dynamic,timeout ; timeout \(timeout)s ; }"])
        }
        // Endpoint chains first: service chains jump to them.
        let order = { (a: String, b: String) -> Bool in (a.hasPrefix("ep-") ? 0 : 1, a) < (b.hasPrefix("ep-") ? 0 : 1, b) }
        for (name, rules) in new.chains.filter({ chains[$0.key] != $0.value }).sorted(by: { order($0.key, $1.key) }) {
            var step = [chains[name] == nil ? "add chain \(table) \(Self.quoted(name))" : "flush chain \(table) \(Self.quoted(name))"]
            step += rules.map { "add rule \(table) \(Self.quoted(name)) \($0)" }
            steps.append(step)
        }
        for map in Self.mapNames {
            let old = maps[map] ?? [:], wanted = new.maps[map] ?? [:]
            for (key, _) in old.filter({ wanted[$0.key] != $0.value }).sorted(by: { $0.key < $1.key }) {
                steps.append(["delete element \(table) \(map) { \(key) }"])
            }
            for (key, verdict) in wanted.filter({ old[$0.key] != $0.value }).sorted(by: { $0.key < $1.key }) {
                steps.append(["add element \(table) \(map) { \(key) : \(verdict) }"])
            }
        }
        // Service chains first now: they are what still jumps to the endpoint chains.
        for name in chains.keys.filter({ new.chains[$0] == nil }).sorted(by: { order($1, $0) }) {
            steps.append(["flush chain \(table) \(Self.quoted(name))", "delete chain \(table) \(Self.quoted(name))"])
        }
        for name in affinitySets.keys.filter({ new.affinitySets[$0] == nil }).sorted() {
            steps.append(["delete set \(table) \(Self.quoted(name))"])
        }
        return steps
    }

    /// `steps` as scripts of at most `maxLines` lines each (a step is never split).
    public static func batches(_ steps: [Step], maxLines: Int) -> [String] {
        var scripts: [String] = [], current: [String] = []
        for step in steps {
            if !current.isEmpty, current.count + step.count > maxLines {
                scripts.append(current.joined(separator: "\n") + "\n")
                current = []
            }
            current += step
        }
        if !current.isEmpty { scripts.append(current.joined(separator: "\n") + "\n") }
        return scripts
    }
}
