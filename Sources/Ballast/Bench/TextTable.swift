// A small table formatter and number formatting for the benchmark's human output.
// Locale-independent on purpose: the output is meant to be pasted and compared.

/// Columns padded to their widest cell, two spaces apart; text columns left-aligned,
/// numeric ones right-aligned (headers follow their column).
struct TextTable {
    enum Alignment { case left, right }

    let headers: [String]
    let alignments: [Alignment]
    private(set) var rows: [[String]] = []

    init(_ columns: [(String, Alignment)]) {
        headers = columns.map(\.0)
        alignments = columns.map(\.1)
    }

    mutating func append(_ row: [String]) {
        precondition(row.count == headers.count, "row has \(row.count) cells, table has \(headers.count) columns")
        rows.append(row)
    }

    func render() -> String {
        let all = [headers] + rows
        let widths = headers.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        return all.map { row in
            row.indices.map { column -> String in
                let cell = row[column]
                let pad = String(repeating: " ", count: widths[column] - cell.count)
                let isLast = column == row.count - 1
                switch alignments[column] {
                case .left: return isLast ? cell : cell + pad
                case .right: return pad + cell
                }
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}

/// 312400.4 -> "312,400" (rounded to a whole number, thousands separated by commas).
func grouped(_ value: Double) -> String {
    guard value.isFinite else { return "n/a" }
    return grouped(Int(value.rounded()))
}

func grouped(_ value: Int) -> String {
    let digits = String(value.magnitude)
    var out = ""
    for (i, c) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
        out.append(c)
    }
    return value < 0 ? "-" + out : out
}

/// `value` with exactly `decimals` decimals (half away from zero): fixed(2.345, 1) == "2.3".
func fixed(_ value: Double, _ decimals: Int) -> String {
    guard value.isFinite else { return "n/a" }
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let scaled = (value.magnitude * scale).rounded()
    let whole = scaled / scale
    let integerPart = whole.rounded(.down)
    var text = String(Int(integerPart))
    if decimals > 0 {
        let fraction = Int((scaled - integerPart * scale).rounded())
        let digits = String(fraction)
        text += "." + String(repeating: "0", count: decimals - digits.count) + digits
    }
    return value < 0 && scaled != 0 ? "-" + text : text
}

/// A latency in microseconds, from nanoseconds: two decimals below 1 µs, one below 1,000 µs,
/// whole numbers with separators above.
func microseconds(_ nanos: Double?) -> String {
    guard let nanos else { return "n/a" }
    let us = nanos / 1000
    if us < 1 { return fixed(us, 2) }
    if us < 1000 { return fixed(us, 1) }
    return grouped(us)
}

/// A latency in milliseconds, from seconds: "153.0 ms", or "-".
func milliseconds(_ seconds: Double?) -> String {
    seconds.map { fixed($0 * 1000, 1) + " ms" } ?? "-"
}

/// Whether a figure meets a target's upper limit: "met", "NOT met", or "no data".
func verdict(_ value: Double?, atMost limit: Double?) -> String {
    guard let value, let limit else { return "no data" }
    return value <= limit ? "met" : "NOT met"
}

/// Whether a figure meets a target's lower limit: "met", "NOT met", or "no data".
func verdict(_ value: Double?, atLeast limit: Double?) -> String {
    guard let value, let limit else { return "no data" }
    return value >= limit ? "met" : "NOT met"
}

/// A ratio such as a compression ratio or speed-up, or "n/a".
func ratio(_ value: Double?, decimals: Int = 2, suffix: String = "") -> String {
    guard let value, value.isFinite else { return "n/a" }
    return fixed(value, decimals) + suffix
}

/// Bytes as MiB with one decimal, or "n/a".
func mebibytes(_ bytes: UInt64?) -> String {
    guard let bytes else { return "n/a" }
    return fixed(Double(bytes) / 1_048_576, 1)
}
