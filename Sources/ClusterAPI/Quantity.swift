import Foundation

/// Why a quantity string could not be parsed (mirrors apimachinery's three parse errors).
public struct QuantityParseError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The category of failure.
    public enum Kind: Sendable, Hashable {
        /// The text does not have the shape `<number><suffix>`.
        case formatWrong
        /// The numeric part could not be read.
        case numeric
        /// The suffix is not a known SI, binary or exponent suffix.
        case suffix
        /// The text is longer than `Quantity.maxLength`, or has more than
        /// `Quantity.maxSignificantDigits` significant digits.
        case tooLong
    }

    /// The category of failure.
    public let kind: Kind
    /// The input that was rejected.
    public let input: String

    /// Kubernetes' wording for this kind of failure.
    public var message: String {
        switch kind {
        case .formatWrong:
            return "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        case .numeric:
            return "unable to parse numeric part of quantity"
        case .suffix:
            return "unable to parse quantity's suffix"
        case .tooLong:
            return "quantities must be at most \(Quantity.maxLength) characters long with at most \(Quantity.maxSignificantDigits) significant digits, like 500m, 1.5Gi or 2e3"
        }
    }

    /// Same as `message`.
    public var description: String { message }
}

/// A Kubernetes resource quantity (`resource.Quantity`): an exact decimal number with a
/// preferred output format.
///
/// Parsing, canonical printing, rounding (to nano precision, away from zero) and the BinarySI
/// cap at 2^63-1 follow apimachinery. Values are held exactly as `±magnitude × 10^exponent`,
/// so arithmetic and comparison never round. Equality and hashing are by numeric value only:
/// `"1Gi" == "1073741824"` and `"1000m" == "1"`.
public struct Quantity: Sendable, Hashable, Comparable, CustomStringConvertible, Codable {
    /// How a quantity prefers to be printed.
    public enum Format: String, Sendable, Hashable, Codable, CaseIterable {
        /// `12e6` style.
        case decimalExponent = "DecimalExponent"
        /// `12Mi` style (powers of 1024).
        case binarySI = "BinarySI"
        /// `12M` style (powers of 1000).
        case decimalSI = "DecimalSI"
    }

    // Normalized: `magnitude` has no factor of ten; zero is (false, 0, 0).
    private var negative: Bool
    private var magnitude: BigUInt
    private var exponent: Int
    /// The original text when apimachinery would reuse it as the printed form.
    private var cachedString: String?

    /// The preferred output format. Changing it drops any remembered input text.
    public var format: Format {
        didSet { cachedString = nil }
    }

    // MARK: Construction

    private init(negative: Bool, magnitude: BigUInt, exponent: Int, format: Format) {
        var magnitude = magnitude
        if magnitude.isZero {
            self.negative = false
            self.magnitude = magnitude
            self.exponent = 0
        } else {
            let removed = magnitude.removeFactorsOfTen()
            self.negative = negative
            self.magnitude = magnitude
            self.exponent = exponent + removed
        }
        self.format = format
        self.cachedString = nil
    }

    /// Zero in DecimalSI format.
    public static let zero = Quantity(0)

    /// `value × 10^scale`, e.g. `Quantity(value: 5, scale: -3)` is `5m`.
    public init(value: Int64, scale: Int = 0, format: Format = .decimalSI) {
        self.init(
            negative: value < 0, magnitude: BigUInt(value.magnitude), exponent: scale,
            format: format)
    }

    /// An integer quantity, e.g. `Quantity(1024, format: .binarySI)` prints `1Ki`.
    public init(_ value: Int64, format: Format = .decimalSI) {
        self.init(value: value, scale: 0, format: format)
    }

    /// `milli / 1000`, e.g. `Quantity(milli: 500)` prints `500m`.
    public init(milli: Int64, format: Format = .decimalSI) {
        self.init(value: milli, scale: -3, format: format)
    }

    /// The longest quantity text accepted: a megabyte of digits is refused at once instead of
    /// costing a minute of quadratic digit-by-digit work (parsing, printing).
    public static let maxLength = 1024

    /// The most significant digits (leading and trailing zeros aside) a quantity may have. Any
    /// value a resource holds (an int64 with nano precision) has under 30; the bound is on
    /// significant digits, not characters, because what a quantity prints must parse again:
    /// the canonical form of an accepted quantity has the same significant digits.
    public static let maxSignificantDigits = 100

    /// Sums align their operands' exponents digit by digit; operands further apart than this
    /// many orders of magnitude are not aligned: the sum is the larger one, the smaller being
    /// far below its precision. apimachinery accepts any int32 exponent, so `1e2147483647 + 1`
    /// would otherwise need two billion digits.
    public static let maxAlignment = 1000

    /// Parses Kubernetes quantity syntax such as `"1Gi"`, `"500m"`, `"1e3"` or `"-1.5"`.
    public init(_ text: String) throws(QuantityParseError) {
        self = try Self.parse(text)
    }

    // MARK: Parsing

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= 48 && byte <= 57 }

    private static func isSuffixLetter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "e"), UInt8(ascii: "E"), UInt8(ascii: "i"), UInt8(ascii: "n"),
            UInt8(ascii: "u"), UInt8(ascii: "m"), UInt8(ascii: "k"), UInt8(ascii: "K"),
            UInt8(ascii: "M"), UInt8(ascii: "G"), UInt8(ascii: "T"), UInt8(ascii: "P"):
            return true
        default:
            return false
        }
    }

    /// Maps a suffix to (base, exponent, format), as apimachinery's suffixer does.
    private static func interpret(_ suffix: String) -> (base: Int, exponent: Int, format: Format)? {
        switch suffix {
        case "": return (10, 0, .decimalSI)
        case "n": return (10, -9, .decimalSI)
        case "u": return (10, -6, .decimalSI)
        case "m": return (10, -3, .decimalSI)
        case "k": return (10, 3, .decimalSI)
        case "M": return (10, 6, .decimalSI)
        case "G": return (10, 9, .decimalSI)
        case "T": return (10, 12, .decimalSI)
        case "P": return (10, 15, .decimalSI)
        case "E": return (10, 18, .decimalSI)
        case "Ki": return (2, 10, .binarySI)
        case "Mi": return (2, 20, .binarySI)
        case "Gi": return (2, 30, .binarySI)
        case "Ti": return (2, 40, .binarySI)
        case "Pi": return (2, 50, .binarySI)
        case "Ei": return (2, 60, .binarySI)
        default:
            break
        }
        guard suffix.utf8.count > 1, let first = suffix.utf8.first,
            first == UInt8(ascii: "e") || first == UInt8(ascii: "E"),
            let value = Int64(suffix.dropFirst()),
            value >= -Int64(Int32.max), value <= Int64(Int32.max)
        else { return nil }
        return (10, Int(value), .decimalExponent)
    }

    private static func parse(_ text: String) throws(QuantityParseError) -> Quantity {
        if text.utf8.count > maxLength {
            throw QuantityParseError(kind: .tooLong, input: String(text.prefix(maxLength)) + "...")
        }
        let bytes = Array(text.utf8)
        let end = bytes.count
        if end == 0 { throw QuantityParseError(kind: .formatWrong, input: text) }
        if text == "0" {
            var zero = Quantity.zero
            zero.cachedString = text
            return zero
        }

        var position = 0
        var negative = false
        if bytes[0] == UInt8(ascii: "-") {
            negative = true
            position = 1
        } else if bytes[0] == UInt8(ascii: "+") {
            position = 1
        }
        // Leading zeros carry no value; a string of only zeros (or only a sign) is zero.
        while position < end && bytes[position] == UInt8(ascii: "0") { position += 1 }
        if position == end { return Quantity.zero }

        let numeratorStart = position
        while position < end && isDigit(bytes[position]) { position += 1 }
        let numerator = bytes[numeratorStart..<position]
        var denominator = bytes[position..<position]
        if position < end && bytes[position] == UInt8(ascii: ".") {
            position += 1
            let denominatorStart = position
            while position < end && isDigit(bytes[position]) { position += 1 }
            denominator = bytes[denominatorStart..<position]
        }
        let suffixStart = position
        while position < end && isSuffixLetter(bytes[position]) { position += 1 }
        if position < end && (bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-")) {
            position += 1
        }
        while position < end && isDigit(bytes[position]) { position += 1 }
        if position < end { throw QuantityParseError(kind: .formatWrong, input: text) }

        let suffix = String(decoding: bytes[suffixStart..<end], as: UTF8.self)
        guard let interpreted = interpret(suffix) else {
            throw QuantityParseError(kind: .suffix, input: text)
        }
        let (base, suffixExponent, format) = interpreted

        // apimachinery keeps the input text as the printed form when its fast path sees it is
        // already canonical; reproduce that decision exactly.
        let numeratorLength = max(numerator.count, 1)
        var reuseInput = false
        switch format {
        case .decimalSI, .decimalExponent:
            let precision = 18 - (numeratorLength + denominator.count)
            let scale = suffixExponent - denominator.count
            if precision >= 0 && scale >= -9 {
                var shifted = numerator.isEmpty ? [UInt8(ascii: "0")] : Array(numerator)
                shifted.append(contentsOf: denominator)
                let endsWithThreeZeros =
                    shifted.count >= 3 && shifted.suffix(3).allSatisfy { $0 == UInt8(ascii: "0") }
                reuseInput = scale % 3 == 0 && !endsWithThreeZeros && shifted[0] != UInt8(ascii: "0")
            }
        case .binarySI:
            if denominator.isEmpty {
                let precision = 15 - numeratorLength - (suffixExponent * 3 / 10) - 1
                if precision >= 0, let value = Int64(String(decoding: numerator, as: UTF8.self)) {
                    reuseInput = value & 0x07 != 0
                }
            }
        }

        // Exact value: (numerator.denominator) × base^suffixExponent. Zeros at either end of the
        // digits go into the exponent before the digits are counted and converted.
        var digits = (numerator + denominator)[...]
        var exponent = -denominator.count
        while digits.first == UInt8(ascii: "0") { digits = digits.dropFirst() }
        while digits.last == UInt8(ascii: "0") {
            digits = digits.dropLast()
            exponent += 1
        }
        if digits.count > maxSignificantDigits { throw QuantityParseError(kind: .tooLong, input: text) }
        var magnitude = BigUInt(decimalDigits: Array(digits))
        if base == 10 {
            exponent += suffixExponent
        } else {
            magnitude.shiftLeft(by: suffixExponent)
        }

        // Round non-zero values up (away from zero) to nano precision.
        if !magnitude.isZero && exponent < -9 {
            if magnitude.divideByPowerOfTen(-9 - exponent) {
                magnitude = magnitude + BigUInt(1)
            }
            exponent = -9
        }

        var result = Quantity(negative: negative, magnitude: magnitude, exponent: exponent, format: format)
        if result.exponent > Int(Int32.max) {
            // "500e2147483647" is 5e2147483649: no int32 exponent writes it (found by fuzzing).
            throw QuantityParseError(kind: .numeric, input: text)
        }
        if format == .binarySI {
            if Quantity.compareMagnitudes(result, .maxBinary) > 0 {
                result = Quantity(negative: negative, magnitude: Quantity.maxBinary.magnitude, exponent: 0, format: format)
            }
            if !result.isZero && Quantity.compareMagnitudes(result, .one) < 0 {
                result.format = .decimalSI
            }
        }
        if reuseInput { result.cachedString = text }
        return result
    }

    private static let one = Quantity(1)
    private static let binaryThreshold = Quantity(1024)
    private static let maxBinary = Quantity(Int64.max)

    // MARK: Inspection

    /// `true` when the value is zero.
    public var isZero: Bool { magnitude.isZero }

    /// -1, 0 or 1 according to the sign of the value.
    public var sign: Int { isZero ? 0 : (negative ? -1 : 1) }

    /// The value rounded to an integer away from zero (apimachinery's `Value()`), saturating at
    /// the `Int64` bounds instead of overflowing.
    public var value: Int64 { scaledValue(0) }

    /// `value × 1000` rounded away from zero (apimachinery's `MilliValue()`), saturating.
    public var milliValue: Int64 { scaledValue(-3) }

    /// The value expressed in units of 10^scale, rounded away from zero, saturating at the
    /// `Int64` bounds. `scaledValue(-9)` is the value in nano units.
    public func scaledValue(_ scale: Int) -> Int64 {
        if isZero { return 0 }
        var units = magnitude
        let shift = exponent - scale
        if shift > 0 {
            if shift > 19 { return negative ? .min : .max }
            units.multiplyByPowerOfTen(shift)
        } else if shift < 0 {
            if units.divideByPowerOfTen(-shift) { units = units + BigUInt(1) }
        }
        guard let raw = units.uint64Value else { return negative ? .min : .max }
        if negative {
            return raw <= UInt64(Int64.max) + 1 ? Int64(bitPattern: 0 &- raw) : .min
        }
        return raw <= UInt64(Int64.max) ? Int64(raw) : .max
    }

    /// A `Double` approximation of the value.
    public var approximateDouble: Double {
        let text = (negative ? "-" : "") + magnitude.decimalString + "e\(exponent)"
        return Double(text) ?? (negative ? -.infinity : .infinity)
    }

    // MARK: Printing

    /// The printed form apimachinery's `String()` produces. When the parsed text was already
    /// canonical by apimachinery's fast-path test, that exact text is kept (so `"1E3"` prints
    /// `"1E3"` and `"+1"` prints `"+1"`); otherwise this is `canonicalString`.
    public var description: String { cachedString ?? canonicalString }

    /// The canonical form computed from the value and `format`, ignoring any remembered text.
    public var canonicalString: String {
        if isZero { return "0" }
        var format = self.format
        if format == .binarySI {
            if Quantity.compareMagnitudes(self, .binaryThreshold) < 0 || exponent < 0 {
                // Below 1024 in size, or not an integer: print as DecimalSI to stay exact.
                format = .decimalSI
            }
        }
        let sign = negative ? "-" : ""
        if format == .binarySI {
            // An integer with 2^70 | value has more than six factors of 1024 and no binary suffix.
            if exponent < 70 {
                var integer = magnitude
                integer.multiplyByPowerOfTen(exponent)
                var powers = 0
                while powers <= 6 && integer.remainder(dividingBy: 1024) == 0 {
                    integer.divide(by: 1024)
                    powers += 1
                }
                if powers <= 6 {
                    let suffixes = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
                    return sign + integer.decimalString + suffixes[powers]
                }
            }
            // No binary suffix large enough: fall back to exact decimal exponent notation.
            format = .decimalExponent
        }

        var mantissa = magnitude
        let adjust = ((exponent % 3) + 3) % 3
        mantissa.multiplyByPowerOfTen(adjust)
        let exponent3 = exponent - adjust
        let suffix: String
        switch (format, exponent3) {
        case (.decimalSI, -9): suffix = "n"
        case (.decimalSI, -6): suffix = "u"
        case (.decimalSI, -3): suffix = "m"
        case (.decimalSI, 3): suffix = "k"
        case (.decimalSI, 6): suffix = "M"
        case (.decimalSI, 9): suffix = "G"
        case (.decimalSI, 12): suffix = "T"
        case (.decimalSI, 15): suffix = "P"
        case (.decimalSI, 18): suffix = "E"
        case (_, 0): suffix = ""
        default: suffix = "e\(exponent3)"
        }
        return sign + mantissa.decimalString + suffix
    }

    // MARK: Comparison

    private static func compareMagnitudes(_ lhs: Quantity, _ rhs: Quantity) -> Int {
        if lhs.magnitude.isZero || rhs.magnitude.isZero {
            return lhs.magnitude.isZero ? (rhs.magnitude.isZero ? 0 : -1) : 1
        }
        if lhs.exponent == rhs.exponent {
            return BigUInt.compare(lhs.magnitude, rhs.magnitude)
        }
        // Compare orders of magnitude first; this also bounds the alignment below.
        let lhsOrder = lhs.magnitude.decimalDigitCount + lhs.exponent
        let rhsOrder = rhs.magnitude.decimalDigitCount + rhs.exponent
        if lhsOrder != rhsOrder { return lhsOrder < rhsOrder ? -1 : 1 }
        let common = min(lhs.exponent, rhs.exponent)
        var left = lhs.magnitude
        left.multiplyByPowerOfTen(lhs.exponent - common)
        var right = rhs.magnitude
        right.multiplyByPowerOfTen(rhs.exponent - common)
        return BigUInt.compare(left, right)
    }

    /// -1, 0 or 1 as `lhs` is numerically less than, equal to or greater than `rhs`
    /// (apimachinery's `Cmp`).
    public static func compare(_ lhs: Quantity, _ rhs: Quantity) -> Int {
        let (left, right) = (lhs.sign, rhs.sign)
        if left != right { return left < right ? -1 : 1 }
        if left == 0 { return 0 }
        let result = compareMagnitudes(lhs, rhs)
        return left > 0 ? result : -result
    }

    /// Numeric ordering.
    public static func < (lhs: Quantity, rhs: Quantity) -> Bool { compare(lhs, rhs) < 0 }

    /// Numeric equality; the format and original text are ignored.
    public static func == (lhs: Quantity, rhs: Quantity) -> Bool {
        lhs.negative == rhs.negative && lhs.exponent == rhs.exponent && lhs.magnitude == rhs.magnitude
    }

    /// Hashes the numeric value only, consistent with `==`.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(negative)
        hasher.combine(exponent)
        hasher.combine(magnitude)
    }

    // MARK: Arithmetic

    private static func sum(_ lhs: Quantity, _ rhs: Quantity, subtracting: Bool) -> Quantity {
        // apimachinery keeps the receiver's format unless the receiver is zero.
        let format = lhs.isZero ? rhs.format : lhs.format
        let rhsNegative = subtracting ? !rhs.negative : rhs.negative
        if rhs.isZero {
            return Quantity(negative: lhs.negative, magnitude: lhs.magnitude, exponent: lhs.exponent, format: format)
        }
        if lhs.isZero {
            return Quantity(negative: rhsNegative, magnitude: rhs.magnitude, exponent: rhs.exponent, format: format)
        }
        let common = min(lhs.exponent, rhs.exponent)
        if max(lhs.exponent, rhs.exponent) - common > maxAlignment {
            let lhsOrder = lhs.magnitude.decimalDigitCount + lhs.exponent
            let rhsOrder = rhs.magnitude.decimalDigitCount + rhs.exponent
            return lhsOrder >= rhsOrder
                ? Quantity(negative: lhs.negative, magnitude: lhs.magnitude, exponent: lhs.exponent, format: format)
                : Quantity(negative: rhsNegative, magnitude: rhs.magnitude, exponent: rhs.exponent, format: format)
        }
        var left = lhs.magnitude
        left.multiplyByPowerOfTen(lhs.exponent - common)
        var right = rhs.magnitude
        right.multiplyByPowerOfTen(rhs.exponent - common)
        if lhs.negative == rhsNegative {
            return Quantity(negative: lhs.negative, magnitude: left + right, exponent: common, format: format)
        }
        if BigUInt.compare(left, right) >= 0 {
            return Quantity(negative: lhs.negative, magnitude: left - right, exponent: common, format: format)
        }
        return Quantity(negative: rhsNegative, magnitude: right - left, exponent: common, format: format)
    }

    /// Exact sum; the result keeps `lhs`'s format unless `lhs` is zero (then `rhs`'s).
    public static func + (lhs: Quantity, rhs: Quantity) -> Quantity { sum(lhs, rhs, subtracting: false) }

    /// Exact difference; the result keeps `lhs`'s format unless `lhs` is zero (then `rhs`'s).
    public static func - (lhs: Quantity, rhs: Quantity) -> Quantity { sum(lhs, rhs, subtracting: true) }

    /// Adds in place.
    public static func += (lhs: inout Quantity, rhs: Quantity) { lhs = lhs + rhs }

    /// Subtracts in place.
    public static func -= (lhs: inout Quantity, rhs: Quantity) { lhs = lhs - rhs }

    /// The negated value, same format.
    public static prefix func - (operand: Quantity) -> Quantity {
        Quantity(
            negative: !operand.negative, magnitude: operand.magnitude, exponent: operand.exponent,
            format: operand.format)
    }

    // MARK: Codable

    /// Decodes from a JSON string (surrounding whitespace ignored), a JSON number, or `null` (zero).
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text: String
        if container.decodeNil() {
            self = .zero
            return
        } else if let string = try? container.decode(String.self) {
            text = string.trimmingCharacters(in: .whitespacesAndNewlines)
        } else if let integer = try? container.decode(Int64.self) {
            text = String(integer)
        } else if let number = try? container.decode(Double.self), number.isFinite {
            text = number.description
        } else {
            throw DecodingError.typeMismatch(
                Quantity.self,
                .init(codingPath: decoder.codingPath, debugDescription: "quantity must be a string or a number"))
        }
        do {
            self = try Quantity(text)
        } catch {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "\(error.message): \"\(text)\"")
        }
    }

    /// Encodes as a JSON string holding `description`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
