// Durations as Go writes them (`time.ParseDuration`): what Kubernetes' query parameters
// (`timeout=32s`), its API's durations and Ballast's flags (`--resync 15s`) use.

public enum GoDuration {
    /// Nanoseconds in each unit Go accepts.
    private static let units: [(String, Int64)] = [
        ("ns", 1), ("us", 1_000), ("µs", 1_000), ("μs", 1_000), ("ms", 1_000_000),
        ("s", 1_000_000_000), ("m", 60_000_000_000), ("h", 3_600_000_000_000),
    ]

    /// Parses `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+` (`1h30m`, `1.5s`, `250ms`, `-2m`) or `0`,
    /// exactly as Go does, in integer nanoseconds. Nil for anything else, and for a duration
    /// that does not fit in Int64 nanoseconds (about 292 years) — Go's "invalid duration" —
    /// so that no input, however long, can trap.
    public static func parse(_ text: String) -> Duration? {
        let bytes = Array(text.utf8)
        var at = 0
        func isDigit(_ byte: UInt8) -> Bool { byte >= 48 && byte <= 57 }
        var negative = false
        if at < bytes.count, bytes[at] == UInt8(ascii: "-") || bytes[at] == UInt8(ascii: "+") {
            negative = bytes[at] == UInt8(ascii: "-")
            at += 1
        }
        if bytes.count - at == 1, bytes[at] == UInt8(ascii: "0") { return .zero }
        guard at < bytes.count else { return nil }
        var total: UInt64 = 0
        while at < bytes.count {
            // The integer part, then an optional fraction; at least one digit in all.
            var whole: UInt64 = 0
            var digits = 0
            while at < bytes.count, isDigit(bytes[at]) {
                let (times10, o1) = whole.multipliedReportingOverflow(by: 10)
                let (plus, o2) = times10.addingReportingOverflow(UInt64(bytes[at] - 48))
                guard !o1, !o2 else { return nil }
                whole = plus
                digits += 1
                at += 1
            }
            var fraction: UInt64 = 0
            var scale: UInt64 = 1
            if at < bytes.count, bytes[at] == UInt8(ascii: ".") {
                at += 1
                while at < bytes.count, isDigit(bytes[at]) {
                    // Digits beyond what UInt64 holds are dropped, as Go drops them.
                    if scale <= UInt64.max / 10 / 10 {
                        fraction = fraction * 10 + UInt64(bytes[at] - 48)
                        scale *= 10
                    }
                    digits += 1
                    at += 1
                }
            }
            guard digits > 0 else { return nil }
            let unitStart = at
            while at < bytes.count, !isDigit(bytes[at]), bytes[at] != UInt8(ascii: ".") { at += 1 }
            let unitBytes = bytes[unitStart..<at]
            guard let unit = units.first(where: { unitBytes.elementsEqual($0.0.utf8) })?.1 else { return nil }
            let (scaled, o3) = whole.multipliedReportingOverflow(by: UInt64(unit))
            guard !o3 else { return nil }
            // fraction / scale of a unit, exactly (fraction < scale, so the quotient fits).
            let fractional = scale.dividingFullWidth(UInt64(unit).multipliedFullWidth(by: fraction)).quotient
            let (sum, o4) = total.addingReportingOverflow(scaled)
            let (sum2, o5) = sum.addingReportingOverflow(fractional)
            guard !o4, !o5 else { return nil }
            total = sum2
        }
        guard total <= UInt64(Int64.max) else { return nil }
        let nanoseconds = Int64(total)
        return .nanoseconds(negative ? -nanoseconds : nanoseconds)
    }

    /// Go's `Duration.String()`: `1h30m0s`, `1.5s`, `250ms`, `0s`.
    public static func format(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        var nanoseconds = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        guard !nanoseconds.overflow else { return "\(seconds)s" }
        nanoseconds.partialValue += attoseconds / 1_000_000_000
        let ns = nanoseconds.partialValue
        if ns == 0 { return "0s" }
        let sign = ns < 0 ? "-" : ""
        let magnitude = ns.magnitude
        if magnitude < 1_000_000_000 {
            let (unit, size): (String, UInt64) = magnitude < 1_000 ? ("ns", 1) : magnitude < 1_000_000 ? ("µs", 1_000) : ("ms", 1_000_000)
            return sign + decimal(magnitude, per: size) + unit
        }
        let hours = magnitude / 3_600_000_000_000
        let minutes = magnitude / 60_000_000_000 % 60
        let secondsPart = decimal(magnitude % 60_000_000_000, per: 1_000_000_000)
        if hours > 0 { return "\(sign)\(hours)h\(minutes)m\(secondsPart)s" }
        if minutes > 0 { return "\(sign)\(minutes)m\(secondsPart)s" }
        return "\(sign)\(secondsPart)s"
    }

    /// `value / per` with the fraction's trailing zeros dropped: 1_500, 1_000 → "1.5".
    private static func decimal(_ value: UInt64, per size: UInt64) -> String {
        let whole = value / size
        var fraction = value % size
        guard fraction > 0 else { return "\(whole)" }
        var digits = String(size).count - 1
        while fraction % 10 == 0 {
            fraction /= 10
            digits -= 1
        }
        let text = String(fraction)
        return "\(whole)." + String(repeating: "0", count: digits - text.count) + text
    }
}
