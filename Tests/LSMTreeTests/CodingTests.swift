import Testing
@testable import LSMTree
import Primitives

@Suite struct CodingTests {
    static let varintCases: [(UInt64, Int)] = [
        (0, 1), (1, 1), (127, 1), (128, 2), (300, 2), (16_383, 2), (16_384, 3),
        (UInt64(UInt32.max), 5), (1 << 32, 5), (1 << 35, 6), (UInt64.max, 10),
    ]

    @Test func varintRoundTrips() throws {
        for (v, length) in Self.varintCases {
            var buf: [UInt8] = []
            buf.appendVarint(v)
            #expect(buf.count == length, "varint \(v) encodes to \(buf.count) bytes")
            #expect(buf.last! < 0x80, "the last byte ends the varint")
            let decoded = buf.withUnsafeBytes { raw -> (UInt64?, Int) in
                var r = ByteReader(raw)
                return (r.varint(), r.offset)
            }
            #expect(decoded.0 == v)
            #expect(decoded.1 == length, "the reader consumes exactly the encoding")
        }
        // Known encodings (LEB128).
        var b: [UInt8] = []
        b.appendVarint(128)
        #expect(b == [0x80, 0x01])
        b = []
        b.appendVarint(300)
        #expect(b == [0xAC, 0x02])
        b = []
        b.appendVarint(UInt64.max)
        #expect(b == [UInt8](repeating: 0xFF, count: 9) + [0x01])
    }

    @Test func varintsBackToBack() throws {
        var buf: [UInt8] = []
        let values = Self.varintCases.map(\.0)
        for v in values { buf.appendVarint(v) }
        let decoded = buf.withUnsafeBytes { raw -> [UInt64] in
            var r = ByteReader(raw)
            var out: [UInt64] = []
            while !r.isAtEnd, let v = r.varint() { out.append(v) }
            return out
        }
        #expect(decoded == values)
    }

    @Test func varint32RejectsValuesAbove32Bits() {
        var buf: [UInt8] = []
        buf.appendVarint(UInt64(UInt32.max))
        buf.appendVarint(1 << 32)
        buf.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            #expect(r.varint32() == Int(UInt32.max))
            #expect(r.varint32() == nil)
        }
    }

    @Test func fixedRoundTrips() {
        var buf: [UInt8] = []
        buf.appendFixed32(0x1234_5678)
        buf.appendFixed64(0x0102_0304_0506_0708)
        buf.appendFixed32(0)
        buf.appendFixed64(.max)
        #expect(Array(buf[0..<4]) == [0x78, 0x56, 0x34, 0x12], "little-endian")
        #expect(Array(buf[4..<12]) == [0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01])
        #expect(decodeFixed32(buf, at: 0) == 0x1234_5678)
        #expect(decodeFixed64(buf, at: 4) == 0x0102_0304_0506_0708)
        buf.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            #expect(r.fixed32() == 0x1234_5678)
            #expect(r.fixed64() == 0x0102_0304_0506_0708)
            #expect(r.fixed32() == 0)
            #expect(r.fixed64() == .max)
            #expect(r.isAtEnd)
            #expect(r.fixed32() == nil)
        }
        // Unaligned stores and loads.
        var raw = [UInt8](repeating: 0, count: 16)
        raw.withUnsafeMutableBytes { p in
            storeFixed32(p.baseAddress! + 1, 0xDEAD_BEEF)
            storeFixed64(p.baseAddress! + 5, 0xCAFE_BABE_0123_4567)
        }
        #expect(decodeFixed32(raw, at: 1) == 0xDEAD_BEEF)
        #expect(decodeFixed64(raw, at: 5) == 0xCAFE_BABE_0123_4567)
    }

    @Test func byteReaderRefusesTruncatedInput() {
        // Every strict prefix of a multi-byte varint is refused.
        for (v, length) in Self.varintCases where length > 1 {
            var buf: [UInt8] = []
            buf.appendVarint(v)
            for cut in 0..<length {
                let prefix = Array(buf[0..<cut])
                let got = prefix.withUnsafeBytes { raw -> UInt64? in
                    var r = ByteReader(raw)
                    return r.varint()
                }
                #expect(got == nil, "varint \(v) cut to \(cut) bytes")
            }
        }
        // An over-long varint (11 continuation bytes) is refused, not wrapped.
        let overlong = [UInt8](repeating: 0x80, count: 11) + [0x01]
        overlong.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            #expect(r.varint() == nil)
        }
        // Fixed-width reads past the end.
        let three: [UInt8] = [1, 2, 3]
        three.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            #expect(r.fixed32() == nil)
            #expect(r.offset == 0, "a refused read does not advance")
            #expect(r.fixed64() == nil)
            #expect(r.bytes(4) == nil)
            #expect(r.bytes(-1) == nil)
            #expect(r.bytes(3)?.count == 3)
            #expect(r.byte() == nil)
        }
        let seven = [UInt8](repeating: 9, count: 7)
        seven.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            #expect(r.fixed64() == nil)
            #expect(r.fixed32() == 0x0909_0909)
        }
        // A length prefix that claims more bytes than remain.
        var lp: [UInt8] = []
        lp.appendLengthPrefixed([1, 2, 3, 4, 5])
        lp.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            #expect(r.lengthPrefixed() == [1, 2, 3, 4, 5])
        }
        Array(lp.dropLast()).withUnsafeBytes { raw in
            var r = ByteReader(raw)
            #expect(r.lengthPrefixed() == nil)
        }
        [UInt8]().withUnsafeBytes { raw in
            var r = ByteReader(raw)
            #expect(r.isAtEnd)
            #expect(r.varint() == nil)
            #expect(r.byte() == nil)
        }
    }

    @Test func compareBytesIsUnsignedLexicographic() {
        func reference(_ a: [UInt8], _ b: [UInt8]) -> Int {
            for (x, y) in zip(a, b) where x != y { return x < y ? -1 : 1 }
            return a.count < b.count ? -1 : (a.count > b.count ? 1 : 0)
        }
        var rng = SplitMix64(seed: 99)
        var cases: [([UInt8], [UInt8])] = [([], []), ([], [0]), ([0x7F], [0x80]), ([0xFF], [0x00, 0x00]),
                                             (bytes("abcdefgh"), bytes("abcdefgh")), (bytes("abcdefgh"), bytes("abcdefghi")),
                                             (bytes("abcdefgh1"), bytes("abcdefgh2")), (bytes("key-000123"), bytes("key-000124"))]
        for _ in 0..<3000 {
            let n = Int(rng.next() % 24)
            var a = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            var b = a
            switch rng.next() % 4 {
            case 0: if !b.isEmpty { b[Int(rng.next() % UInt64(b.count))] = UInt8(truncatingIfNeeded: rng.next()) }
            case 1: b.append(UInt8(truncatingIfNeeded: rng.next()))
            case 2: if !a.isEmpty { a.removeLast() }
            default: b = (0..<Int(rng.next() % 24)).map { _ in UInt8(truncatingIfNeeded: rng.next() % 3 + 0x7E) }
            }
            cases.append((a, b))
        }
        for (a, b) in cases {
            let want = reference(a, b)
            let got = compareBytes(a, b)
            #expect(got.signum() == want, "compareBytes(\(a), \(b))")
            #expect(compareBytes(b, a).signum() == -want)
            // Also at unaligned addresses.
            let shifted = ([0x55] + a).withUnsafeBytes { pa in
                ([0x55, 0x55, 0x55] + b).withUnsafeBytes { pb in
                    compareBytes(UnsafeRawBufferPointer(rebasing: pa[1...]), UnsafeRawBufferPointer(rebasing: pb[3...]))
                }
            }
            #expect(shifted.signum() == want)
        }
    }

    @Test func crc32cKnownVectors() {
        #expect(CRC32C.checksum(bytes("123456789")) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
        #expect(CRC32C.checksum([]) == 0)
    }

    @Test func crc32cIncrementalEqualsOneShot() {
        var rng = SplitMix64(seed: 7)
        let data = (0..<1000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let whole = CRC32C.checksum(data)
        for split in [0, 1, 3, 7, 8, 9, 500, 999, 1000] {
            let c = data.withUnsafeBytes { raw in
                CRC32C.update(CRC32C.update(0, UnsafeRawBufferPointer(rebasing: raw[0..<split])),
                              UnsafeRawBufferPointer(rebasing: raw[split...]))
            }
            #expect(c == whole, "split at \(split)")
        }
        // Every single-bit flip changes the checksum.
        var flipped = data
        for i in stride(from: 0, to: data.count, by: 37) {
            flipped[i] ^= 0x10
            #expect(CRC32C.checksum(flipped) != whole)
            flipped[i] ^= 0x10
        }
    }

    @Test func hash64IsStable() {
        func h(_ b: [UInt8], seed: UInt64? = nil) -> UInt64 {
            b.withUnsafeBytes { raw in seed.map { hash64(raw, seed: $0) } ?? hash64(raw) }
        }
        let inputs: [[UInt8]] = [[], bytes("a"), bytes("abcdefgh"), bytes("abcdefghi"), bytes("key-000123"),
                                 [UInt8](repeating: 0, count: 100)]
        let first = inputs.map { h($0) }
        // Same bytes in a different buffer (and at an odd address) hash the same.
        for (i, input) in inputs.enumerated() {
            let copy = [0xAA] + input
            let again = copy.withUnsafeBytes { hash64(UnsafeRawBufferPointer(rebasing: $0[1...])) }
            #expect(again == first[i])
            #expect(h(input) == first[i])
        }
        #expect(Set(first).count == first.count, "distinct inputs hash differently")
        #expect(h(bytes("a"), seed: 1) != h(bytes("a"), seed: 2), "the seed matters")
        // Bloom filters persist these hashes: the function must never change.
        #expect(first[0] == Self.golden[0])
        #expect(first[1] == Self.golden[1])
        #expect(first[2] == Self.golden[2])
        #expect(first[4] == Self.golden[3])
    }

    /// hash64 of "", "a", "abcdefgh", "key-000123" as written by format version 1.
    static let golden: [UInt64] = [0x9CA0_66F1_A4AB_2EEA, 0x3C97_E781_2F91_8D4C, 0x7E9B_6902_8459_95D0, 0x54AE_2D54_A0FC_74DD]
}
