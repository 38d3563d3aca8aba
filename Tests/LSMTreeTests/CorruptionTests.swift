import Testing
import TestSupport
@testable import LSMTree
import Primitives

@Suite struct CorruptionTests {
    func value(_ i: Int) -> [UInt8] {
        var rng = SplitMix64(seed: UInt64(i))
        return bytes("value-\(i)-") + (0..<40).map { _ in UInt8(ascii: "a") + UInt8(rng.next() % 26) }
    }

    func key(_ i: Int) -> [UInt8] { bytes("key-\(String(format: "%05d", i))") }

    /// Every .log record offset (start of each record, then the end), read with the engine's reader.
    func logRecordOffsets(_ path: String) throws -> [Int] {
        let number = UInt64(path.split(separator: "/").last!.dropLast(4))!
        let r = try LogReader.read(path: path, number: number)
        var offsets = [0]
        for rec in r.records { offsets.append(offsets.last! + logRecordHeaderSize + rec.count) }
        return offsets
    }

    @Test func flippedTableByteIsReportedNeverWrongData() throws {
        let dir = TempDir("corrupt-sst")
        var options = tinyOptions()
        options.writeBufferSize = 1 << 20   // one flush, one table
        options.level0CompactionTrigger = 4
        let n = 3000
        do {
            let db = try LSMTree.open(path: dir.path, options: options)
            for i in 0..<n { try db.put(key(i), value(i)) }
            try db.flush()
            try db.close()
        }
        let tables = dir.files(withSuffix: ".sst")
        #expect(tables.count == 1)
        let largest = try #require(tables.max { fileSize($0) < fileSize($1) })
        let size = fileSize(largest)
        let dataEnd = Int(decodeFixed64(readBytes(largest), at: size - footerSize))  // the filter block follows the data
        #expect(dataEnd > size / 2)
        flipByte(in: largest, at: dataEnd / 2)

        let db = try LSMTree.open(path: dir.path, options: options)
        var failed = 0
        for i in 0..<n {
            do {
                let v = try db.get(key(i))
                #expect(v == value(i), "key \(i) returned wrong data")
            } catch let e as LSMError {
                #expect(e.code == .corruption)
                #expect(e.message.contains(largest), "the error names the table: \(e)")
                failed += 1
            }
        }
        #expect(failed > 0, "reads of the damaged block fail")
        #expect(failed < n / 10, "only the damaged block fails")
        let e = expectLSMError(.corruption, "full scan") { try db.scan() }
        #expect(e?.message.contains(largest) == true)
        expectLSMError(.corruption, "reverse scan") { try db.scan(reverse: true) }
        try db.close()
    }

    func walStore(_ dir: TempDir, records n: Int) throws -> String {
        var options = tinyOptions()
        options.syncMode = .always
        options.writeBufferSize = 4 << 20   // everything stays in the WAL
        let db = try LSMTree.open(path: dir.path, options: options)
        for i in 0..<n { try db.put(key(i), value(i)) }
        #expect(db.statistics.levels[0].files == 0)
        try db.close()
        let logs = dir.files(withSuffix: ".log")
        #expect(logs.count == 1)
        #expect(dir.files(withSuffix: ".sst").isEmpty)
        return logs[0]
    }

    @Test func flippedLogByteFailsOpenAndModifiesNothing() throws {
        let dir = TempDir("corrupt-log")
        let log = try walStore(dir, records: 200)
        let offsets = try logRecordOffsets(log)
        #expect(offsets.count == 201, "one WAL record per put")
        let middle = offsets[100]
        flipByte(in: log, at: middle + logRecordHeaderSize + 10)
        let before = directoryContents(dir.path)
        var options = tinyOptions()
        options.writeBufferSize = 4 << 20
        let e = expectLSMError(.corruption, "open") { try LSMTree.open(path: dir.path, options: options) }
        #expect(e?.message.contains(log) == true, "the error names the log: \(e?.message ?? "")")
        #expect(e?.message.contains("offset \(middle)") == true, "the error names the offset: \(e?.message ?? "")")
        expectUnchanged(dir.path, since: before)
        // A second attempt fails the same way (the first left no lock or state behind).
        expectLSMError(.corruption, "second open") { try LSMTree.open(path: dir.path, options: options) }
    }

    @Test func zeroedLogRecordFailsOpenInsteadOfDroppingLaterRecords() throws {
        let dir = TempDir("zeroed-log")
        let log = try walStore(dir, records: 200)
        let offsets = try logRecordOffsets(log)
        var b = readBytes(log)
        for i in offsets[100]..<offsets[101] { b[i] = 0 }
        writeBytes(b, to: log)
        let before = directoryContents(dir.path)
        var options = tinyOptions()
        options.writeBufferSize = 4 << 20
        // Opening must not silently lose records 100...199, which are intact on disk.
        let e = expectLSMError(.corruption, "open") {
            let db = try LSMTree.open(path: dir.path, options: options)
            defer { try? db.close() }
            return try db.scan().count
        }
        #expect(e?.message.contains(log) == true)
        expectUnchanged(dir.path, since: before)
    }

    @Test(arguments: [0, 5, 20])
    func tornLogTailKeepsEveryEarlierRecord(cutInRecord: Int) async throws {
        try await onOwnThread {
            let dir = TempDir("torn-log")
            let n = 120
            let log = try walStore(dir, records: n)
            let offsets = try logRecordOffsets(log)
            let torn = 80
            // Cut inside record `torn` (in its header for 5, in its payload for 20; 0 cuts it off whole).
            truncateFile(log, to: offsets[torn] + cutInRecord)
            do {
                let db = try LSMTree.open(path: dir.path, options: tinyOptions())
                for i in 0..<torn { #expect(try db.get(key(i)) == value(i), "key \(i) before the tear") }
                for i in torn..<n { #expect(try db.get(key(i)) == nil, "key \(i) at or after the tear") }
                #expect(try db.scan().count == torn)
                // The store takes writes again after the recovery.
                try db.put(key(torn), bytes("rewritten"))
                try db.close()
            }
            let db = try LSMTree.open(path: dir.path, options: tinyOptions())
            #expect(try db.scan().count == torn + 1)
            #expect(string(try db.get(key(torn))) == "rewritten")
            #expect(try db.get(key(torn - 1)) == value(torn - 1))
            try db.close()
        }
    }
}
