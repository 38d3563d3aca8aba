import Testing
import TestSupport
@testable import LSMTree

@Suite struct VersionTests {
    func file(_ number: UInt64, _ smallest: String, _ largest: String, seq: UInt64 = 5) -> FileMetaData {
        var p = TableProperties()
        p.entries = 10 + number
        p.deletions = 2
        p.rawKeyBytes = 100 * number
        p.rawValueBytes = 1000
        p.rawDataBytes = 1200
        p.storedDataBytes = 700
        p.smallestSequence = 3
        p.largestSequence = seq
        return FileMetaData(number: number, size: 4096 + number, smallest: makeInternalKey(bytes(smallest), seq, 1),
                            largest: makeInternalKey(bytes(largest), 3, 1), properties: p)
    }

    func same(_ a: FileMetaData, _ b: FileMetaData) -> Bool {
        a.number == b.number && a.size == b.size && a.smallest == b.smallest && a.largest == b.largest
            && a.properties == b.properties
    }

    func emptyVersion(levels: Int = 7) -> Version {
        Version(levels: Array(repeating: [], count: levels))
    }

    @Test func versionEditRoundTripWithAllFields() throws {
        var e = VersionEdit()
        e.formatVersion = 1
        e.logNumber = 1 << 40
        e.nextFileNumber = 12_345
        e.lastSequence = maxSequenceNumber
        e.compactPointers = [(1, makeInternalKey(bytes("m"), 9, 1)), (3, makeInternalKey([], 0, 0))]
        e.deletedFiles = [(0, 7), (2, UInt64.max), (6, 0)]
        e.newFiles = [(0, file(21, "a", "k")), (1, file(22, "", "\u{ff}")), (6, file(1 << 33, "x", "y", seq: 1 << 50))]
        let encoded = e.encode()
        let d = try VersionEdit.decode(encoded, name: "MANIFEST-000001")
        #expect(d.formatVersion == 1)
        #expect(d.logNumber == 1 << 40)
        #expect(d.nextFileNumber == 12_345)
        #expect(d.lastSequence == maxSequenceNumber)
        #expect(d.compactPointers.map(\.0) == [1, 3])
        #expect(d.compactPointers.map(\.1) == e.compactPointers.map(\.1))
        #expect(d.deletedFiles.map(\.0) == [0, 2, 6])
        #expect(d.deletedFiles.map(\.1) == [7, UInt64.max, 0])
        #expect(d.newFiles.map(\.0) == [0, 1, 6])
        #expect(d.newFiles.count == 3)
        for (x, y) in zip(d.newFiles, e.newFiles) { #expect(same(x.1, y.1), "table \(y.1.number)") }
        #expect(d.encode() == encoded, "re-encoding is stable")

        // An empty edit round-trips to an empty edit.
        let empty = try VersionEdit.decode(VersionEdit().encode(), name: "m")
        #expect(empty.formatVersion == nil && empty.logNumber == nil && empty.nextFileNumber == nil)
        #expect(empty.lastSequence == nil && empty.newFiles.isEmpty && empty.deletedFiles.isEmpty)
    }

    @Test func damagedEditsAreCorruption() throws {
        var e = VersionEdit()
        e.formatVersion = 1
        e.logNumber = 300
        e.newFiles = [(1, file(5, "a", "b"))]
        let encoded = e.encode()
        // Cut inside the new-table record: every such prefix is refused.
        let tableStart = 2 + 3  // tag+format, tag+varint(300)
        for cut in (tableStart + 1)..<encoded.count {
            expectLSMError(.corruption, "cut at \(cut)") { try VersionEdit.decode(Array(encoded[0..<cut]), name: "M") }
        }
        // Unknown tag.
        let e2 = expectLSMError(.corruption) { try VersionEdit.decode([99, 1], name: "MANIFEST-000042") }
        #expect(e2?.message.contains("MANIFEST-000042") == true)
        // A smallest key shorter than a trailer.
        var short: [UInt8] = [7, 1, 5, 10]
        short.appendLengthPrefixed([1, 2, 3])
        short.appendLengthPrefixed(makeInternalKey(bytes("b"), 1, 1))
        short.appendLengthPrefixed(TableProperties().encode())
        expectLSMError(.corruption) { try VersionEdit.decode(short, name: "M") }
    }

    @Test func applyingRejectsDeletingAMissingFile() throws {
        var add = VersionEdit()
        add.newFiles = [(1, file(10, "a", "c")), (0, file(11, "a", "z"))]
        let v = try emptyVersion().applying(add, name: "M")
        for (level, number) in [(1, 99), (2, 10), (0, 10), (1, 11), (9, 10)] as [(Int, UInt64)] {
            var del = VersionEdit()
            del.deletedFiles = [(level, number)]
            let e = expectLSMError(.corruption, "delete \(number) from level \(level)") { try v.applying(del, name: "MANIFEST-000003") }
            #expect(e?.message.contains("MANIFEST-000003") == true)
        }
        // Deleting what is there works, and the original version is untouched.
        var del = VersionEdit()
        del.deletedFiles = [(1, 10)]
        let after = try v.applying(del, name: "M")
        #expect(after.levels[1].isEmpty)
        #expect(v.levels[1].map(\.number) == [10])
        // Deleting the same file twice in one edit fails.
        del.deletedFiles = [(1, 10), (1, 10)]
        expectLSMError(.corruption) { try v.applying(del, name: "M") }
        // Adding beyond the last level fails.
        var deep = VersionEdit()
        deep.newFiles = [(7, file(30, "a", "b"))]
        expectLSMError(.corruption) { try v.applying(deep, name: "M") }
    }

    @Test func applyingRejectsOverlapInSortedLevels() throws {
        for level in 1..<7 {
            var e = VersionEdit()
            e.newFiles = [(level, file(1, "a", "m")), (level, file(2, "k", "z"))]
            expectLSMError(.corruption, "overlap in level \(level)") { try emptyVersion().applying(e, name: "M") }
            // Sharing one user key (different sequence numbers) is an overlap too.
            e.newFiles = [(level, file(1, "a", "k")), (level, file(2, "k", "z"))]
            expectLSMError(.corruption, "shared boundary key in level \(level)") { try emptyVersion().applying(e, name: "M") }
            // One table inside another.
            e.newFiles = [(level, file(1, "a", "z")), (level, file(2, "c", "d"))]
            expectLSMError(.corruption, "nested in level \(level)") { try emptyVersion().applying(e, name: "M") }
        }
        // Overlap with a table already in the version.
        var first = VersionEdit()
        first.newFiles = [(2, file(1, "f", "h"))]
        let v = try emptyVersion().applying(first, name: "M")
        var second = VersionEdit()
        second.newFiles = [(2, file(2, "a", "f"))]
        expectLSMError(.corruption) { try v.applying(second, name: "M") }
        // Level 0 may overlap; it is kept newest (highest number) first.
        var l0 = VersionEdit()
        l0.newFiles = [(0, file(3, "a", "z")), (0, file(5, "a", "z")), (0, file(4, "b", "c"))]
        let v0 = try emptyVersion().applying(l0, name: "M")
        #expect(v0.levels[0].map(\.number) == [5, 4, 3])
        // Disjoint tables in a sorted level are accepted and kept in key order.
        var ok = VersionEdit()
        ok.newFiles = [(1, file(7, "n", "z")), (1, file(8, "a", "c")), (1, file(9, "d", "m"))]
        let v1 = try emptyVersion().applying(ok, name: "M")
        #expect(v1.levels[1].map(\.number) == [8, 9, 7])
        #expect(v1.overlapping(level: 1, begin: bytes("c"), end: bytes("e")).map(\.number) == [8, 9])
        #expect(v1.overlapping(level: 1, begin: nil, end: nil).count == 3)
        #expect(v1.overlapping(level: 1, begin: bytes("m1"), end: bytes("m2")).isEmpty)
    }

    /// Options under which nothing compacts by itself once `compactRange` is done.
    func layoutOptions() -> LSMOptions {
        var o = tinyOptions()
        o.writeBufferSize = 64 << 10
        o.level0CompactionTrigger = 4
        o.level0SlowdownTrigger = 8
        o.level0StopTrigger = 12
        return o
    }

    @Test func reopenKeepsTheLevelLayout() async throws {
        try await onOwnThread {
            let dir = TempDir("layout")
            let options = layoutOptions()
            var before: [(Int, UInt64)] = []
            do {
                let db = try LSMTree.open(path: dir.path, options: options)
                let value = [UInt8](repeating: 0x61, count: 30) + (0..<70).map { UInt8($0) }
                for round in 0..<2 {
                    var batch = WriteBatch()
                    for i in 0..<3000 {
                        batch.put(bytes("key\(String(format: "%06d", i * 2 + round))"), value)
                        if batch.count == 100 { try db.write(batch); batch = WriteBatch() }
                    }
                    try db.compactRange()
                }
                // A level-0 table on top of the compacted levels.
                for i in 0..<50 { try db.put(bytes("late\(i)"), value) }
                try db.flush()
                try db.waitForCompactions()
                let stats = db.statistics
                before = stats.levels.map { ($0.files, $0.bytes) }
                let nonEmpty = stats.levels.filter { $0.files > 0 }.count
                #expect(nonEmpty >= 2, "the test needs a layout over several levels: \(stats)")
                try db.close()
            }
            let db = try LSMTree.open(path: dir.path, options: options)
            let after = db.statistics.levels.map { ($0.files, $0.bytes) }
            #expect(after.map(\.0) == before.map(\.0), "files per level")
            #expect(after.map(\.1) == before.map(\.1), "bytes per level")
            #expect(try db.scan().count == 6050)
            try db.close()
        }
    }

    @Test func rangedCompactRangeKeepsNewerLevel0VersionsOnTop() throws {
        // Level-0 tables overlap. Compacting only some of them into level 1 must not leave an
        // older level-0 table above a newer version of the same key (LevelDB widens the level-0
        // inputs to every table overlapping the chosen ones for this reason).
        let dir = TempDir("l0range")
        let db = try LSMTree.open(path: dir.path, options: layoutOptions())
        // Older table B: keys x..z.
        try db.put(bytes("x"), bytes("old"))
        try db.put(bytes("z"), bytes("old"))
        try db.flush()
        // Newer table A: keys c..x, with a newer x.
        try db.put(bytes("c"), bytes("new"))
        try db.put(bytes("x"), bytes("new"))
        try db.flush()
        #expect(db.statistics.levels[0].files == 2)
        #expect(string(try db.get(bytes("x"))) == "new")
        // [c, d] overlaps A only.
        try db.compactRange(from: bytes("c"), to: bytes("d"))
        #expect(string(try db.get(bytes("x"))) == "new", "a compaction of [c, d] resurrected an older x")
        #expect(try db.scan().map(\.1) == ["new", "new", "old"])
        try db.close()
    }
}
