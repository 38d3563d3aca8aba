import Foundation

/// A timestamp parse failure.
public struct TimeParseError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The rejected text.
    public let input: String
    /// What is wrong with it.
    public let reason: String

    /// A readable explanation.
    public var description: String { "invalid RFC 3339 time \(goQuoted(input)): \(reason)" }
}

/// A Kubernetes `metav1.Time`: an instant with whole-second precision, written in JSON as an
/// RFC 3339 UTC string such as `"2026-11-29T13:00:00Z"`.
///
/// Decoding accepts any RFC 3339 offset and fractional seconds (the fraction is dropped).
public struct Time: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    /// Seconds since 1970-01-01T00:00:00Z.
    public var secondsSinceEpoch: Int64

    /// An instant `secondsSinceEpoch` seconds after the Unix epoch.
    public init(secondsSinceEpoch: Int64) {
        self.secondsSinceEpoch = secondsSinceEpoch
    }

    /// The first instant RFC 3339 (and Go's `Time.MarshalJSON`) can write: 0000-01-01T00:00:00Z.
    public static let minimum = Time(secondsSinceEpoch: -62_167_219_200)
    /// The last one: 9999-12-31T23:59:59Z.
    public static let maximum = Time(secondsSinceEpoch: 253_402_300_799)

    /// The given date truncated to the whole second at or before it, clamped to
    /// `minimum...maximum` (a NaN date is `minimum`): never a trapping conversion.
    public init(_ date: Date) {
        let seconds = date.timeIntervalSince1970.rounded(.down)
        if !(seconds >= Double(Self.minimum.secondsSinceEpoch)) {
            self = .minimum
        } else if seconds > Double(Self.maximum.secondsSinceEpoch) {
            self = .maximum
        } else {
            self.secondsSinceEpoch = Int64(seconds)
        }
    }

    /// `seconds` later (earlier when negative), saturating at `minimum` and `maximum`: a
    /// grace period of `Int64.max` seconds is "the end of time", not an overflow.
    public func adding(seconds: Int64) -> Time {
        let (sum, overflow) = secondsSinceEpoch.addingReportingOverflow(seconds)
        if overflow { return seconds > 0 ? .maximum : .minimum }
        return Time(secondsSinceEpoch: min(max(sum, Self.minimum.secondsSinceEpoch), Self.maximum.secondsSinceEpoch))
    }

    /// The current time, truncated to the second.
    public static func now() -> Time { Time(Date()) }

    /// The instant as a `Date`.
    public var date: Date { Date(timeIntervalSince1970: TimeInterval(secondsSinceEpoch)) }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
    public init(rfc3339 text: String) throws(TimeParseError) {
        let bytes = Array(text.utf8)
        var index = 0

        func fail(_ reason: String) -> TimeParseError { TimeParseError(input: text, reason: reason) }
        func number(_ width: Int) throws(TimeParseError) -> Int {
            guard index + width <= bytes.count else { throw fail("unexpected end of text") }
            var value = 0
            for offset in 0..<width {
                let byte = bytes[index + offset]
                guard byte >= 48 && byte <= 57 else { throw fail("expected a digit at offset \(index + offset)") }
                value = value * 10 + Int(byte - 48)
            }
            index += width
            return value
        }
        func expect(_ character: Character) throws(TimeParseError) {
            guard index < bytes.count, bytes[index] == character.asciiValue else {
                throw fail("expected '\(character)' at offset \(index)")
            }
            index += 1
        }

        let year = try number(4)
        try expect("-")
        let month = try number(2)
        try expect("-")
        let day = try number(2)
        try expect("T")
        let hour = try number(2)
        try expect(":")
        let minute = try number(2)
        try expect(":")
        let second = try number(2)
        if index < bytes.count && bytes[index] == UInt8(ascii: ".") {
            index += 1
            let start = index
            while index < bytes.count && bytes[index] >= 48 && bytes[index] <= 57 { index += 1 }
            if index == start { throw fail("expected fractional second digits") }
        }
        var offsetSeconds = 0
        guard index < bytes.count else { throw fail("missing time zone offset") }
        if bytes[index] == UInt8(ascii: "Z") {
            index += 1
        } else if bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
            let sign = bytes[index] == UInt8(ascii: "-") ? -1 : 1
            index += 1
            let offsetHours = try number(2)
            try expect(":")
            let offsetMinutes = try number(2)
            guard offsetHours < 24, offsetMinutes < 60 else { throw fail("time zone offset out of range") }
            offsetSeconds = sign * (offsetHours * 3600 + offsetMinutes * 60)
        } else {
            throw fail("expected 'Z' or a numeric offset at offset \(index)")
        }
        guard index == bytes.count else { throw fail("unexpected trailing text") }

        guard (1...12).contains(month) else { throw fail("month out of range") }
        guard day >= 1 && day <= Self.daysInMonth(year: year, month: month) else { throw fail("day out of range") }
        guard hour < 24 else { throw fail("hour out of range") }
        guard minute < 60 else { throw fail("minute out of range") }
        guard second < 60 else { throw fail("second out of range") }

        let days = Self.daysSinceEpoch(year: year, month: month, day: day)
        secondsSinceEpoch = Int64(days) * 86_400 + Int64(hour * 3600 + minute * 60 + second) - Int64(offsetSeconds)
    }

    /// The RFC 3339 UTC form with second precision, e.g. `2026-11-29T13:00:00Z`. Instants
    /// outside `minimum...maximum` print as the nearest of the two (four-digit years only).
    public var rfc3339: String {
        let clamped = min(max(secondsSinceEpoch, Self.minimum.secondsSinceEpoch), Self.maximum.secondsSinceEpoch)
        let days = Int(clamped >= 0 ? clamped / 86_400 : (clamped - 86_399) / 86_400)
        let secondsOfDay = Int(clamped - Int64(days) * 86_400)
        let (year, month, day) = Self.civilDate(daysSinceEpoch: days)
        // Written digit by digit into the string's own storage (every write and watch event
        // formats a few of these).
        return String(unsafeUninitializedCapacity: 20) { text in
            func put(_ value: Int, width: Int, at offset: Int) {
                var rest = value
                for position in stride(from: offset + width - 1, through: offset, by: -1) {
                    text[position] = UInt8(ascii: "0") + UInt8(rest % 10)
                    rest /= 10
                }
            }
            put(year, width: 4, at: 0)
            put(month, width: 2, at: 5)
            put(day, width: 2, at: 8)
            put(secondsOfDay / 3600, width: 2, at: 11)
            put(secondsOfDay / 60 % 60, width: 2, at: 14)
            put(secondsOfDay % 60, width: 2, at: 17)
            text[4] = UInt8(ascii: "-")
            text[7] = UInt8(ascii: "-")
            text[10] = UInt8(ascii: "T")
            text[13] = UInt8(ascii: ":")
            text[16] = UInt8(ascii: ":")
            text[19] = UInt8(ascii: "Z")
            return 20
        }
    }

    /// Same as `rfc3339`.
    public var description: String { rfc3339 }

    /// Chronological order.
    public static func < (lhs: Time, rhs: Time) -> Bool { lhs.secondsSinceEpoch < rhs.secondsSinceEpoch }

    /// Decodes an RFC 3339 string.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        do {
            self = try Time(rfc3339: text)
        } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: error.description)
        }
    }

    /// Encodes as an RFC 3339 UTC string.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rfc3339)
    }

    // MARK: Calendar arithmetic (proleptic Gregorian)

    static func isLeapYear(_ year: Int) -> Bool {
        (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
    }

    static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 2: return isLeapYear(year) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days from 1970-01-01 to the given date.
    static func daysSinceEpoch(year: Int, month: Int, day: Int) -> Int {
        // Count from a March-based year so the leap day falls at the end.
        let shiftedYear = month <= 2 ? year - 1 : year
        let era = (shiftedYear >= 0 ? shiftedYear : shiftedYear - 399) / 400
        let yearOfEra = shiftedYear - era * 400
        let monthFromMarch = (month + 9) % 12
        let dayOfYear = (153 * monthFromMarch + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// The date `days` after 1970-01-01.
    static func civilDate(daysSinceEpoch days: Int) -> (year: Int, month: Int, day: Int) {
        let shifted = days + 719_468
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthFromMarch = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthFromMarch + 2) / 5 + 1
        let month = monthFromMarch < 10 ? monthFromMarch + 3 : monthFromMarch - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return (year, month, day)
    }
}
