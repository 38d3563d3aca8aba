import Testing
import TestSupport
@testable import LSMTree
import Primitives

/// Thousands of random operations — puts, deletes, batches, gets, scans in
/// both directions with random bounds, snapshots, flushes, compactions and
/// reopens — checked against an in-memory model. Seeded: a failure names its
/// seed and step, and replays exactly.
@Suite struct ModelTests {
    @Test(arguments: [1, 2, 3] as [UInt64])
    func randomOperationsMatchModel(seed: UInt64) async throws {
        try await onOwnThread {
            let dir = TempDir("model")
            var rng = SplitMix64(seed: seed)
            var options = tinyOptions()
            options.blockCacheCapacity = (seed % 2 == 0) ? 0 : 64 << 10
            var db: LSMTree? = try LSMTree.open(path: dir.path, options: options)
            var model: [String: String] = [:]
            var snapshots: [(Snapshot, [String: String])] = []
            let keySpace = 400
            // Statistics are per open; sum them across reopens.
            var flushes: UInt64 = 0
            var compactions: UInt64 = 0

            func randomKey() -> String { "k\(String(Int(rng.next() % UInt64(keySpace)), radix: 36))" }
            func randomValue(_ step: Int) -> String {
                let n = Int(rng.next() % 60)
                return "v\(step)-" + String(repeating: "x", count: n)
            }
            func expectedScan(_ m: [String: String], _ lo: String?, _ hi: String?, _ reverse: Bool) -> [(String, String)] {
                let keys = m.keys.filter { k in
                    (lo.map { Array(k.utf8).lexicographicallyPrecedes(Array($0.utf8)) == false } ?? true)
                        && (hi.map { Array(k.utf8).lexicographicallyPrecedes(Array($0.utf8)) } ?? true)
                }.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
                let ordered = reverse ? Array(keys.reversed()) : keys
                return ordered.map { ($0, m[$0]!) }
            }

            for step in 0..<4000 {
                let op = rng.next() % 100
                switch op {
                case 0..<40:
                    let k = randomKey(), v = randomValue(step)
                    try db!.put(bytes(k), bytes(v))
                    model[k] = v
                case 40..<52:
                    let k = randomKey()
                    try db!.delete(bytes(k))
                    model[k] = nil
                case 52..<58:
                    var batch = WriteBatch()
                    var staged = model
                    for _ in 0..<(1 + Int(rng.next() % 8)) {
                        let k = randomKey()
                        if rng.next() % 3 == 0 {
                            batch.delete(bytes(k)); staged[k] = nil
                        } else {
                            let v = randomValue(step); batch.put(bytes(k), bytes(v)); staged[k] = v
                        }
                    }
                    try db!.write(batch)
                    model = staged
                case 58..<75:
                    let k = randomKey()
                    #expect(string(try db!.get(bytes(k))) == model[k], "seed \(seed) step \(step): get \(k)")
                case 75..<83:
                    let a = randomKey(), b = randomKey()
                    let lo: String? = rng.next() % 4 == 0 ? nil : min(a, b)
                    let hi: String? = rng.next() % 4 == 0 ? nil : max(a, b)
                    let reverse = rng.next() % 2 == 0
                    let got = try db!.scan(from: lo, to: hi, reverse: reverse)
                    let want = expectedScan(model, lo, hi, reverse)
                    #expect(got.map(\.0) == want.map(\.0) && got.map(\.1) == want.map(\.1),
                            "seed \(seed) step \(step): scan \(lo ?? "-")..\(hi ?? "-") reverse \(reverse)")
                case 83..<87:
                    if snapshots.count < 4 { snapshots.append((db!.snapshot(), model)) }
                case 87..<91:
                    if let (snap, frozen) = snapshots.randomElement(using: &rng) {
                        let k = randomKey()
                        #expect(string(try db!.get(bytes(k), snapshot: snap)) == frozen[k], "seed \(seed) step \(step): snapshot get \(k)")
                        if rng.next() % 3 == 0 {
                            let reverse = rng.next() % 2 == 0
                            let got = try db!.scan(reverse: reverse, snapshot: snap)
                            let want = expectedScan(frozen, nil, nil, reverse)
                            #expect(got.map(\.0) == want.map(\.0) && got.map(\.1) == want.map(\.1), "seed \(seed) step \(step): snapshot scan")
                        }
                    }
                case 91..<93:
                    if !snapshots.isEmpty { snapshots.remove(at: Int(rng.next() % UInt64(snapshots.count))) }
                case 93..<95:
                    try db!.flush()
                case 95..<97:
                    let a = randomKey(), b = randomKey()
                    if rng.next() % 2 == 0 { try db!.compactRange() } else { try db!.compactRange(from: bytes(min(a, b)), to: bytes(max(a, b))) }
                default:
                    snapshots.removeAll()
                    flushes += db!.statistics.flushes
                    compactions += db!.statistics.compactions
                    try db!.close()
                    db = nil
                    db = try LSMTree.open(path: dir.path, options: options)
                }
            }
            // Final full comparison, both directions.
            #expect(try db!.scan().map(\.0) == expectedScan(model, nil, nil, false).map(\.0))
            #expect(try db!.scan(reverse: true).map(\.1) == expectedScan(model, nil, nil, true).map(\.1))
            flushes += db!.statistics.flushes
            compactions += db!.statistics.compactions
            #expect(flushes > 10 && compactions > 10, "the run exercised too few flushes (\(flushes)) or compactions (\(compactions))")
            snapshots.removeAll()
            try db!.close()
        }
    }

    /// Concurrent writers and readers: every acknowledged write is readable,
    /// and iterators always see keys in order.
    @Test func concurrentWritersAndReaders() async throws {
        let dir = TempDir("concurrent")
        let db = try LSMTree.open(path: dir.path, options: tinyOptions())
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<8 {
                group.addTask {
                    for i in 0..<300 {
                        var b = WriteBatch()
                        b.put(bytes("w\(w)-\(i)"), bytes("value-\(w)-\(i)"))
                        try await db.write(b)
                        #expect(string(try db.get(bytes("w\(w)-\(i)"))) == "value-\(w)-\(i)")
                    }
                }
            }
            group.addTask {
                for _ in 0..<20 {
                    let keys = try db.scan().map(\.0)
                    #expect(keys == keys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) })
                }
            }
            try await group.waitForAll()
        }
        #expect(try db.scan().count == 8 * 300)
        let stats = db.statistics
        #expect(stats.writes == 8 * 300)
        try db.close()
    }
}
