import Foundation
import Testing
@testable import LSMTree

@Suite struct BadInputTests {
    func makeStore(_ path: String) throws {
        let db = try LSMTree.open(path: path, options: tinyOptions())
        for i in 0..<100 { try db.put(bytes("k\(i)"), bytes("v\(i)")) }
        try db.flush()
        try db.put(bytes("in-wal"), bytes("yes"))
        try db.close()
    }

    func manifestPath(_ dir: String) throws -> (path: String, number: UInt64) {
        let current = String(decoding: readBytes(dir + "/CURRENT"), as: UTF8.self)
        #expect(current.hasPrefix("MANIFEST-") && current.hasSuffix("\n"))
        let number = try #require(UInt64(current.dropFirst("MANIFEST-".count).dropLast()))
        return (manifestFileName(dir, number), number)
    }

    @Test func foreignDirectoryIsNotAStore() throws {
        let dir = TempDir("foreign")
        writeBytes(bytes("hello"), to: dir.sub("notes.txt"))
        try FileManager.default.createDirectory(atPath: dir.sub("subdir"), withIntermediateDirectories: false)
        let before = directoryContents(dir.path)
        let e = expectLSMError(.notAStore) { try LSMTree.open(path: dir.path, options: tinyOptions()) }
        #expect(e?.message.contains(dir.path) == true)
        #expect(e?.message.contains("notes.txt") == true, "the message names what it found: \(e?.message ?? "")")
        #expect(!FileManager.default.fileExists(atPath: dir.sub("LOCK")), "no LOCK file created")
        expectUnchanged(dir.path, since: before)
        #expect(readBytes(dir.sub("notes.txt")) == bytes("hello"))
    }

    @Test func damagedCurrentIsNotAStore() throws {
        let dir = TempDir("current")
        try makeStore(dir.path)
        writeBytes(bytes("something else\n"), to: dir.sub("CURRENT"))
        let before = directoryContents(dir.path)
        expectLSMError(.notAStore) { try LSMTree.open(path: dir.path, options: tinyOptions()) }
        expectUnchanged(dir.path, since: before)
    }

    @Test func missingManifestIsCorruption() throws {
        let dir = TempDir("nomanifest")
        try makeStore(dir.path)
        let (path, _) = try manifestPath(dir.path)
        try FileManager.default.removeItem(atPath: path)
        let before = directoryContents(dir.path)
        let e = expectLSMError(.corruption) { try LSMTree.open(path: dir.path, options: tinyOptions()) }
        #expect(e?.message.contains(path) == true)
        expectUnchanged(dir.path, since: before)
    }

    @Test func newerFormatIsRefusedAndNothingChanges() throws {
        let dir = TempDir("newer")
        try makeStore(dir.path)
        let (path, number) = try manifestPath(dir.path)
        let original = try LogReader.read(path: path, number: number).records
        #expect(!original.isEmpty)
        var edit = try VersionEdit.decode(original[0], name: path)
        edit.formatVersion = 99
        do {
            let w = try LogWriter(directory: dir.path, path: path, number: number)
            try w.addRecord(edit.encode())
            for r in original.dropFirst() { try w.addRecord(r) }
        }
        let before = directoryContents(dir.path)
        let e = expectLSMError(.newerFormat) { try LSMTree.open(path: dir.path, options: tinyOptions()) }
        #expect(e?.message.contains("99") == true, "the message says which format: \(e?.message ?? "")")
        expectUnchanged(dir.path, since: before)
    }

    @Test func newerFormatWithUnknownFieldsIsStillNewerFormat() throws {
        // A newer Ballast may add edit fields; the format version (written first) must be checked
        // before the rest of the record is parsed, or the user is told the store is corrupt.
        let dir = TempDir("newer2")
        try makeStore(dir.path)
        let (path, number) = try manifestPath(dir.path)
        var edit = VersionEdit()
        edit.formatVersion = 99
        var record = edit.encode()
        record.appendVarint(42)  // a tag this build does not know
        record.appendLengthPrefixed(bytes("field of format 99"))
        do {
            let w = try LogWriter(directory: dir.path, path: path, number: number)
            try w.addRecord(record)
        }
        let before = directoryContents(dir.path)
        expectLSMError(.newerFormat) { try LSMTree.open(path: dir.path, options: tinyOptions()) }
        expectUnchanged(dir.path, since: before)
    }

    @Test func newerFormatWithChangedFieldsIsStillNewerFormat() throws {
        // A newer format may also change the layout of a field this build knows (here: a new-table
        // record of another shape). Everything after the format version is unreadable by definition.
        let dir = TempDir("newer3")
        try makeStore(dir.path)
        let (path, number) = try manifestPath(dir.path)
        var edit = VersionEdit()
        edit.formatVersion = 99
        var record = edit.encode()
        record.appendVarint(7)  // "new table", laid out differently in format 99
        record.appendLengthPrefixed(bytes("a table descriptor of format 99"))
        do {
            let w = try LogWriter(directory: dir.path, path: path, number: number)
            try w.addRecord(record)
        }
        let before = directoryContents(dir.path)
        expectLSMError(.newerFormat) { try LSMTree.open(path: dir.path, options: tinyOptions()) }
        expectUnchanged(dir.path, since: before)
    }

    @Test func secondOpenInTheSameProcessIsLocked() throws {
        let dir = TempDir("locked")
        let db = try LSMTree.open(path: dir.path, options: tinyOptions())
        try db.put(bytes("a"), bytes("1"))
        let e = expectLSMError(.locked) { try LSMTree.open(path: dir.path, options: tinyOptions()) }
        let message = e?.message ?? ""
        #expect(message.contains("already open in this process"), "the message says who holds it: \(message)")
        #expect(message.contains(dir.path))
        // The failed open did not take the first one's lock away.
        try db.put(bytes("b"), bytes("2"))
        #expect(string(try db.get(bytes("a"))) == "1")
        expectLSMError(.locked, "third open") { try LSMTree.open(path: dir.path, options: tinyOptions()) }
        try db.close()
        // Closed: the directory can be opened again.
        let again = try LSMTree.open(path: dir.path, options: tinyOptions())
        #expect(string(try again.get(bytes("b"))) == "2")
        try again.close()
    }

    @Test func invalidOptionsAreRejectedBeforeTouchingDisk() throws {
        let dir = TempDir("options")
        let target = dir.sub("store")
        var cases: [(String, LSMOptions)] = []
        var o = LSMOptions(); o.writeBufferSize = 10; cases.append(("writeBufferSize", o))
        o = LSMOptions(); o.blockSize = 0; cases.append(("blockSize", o))
        o = LSMOptions(); o.blockRestartInterval = 0; cases.append(("blockRestartInterval", o))
        o = LSMOptions(); o.maxLevels = 1; cases.append(("maxLevels", o))
        o = LSMOptions(); o.level0SlowdownTrigger = 1; o.level0CompactionTrigger = 4; cases.append(("triggers", o))
        o = LSMOptions(); o.bloomBitsPerKey = -1; cases.append(("bloomBitsPerKey", o))
        for (what, options) in cases {
            let e = expectLSMError(.invalidArgument, what) { try LSMTree.open(path: target, options: options) }
            if what == "writeBufferSize" { #expect(e?.message.contains("writeBufferSize") == true) }
            #expect(!FileManager.default.fileExists(atPath: target), "\(what): nothing created")
        }
    }

    @Test func createIfMissingFalse() throws {
        let dir = TempDir("missing")
        var options = tinyOptions()
        options.createIfMissing = false
        let missing = dir.sub("does/not/exist")
        let e = expectLSMError(.invalidArgument) { try LSMTree.open(path: missing, options: options) }
        #expect(e?.message.contains(missing) == true)
        #expect(!FileManager.default.fileExists(atPath: dir.sub("does")))
        // An existing but empty directory is not a store either.
        let empty = dir.sub("empty")
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: false)
        expectLSMError(.invalidArgument) { try LSMTree.open(path: empty, options: options) }
        #expect(directoryContents(empty).isEmpty)
        // An existing store opens fine without createIfMissing.
        try makeStore(dir.sub("store"))
        let db = try LSMTree.open(path: dir.sub("store"), options: options)
        #expect(string(try db.get(bytes("in-wal"))) == "yes")
        try db.close()
    }

    @Test func errorIfExists() throws {
        let dir = TempDir("exists")
        try makeStore(dir.path)
        var options = tinyOptions()
        options.errorIfExists = true
        let before = directoryContents(dir.path)
        expectLSMError(.invalidArgument) { try LSMTree.open(path: dir.path, options: options) }
        expectUnchanged(dir.path, since: before)
    }

    @Test func closedStoreRefusesWork() throws {
        let dir = TempDir("closed")
        let db = try LSMTree.open(path: dir.path, options: tinyOptions())
        try db.put(bytes("a"), bytes("1"))
        try db.close()
        try db.close()  // idempotent
        expectLSMError(.closed) { try db.put(bytes("b"), bytes("2")) }
        expectLSMError(.closed) { try db.get(bytes("a")) }
        expectLSMError(.closed) { try db.makeIterator() }
    }
}

/// A WAL made since the manifest's last edit (a memtable switch whose flush had not finished
/// when the process died) can carry the number the manifest would give out next. Opening the
/// store must neither empty that file (it holds acknowledged writes until the replay has put
/// them in a table) nor leave recovered logs behind to be replayed again later.
@Suite struct RecoveredLogNumberTests {
    @Test func openNeverReusesTheNumberOfARecoveredLog() throws {
        let dir = TempDir("lognumber")
        let image = TempDir("lognumber-image")
        let db = try LSMTree.open(path: dir.path, options: tinyOptions())
        try db.put(bytes("k"), bytes("acknowledged"), sync: true)
        // A crash image: the directory as the machine would find it now.
        for name in try FileManager.default.contentsOfDirectory(atPath: dir.path) where name != "LOCK" {
            try FileManager.default.copyItem(atPath: dir.path + "/" + name, toPath: image.path + "/" + name)
        }
        try db.close()
        let logs = try FileManager.default.contentsOfDirectory(atPath: image.path).filter { $0.hasSuffix(".log") }
        let log = try #require(logs.count == 1 ? logs.first : nil, "one WAL in the image: \(logs)")
        let number = try #require(UInt64(log.dropLast(4)))
        // Logs numbered past it, as later memtable switches would have made (the same records
        // again: replaying them twice is harmless).
        for later in (number + 1)...(number + 6) {
            try FileManager.default.copyItem(atPath: image.path + "/" + log, toPath: image.path + "/" + String(format: "%06llu.log", later))
        }
        let reopened = try LSMTree.open(path: image.path, options: tinyOptions())
        #expect(string(try reopened.get(bytes("k"))) == "acknowledged")
        let left = try FileManager.default.contentsOfDirectory(atPath: image.path).filter { $0.hasSuffix(".log") }
        let active = left.compactMap { UInt64($0.dropLast(4)) }
        #expect(active.count == 1 && active[0] > number + 6, "only the new WAL is left, numbered past every recovered one: \(left.sorted())")
        try reopened.close()
        let again = try LSMTree.open(path: image.path, options: tinyOptions())
        #expect(string(try again.get(bytes("k"))) == "acknowledged")
        try again.close()
    }
}
