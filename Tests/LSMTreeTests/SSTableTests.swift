import Testing
import TestSupport
@testable import LSMTree
import Primitives

@Suite struct SSTableTests {
    struct Input {
        var entries: [(key: [UInt8], value: [UInt8])] = []
        var userKeys: [[UInt8]] = []
        var rawKeyBytes = 0
        var rawValueBytes = 0
        var deletions = 0
    }

    /// 10k entries: 8k user keys, every fifth with an older version, every eleventh newest version a deletion.
    func makeInput(count: Int = 10_000) -> Input {
        var input = Input()
        var rng = SplitMix64(seed: 11)
        var i = 0
        var seq: UInt64 = 1_000_000
        while input.entries.count < count {
            let user = bytes("table/key/\(String(format: "%07d", i))")
            input.userKeys.append(user)
            let versions = (i % 5 == 0 && input.entries.count + 2 <= count) ? 2 : 1
            for v in 0..<versions {
                let kind: UInt8 = (i % 11 == 0 && v == 0) ? 0 : 1
                let len = kind == 0 ? 0 : Int(rng.next() % 60)
                // Half random, half repeated: some blocks compress, some do not.
                let value = (0..<len).map { j in j < len / 2 ? UInt8(truncatingIfNeeded: rng.next()) : UInt8(i & 0xFF) }
                input.entries.append((makeInternalKey(user, seq - UInt64(v), kind), value))
                input.rawKeyBytes += user.count
                input.rawValueBytes += value.count
                if kind == 0 { input.deletions += 1 }
            }
            seq -= 3
            i += 1
        }
        // Sequence numbers fall as keys rise, so a sort check is meaningful.
        input.entries.sort { compareInternalKeys($0.key, $1.key) < 0 }
        return input
    }

    func buildTable(_ input: Input, at path: String, compression: Bool = true) throws -> Int {
        let b = try TableBuilder(path: path, options: TableBuildOptions(blockSize: 1024, restartInterval: 16,
                                                                         bloomBitsPerKey: 10, compression: compression))
        for e in input.entries { try b.add(internalKey: e.key, value: e.value) }
        #expect(b.smallestKey == input.entries.first!.key)
        #expect(b.largestKey == input.entries.last!.key)
        return try b.finish()
    }

    func lookup(_ t: TableReader, _ user: [UInt8], seq: UInt64 = maxSequenceNumber) throws -> LookupResult {
        try user.withUnsafeBytes { try t.get(makeInternalKey(user, seq, EntryKind.seek), userKey: $0) }
    }

    func scanForward(_ t: TableReader) throws -> [([UInt8], [UInt8])] {
        let it = t.makeIterator()
        var out: [([UInt8], [UInt8])] = []
        try it.seekToFirst()
        while it.isValid { out.append((it.key, it.value)); try it.next() }
        return out
    }

    @Test func roundTrip() async throws {
        try await onOwnThread {
            let dir = TempDir("sst")
            let input = makeInput()
            let path = dir.sub("000005.sst")
            let size = try buildTable(input, at: path)
            #expect(size == fileSize(path))
            let t = try TableReader(path: path, fileNumber: 5, blockCache: nil)

            // Properties.
            let p = t.properties
            #expect(p.entries == 10_000)
            #expect(p.deletions == UInt64(input.deletions))
            #expect(p.rawKeyBytes == UInt64(input.rawKeyBytes))
            #expect(p.rawValueBytes == UInt64(input.rawValueBytes))
            #expect(p.smallestSequence == input.entries.map { trailerSequence($0.key.trailer) }.min())
            #expect(p.largestSequence == input.entries.map { trailerSequence($0.key.trailer) }.max())
            #expect(p.rawDataBytes > UInt64(input.rawKeyBytes + input.rawValueBytes) / 2)
            #expect(p.storedDataBytes < p.rawDataBytes, "some blocks compressed")
            #expect(p.storedDataBytes < UInt64(size))
            #expect(t.index.restartCount > 100, "1 KiB blocks: hundreds of index entries")

            // Forward and backward iteration equal the input.
            let forward = try scanForward(t)
            #expect(forward.count == input.entries.count)
            #expect(forward.map(\.0) == input.entries.map(\.key))
            #expect(forward.map(\.1) == input.entries.map(\.value))
            let it = t.makeIterator()
            try it.seekToLast()
            var backward: [[UInt8]] = []
            while it.isValid { backward.append(it.key); try it.prev() }
            #expect(backward == input.entries.map(\.key).reversed())

            // get of every key returns its newest version.
            var newest: [[UInt8]: (UInt8, [UInt8])] = [:]
            for e in input.entries.reversed() { newest[Array(e.key.userKeyPart)] = (trailerKind(e.key.trailer), e.value) }
            var wrong = 0
            for user in input.userKeys {
                let (kind, value) = newest[user]!
                switch try lookup(t, user) {
                case .found(let v): if kind != 1 || v != value { wrong += 1 }
                case .deleted: if kind != 0 { wrong += 1 }
                case .notFound: wrong += 1
                }
            }
            #expect(wrong == 0)
            // Absent keys.
            for user in [bytes("table/key/0000000x"), bytes("a"), bytes("zzz"), bytes("table/key/")] {
                if case .notFound = try lookup(t, user) {} else { Issue.record("\(string(user)!) should be absent") }
            }
            // The older version is found at an older sequence.
            let twoVersions = input.entries.firstIndex { e in
                input.entries.filter { Array($0.key.userKeyPart) == Array(e.key.userKeyPart) }.count == 2
            }!
            let older = input.entries[twoVersions + 1]
            let olderSeq = trailerSequence(older.key.trailer)
            if case .found(let v) = try lookup(t, Array(older.key.userKeyPart), seq: olderSeq) {
                #expect(v == older.value)
            } else {
                Issue.record("the older version is not visible at its own sequence")
            }
            if case .notFound = try lookup(t, Array(older.key.userKeyPart), seq: olderSeq - 1) {} else {
                Issue.record("nothing is visible before the oldest version")
            }
            // Bloom filter: every present key may be contained.
            for user in input.userKeys { #expect(user.withUnsafeBytes { t.mayContain($0) }) }
        }
    }

    @Test func seekAcrossBlocks() async throws {
        try await onOwnThread {
            let dir = TempDir("sst")
            let input = makeInput(count: 3000)
            let path = dir.sub("000001.sst")
            _ = try buildTable(input, at: path, compression: false)
            let t = try TableReader(path: path, fileNumber: 1, blockCache: nil)
            let keys = input.entries.map(\.key)
            let it = t.makeIterator()
            var rng = SplitMix64(seed: 5)
            for _ in 0..<300 {
                let i = Int(rng.next() % UInt64(keys.count))
                let user = Array(keys[i].userKeyPart)
                let targets = [keys[i], makeInternalKey(user + [0], maxSequenceNumber, EntryKind.seek),
                               makeInternalKey(user, 0, 0)]
                for target in targets {
                    let ge = keys.firstIndex { compareInternalKeys($0, target) >= 0 }
                    try it.seek(target)
                    #expect(it.isValid == (ge != nil))
                    if let ge, it.isValid { #expect(it.key == keys[ge]) }
                    let le = keys.lastIndex { compareInternalKeys($0, target) <= 0 }
                    try it.seekForPrev(target)
                    #expect(it.isValid == (le != nil))
                    if let le, it.isValid {
                        #expect(it.key == keys[le])
                        try it.prev()
                        if le > 0 { #expect(it.isValid && it.key == keys[le - 1]) }
                    }
                }
            }
            try it.seekForPrev(makeInternalKey(bytes("a"), 1, 1))
            #expect(!it.isValid)
            try it.seekForPrev(makeInternalKey(bytes("zzz"), 1, 1))
            #expect(it.key == keys.last!)
            try it.seek(makeInternalKey(bytes("zzz"), 1, 1))
            #expect(!it.isValid)
        }
    }

    @Test(arguments: [true, false])
    func flippedDataByteIsCorruptionNeverWrongData(compression: Bool) async throws {
        try await onOwnThread {
            let dir = TempDir("sst")
            let input = makeInput()
            let path = dir.sub("000005.sst")
            _ = try buildTable(input, at: path, compression: compression)
            let filterOffset = Int(decodeFixed64(readBytes(path), at: fileSize(path) - footerSize))
            // One byte in the first data block, one in the middle of the data region.
            for offset in [100, filterOffset / 2] {
                let damaged = dir.sub("damaged-\(offset).sst")
                writeBytes(readBytes(path), to: damaged)
                flipByte(in: damaged, at: offset)
                let t = try TableReader(path: damaged, fileNumber: 6, blockCache: nil)
                // The newest version of each key: its value, or nil for a tombstone.
                var newest: [[UInt8]: [UInt8]?] = [:]
                for e in input.entries.reversed() {
                    newest[Array(e.key.userKeyPart)] = trailerKind(e.key.trailer) == 1 ? .some(e.value) : .some(nil)
                }
                var corrupt = 0
                for user in input.userKeys {
                    do {
                        switch try lookup(t, user) {
                        case .found(let v): #expect(newest[user]! == v, "wrong data for \(string(user)!)")
                        case .deleted: #expect(newest[user]! == nil, "\(string(user)!) reads as deleted")
                        case .notFound: Issue.record("\(string(user)!) vanished instead of failing")
                        }
                    } catch let e as LSMError {
                        #expect(e.code == .corruption)
                        #expect(e.message.contains(damaged))
                        corrupt += 1
                    }
                }
                #expect(corrupt > 0, "the damaged block's keys fail their reads")
                #expect(corrupt < 100, "only the damaged block fails")
                expectLSMError(.corruption, "forward scan") { try scanForward(t) }
                expectLSMError(.corruption, "backward scan") {
                    let it = t.makeIterator()
                    try it.seekToLast()
                    while it.isValid { try it.prev() }
                }
            }
        }
    }

    @Test func flippedFooterByteFailsOpen() throws {
        let dir = TempDir("sst")
        let path = dir.sub("000005.sst")
        let size = try buildTable(makeInput(count: 2000), at: path)
        // Handles, format version, checksum and magic.
        for at in [0, 9, 20, 40, 48, 52, 56, 63] {
            let damaged = dir.sub("f\(at).sst")
            writeBytes(readBytes(path), to: damaged)
            flipByte(in: damaged, at: size - footerSize + at)
            let e = expectLSMError(.corruption, "footer byte \(at)") {
                try TableReader(path: damaged, fileNumber: 5, blockCache: nil)
            }
            #expect(e?.message.contains(damaged) == true)
        }
    }

    @Test func damagedMetaBlocksFailOpen() throws {
        let dir = TempDir("sst")
        let path = dir.sub("000005.sst")
        let size = try buildTable(makeInput(count: 2000), at: path)
        let footer = Array(readBytes(path)[(size - footerSize)...])
        // A byte inside the filter, the properties and the index block.
        for i in 0..<3 {
            let offset = Int(decodeFixed64(footer, at: 16 * i))
            let length = Int(decodeFixed64(footer, at: 16 * i + 8))
            let damaged = dir.sub("m\(i).sst")
            writeBytes(readBytes(path), to: damaged)
            flipByte(in: damaged, at: offset + length / 2)
            expectLSMError(.corruption, "meta block \(i)") {
                try TableReader(path: damaged, fileNumber: 5, blockCache: nil)
            }
        }
    }

    @Test func truncatedFileFailsOpen() throws {
        let dir = TempDir("sst")
        let path = dir.sub("000005.sst")
        let size = try buildTable(makeInput(count: 2000), at: path)
        for cut in [0, 10, footerSize - 1, footerSize, size / 2, size - 1] {
            let damaged = dir.sub("t\(cut).sst")
            writeBytes(Array(readBytes(path)[0..<cut]), to: damaged)
            let e = expectLSMError(.corruption, "truncated to \(cut) bytes") {
                try TableReader(path: damaged, fileNumber: 5, blockCache: nil)
            }
            #expect(e?.message.contains(damaged) == true)
        }
    }

    @Test func emptyAndTinyTables() throws {
        let dir = TempDir("sst")
        let path = dir.sub("000009.sst")
        let b = try TableBuilder(path: path, options: TableBuildOptions(blockSize: 1024, restartInterval: 16,
                                                                         bloomBitsPerKey: 10, compression: true))
        try b.add(internalKey: makeInternalKey(bytes("k"), 1, 1), value: bytes("v"))
        _ = try b.finish()
        let t = try TableReader(path: path, fileNumber: 9, blockCache: LRUCache(capacity: 1 << 20))
        #expect(try scanForward(t).map(\.1) == [bytes("v")])
        if case .found(let v) = try lookup(t, bytes("k")) { #expect(v == bytes("v")) } else { Issue.record("k not found") }
        if case .notFound = try lookup(t, bytes("j")) {} else { Issue.record("j found") }
        #expect(t.properties.entries == 1)
    }
}
