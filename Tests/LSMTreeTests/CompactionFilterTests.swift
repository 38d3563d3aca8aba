import Testing
@testable import LSMTree
import Primitives

/// Drops every key that starts with "dead/".
struct DeadPrefixFilter: CompactionFilter {
    func shouldDrop(key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) -> Bool {
        key.starts(with: "dead/".utf8)
    }
}

/// The contract, read from Compaction.swift's EntryFilter:
///  - the filter is asked only about the newest version of a key in the compaction input, only
///    when it is a value (not a tombstone) and only when its sequence is <= the oldest open
///    snapshot (or, with no snapshot, <= the last sequence), i.e. when every open snapshot sees it;
///  - a dropped key loses its older versions too; above the bottom it becomes a tombstone so
///    that a deeper version stays hidden;
///  - so a snapshot taken BEFORE a write protects that write from the filter, and a snapshot
///    taken AFTER it does not: the filtered key disappears from that snapshot's view as well.
@Suite struct CompactionFilterTests {
    func options() -> LSMOptions {
        var o = tinyOptions()
        o.compactionFilter = DeadPrefixFilter()
        return o
    }

    func write(_ db: LSMTree, _ prefix: String, _ range: Range<Int>, _ tag: String = "v") throws {
        for i in range { try db.put(bytes("\(prefix)\(String(format: "%04d", i))"), bytes("\(tag)\(i)")) }
    }

    @Test func filterDropsDeadKeysOnCompactRange() throws {
        let dir = TempDir("filter")
        // No compaction of its own before compactRange: the writes fill about one memtable, and
        // a background compaction of two flushed tables would filter before the check below.
        var quiet = options()
        quiet.level0CompactionTrigger = 8
        quiet.level0SlowdownTrigger = 16
        quiet.level0StopTrigger = 24
        let db = try LSMTree.open(path: dir.path, options: quiet)
        try write(db, "dead/", 0..<300, "old")
        try write(db, "live/", 0..<300)
        try write(db, "dead/", 0..<300, "new")       // a second version: both must go
        try write(db, "deadline/", 0..<50)           // not the prefix
        try db.flush()
        // Flushes do not filter.
        #expect(string(try db.get(bytes("dead/0007"))) == "new7")
        try db.compactRange()
        for i in 0..<300 {
            #expect(try db.get(bytes("dead/\(String(format: "%04d", i))")) == nil)
            #expect(string(try db.get(bytes("live/\(String(format: "%04d", i))"))) == "v\(i)")
        }
        let all = try db.scan()
        #expect(!all.contains { $0.0.hasPrefix("dead/") })
        #expect(all.count == 350)
        #expect(try db.scan(reverse: true).count == 350)
        let stats = db.statistics
        #expect(stats.liveEntryBytes < UInt64(350 * 20), "the dead entries are gone from the tables, not only hidden")
        try db.close()
        // And they stay gone after a reopen.
        let again = try LSMTree.open(path: dir.path, options: options())
        #expect(try again.get(bytes("dead/0001")) == nil)
        #expect(try again.scan().count == 350)
        try again.close()
    }

    @Test func writesNewerThanEverySnapshotAreFilteredAtOnce() throws {
        let dir = TempDir("filter-snap-before")
        let db = try LSMTree.open(path: dir.path, options: options())
        try write(db, "live/", 0..<100)
        let snap = db.snapshot()
        try write(db, "dead/", 0..<100)
        try db.compactRange()
        // No snapshot can see the dead keys (they are newer than all of them): filtered now.
        #expect(try db.get(bytes("dead/0042")) == nil)
        #expect(try db.get(bytes("dead/0042"), snapshot: snap) == nil, "the snapshot predates the write")
        #expect(try db.scan().count == 100)
        #expect(try db.scan(snapshot: snap).count == 100)
        withExtendedLifetime(snap) {}
        try db.close()
    }

    @Test func snapshotKeepsWhatItSeesUntilReleased() throws {
        let dir = TempDir("filter-snap-after")
        let db = try LSMTree.open(path: dir.path, options: options())
        try write(db, "dead/", 0..<100)
        try write(db, "live/", 0..<100)
        var snap: Snapshot? = db.snapshot()
        #expect(string(try db.get(bytes("dead/0042"), snapshot: snap)) == "v42")
        try db.compactRange()
        // The snapshot can see the dead keys, so the filter is not asked about them yet.
        #expect(string(try db.get(bytes("dead/0042"), snapshot: snap)) == "v42", "the filter removed data a snapshot could see")
        #expect(try db.scan(snapshot: snap).count == 200)
        snap = nil
        try db.compactRange()
        #expect(try db.get(bytes("dead/0042")) == nil)
        #expect(try db.scan().count == 100)
        try db.close()
    }

    @Test func filteredNewerVersionHidesTheOneASnapshotKeeps() throws {
        // dead/x written before the snapshot, overwritten after it: the newer version is invisible to
        // the snapshot, so the filter removes it — as a tombstone, because the snapshot still needs
        // the older version and current readers must not see that one come back.
        let dir = TempDir("filter-versions")
        let db = try LSMTree.open(path: dir.path, options: options())
        try write(db, "dead/", 0..<50, "old")
        let snap = db.snapshot()
        try write(db, "dead/", 0..<50, "new")
        try db.compactRange()
        #expect(try db.get(bytes("dead/0003")) == nil)
        #expect(string(try db.get(bytes("dead/0003"), snapshot: snap)) == "old3")
        withExtendedLifetime(snap) {}
        try db.close()
    }

    // MARK: EntryFilter, entry by entry

    func decide(_ f: inout EntryFilter, _ key: String, _ seq: UInt64, _ kind: EntryKind, _ value: String = "v")
        -> EntryFilter.Decision {
        bytes(key).withUnsafeBytes { k in
            bytes(value).withUnsafeBytes { v in f.decide(userKey: k, trailer: packTrailer(seq, kind.rawValue), value: v) }
        }
    }

    @Test func entryFilterRules() {
        // Oldest snapshot 10, key "a": 12 put, 9 delete, 5 put (the worked example in Compaction.swift,
        // which holds above the bottom level: a deeper level may still hold "a").
        var above = EntryFilter(smallestSnapshot: 10, filter: nil, isBaseLevel: { _ in false })
        #expect(decide(&above, "a", 12, .value) == .keep)
        #expect(decide(&above, "a", 9, .deletion) == .keep)
        #expect(decide(&above, "a", 5, .value) == .drop)
        // At the bottom the tombstone hides nothing: the snapshot at 10 reads "absent" either way.
        var f = EntryFilter(smallestSnapshot: 10, filter: nil, isBaseLevel: { _ in true })
        #expect(decide(&f, "a", 12, .value) == .keep)
        #expect(decide(&f, "a", 9, .deletion) == .drop)
        #expect(decide(&f, "a", 5, .value) == .drop)
        // A tombstone every snapshot sees, with nothing below: dropped, and its older versions too.
        #expect(decide(&f, "b", 8, .deletion) == .drop)
        #expect(decide(&f, "b", 3, .value) == .drop)
        // Newer than the snapshot: kept, and so is the version the snapshot reads.
        #expect(decide(&f, "c", 11, .deletion) == .keep)
        #expect(decide(&f, "c", 7, .value) == .keep)
        #expect(decide(&f, "c", 6, .value) == .drop)

        // Not the base level: a tombstone must stay to hide deeper versions.
        var upper = EntryFilter(smallestSnapshot: 10, filter: nil, isBaseLevel: { _ in false })
        #expect(decide(&upper, "b", 8, .deletion) == .keep)
        #expect(decide(&upper, "b", 3, .value) == .drop)
        // Flushes (isBaseLevel nil) never drop tombstones.
        var flush = EntryFilter(smallestSnapshot: 10, filter: nil, isBaseLevel: nil)
        #expect(decide(&flush, "b", 8, .deletion) == .keep)
    }

    @Test func entryFilterConsultsTheCompactionFilter() {
        // A snapshot at 10 (the oldest and the newest): the filter is asked only above it.
        var bottom = EntryFilter(smallestSnapshot: 10, filterFloor: 10, filter: DeadPrefixFilter(), isBaseLevel: { _ in true })
        #expect(decide(&bottom, "dead/a", 12, .value) == .keepAsDeletion, "filtered, but the snapshot still reads an older version")
        #expect(decide(&bottom, "dead/a", 9, .value) == .keep, "the version the snapshot reads")
        #expect(decide(&bottom, "dead/a", 4, .value) == .drop, "hidden from everyone by 9")
        #expect(decide(&bottom, "dead/b", 9, .value) == .keep, "visible to the snapshot: not asked")
        #expect(decide(&bottom, "dead/c", 9, .deletion) == .drop, "a tombstone at the bottom is dropped anyway")
        #expect(decide(&bottom, "live/a", 12, .value) == .keep)

        // No snapshot: filtered keys and their older versions go; above the bottom a tombstone stays.
        var none = EntryFilter(smallestSnapshot: maxSequenceNumber, filterFloor: 0, filter: DeadPrefixFilter(), isBaseLevel: { _ in true })
        #expect(decide(&none, "dead/a", 9, .value) == .drop)
        #expect(decide(&none, "dead/a", 4, .value) == .drop, "older versions go with it")
        var upper = EntryFilter(smallestSnapshot: maxSequenceNumber, filterFloor: 0, filter: DeadPrefixFilter(), isBaseLevel: { _ in false })
        #expect(decide(&upper, "dead/a", 9, .value) == .keepAsDeletion, "a deeper level may hold the key")
        #expect(decide(&upper, "dead/a", 4, .value) == .drop)
        #expect(decide(&upper, "live/a", 9, .value) == .keep)
    }

    @Test func filteredKeyAboveADeeperVersionStaysHidden() throws {
        // dead/ keys live in levels 1 and 2 (written without the filter); newer dead/ versions land in
        // level 0. The automatic level-0 compaction into level 1 must turn a filtered entry into a
        // tombstone where level 2 still holds the key, or the deep version would reappear.
        let dir = TempDir("filter-deep")
        var rng = SplitMix64(seed: 8)
        do {
            let db = try LSMTree.open(path: dir.path, options: tinyOptions())
            for i in 0..<1500 {
                try db.put(bytes("dead/\(String(format: "%04d", i))"), (0..<60).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
            }
            try write(db, "live/", 0..<100)
            try db.compactRange()
            try db.waitForCompactions()
            #expect(db.statistics.levels[2].files > 0, "the test needs dead/ keys below level 1: \(db.statistics)")
            try db.close()
        }
        let db = try LSMTree.open(path: dir.path, options: options())
        for half in 0..<2 {
            for i in stride(from: half, to: 1500, by: 2) { try db.put(bytes("dead/\(String(format: "%04d", i))"), bytes("upper")) }
            try db.flush()
        }
        try db.waitForCompactions()
        var visible = 0
        for i in 0..<1500 where try db.get(bytes("dead/\(String(format: "%04d", i))")) != nil { visible += 1 }
        #expect(visible == 0, "dead/ keys readable after the filter ran")
        #expect(try db.scan().count == 100)
        try db.compactRange()
        #expect(try db.scan().count == 100)
        try db.close()
    }
}
