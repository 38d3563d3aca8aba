// Durations as Go writes them (`time.ParseDuration`, `Duration.String()`): what Kubernetes' query
// parameters (`timeout=32s`), its API's durations and Ballast's flags (`--resync 15s`) use.

/// Why a Go duration string could not be parsed; `message` is Go's `time.ParseDuration` error.
public struct GoDurationError: Error, Sendable, Hashable, CustomStringConvertible {
    public let message: String

    public var description: String { message }
}

/// Go's duration syntax (`time.ParseDuration`), as Kubernetes clients send it in `timeout=32s`:
/// a signed sequence of decimal numbers, each with an optional fraction and a unit
/// (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`), such as `300ms`, `-1.5h` or `2h45m`.
///
/// The value is an `Int64` count of nanoseconds, as in Go: anything beyond ±2562047h47m16.854775807s
/// is an error (`time: invalid duration "…"`), never a wrapped or trapping conversion.
public enum GoDuration {
    private static let units: [String: UInt64] = [
        "ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000,
        "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000,
    ]

    /// The nanoseconds `text` stands for.
    public static func nanoseconds(_ text: String) throws(GoDurationError) -> Int64 {
        let quoted = goQuoted(text)
        let invalid = GoDurationError(message: "time: invalid duration \(quoted)")
        var s = Array(text.utf8)[...]
        var negative = false
        if let c = s.first, c == UInt8(ascii: "-") || c == UInt8(ascii: "+") {
            negative = c == UInt8(ascii: "-")
            s = s.dropFirst()
        }
        if s.elementsEqual("0".utf8) { return 0 }
        if s.isEmpty { throw invalid }
        let limit: UInt64 = 1 << 63
        var total: UInt64 = 0
        func isDigit(_ c: UInt8) -> Bool { c >= 48 && c <= 57 }
        while let first = s.first {
            guard first == UInt8(ascii: ".") || isDigit(first) else { throw invalid }
            // The integer part, checked against overflow digit by digit.
            var whole: UInt64 = 0
            let before = s.count
            while let c = s.first, isDigit(c) {
                guard whole <= limit / 10 else { throw invalid }
                whole = whole * 10 + UInt64(c - 48)
                guard whole <= limit else { throw invalid }
                s = s.dropFirst()
            }
            let sawWhole = s.count != before
            // The fraction: digits past what fits are dropped, as Go does.
            var fraction: UInt64 = 0
            var scale: Double = 1
            var sawFraction = false
            if s.first == UInt8(ascii: ".") {
                s = s.dropFirst()
                let start = s.count
                var overflow = false
                while let c = s.first, isDigit(c) {
                    s = s.dropFirst()
                    if overflow { continue }
                    if fraction > (limit - 1) / 10 {
                        overflow = true
                        continue
                    }
                    let next = fraction * 10 + UInt64(c - 48)
                    if next > limit {
                        overflow = true
                        continue
                    }
                    fraction = next
                    scale *= 10
                }
                sawFraction = s.count != start
            }
            guard sawWhole || sawFraction else { throw invalid }
            var unitLength = 0
            for c in s {
                if c == UInt8(ascii: ".") || isDigit(c) { break }
                unitLength += 1
            }
            if unitLength == 0 { throw GoDurationError(message: "time: missing unit in duration \(quoted)") }
            let unitText = String(decoding: s.prefix(unitLength), as: UTF8.self)
            s = s.dropFirst(unitLength)
            guard let unit = units[unitText] else {
                throw GoDurationError(message: "time: unknown unit \(goQuoted(unitText)) in duration \(quoted)")
            }
            guard whole <= limit / unit else { throw invalid }
            var value = whole * unit
            if fraction > 0 {
                // fraction < scale, so this is below `unit` (at most an hour in nanoseconds).
                value += UInt64(Double(fraction) * (Double(unit) / scale))
                guard value <= limit else { throw invalid }
            }
            total += value
            guard total <= limit else { throw invalid }
        }
        if negative { return total == limit ? Int64.min : -Int64(total) }
        guard total <= limit - 1 else { throw invalid }
        return Int64(total)
    }

    /// The `Duration` `text` stands for.
    public static func parse(_ text: String) throws(GoDurationError) -> Duration {
        .nanoseconds(try nanoseconds(text))
    }

    /// Go's `Duration.String()`: `1h2m3.5s`, `250ms`, `0s`.
    public static func format(nanoseconds: Int64) -> String {
        if nanoseconds == 0 { return "0s" }
        let negative = nanoseconds < 0
        var u = nanoseconds.magnitude
        let sign = negative ? "-" : ""
        if u < 1_000_000_000 {
            // Below a second: one unit with a fraction.
            let (unit, scale): (String, UInt64) = u < 1_000 ? ("ns", 1) : u < 1_000_000 ? ("µs", 1_000) : ("ms", 1_000_000)
            return sign + fixed(u, scale: scale) + unit
        }
        var out = ""
        let hours = u / 3_600_000_000_000
        u -= hours * 3_600_000_000_000
        let minutes = u / 60_000_000_000
        u -= minutes * 60_000_000_000
        if hours > 0 { out += "\(hours)h" }
        if hours > 0 || minutes > 0 { out += "\(minutes)m" }
        return sign + out + fixed(u, scale: 1_000_000_000) + "s"
    }

    /// Go's `Duration.String()` of `duration` (whole nanoseconds; a duration beyond Int64
    /// nanoseconds prints as its seconds).
    public static func format(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        let (total, overflow2) = scaled.addingReportingOverflow(attoseconds / 1_000_000_000)
        guard !overflow, !overflow2 else { return "\(seconds)s" }
        return format(nanoseconds: total)
    }

    /// `value / scale` in decimal, trailing zeros of the fraction dropped.
    private static func fixed(_ value: UInt64, scale: UInt64) -> String {
        let whole = value / scale
        var fraction = value % scale
        guard fraction > 0 else { return String(whole) }
        var digits = 0
        var s = scale
        while s > 1 {
            s /= 10
            digits += 1
        }
        while fraction % 10 == 0 {
            fraction /= 10
            digits -= 1
        }
        let text = String(fraction)
        return "\(whole)." + String(repeating: "0", count: digits - text.count) + text
    }
}

/// `text` as Go's `%q` prints it, for messages worded as Go's.
private func goQuoted(_ text: String) -> String {
    var result = "\""
    for character in text {
        switch character {
        case "\"": result += "\\\""
        case "\\": result += "\\\\"
        case "\n": result += "\\n"
        case "\t": result += "\\t"
        default: result.append(character)
        }
    }
    return result + "\""
}
