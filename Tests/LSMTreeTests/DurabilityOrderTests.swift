import Foundation
import Testing
@testable import LSMTree

/// The order of the file-system steps that make a table part of the store
/// (issue 12, finding 8): a table's directory entry is synced before the
/// MANIFEST names it and before the WAL whose data it holds is unlinked.
/// Without that sync a power cut can leave a MANIFEST naming a table the
/// directory no longer lists, with its WAL already gone.
@Suite struct DurabilityOrderTests {
    /// Options with no automatic compaction, so that one thread at a time
    /// installs tables and every manifest write names the tables created before it.
    func quietOptions() -> LSMOptions {
        var o = tinyOptions()
        o.writeBufferSize = 1 << 20
        o.level0CompactionTrigger = 1000
        o.level0SlowdownTrigger = 2000
        o.level0StopTrigger = 3000
        o.levelBaseBytes = 1 << 30
        return o
    }

    /// Walks the steps and records an issue for every manifest write, CURRENT
    /// switch or WAL unlink that a created table's directory entry is not yet
    /// durable for. Returns how many tables were created.
    @discardableResult
    func checkOrder(_ steps: [DurabilityTrace.Step], _ what: String, sourceLocation: SourceLocation = #_sourceLocation) -> Int {
        var pending: [String] = []  // tables created since the last directory sync
        var tables = 0
        func name(_ p: String) -> String { String(p.split(separator: "/").last ?? "") }
        for step in steps {
            switch step {
            case .created(let p) where p.hasSuffix(".sst"):
                pending.append(name(p))
                tables += 1
            case .unlinked(let p) where p.hasSuffix(".sst"):
                pending.removeAll { $0 == name(p) }  // an abandoned output
            case .directorySynced:
                pending.removeAll()
            case .synced(let p) where name(p).hasPrefix("MANIFEST-"):
                #expect(pending.isEmpty, "\(what): \(name(p)) was written while \(pending) had no durable directory entry",
                        sourceLocation: sourceLocation)
            case .renamed(_, let to) where name(to) == "CURRENT":
                #expect(pending.isEmpty, "\(what): CURRENT switched while \(pending) had no durable directory entry",
                        sourceLocation: sourceLocation)
            case .unlinked(let p) where p.hasSuffix(".log"):
                #expect(pending.isEmpty, "\(what): \(name(p)) was unlinked while \(pending) had no durable directory entry",
                        sourceLocation: sourceLocation)
            default:
                break
            }
        }
        return tables
    }

    @Test func flushAndCompactionSyncTheDirectoryBeforeTheManifest() throws {
        let dir = TempDir("durability")
        let db = try LSMTree.open(path: dir.path, options: quietOptions())
        let recording = DurabilityTrace.start(under: dir.path)
        defer { recording.stop() }
        for round in 0..<3 {
            for i in 0..<500 { try db.put(bytes("key\(i)"), bytes("value\(round)-\(i)")) }
            try db.flush()
        }
        try db.compactRange()
        try db.close()
        let steps = recording.steps
        let tables = checkOrder(steps, "flush and compaction")
        #expect(tables >= 4, "three flushes and a compaction write tables: \(steps)")
        #expect(steps.contains { if case .unlinked(let p) = $0 { return p.hasSuffix(".log") } else { return false } },
                "a flush retires its WAL segment")
    }

    @Test func recoverySyncsTheDirectoryBeforeTheNewManifest() throws {
        let dir = TempDir("durability")
        do {
            let db = try LSMTree.open(path: dir.path, options: quietOptions())
            for i in 0..<200 { try db.put(bytes("key\(i)"), bytes("value\(i)")) }
            try db.close()  // the writes stay in the WAL
        }
        let recording = DurabilityTrace.start(under: dir.path)
        defer { recording.stop() }
        let db = try LSMTree.open(path: dir.path, options: quietOptions())
        #expect(string(try db.get(bytes("key199"))) == "value199")
        try db.close()
        #expect(checkOrder(recording.steps, "recovery") == 1, "the replayed WAL becomes one level-0 table")
    }

    /// A process killed while it created a store (a MANIFEST written, CURRENT
    /// not yet renamed into place) leaves a directory the next open creates
    /// again; anything more than those leftovers is still refused.
    @Test func anInterruptedCreationIsStartedAgain() throws {
        let dir = TempDir("interrupted")
        writeBytes([1, 2, 3], to: dir.sub("MANIFEST-000002"))
        writeBytes(Array("MANIFEST-000002\n".utf8), to: dir.sub("CURRENT.tmp"))
        let db = try LSMTree.open(path: dir.path, options: quietOptions())
        try db.put(bytes("k"), bytes("v"))
        try db.close()
        let reopened = try LSMTree.open(path: dir.path, options: quietOptions())
        #expect(string(try reopened.get(bytes("k"))) == "v")
        try reopened.close()

        let other = TempDir("interrupted")
        writeBytes([1, 2, 3], to: other.sub("MANIFEST-000002"))
        writeBytes([4, 5, 6], to: other.sub("000003.sst"))
        let before = directoryContents(other.path)
        expectLSMError(.notAStore) { try LSMTree.open(path: other.path, options: quietOptions()) }
        expectUnchanged(other.path, since: before)
    }

    /// Files 0600 and the directory 0700, as etcd's (finding 17), created so.
    @Test func storeFilesAreTheOwnersAlone() throws {
        let base = TempDir("modes")
        let path = base.path + "/parent/store"
        let db = try LSMTree.open(path: path, options: quietOptions())
        for i in 0..<100 { try db.put(bytes("key\(i)"), bytes("value\(i)")) }
        try db.flush()
        try db.close()
        for dir in [base.path + "/parent", path] {
            let mode = try #require(FileManager.default.attributesOfItem(atPath: dir)[.posixPermissions] as? NSNumber)
            #expect(mode.intValue & 0o777 == 0o700, "\(dir) is \(String(mode.intValue, radix: 8))")
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: path)
        #expect(names.contains("CURRENT") && names.contains("LOCK") && names.contains { $0.hasSuffix(".sst") })
        for name in names {
            let mode = try #require(FileManager.default.attributesOfItem(atPath: path + "/" + name)[.posixPermissions] as? NSNumber)
            #expect(mode.intValue & 0o777 == 0o600, "\(name) is \(String(mode.intValue, radix: 8))")
        }
    }
}
