// SplitMix64 (Steele, Lea, Flood 2014): the one seeded generator of the project. The cloud's
// fault dice, the benchmarks' keys and values, the engine's model and damage tests and the fuzz
// mutator use it, so that a run is reproduced by its seed. Not for anything that needs secrecy.

/// A fast, seedable random number generator: the same seed gives the same numbers.
package struct SplitMix64: RandomNumberGenerator, Sendable {
    @usableFromInline var state: UInt64

    @inlinable package init(seed: UInt64) { state = seed }

    @inlinable @inline(__always)
    package mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A value in 0..<bound (bound > 0). The modulo bias is below bound / 2^64: nothing a
    /// benchmark or a fault schedule sees.
    @inlinable @inline(__always)
    package mutating func next(below bound: UInt64) -> UInt64 {
        next() % bound
    }
}
