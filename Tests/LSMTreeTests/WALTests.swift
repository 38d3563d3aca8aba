import Testing
@testable import LSMTree
import Primitives

@Suite struct WALTests {
    /// Writes `records` as log `number` and returns the path and the offset of each record, plus the end.
    func writeLog(_ dir: TempDir, _ name: String = "000007.log", number: UInt64 = 7, records: [[UInt8]],
                  preallocationStep: Int = 0) throws -> (path: String, offsets: [Int]) {
        let path = dir.sub(name)
        let w = try LogWriter(directory: dir.path, path: path, number: number, preallocationStep: preallocationStep)
        var offsets: [Int] = []
        for r in records {
            offsets.append(w.size)
            try w.addRecord(r)
        }
        offsets.append(w.size)
        try w.file.trimPreallocation()
        return (path, offsets)
    }

    func randomBytes(_ n: Int, seed: UInt64) -> [UInt8] {
        var rng = SplitMix64(seed: seed)
        return (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }

    func threeRecords() -> [[UInt8]] {
        (0..<3).map { randomBytes(100, seed: UInt64($0) + 1) }
    }

    @Test func framingRoundTrip() throws {
        let dir = TempDir("wal")
        let records: [[UInt8]] = [[], [0x42], randomBytes(100 << 10, seed: 1), [], bytes("last")]
        let (path, offsets) = try writeLog(dir, records: records)
        #expect(offsets == [0, 13, 27, 27 + 13 + (100 << 10), 27 + 26 + (100 << 10), 27 + 39 + 4 + (100 << 10)],
                "each record is a 13-byte header plus its payload")
        #expect(fileSize(path) == offsets.last!)
        let r = try LogReader.read(path: path, number: 7)
        #expect(r.records == records)
        #expect(!r.tornTail)
        #expect(r.validEnd == offsets.last!)
    }

    @Test func emptyLogIsCleanAndEmpty() throws {
        let dir = TempDir("wal")
        let (path, _) = try writeLog(dir, records: [])
        let r = try LogReader.read(path: path, number: 7)
        #expect(r.records.isEmpty)
        #expect(!r.tornTail)
        #expect(r.validEnd == 0)
    }

    @Test func recordTruncatedMidPayloadIsTornTail() throws {
        let dir = TempDir("wal")
        let records = threeRecords()
        let (path, offsets) = try writeLog(dir, records: records)
        truncateFile(path, to: offsets[2] + 13 + 50)
        let r = try LogReader.read(path: path, number: 7)
        #expect(r.tornTail)
        #expect(r.validEnd == offsets[2])
        #expect(r.records == Array(records[0..<2]))
    }

    @Test func headerOnlyIsTornTail() throws {
        let dir = TempDir("wal")
        let records = threeRecords()
        let (path, offsets) = try writeLog(dir, records: records)
        truncateFile(path, to: offsets[2] + 13)
        let r = try LogReader.read(path: path, number: 7)
        #expect(r.tornTail)
        #expect(r.validEnd == offsets[2])
        #expect(r.records == Array(records[0..<2]))
    }

    @Test func halfWrittenHeaderIsTornTail() throws {
        let dir = TempDir("wal")
        let records = threeRecords()
        let (path, offsets) = try writeLog(dir, records: records)
        for cut in [1, 6, 12] {
            let copy = dir.sub("cut\(cut).log")
            writeBytes(Array(readBytes(path)[0..<(offsets[2] + cut)]), to: copy)
            let r = try LogReader.read(path: copy, number: 7)
            #expect(r.tornTail, "header cut after \(cut) bytes")
            #expect(r.validEnd == offsets[2])
            #expect(r.records == Array(records[0..<2]))
        }
    }

    @Test func tornHugeRecordIsTornTail() throws {
        let dir = TempDir("wal")
        let records = [bytes("a"), randomBytes(100 << 10, seed: 9)]
        let (path, offsets) = try writeLog(dir, records: records)
        truncateFile(path, to: offsets[1] + 13 + (60 << 10))
        let r = try LogReader.read(path: path, number: 7)
        #expect(r.tornTail)
        #expect(r.validEnd == offsets[1])
        #expect(r.records == [bytes("a")])
    }

    @Test func flippedByteInMiddleRecordIsCorruption() throws {
        let dir = TempDir("wal")
        let records = threeRecords()
        // Damage in the payload, the checksum and the length of the middle record.
        for (i, at) in [13 + 50, 1, 5].enumerated() {
            let (path, offsets) = try writeLog(dir, "00000\(i).log", records: records)
            flipByte(in: path, at: offsets[1] + at)
            let e = expectLSMError(.corruption, "byte \(at) of the middle record") {
                try LogReader.read(path: path, number: 7)
            }
            #expect(e?.message.contains(path) == true, "the message names the file: \(e?.message ?? "")")
            #expect(e?.message.contains("offset \(offsets[1])") == true, "the message names the offset: \(e?.message ?? "")")
        }
    }

    @Test func flippedByteInLastRecordIsTornTail() throws {
        // Documented rule: damage with no intact record after it is a torn tail, not corruption.
        let dir = TempDir("wal")
        let records = threeRecords()
        let (path, offsets) = try writeLog(dir, records: records)
        flipByte(in: path, at: offsets[2] + 13 + 10)
        let r = try LogReader.read(path: path, number: 7)
        #expect(r.tornTail)
        #expect(r.validEnd == offsets[2])
        #expect(r.records == Array(records[0..<2]))
    }

    @Test func zeroPreallocatedTailIsCleanEnd() throws {
        let dir = TempDir("wal")
        let path = dir.sub("000007.log")
        let records = threeRecords()
        let w = try LogWriter(directory: dir.path, path: path, number: 7, preallocationStep: 64 << 10)
        for r in records { try w.addRecord(r) }
        let written = w.size
        #expect(fileSize(path) > written, "the file is preallocated ahead of the writes")
        let r = try LogReader.read(path: path, number: 7)
        #expect(r.records == records)
        #expect(!r.tornTail)
        #expect(r.validEnd == written)
        try w.file.trimPreallocation()
        #expect(fileSize(path) == written)
    }

    @Test func zeroedRecordFollowedByIntactRecordsIsCorruption() throws {
        // Zeros mark the preallocated, never-written tail. Zeros with intact records of this log
        // AFTER them are damage in the middle (the rule for any other damaged record), not the end:
        // stopping there would silently drop every later record.
        let dir = TempDir("wal")
        let records = threeRecords()
        let (path, offsets) = try writeLog(dir, records: records)
        var b = readBytes(path)
        for i in offsets[1]..<offsets[2] { b[i] = 0 }  // the whole middle record, header included
        writeBytes(b, to: path)
        let e = expectLSMError(.corruption, "zeroed middle record") { try LogReader.read(path: path, number: 7) }
        #expect(e?.message.contains("offset \(offsets[1])") == true, "\(e?.message ?? "")")
    }

    @Test func zeroTailShorterThanAHeaderIsCleanEnd() throws {
        let dir = TempDir("wal")
        let records = threeRecords()
        let (path, offsets) = try writeLog(dir, records: records)
        writeBytes(readBytes(path) + [UInt8](repeating: 0, count: 7), to: path)
        let r = try LogReader.read(path: path, number: 7)
        #expect(r.records == records)
        #expect(!r.tornTail)
        #expect(r.validEnd == offsets[3])
    }

    @Test func recordOfAnotherLogEndsTheLog() throws {
        let dir = TempDir("wal")
        let mine = threeRecords()
        let theirs = [bytes("stale record one"), bytes("stale record two")]
        let (path, offsets) = try writeLog(dir, "000007.log", number: 7, records: mine)
        let (other, _) = try writeLog(dir, "000008.log", number: 8, records: theirs)
        // A recycled file: this log's records, then the older contents of another log.
        writeBytes(readBytes(path) + readBytes(other), to: path)
        let r = try LogReader.read(path: path, number: 7)
        #expect(r.records == mine)
        #expect(!r.tornTail)
        #expect(r.validEnd == offsets[3])
        // Read as its own number, the other log is intact.
        #expect(try LogReader.read(path: other, number: 8).records == theirs)
        // Read under the wrong number from the start, nothing belongs to the log.
        let wrong = try LogReader.read(path: other, number: 9)
        #expect(wrong.records.isEmpty)
        #expect(!wrong.tornTail)
    }

    @Test func frameMatchesAddRecord() throws {
        let dir = TempDir("wal")
        let payload = bytes("group commit payload")
        let (path, _) = try writeLog(dir, records: [payload])
        var buf = [UInt8](repeating: 0, count: logRecordHeaderSize) + payload
        LogWriter.frame(&buf, number: 7)
        #expect(buf == readBytes(path))
    }
}

@Suite struct WALSyncStatisticsTests {
    /// Each synced write's fdatasync is counted and timed, and the three show in `/metrics`.
    @Test func syncedWritesAreCountedAndTimed() throws {
        let dir = TempDir()
        let db = try LSMTree.open(path: dir.path, options: tinyOptions())
        defer { try? db.close() }
        let before = db.statistics
        for i in 0..<5 { try db.put(bytes("k\(i)"), bytes("v\(i)"), sync: true) }
        try db.put(bytes("unsynced"), bytes("v"), sync: false)
        let after = db.statistics
        #expect(after.walSyncs - before.walSyncs == 5)
        #expect(after.walSyncNanoseconds > before.walSyncNanoseconds)
        #expect(after.walSyncMaxNanoseconds > 0 && after.walSyncMaxNanoseconds <= after.walSyncNanoseconds)
        let text = after.walSyncMetrics
        #expect(text.contains("\nballast_lsm_wal_syncs_total \(after.walSyncs)\n"))
        #expect(text.contains("\nballast_lsm_wal_sync_seconds_total \(Double(after.walSyncNanoseconds) / 1e9)\n"))
        #expect(text.contains("\nballast_lsm_wal_sync_max_seconds \(Double(after.walSyncMaxNanoseconds) / 1e9)\n"))
    }
}
