/// SplitMix64 (Steele, Lea, Flood 2014): a fast seeded generator, good enough to shuffle keys
/// and fill value bytes. Not for anything that needs secrecy.
struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    @inline(__always)
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A value in 0..<bound. The modulo bias is below bound / 2^64: nothing a benchmark sees.
    @inline(__always)
    mutating func next(below bound: UInt64) -> UInt64 {
        next() % bound
    }
}
