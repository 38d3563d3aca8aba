import Testing
@testable import LSMTree

@Suite struct BlockTests {
    /// Sorted internal keys sharing long prefixes, some user keys with several versions.
    func sampleEntries() -> [(key: [UInt8], value: [UInt8])] {
        var out: [(key: [UInt8], value: [UInt8])] = []
        var seq: UInt64 = 1000
        for i in 0..<60 {
            let user = bytes("/registry/pods/default/pod-\(String(repeating: "x", count: i % 7))\(i / 3)")
            // Two versions for every fourth key, newest (highest sequence) first.
            let versions = i % 4 == 0 ? 2 : 1
            for v in 0..<versions {
                let kind: UInt8 = (i % 9 == 0 && v == versions - 1) ? 0 : 1
                out.append((makeInternalKey(user, seq - UInt64(v), kind), kind == 0 ? [] : bytes("value-\(i)-\(v)")))
            }
            seq += 10
        }
        out.sort { compareInternalKeys($0.key, $1.key) < 0 }
        // Keys must be distinct internal keys.
        for i in 1..<out.count { precondition(compareInternalKeys(out[i - 1].key, out[i].key) < 0) }
        return out
    }

    func build(_ entries: [(key: [UInt8], value: [UInt8])], restartInterval: Int) throws -> Block {
        var b = BlockBuilder(restartInterval: restartInterval)
        for e in entries { b.add(internalKey: e.key, value: e.value) }
        #expect(b.entryCount == entries.count)
        let data = b.finish()
        #expect(b.isEmpty, "finish resets the builder")
        return try Block(data, name: "test@0")
    }

    @Test(arguments: [1, 4, 16])
    func forwardAndBackward(restartInterval: Int) throws {
        let entries = sampleEntries()
        let block = try build(entries, restartInterval: restartInterval)
        #expect(block.restartCount == (entries.count + restartInterval - 1) / restartInterval)
        let it = block.makeIterator()
        try it.seekToFirst()
        var forward: [([UInt8], [UInt8])] = []
        while it.isValid { forward.append((it.key, it.value)); try it.next() }
        #expect(forward.map(\.0) == entries.map(\.key))
        #expect(forward.map(\.1) == entries.map(\.value))
        try it.seekToLast()
        var backward: [([UInt8], [UInt8])] = []
        while it.isValid { backward.append((it.key, it.value)); try it.prev() }
        #expect(backward.map(\.0) == entries.map(\.key).reversed())
        #expect(backward.map(\.1) == entries.map(\.value).reversed())
        // Direction changes in the middle.
        try it.seekToFirst()
        for _ in 0..<10 { try it.next() }
        try it.prev()
        #expect(it.key == entries[9].key)
        try it.next()
        try it.next()
        #expect(it.key == entries[11].key)
    }

    @Test(arguments: [1, 4, 16])
    func seekAndSeekForPrev(restartInterval: Int) throws {
        let entries = sampleEntries()
        let keys = entries.map(\.key)
        let block = try build(entries, restartInterval: restartInterval)
        let it = block.makeIterator()
        var targets: [(String, [UInt8])] = keys.map { ("exact", $0) }
        for k in keys {
            let user = Array(k.userKeyPart)
            let seq = trailerSequence(k.trailer)
            targets.append(("newer version", makeInternalKey(user, seq + 1, EntryKind.seek)))
            targets.append(("older version", makeInternalKey(user, seq - 1, 1)))
            targets.append(("between user keys", makeInternalKey(user + [0], maxSequenceNumber, EntryKind.seek)))
            targets.append(("shorter prefix", makeInternalKey(Array(user.dropLast()), 5, 1)))
        }
        targets.append(("before first", makeInternalKey([], maxSequenceNumber, EntryKind.seek)))
        targets.append(("before first", makeInternalKey(bytes("/a"), 1, 1)))
        targets.append(("after last", makeInternalKey(bytes("/z"), 1, 1)))
        targets.append(("after last", makeInternalKey(Array(keys.last!.userKeyPart), 0, 0)))
        for (what, t) in targets {
            let ge = keys.firstIndex { compareInternalKeys($0, t) >= 0 }
            try it.seek(t)
            #expect(it.isValid == (ge != nil), "seek \(what)")
            if let ge, it.isValid {
                #expect(it.key == keys[ge], "seek \(what)")
                #expect(it.value == entries[ge].value)
                // Moving on from a seek.
                try it.next()
                #expect(it.isValid == (ge + 1 < keys.count))
                if it.isValid { #expect(it.key == keys[ge + 1]) }
            }
            let le = keys.lastIndex { compareInternalKeys($0, t) <= 0 }
            try it.seekForPrev(t)
            #expect(it.isValid == (le != nil), "seekForPrev \(what)")
            if let le, it.isValid {
                #expect(it.key == keys[le], "seekForPrev \(what)")
                try it.prev()
                #expect(it.isValid == (le > 0))
                if it.isValid { #expect(it.key == keys[le - 1]) }
            }
        }
        // Explicit edge expectations, independent of the reference search.
        try it.seek(makeInternalKey([], maxSequenceNumber, EntryKind.seek))
        #expect(it.key == keys.first!)
        try it.seek(makeInternalKey(bytes("/z"), 1, 1))
        #expect(!it.isValid)
        try it.seekForPrev(makeInternalKey(bytes("/z"), 1, 1))
        #expect(it.key == keys.last!)
        try it.seekForPrev(makeInternalKey(bytes("/a"), 1, 1))
        #expect(!it.isValid)
    }

    @Test func singleEntryAndEmptyValues() throws {
        let key = makeInternalKey(bytes("only"), 7, 1)
        let block = try build([(key, [])], restartInterval: 16)
        let it = block.makeIterator()
        try it.seekToFirst()
        #expect(it.key == key)
        #expect(it.value == [])
        try it.next()
        #expect(!it.isValid)
        try it.seekToLast()
        #expect(it.key == key)
        try it.prev()
        #expect(!it.isValid)
    }

    @Test func emptyBlockIteratesNothing() throws {
        var b = BlockBuilder(restartInterval: 16)
        let block = try Block(b.finish(), name: "empty")
        let it = block.makeIterator()
        try it.seekToFirst()
        #expect(!it.isValid)
        try it.seekToLast()
        #expect(!it.isValid)
    }

    @Test func badRestartCountIsCorruption() throws {
        var b = BlockBuilder(restartInterval: 4)
        for e in sampleEntries() { b.add(internalKey: e.key, value: e.value) }
        let good = b.finish()
        _ = try Block(good, name: "good")
        for count: UInt32 in [0, UInt32(good.count / 4), 0xFFFF_FFFF, 0x8000_0000] {
            var bad = good
            let n = bad.count
            bad.withUnsafeMutableBytes { storeFixed32($0.baseAddress! + n - 4, count) }
            let e = expectLSMError(.corruption, "restart count \(count)") { try Block(bad, name: "bad@123") }
            #expect(e?.message.contains("bad@123") == true, "the error names the block")
        }
        expectLSMError(.corruption, "3-byte block") { try Block([1, 2, 3], name: "short") }
        expectLSMError(.corruption, "empty block") { try Block([], name: "none") }
    }

    @Test func damagedEntriesThrowInsteadOfCrashing() throws {
        var b = BlockBuilder(restartInterval: 4)
        let entries = sampleEntries()
        for e in entries { b.add(internalKey: e.key, value: e.value) }
        let good = b.finish()
        let block = try Block(good, name: "x")
        var corruptions = 0
        // Every byte of the entry region, each set to 0xFF in turn: decoding throws corruption or yields
        // entries, but never crashes.
        for i in 0..<block.restartsOffset {
            var bad = good
            bad[i] = 0xFF
            guard let damaged = try? Block(bad, name: "x") else { continue }
            let it = damaged.makeIterator()
            do {
                try it.seekToFirst()
                var n = 0
                while it.isValid && n < 10_000 { try it.next(); n += 1 }
                try it.seekToLast()
                while it.isValid && n < 20_000 { try it.prev(); n += 1 }
                try it.seek(entries[entries.count / 2].key)
            } catch let e as LSMError {
                #expect(e.code == .corruption)
                corruptions += 1
            }
        }
        #expect(corruptions > 0, "some damage is detected while parsing")
        // A value length pointing past the entries.
        var bad = good
        bad[2] = 0xFF
        bad[3] = 0x7F
        let damaged = try Block(bad, name: "y")
        expectLSMError(.corruption) { try damaged.makeIterator().seekToFirst() }
    }
}
