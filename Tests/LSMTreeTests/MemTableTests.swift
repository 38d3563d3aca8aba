import Synchronization
import Foundation
import Testing
import TestSupport
@testable import LSMTree
import Primitives

@Suite struct MemTableTests {
    struct Entry: Equatable {
        var key: [UInt8]
        var seq: UInt64
        var kind: UInt8
        var value: [UInt8]
        var internalKey: [UInt8] { makeInternalKey(key, seq, kind) }
    }

    func add(_ m: MemTable, _ e: Entry) {
        e.key.withUnsafeBytes { k in e.value.withUnsafeBytes { v in m.add(e.seq, e.kind, k, v) } }
    }

    func get(_ m: MemTable, _ key: String, _ seq: UInt64) -> String {
        switch bytes(key).withUnsafeBytes({ m.get($0, seq: seq) }) {
        case .found(let v): return "found:" + string(v)!
        case .deleted: return "deleted"
        case .notFound: return "notFound"
        }
    }

    /// Keys k00..k39, each with 1–3 versions (some deletions), sequence numbers unique.
    func sampleEntries() -> [Entry] {
        var out: [Entry] = []
        var seq: UInt64 = 1
        var rng = SplitMix64(seed: 42)
        for i in 0..<40 {
            let key = bytes(String(format: "k%02d", i))
            for v in 0..<(1 + i % 3) {
                let kind: UInt8 = (i % 5 == 0 && v == 0) ? EntryKind.deletion.rawValue : EntryKind.value.rawValue
                out.append(Entry(key: key, seq: seq, kind: kind,
                                 value: kind == 0 ? [] : bytes("v\(i).\(v)") + [UInt8](repeating: UInt8.random(in: 0...255, using: &rng), count: v)))
                seq += 1
            }
        }
        return out.shuffled(using: &rng)
    }

    func sortedInternal(_ entries: [Entry]) -> [Entry] {
        entries.sorted { compareInternalKeys($0.internalKey, $1.internalKey) < 0 }
    }

    func collect(_ it: MemTable.MemTableIterator) -> [[UInt8]] {
        var out: [[UInt8]] = []
        it.seekToFirst()
        while it.isValid { out.append(it.key); it.next() }
        return out
    }

    @Test func randomInsertsIterateInInternalKeyOrder() {
        let m = MemTable(logNumber: 1, capacityHint: 1 << 20)
        let entries = sampleEntries()
        for e in entries { add(m, e) }
        #expect(m.count == entries.count)
        let expected = sortedInternal(entries)
        let it = m.makeIterator()
        #expect(collect(it) == expected.map(\.internalKey))
        // Spot-check the order: user key ascending, then newest (highest sequence) first.
        let keys = collect(it)
        for i in 1..<keys.count {
            let c = compareUserKeysOfInternal(keys[i - 1], keys[i])
            #expect(c < 0 || (c == 0 && trailerSequence(keys[i - 1].trailer) > trailerSequence(keys[i].trailer)))
        }
        // Values travel with their keys.
        it.seekToFirst()
        for e in expected {
            #expect(it.value == e.value)
            it.next()
        }
        #expect(!it.isValid)
        // Backwards.
        it.seekToLast()
        var back: [[UInt8]] = []
        while it.isValid { back.append(it.key); it.prev() }
        #expect(back == expected.map(\.internalKey).reversed())
    }

    @Test func getReturnsNewestVisibleVersion() {
        let m = MemTable(logNumber: 1, capacityHint: 1 << 20)
        let v: UInt8 = EntryKind.value.rawValue, d: UInt8 = EntryKind.deletion.rawValue
        for e in [Entry(key: bytes("a"), seq: 10, kind: v, value: bytes("a10")),
                  Entry(key: bytes("a"), seq: 20, kind: d, value: []),
                  Entry(key: bytes("a"), seq: 30, kind: v, value: bytes("a30")),
                  Entry(key: bytes("b"), seq: 15, kind: v, value: bytes("b15")),
                  Entry(key: bytes("ab"), seq: 5, kind: v, value: []),
                  Entry(key: bytes("c"), seq: 25, kind: d, value: [])].shuffled() {
            add(m, e)
        }
        #expect(get(m, "a", 9) == "notFound")
        #expect(get(m, "a", 10) == "found:a10")
        #expect(get(m, "a", 19) == "found:a10")
        #expect(get(m, "a", 20) == "deleted")
        #expect(get(m, "a", 29) == "deleted")
        #expect(get(m, "a", 30) == "found:a30")
        #expect(get(m, "a", maxSequenceNumber) == "found:a30")
        #expect(get(m, "ab", 100) == "found:", "an empty value is found, not absent")
        #expect(get(m, "ab", 4) == "notFound")
        #expect(get(m, "b", 14) == "notFound")
        #expect(get(m, "b", 15) == "found:b15")
        #expect(get(m, "c", 100) == "deleted")
        #expect(get(m, "c", 24) == "notFound")
        #expect(get(m, "", 100) == "notFound")
        #expect(get(m, "a\0", 100) == "notFound", "a longer key sharing a prefix is a different key")
        #expect(get(m, "bb", 100) == "notFound")
        #expect(get(m, "d", 100) == "notFound")
    }

    @Test func seekSeekForPrevAndPrev() {
        let m = MemTable(logNumber: 1, capacityHint: 1 << 20)
        let entries = sampleEntries()
        for e in entries { add(m, e) }
        let sorted = sortedInternal(entries).map(\.internalKey)
        let it = m.makeIterator()
        var targets: [[UInt8]] = sorted  // exact hits
        for i in 0..<40 {
            let k = bytes(String(format: "k%02d", i))
            targets.append(makeInternalKey(k, maxSequenceNumber, EntryKind.seek))  // before every version
            targets.append(makeInternalKey(k, 0, 0))                               // after every version
            targets.append(makeInternalKey(k + [0x21], 50, 1))                     // between user keys
        }
        targets.append(makeInternalKey([], maxSequenceNumber, EntryKind.seek))      // before the first
        targets.append(makeInternalKey(bytes("zzz"), 1, 1))                       // after the last
        for t in targets {
            let ge = sorted.firstIndex { compareInternalKeys($0, t) >= 0 }
            it.seek(t)
            #expect(it.isValid == (ge != nil))
            if let ge, it.isValid { #expect(it.key == sorted[ge]) }
            let le = sorted.lastIndex { compareInternalKeys($0, t) <= 0 }
            it.seekForPrev(t)
            #expect(it.isValid == (le != nil))
            if let le, it.isValid {
                #expect(it.key == sorted[le])
                it.prev()
                #expect(it.isValid == (le > 0))
                if le > 0 && it.isValid { #expect(it.key == sorted[le - 1]) }
            }
        }
        it.seekToFirst()
        it.prev()
        #expect(!it.isValid, "prev from the first entry ends the iteration")
    }

    @Test func emptyMemTable() {
        let m = MemTable(logNumber: 1, capacityHint: 4096)
        #expect(m.isEmpty)
        let it = m.makeIterator()
        it.seekToFirst()
        #expect(!it.isValid)
        it.seekToLast()
        #expect(!it.isValid)
        it.seek(makeInternalKey(bytes("a"), 1, 1))
        #expect(!it.isValid)
        it.seekForPrev(makeInternalKey(bytes("a"), 1, 1))
        #expect(!it.isValid)
        #expect(get(m, "a", 100) == "notFound")
    }

    @Test func memoryUsageGrowsWithContent() {
        let m = MemTable(logNumber: 1, capacityHint: 64 << 10)
        let before = m.memoryUsage
        let big = [UInt8](repeating: 7, count: 10_000)
        for i in 0..<100 { add(m, Entry(key: bytes("key\(i)"), seq: UInt64(i + 1), kind: 1, value: big)) }
        #expect(m.memoryUsage >= before + 100 * 10_000)
        #expect(bytes("key42").withUnsafeBytes { k -> Bool in
            if case .found(let v) = m.get(k, seq: 1000) { return v == big } else { return false }
        })
    }

    @Test(.timeLimit(.minutes(1)))
    func oneWriterTwoReadersSeeSortedData() async throws {
        try await onOwnThread {
            let m = MemTable(logNumber: 1, capacityHint: 8 << 20)
            let total = 50_000
            let writerDone = ManagedFlag()
            let failures = ManagedCounter()
            let passes = ManagedCounter()
            let group = DispatchGroup()
            // Reader threads: iterate again and again; every pass must be sorted and never shrink.
            for r in 0..<2 {
                group.enter()
                let t = Thread {
                    defer { group.leave() }
                    var lastCount = 0
                    while true {
                        let finished = writerDone.isSet
                        let it = m.makeIterator()
                        it.seekToFirst()
                        var count = 0
                        var prevKey: [UInt8] = []
                        var prevTrailer: UInt64 = 0
                        while it.isValid {
                            let k = it.userKeyBytes
                            if count > 0 {
                                let c = prevKey.withUnsafeBytes { compareBytes($0, k) }
                                if c > 0 || (c == 0 && prevTrailer <= it.currentTrailer) { failures.increment() }
                            }
                            prevKey.removeAll(keepingCapacity: true)
                            prevKey.append(contentsOf: k)
                            prevTrailer = it.currentTrailer
                            // The value is fully written before the node is published.
                            if it.valueBytes.count != 8 || it.valueBytes.loadUnaligned(as: UInt64.self) != trailerSequence(prevTrailer) {
                                failures.increment()
                            }
                            count += 1
                            it.next()
                        }
                        if count < lastCount { failures.increment() }
                        lastCount = count
                        passes.increment()
                        if r == 0, count > 0 {
                            // Point reads of a random key seen so far must hit.
                            _ = prevKey.withUnsafeBytes { m.get($0, seq: maxSequenceNumber) }
                        }
                        if finished {
                            if count != total { failures.increment() }
                            break
                        }
                    }
                }
                t.stackSize = 1 << 20
                t.start()
            }
            // The writer (this thread): keys in a scrambled order, value = sequence number.
            var rng = SplitMix64(seed: 3)
            for seq in 1...UInt64(total) {
                let key = bytes(String(format: "%08x", UInt32(truncatingIfNeeded: rng.next())))
                var v = seq
                key.withUnsafeBytes { k in withUnsafeBytes(of: &v) { m.add(seq, EntryKind.value.rawValue, k, $0) } }
            }
            writerDone.set()
            await withCheckedContinuation { done in group.notify(queue: .global()) { done.resume() } }
            #expect(failures.value == 0)
            #expect(passes.value >= 2)
            #expect(m.count == total)
            var keys = collect(m.makeIterator())
            #expect(keys.count == total)
            keys.sort { compareInternalKeys($0, $1) < 0 }
            #expect(keys == collect(m.makeIterator()))
        }
    }
}

final class ManagedFlag: Sendable {
    private let flag = Mutex(false)
    var isSet: Bool { flag.withLock { $0 } }
    func set() { flag.withLock { $0 = true } }
}

final class ManagedCounter: Sendable {
    private let count = Mutex(0)
    var value: Int { count.withLock { $0 } }
    func increment() { count.withLock { $0 += 1 } }
}
