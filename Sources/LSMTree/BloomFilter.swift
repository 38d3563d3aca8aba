// A bloom filter over the user keys of one table: `bitsPerKey` bits per key
// and k = round(bitsPerKey × ln 2) probes by double hashing of one 64-bit hash.
// With 10 bits per key the false-positive rate is about 1% (measured in tests).
//
//   | bit array (⌈n × bitsPerKey / 8⌉ bytes, at least 8) | k u8 |

struct BloomFilterBuilder {
    let bitsPerKey: Int
    private var hashes: [UInt64] = []

    init(bitsPerKey: Int) { self.bitsPerKey = bitsPerKey }

    mutating func add(_ userKey: UnsafeRawBufferPointer) {
        hashes.append(hash64(userKey))
    }

    var count: Int { hashes.count }

    func finish() -> [UInt8] {
        let k = max(1, min(30, Int((Double(bitsPerKey) * 0.69).rounded())))
        let bytes = max(8, (hashes.count * bitsPerKey + 7) / 8)
        let bits = UInt64(bytes * 8)
        var out = [UInt8](repeating: 0, count: bytes + 1)
        out.withUnsafeMutableBufferPointer { a in
            for h in hashes {
                var x = h
                let delta = (h >> 33) | (h << 31)
                for _ in 0..<k {
                    let bit = x % bits
                    a[Int(bit >> 3)] |= UInt8(1) << UInt8(bit & 7)
                    x &+= delta
                }
            }
            a[bytes] = UInt8(k)
        }
        return out
    }
}

struct BloomFilter: Sendable {
    let data: [UInt8]

    /// False means the key is certainly absent; true means it may be present.
    func mayContain(_ userKey: UnsafeRawBufferPointer) -> Bool {
        guard data.count >= 2 else { return true }
        let bytes = data.count - 1
        let k = Int(data[bytes])
        guard k >= 1 && k <= 30 else { return true }
        let bits = UInt64(bytes * 8)
        let h = hash64(userKey)
        var x = h
        let delta = (h >> 33) | (h << 31)
        return data.withUnsafeBufferPointer { a in
            for _ in 0..<k {
                let bit = x % bits
                if a[Int(bit >> 3)] & (UInt8(1) << UInt8(bit & 7)) == 0 { return false }
                x &+= delta
            }
            return true
        }
    }
}
