// Sizes as flags and configs write them: `64Mi`, `1Ti`, `500G`, `1048576`.

public enum ByteSize {
    private static let suffixes: [(String, Int64)] = [
        ("Ki", 1 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30), ("Ti", 1 << 40), ("Pi", 1 << 50), ("Ei", 1 << 60),
        ("k", 1_000), ("M", 1_000_000), ("G", 1_000_000_000), ("T", 1_000_000_000_000), ("P", 1_000_000_000_000_000),
        ("E", 1_000_000_000_000_000_000),
    ]

    /// A whole number of bytes with an optional binary (`Ki` … `Ei`) or decimal (`k` … `E`)
    /// suffix, as Kubernetes quantities write sizes. Nil for anything else, for a negative
    /// size, and for one that does not fit in Int64.
    public static func parse(_ text: String) -> Int64? {
        var digits = Substring(text)
        var factor: Int64 = 1
        if let (suffix, size) = suffixes.first(where: { text.hasSuffix($0.0) }) {
            digits = digits.dropLast(suffix.count)
            factor = size
        }
        guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let number = Int64(digits) else { return nil }
        let (bytes, overflow) = number.multipliedReportingOverflow(by: factor)
        return overflow ? nil : bytes
    }

    /// The shortest exact binary form: 67108864 → `64Mi`, 1000 → `1000`.
    public static func format(_ bytes: Int64) -> String {
        for (suffix, size) in suffixes.prefix(6).reversed() where bytes != 0 && bytes % size == 0 {
            return "\(bytes / size)\(suffix)"
        }
        return "\(bytes)"
    }
}
