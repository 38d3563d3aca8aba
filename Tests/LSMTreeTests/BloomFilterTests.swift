import Testing
@testable import LSMTree

@Suite struct BloomFilterTests {
    func build(_ keys: [[UInt8]], bitsPerKey: Int = 10) -> BloomFilter {
        var b = BloomFilterBuilder(bitsPerKey: bitsPerKey)
        for k in keys { k.withUnsafeBytes { b.add($0) } }
        #expect(b.count == keys.count)
        return BloomFilter(data: b.finish())
    }

    func mayContain(_ f: BloomFilter, _ key: [UInt8]) -> Bool {
        key.withUnsafeBytes { f.mayContain($0) }
    }

    @Test func noFalseNegatives() {
        let keys = (0..<10_000).map { bytes("key-\($0)") }
        let f = build(keys)
        #expect(f.data.count == 10_000 * 10 / 8 + 1, "bit array plus the probe count")
        #expect(f.data.last == 7, "k = round(10 × 0.69)")
        let missing = keys.filter { !mayContain(f, $0) }
        #expect(missing.isEmpty, "false negatives: \(missing.prefix(5).map { string($0)! })")
    }

    @Test func falsePositiveRateAtTenBitsPerKey() {
        let f = build((0..<10_000).map { bytes("key-\($0)") })
        var positives = 0
        let trials = 100_000
        for i in 0..<trials where mayContain(f, bytes("absent-\(i)")) { positives += 1 }
        let rate = Double(positives) / Double(trials)
        print("bloom filter, 10 bits/key, 10k keys: measured false-positive rate \(rate * 100)% over \(trials) absent keys")
        #expect(rate < 0.02)
        #expect(rate > 0, "a 10-bit filter that never says maybe is not hashing")
    }

    @Test func binaryAndSimilarKeys() {
        // Keys differing in one byte or one bit, and keys of every length up to 40.
        var keys: [[UInt8]] = []
        for i in 0..<256 { keys.append([UInt8(i)]) }
        for len in 0...40 { keys.append([UInt8](repeating: 0xAB, count: len)) }
        for i in 0..<64 {
            var k = [UInt8](repeating: 0, count: 8)
            k[i / 8] = UInt8(1) << UInt8(i % 8)
            keys.append(k)
        }
        let f = build(keys)
        for k in keys { #expect(mayContain(f, k)) }
    }

    @Test func emptyFilterContainsNothingAndDoesNotCrash() {
        let f = build([])
        #expect(f.data.count == 9, "at least 8 bytes of bits plus the probe count")
        var hits = 0
        for i in 0..<1000 where mayContain(f, bytes("k\(i)")) { hits += 1 }
        #expect(hits == 0, "a filter over no keys rules every key out")
        #expect(!mayContain(f, []))
    }

    @Test func malformedFiltersFailOpen() {
        // A filter that cannot be interpreted must say "maybe", never "absent".
        for data: [UInt8] in [[], [7], [0, 0, 0, 0, 0, 0, 0, 0, 0], [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 31]] {
            let f = BloomFilter(data: data)
            #expect(mayContain(f, bytes("anything")), "filter bytes \(data)")
        }
    }

    @Test func zeroBitsPerKey() {
        // bloomBitsPerKey = 0 is a valid option: the filter must still never give a false negative.
        let keys = (0..<100).map { bytes("k\($0)") }
        let f = build(keys, bitsPerKey: 0)
        for k in keys { #expect(mayContain(f, k)) }
    }
}
