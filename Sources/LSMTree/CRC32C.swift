// CRC-32C (Castagnoli), slicing-by-8, as used by every checksum in the engine:
// WAL and MANIFEST records, SSTable blocks and footers.

enum CRC32C {
    private static let tables: [[UInt32]] = {
        var t = [[UInt32]](repeating: [UInt32](repeating: 0, count: 256), count: 8)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
            t[0][i] = c
        }
        for i in 0..<256 {
            for k in 1..<8 { t[k][i] = (t[k - 1][i] >> 8) ^ t[0][Int(t[k - 1][i] & 0xFF)] }
        }
        return t
    }()
    private static let flat: [UInt32] = tables.flatMap { $0 }

    /// Extends `crc` (0 to start) over `bytes`.
    static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var c = ~crc
        var p = 0
        let n = bytes.count
        guard n > 0 else { return crc }
        let base = bytes.baseAddress!
        flat.withUnsafeBufferPointer { t in
            while n - p >= 8 {
                let lo = UInt32(littleEndian: (base + p).loadUnaligned(as: UInt32.self)) ^ c
                let hi = UInt32(littleEndian: (base + p + 4).loadUnaligned(as: UInt32.self))
                c = t[7 * 256 + Int(lo & 0xFF)] ^ t[6 * 256 + Int((lo >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((lo >> 16) & 0xFF)] ^ t[4 * 256 + Int(lo >> 24)]
                    ^ t[3 * 256 + Int(hi & 0xFF)] ^ t[2 * 256 + Int((hi >> 8) & 0xFF)]
                    ^ t[1 * 256 + Int((hi >> 16) & 0xFF)] ^ t[Int(hi >> 24)]
                p += 8
            }
            while p < n {
                c = t[Int((c ^ UInt32(base.load(fromByteOffset: p, as: UInt8.self))) & 0xFF)] ^ (c >> 8)
                p += 1
            }
        }
        return ~c
    }

    static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 { update(0, bytes) }

    static func checksum(_ bytes: [UInt8]) -> UInt32 { bytes.withUnsafeBytes { update(0, $0) } }
}

/// A 64-bit hash of arbitrary bytes for bloom filters and cache sharding
/// (multiply-xorshift over 8-byte words with a splitmix64 finaliser).
@inline(__always)
func hash64(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = 0x9E37_79B9_7F4A_7C15) -> UInt64 {
    let m: UInt64 = 0xFF51_AFD7_ED55_8CCD
    var h = seed ^ (UInt64(bytes.count) &* m)
    var p = 0
    let n = bytes.count
    if let base = bytes.baseAddress {
        while n - p >= 8 {
            var k = UInt64(littleEndian: (base + p).loadUnaligned(as: UInt64.self))
            k &*= 0x87C3_7B91_1142_53D5
            k = (k << 31) | (k >> 33)
            k &*= 0x4CF5_AD43_2745_937F
            h ^= k
            h = ((h << 27) | (h >> 37)) &* 5 &+ 0x52DC_E729
            p += 8
        }
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while p < n {
            tail |= UInt64(base.load(fromByteOffset: p, as: UInt8.self)) << shift
            shift += 8
            p += 1
        }
        h ^= tail &* 0xC4CE_B9FE_1A85_EC53
    }
    h ^= h >> 33
    h &*= 0xFF51_AFD7_ED55_8CCD
    h ^= h >> 33
    h &*= 0xC4CE_B9FE_1A85_EC53
    h ^= h >> 33
    return h
}

/// Checksums for layers above the engine (one implementation in the package).
public enum Checksum {
    /// CRC-32C of `bytes`, extending `crc` (0 to start).
    public static func crc32c(_ bytes: [UInt8], extending crc: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBytes { CRC32C.update(crc, $0) }
    }
}
