import Testing
@testable import LSMTree

@Suite struct SnapshotTests {
    func options() -> LSMOptions {
        var o = tinyOptions()
        o.writeBufferSize = 256 << 10
        return o
    }

    @Test func snapshotSurvivesOverwritesDeletesFlushesAndCompaction() throws {
        let dir = TempDir("snapshot")
        let db = try LSMTree.open(path: dir.path, options: options())
        for i in 0..<500 { try db.put(bytes("k\(String(format: "%03d", i))"), bytes("old\(i)")) }
        try db.flush()
        for i in 500..<600 { try db.put(bytes("k\(String(format: "%03d", i))"), bytes("old\(i)")) }  // still in the memtable
        let snap = db.snapshot()
        let expected = try db.scan()
        #expect(expected.count == 600)

        for i in stride(from: 0, to: 600, by: 2) { try db.put(bytes("k\(String(format: "%03d", i))"), bytes("new\(i)")) }
        for i in stride(from: 1, to: 600, by: 4) { try db.delete(bytes("k\(String(format: "%03d", i))")) }
        for i in 600..<700 { try db.put(bytes("k\(String(format: "%03d", i))"), bytes("added\(i)")) }
        try db.flush()
        try db.compactRange()
        try db.compactRange()

        // The present view has changed...
        #expect(string(try db.get(bytes("k000"))) == "new0")
        #expect(try db.get(bytes("k001")) == nil)
        #expect(try db.scan().count == 600 - 150 + 100)
        // ...the snapshot's has not.
        for i in [0, 1, 2, 3, 499, 500, 501, 599] {
            #expect(string(try db.get(bytes("k\(String(format: "%03d", i))"), snapshot: snap)) == "old\(i)")
        }
        #expect(try db.get(bytes("k650"), snapshot: snap) == nil)
        let atSnapshot = try db.scan(snapshot: snap)
        #expect(atSnapshot.map(\.0) == expected.map(\.0))
        #expect(atSnapshot.map(\.1) == expected.map(\.1))
        let reversed = try db.scan(reverse: true, snapshot: snap)
        #expect(reversed.map(\.0) == expected.map(\.0).reversed())
        #expect(reversed.map(\.1) == expected.map(\.1).reversed())
        let ranged = try db.scan(from: "k100", to: "k110", snapshot: snap)
        #expect(ranged.map(\.1) == (100..<110).map { "old\($0)" })
        // Survives a reopen-free second round of writes and compaction too.
        for i in 0..<600 { try db.put(bytes("k\(String(format: "%03d", i))"), bytes("third\(i)")) }
        try db.compactRange()
        #expect(try db.scan(snapshot: snap).map(\.1) == expected.map(\.1))
        withExtendedLifetime(snap) {}
        try db.close()
    }

    @Test func releasingTheSnapshotLetsCompactionDropOldVersions() throws {
        let dir = TempDir("snapshot-release")
        let db = try LSMTree.open(path: dir.path, options: options())
        let value = [UInt8](repeating: 0x33, count: 100)
        for i in 0..<1000 { try db.put(bytes("k\(i)"), value) }
        var snap: Snapshot? = db.snapshot()
        for i in 0..<1000 { try db.put(bytes("k\(i)"), value + [1]) }
        for i in 0..<200 { try db.delete(bytes("k\(i)")) }
        try db.compactRange()
        let held = db.statistics.liveEntryBytes
        // Both versions (and the tombstones) are kept for the snapshot.
        #expect(held >= 2 * 1000 * 100)
        #expect(try db.get(bytes("k5"), snapshot: snap) == value)
        #expect(try db.get(bytes("k5")) == nil)

        snap = nil
        try db.compactRange()
        let released = db.statistics.liveEntryBytes
        print("live entry bytes: \(held) with the snapshot, \(released) after releasing it")
        #expect(released < held)
        // Only the 800 newest values are left (keys of 2–4 bytes, 101-byte values).
        #expect(released <= 800 * (4 + 101))
        #expect(released >= 800 * 101)
        #expect(try db.scan().count == 800)
        #expect(try db.get(bytes("k999")) == value + [1])
        try db.close()
    }

    @Test func snapshotsAreIndependent() throws {
        let dir = TempDir("snapshots")
        let db = try LSMTree.open(path: dir.path, options: options())
        var snaps: [Snapshot] = []
        for v in 0..<5 {
            try db.put(bytes("key"), bytes("v\(v)"))
            snaps.append(db.snapshot())
            try db.flush()
        }
        try db.compactRange()
        for (v, s) in snaps.enumerated() { #expect(string(try db.get(bytes("key"), snapshot: s)) == "v\(v)") }
        snaps.removeFirst(2)
        try db.compactRange()
        for (v, s) in snaps.enumerated() { #expect(string(try db.get(bytes("key"), snapshot: s)) == "v\(v + 2)") }
        try db.close()
    }
}
