/// A log-linear latency histogram in the manner of HdrHistogram, in nanoseconds.
///
/// Values below 128 ns get a bucket each. Above that, every power of two is cut into 64
/// equal buckets, so a bucket is at most 1/64 (1.6 %) of its value wide and the midpoint
/// that `percentile` reports is within 0.8 % of any value recorded in it. 2,048 buckets
/// reach 2^37 ns (137 s); larger values land in the last bucket.
///
/// Worked example: 1,000 ns has its top bit at 2^9, so it is shifted right by 9 - 6 = 3
/// to keep 7 significant bits: 1000 >> 3 = 125 (mantissa in 64..<128). Index =
/// 128 + (3 - 1) * 64 + (125 - 64) = 317; that bucket covers 1000..<1008 ns.
///
/// Each thread records into its own value and the results are merged at the end,
/// so recording takes no lock.
struct LatencyHistogram: Sendable {
    static let bucketCount = 2048
    private static let linearLimit: UInt64 = 128

    private(set) var counts: [UInt64]
    private(set) var count: UInt64 = 0
    private(set) var sum: UInt64 = 0
    private(set) var min: UInt64 = .max
    private(set) var max: UInt64 = 0

    init() {
        counts = [UInt64](repeating: 0, count: Self.bucketCount)
    }

    @inline(__always)
    static func index(of value: UInt64) -> Int {
        if value < linearLimit { return Int(value) }
        let topBit = 63 - value.leadingZeroBitCount     // >= 7
        let shift = topBit - 6                           // >= 1
        let mantissa = Int(truncatingIfNeeded: value >> UInt64(shift))  // 64..<128
        let index = 128 + (shift - 1) * 64 + (mantissa - 64)
        return index < bucketCount ? index : bucketCount - 1
    }

    /// The range of values that `index` covers: (lower bound, width).
    static func bucketRange(_ index: Int) -> (low: UInt64, width: UInt64) {
        if index < Int(linearLimit) { return (UInt64(index), 1) }
        let shift = (index - 128) / 64 + 1
        let mantissa = UInt64((index - 128) % 64 + 64)
        return (mantissa << UInt64(shift), 1 << UInt64(shift))
    }

    @inline(__always)
    mutating func record(_ nanos: UInt64) {
        counts[Self.index(of: nanos)] &+= 1
        count &+= 1
        sum &+= nanos
        if nanos < min { min = nanos }
        if nanos > max { max = nanos }
    }

    mutating func merge(_ other: LatencyHistogram) {
        for i in 0..<Self.bucketCount { counts[i] &+= other.counts[i] }
        count &+= other.count
        sum &+= other.sum
        if other.min < min { min = other.min }
        if other.max > max { max = other.max }
    }

    /// The value at quantile `q` (0...1) in nanoseconds: the midpoint of the bucket holding
    /// the ceil(q * count)-th smallest value, clamped to the recorded min and max.
    /// Nil when nothing was recorded.
    func percentile(_ q: Double) -> Double? {
        guard count > 0 else { return nil }
        let rank = Swift.max(1, UInt64((q * Double(count)).rounded(.up)))
        var seen: UInt64 = 0
        for i in 0..<Self.bucketCount where counts[i] > 0 {
            seen += counts[i]
            if seen >= rank {
                let (low, width) = Self.bucketRange(i)
                let mid = Double(low) + Double(width - 1) / 2
                return Swift.min(Swift.max(mid, Double(min)), Double(max))
            }
        }
        return Double(max)
    }

    var mean: Double? { count > 0 ? Double(sum) / Double(count) : nil }
}
