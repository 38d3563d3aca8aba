import Foundation
import Testing

@testable import ClusterAPI

private func q(_ text: String) -> Quantity {
    do {
        return try Quantity(text)
    } catch {
        Issue.record("could not parse \(text): \(error)")
        return .zero
    }
}

@Suite("Quantity")
struct QuantityTests {
    // input, String() output, expected format. Outputs checked against apimachinery's parser and
    // printer semantics (quantity_test.go TestQuantityParse / TestQuantityParseEmit, and its
    // fast-path rule that keeps already-canonical input text verbatim).
    @Test(arguments: [
        ("0", "0", Quantity.Format.decimalSI),
        ("0n", "0", .decimalSI),
        ("0m", "0", .decimalSI),
        ("0Ki", "0", .binarySI),
        ("0Ti", "0", .binarySI),
        ("-0", "0", .decimalSI),
        ("00", "0", .decimalSI),
        ("1", "1", .decimalSI),
        ("+1", "+1", .decimalSI),
        ("-2", "-2", .decimalSI),
        ("1Ki", "1Ki", .binarySI),
        ("8Ki", "8Ki", .binarySI),
        ("7Mi", "7Mi", .binarySI),
        ("6Gi", "6Gi", .binarySI),
        ("5Ti", "5Ti", .binarySI),
        ("4Pi", "4Pi", .binarySI),
        ("3Ei", "3Ei", .binarySI),
        ("100Ti", "100Ti", .binarySI),
        ("1Gi", "1Gi", .binarySI),
        ("1024Mi", "1Gi", .binarySI),
        ("1536Mi", "1536Mi", .binarySI),
        ("307200Ki", "300Mi", .binarySI),
        ("1025024Mi", "1001Gi", .binarySI),
        ("1.5Ki", "1536", .binarySI),
        ("0.5Mi", "512Ki", .binarySI),
        ("0.1Ki", "102400m", .binarySI),
        ("100.035Ki", "102435840m", .binarySI),
        ("0.05Gi", "53687091200m", .binarySI),
        (".001Ki", "1024m", .binarySI),
        (".000001Ki", "1024u", .decimalSI),
        (".000000001Ki", "1024n", .decimalSI),
        (".000000000001Ki", "2n", .decimalSI),
        ("9Ei", "9223372036854775807", .binarySI),
        ("9223372036854775807Ki", "9223372036854775807", .binarySI),
        ("5n", "5n", .decimalSI),
        ("4u", "4u", .decimalSI),
        ("3m", "3m", .decimalSI),
        ("500m", "500m", .decimalSI),
        ("1000m", "1", .decimalSI),
        ("5000m", "5", .decimalSI),
        ("1000u", "1m", .decimalSI),
        ("1080000000n", "1080m", .decimalSI),
        ("8k", "8k", .decimalSI),
        ("50k", "50k", .decimalSI),
        ("7M", "7M", .decimalSI),
        ("100M", "100M", .decimalSI),
        ("1000M", "1G", .decimalSI),
        ("0.001T", "1G", .decimalSI),
        ("6G", "6G", .decimalSI),
        ("40T", "40T", .decimalSI),
        ("300T", "300T", .decimalSI),
        ("2P", "2P", .decimalSI),
        ("1E", "1E", .decimalSI),
        ("12E", "12E", .decimalSI),
        ("1000E", "1e21", .decimalSI),
        ("5000E", "5e21", .decimalSI),
        ("1000000E", "1e24", .decimalSI),
        ("0.5", "500m", .decimalSI),
        ("1.5", "1500m", .decimalSI),
        ("1.08", "1080m", .decimalSI),
        ("9.01", "9010m", .decimalSI),
        ("0.001", "1m", .decimalSI),
        (".001", "1m", .decimalSI),
        (".0001k", "100m", .decimalSI),
        ("0.0005k", "500m", .decimalSI),
        ("0.00500", "5m", .decimalSI),
        ("8.1k", "8100", .decimalSI),
        ("7.123456M", "7.123456M", .decimalSI),
        ("6.987654321G", "6.987654321G", .decimalSI),
        ("2.5P", "2500T", .decimalSI),
        ("1.01E", "1010P", .decimalSI),
        ("100.035k", "100.035k", .decimalSI),  // kept verbatim, as apimachinery's fast path does
        ("10.035M", "10.035M", .decimalSI),
        ("1.", "1.", .decimalSI),
        ("1.G", "1.G", .decimalSI),
        ("3.001n", "4n", .decimalSI),
        ("0.0000000001", "1n", .decimalSI),
        ("0.0000000005", "1n", .decimalSI),
        ("0.9n", "1n", .decimalSI),
        ("0.00000012345", "124n", .decimalSI),
        ("1e3", "1e3", .decimalExponent),
        ("1E3", "1E3", .decimalExponent),
        ("12e6", "12e6", .decimalExponent),
        ("1E-3", "1E-3", .decimalExponent),
        ("1e14", "100e12", .decimalExponent),
        ("1e13", "10e12", .decimalExponent),
        ("1.2e3", "1200", .decimalExponent),
        ("1.3E+6", "1300e3", .decimalExponent),
        ("0.5e0", "500e-3", .decimalExponent),
        ("0.5e-9", "1e-9", .decimalExponent),
        ("1.1E-9", "2e-9", .decimalExponent),
        (".001e12", "1e9", .decimalExponent),
        ("0.001e0", "1e-3", .decimalExponent),
        ("1000e-12", "1e-9", .decimalExponent),
        ("-1536Mi", "-1536Mi", .binarySI),
        ("-1024Mi", "-1Gi", .binarySI),
        ("-0.5", "-500m", .decimalSI),
        ("-.484785E-7466", "-1e-9", .decimalExponent),
        (".", "0", .decimalSI),
        ("+", "0", .decimalSI),
    ])
    func parseAndPrint(input: String, printed: String, format: Quantity.Format) throws {
        let quantity = try Quantity(input)
        #expect(quantity.description == printed, "\(input)")
        #expect(quantity.format == format, "\(input)")
        // The printed form always parses back to the same value.
        #expect(try Quantity(printed) == quantity, "\(input)")
        #expect(try Quantity(quantity.canonicalString) == quantity, "\(input)")
    }

    @Test(arguments: [
        ("+1", "1"), ("1E3", "1e3"), ("1E-3", "1e-3"), ("100.035k", "100035"), ("10.035M", "10035k"),
        ("1.", "1"), ("1.G", "1G"), ("05Ki", "5Ki"), ("1Gi", "1Gi"),
    ])
    func canonicalStringIgnoresInputText(input: String, canonical: String) throws {
        #expect(try Quantity(input).canonicalString == canonical)
    }

    // apimachinery TestQuantityString: value, scale, format → canonical text (and its negation).
    static let formattingTable: [(Int64, Int, Quantity.Format, String)] = [
        (Int64(1024 * 1024 * 1024), 0, Quantity.Format.binarySI, "1Gi"),
        (300 * 1024 * 1024, 0, .binarySI, "300Mi"),
        (6 * 1024, 0, .binarySI, "6Ki"),
        (1001 * 1024 * 1024 * 1024, 0, .binarySI, "1001Gi"),
        (1024 * 1024 * 1024 * 1024, 0, .binarySI, "1Ti"),
        (5, 0, .binarySI, "5"),
        (500, -3, .binarySI, "500m"),
        (1, 9, .decimalSI, "1G"),
        (1000, 6, .decimalSI, "1G"),
        (1_000_000, 3, .decimalSI, "1G"),
        (1_000_000_000, 0, .decimalSI, "1G"),
        (1, -3, .decimalSI, "1m"),
        (80, -3, .decimalSI, "80m"),
        (1080, -3, .decimalSI, "1080m"),
        (108, -2, .decimalSI, "1080m"),
        (10800, -4, .decimalSI, "1080m"),
        (300, 6, .decimalSI, "300M"),
        (1, 12, .decimalSI, "1T"),
        (1, 18, .decimalSI, "1E"),
        (1, 21, .decimalSI, "1e21"),
        (5, 21, .decimalSI, "5e21"),
        (1, 24, .decimalSI, "1e24"),
        (1, 70, .binarySI, "10e69"),
        (2, 70, .binarySI, "20e69"),
        (1, 72, .binarySI, "1e72"),
        (1_234_567, 6, .decimalSI, "1234567M"),
        (1_234_567, -3, .binarySI, "1234567m"),
        (3, 3, .decimalSI, "3k"),
        (1025, 0, .binarySI, "1025"),
        (0, 0, .decimalSI, "0"),
        (0, 0, .binarySI, "0"),
        (1, 9, .decimalExponent, "1e9"),
        (1, -3, .decimalExponent, "1e-3"),
        (1, -9, .decimalExponent, "1e-9"),
        (80, -3, .decimalExponent, "80e-3"),
        (300, 6, .decimalExponent, "300e6"),
        (1, 12, .decimalExponent, "1e12"),
        (1, 3, .decimalExponent, "1e3"),
        (3, 3, .decimalExponent, "3e3"),
        (0, 0, .decimalExponent, "0"),
        (1, -9, .decimalSI, "1n"),
        (80, -9, .decimalSI, "80n"),
        (1080, -9, .decimalSI, "1080n"),
        (108, -8, .decimalSI, "1080n"),
        (10800, -10, .decimalSI, "1080n"),
        (1, -6, .decimalSI, "1u"),
        (80, -6, .decimalSI, "80u"),
        (1080, -6, .decimalSI, "1080u"),
        (1, -12, .decimalSI, "1e-12"),
        (1, -10, .decimalSI, "100e-12"),
    ]

    @Test(arguments: formattingTable)
    func canonicalFormatting(value: Int64, scale: Int, format: Quantity.Format, expected: String) throws {
        let quantity = Quantity(value: value, scale: scale, format: format)
        #expect(quantity.description == expected)
        if !quantity.isZero {
            #expect((-quantity).description == "-" + expected)
        }
        // Canonical text that parse can produce re-parses to the same text and value.
        if scale >= -9 {
            let reparsed = try Quantity(expected)
            #expect(reparsed.description == expected)
            #expect(reparsed == quantity)
        }
    }

    @Test func binaryWithoutWholeBinaryPowerPrintsPlainDigits() {
        #expect(Quantity(2000, format: .binarySI).description == "2000")
        #expect(Quantity(-2000, format: .binarySI).description == "-2000")
        #expect(Quantity(3 * 1024 + 1, format: .binarySI).description == "3073")
    }

    @Test(arguments: [
        (Int64(1), Quantity.Format.decimalSI, "1"),
        (1000, .decimalSI, "1k"),
        (1_234_000, .decimalSI, "1234k"),
        (1024, .binarySI, "1Ki"),
        (1_000_000, .decimalExponent, "1e6"),
        (1024 * 1024, .binarySI, "1Mi"),
        (-1024, .binarySI, "-1Ki"),
        (Int64.max, .decimalSI, "9223372036854775807"),
        (Int64.min, .decimalSI, "-9223372036854775808"),
    ])
    func integerInitializer(value: Int64, format: Quantity.Format, expected: String) throws {
        let quantity = Quantity(value, format: format)
        #expect(quantity.description == expected)
        #expect(try Quantity(expected).value == value)
    }

    @Test(arguments: [
        (Int64(1), Quantity.Format.decimalSI, "1m"),
        (1000, .decimalSI, "1"),
        (1_234_000, .decimalSI, "1234"),
        (1024, .binarySI, "1024m"),
        (1_000_000, .decimalExponent, "1e3"),
        (1024 * 1024, .binarySI, "1048576m"),
    ])
    func milliInitializer(milli: Int64, format: Quantity.Format, expected: String) {
        #expect(Quantity(milli: milli, format: format).description == expected)
        #expect(Quantity(milli: milli, format: format).milliValue == milli)
    }

    @Test(arguments: [
        "1.1.M", "1+1.0M", "0.1am", "aoeu", " 1", "1 ", "", "1x", "1.5.5", "1e+1.0", "1KiB", "1KB",
        "Non-Numeric", "1e3.5",
    ])
    func rejectsMalformedText(input: String) {
        #expect(throws: QuantityParseError(kind: .formatWrong, input: input)) { try Quantity(input) }
    }

    @Test(arguments: [
        "0.1mi", ".5i", "1i", "-3.01i", "-3.01e-", "1e", "1e+", "1Kii", "1ee3", "1mk", "--1", "1-", "Ki5",
        "1e4294967297", "1E2147483648", "1E-2147483648", "1e9223372036854775808",
    ])
    func rejectsBadSuffix(input: String) {
        #expect(throws: QuantityParseError(kind: .suffix, input: input)) { try Quantity(input) }
    }

    @Test func errorMessagesUseKubernetesWording() {
        #expect(
            QuantityParseError(kind: .formatWrong, input: "x").description
                == "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
        #expect(QuantityParseError(kind: .suffix, input: "1i").message == "unable to parse quantity's suffix")
        #expect(QuantityParseError(kind: .numeric, input: "").message == "unable to parse numeric part of quantity")
    }

    @Test func exponentBoundsAreAccepted() throws {
        #expect(try Quantity("1E2147483647").description == "10e2147483646")
        #expect(try Quantity("1E-2147483647").description == "1e-9")
        let huge = try Quantity("1E2147483647")
        let large = try Quantity("999999999999E")
        #expect(huge > large)
    }

    // value, Value(), MilliValue() — rounding is away from zero (apimachinery TestNegativeValueRoundsAwayFromZero).
    @Test(arguments: [
        ("1Gi", Int64(1_073_741_824), Int64(1_073_741_824_000)),
        ("500m", 1, 500),
        ("1500m", 2, 1500),
        ("-1500m", -2, -1500),
        ("0.0005", 1, 1),
        ("-0.0005", -1, -1),
        (".484785E-1", 1, 49),
        ("-.484785E-1", -1, -49),
        (".484785E-7466", 1, 1),
        ("-.484785E-7466", -1, -1),
        ("9.5000000001Gi", 10_200_547_329, 10_200_547_328_108),
        ("-9.5000000001Gi", -10_200_547_329, -10_200_547_328_108),
        ("1", 1, 1000),
        ("-1", -1, -1000),
        ("0", 0, 0),
        ("100M", 100_000_000, 100_000_000_000),
        ("1e3", 1000, 1_000_000),
        ("1n", 1, 1),
        ("1.5", 2, 1500),
        ("9223372036854775807", Int64.max, Int64.max),
        ("-9223372036854775808", Int64.min, Int64.min),
        ("1E", 1_000_000_000_000_000_000, Int64.max),
        ("100E", Int64.max, Int64.max),
        ("-100E", Int64.min, Int64.min),
        ("1e2147483647", Int64.max, Int64.max),
    ])
    func integerViews(input: String, value: Int64, milli: Int64) throws {
        let quantity = try Quantity(input)
        #expect(quantity.value == value, "\(input)")
        #expect(quantity.milliValue == milli, "\(input)")
    }

    @Test func scaledValues() throws {
        #expect(try Quantity("1").scaledValue(-9) == 1_000_000_000)
        #expect(try Quantity("1n").scaledValue(-6) == 1)
        #expect(try Quantity("1u").scaledValue(-9) == 1000)
        #expect(Quantity(value: 1, scale: 2).scaledValue(-2) == 10_000)
        #expect(try Quantity("1Ki").scaledValue(3) == 2)
    }

    @Test(arguments: [
        ("1Gi", "1073741824"), ("1000m", "1"), ("1k", "1e3"), ("1e3", "1000"), ("0", "0Ki"), ("-0", "0"),
        ("0.5", "500m"), ("1Mi", "1024Ki"), ("1.5Ki", "1536"), ("100e-3", "0.1"), ("1E", "1000P"),
    ])
    func equalValuesAreEqualAndHashEqually(lhs: String, rhs: String) throws {
        let a = try Quantity(lhs)
        let b = try Quantity(rhs)
        #expect(a == b)
        #expect(a.hashValue == b.hashValue)
        #expect(Quantity.compare(a, b) == 0)
        #expect(Set([a, b]).count == 1)
    }

    @Test(arguments: [
        ("0", "0", 0), ("100m", "50m", 1), ("50m", "100m", -1), ("10000T", "100Gi", 1), ("-1", "0", -1),
        ("-5", "-4", -1), ("1n", "1u", -1), ("1Ei", "1E", 1), ("999m", "1", -1), ("1001m", "1", 1),
        ("-1001m", "-1", -1), ("1e2147483647", "1E", 1), ("1.000000001", "1", 1), ("123456789", "12345678.9e1", 0),
    ])
    func ordering(lhs: String, rhs: String, expected: Int) throws {
        let a = try Quantity(lhs)
        let b = try Quantity(rhs)
        #expect(Quantity.compare(a, b) == expected)
        #expect(Quantity.compare(b, a) == -expected)
        #expect((a < b) == (expected < 0))
        #expect((a > b) == (expected > 0))
    }

    @Test func sortingUsesNumericOrder() throws {
        let sorted = try ["1Gi", "500m", "2", "1k", "-1", "1Mi", "0"].map { try Quantity($0) }.sorted()
        #expect(sorted.map(\.description) == ["-1", "0", "500m", "2", "1k", "1Mi", "1Gi"])
    }

    // lhs, op, rhs, printed result
    @Test(arguments: [
        ("1Gi", "+", "512Mi", "1536Mi"),
        ("1Gi", "-", "1Gi", "0"),
        ("100m", "+", "0", "100m"),
        ("0", "+", "100m", "100m"),
        ("0", "+", "1Gi", "1Gi"),
        ("1Gi", "+", "0", "1Gi"),
        ("100m", "-", "0", "100m"),
        ("0", "-", "100m", "-100m"),
        ("0", "-", "1Gi", "-1Gi"),
        ("1", "-", "1500m", "-500m"),
        ("500m", "+", "500m", "1"),
        ("1e3", "+", "1", "1001"),
        ("10", "-", "1e1", "0"),
        ("10", "-", "1Ki", "-1014"),
        ("1Ki", "-", "1", "1023"),
        ("2Ki", "-", "1Ki", "1Ki"),
        ("1", "+", "1n", "1000000001n"),
        ("9223372036854775807", "+", "1", "9223372036854775808"),
        ("-9223372036854775808", "-", "1", "-9223372036854775809"),
        ("1Ei", "+", "1Ei", "2Ei"),
        ("4Ei", "+", "4Ei", "8Ei"),
        ("-1", "-", "-1", "0"),
        ("-3", "+", "5", "2"),
        ("3", "+", "-5", "-2"),
        ("1.5", "-", "0.25", "1250m"),
    ])
    func arithmetic(lhs: String, op: String, rhs: String, expected: String) throws {
        let a = try Quantity(lhs)
        let b = try Quantity(rhs)
        let result = op == "+" ? a + b : a - b
        #expect(result.description == expected, "\(lhs) \(op) \(rhs)")
        var inPlace = a
        if op == "+" { inPlace += b } else { inPlace -= b }
        #expect(inPlace == result)
    }

    @Test func arithmeticFormatFollowsApimachinery() throws {
        // Receiver's format wins unless the receiver is zero.
        let ten = try Quantity("10")
        let tenKi = try Quantity("10Ki")
        let oneKi = try Quantity("1Ki")
        #expect((ten - oneKi).format == .decimalSI)
        #expect((tenKi - Quantity(1)).format == .binarySI)
        let oneGi = try Quantity("1Gi")
        #expect((Quantity.zero + oneGi).format == .binarySI)
        #expect((Quantity.zero - oneGi).description == "-1Gi")
        // Beyond Ei there is no binary suffix: fall back to exact decimal digits.
        var big = try Quantity("1Ei")
        for _ in 0..<10 { big = big + big }
        #expect(big.format == .binarySI)
        #expect(big.description == "1180591620717411303424")
        #expect(try Quantity(big.description) == big)
    }

    @Test func negationAndSign() throws {
        #expect((-Quantity(value: 901, scale: -2)).description == "-9010m")
        #expect((-(try Quantity("1Gi"))).description == "-1Gi")
        #expect((-Quantity(Int64.min)).description == "9223372036854775808")
        #expect((-Quantity.zero).description == "0")
        #expect(try Quantity("-1m").sign == -1)
        #expect(try Quantity("0Ki").sign == 0)
        #expect(try Quantity("0Ki").isZero)
        #expect(try Quantity("5").sign == 1)
    }

    @Test func changingFormatReprints() throws {
        var quantity = try Quantity("+1024")
        #expect(quantity.description == "+1024")
        quantity.format = .binarySI
        #expect(quantity.description == "1Ki")
        quantity.format = .decimalExponent
        #expect(quantity.description == "1024")
        quantity.format = .decimalSI
        #expect(quantity.description == "1024")
    }

    @Test func approximateDouble() throws {
        #expect(try Quantity("1.5").approximateDouble == 1.5)
        #expect(try Quantity("-1Ki").approximateDouble == -1024)
        #expect(try Quantity("100m").approximateDouble == 0.1)
    }

    // MARK: JSON

    private struct Resources: Codable, Equatable {
        var limits: [String: Quantity]
    }

    @Test(arguments: [
        (#""1Gi""#, "1Gi"), (#"" 1""#, "1"), (#""1 ""#, "1"), ("1", "1"), (" 1", "1"), ("10", "10"),
        ("-1", "-1"), ("1.5", "1500m"), ("0.1", "100m"), ("1e3", "1k"), ("null", "0"), (#""+1""#, "+1"),
        (#""500m""#, "500m"),
    ])
    func decodesFromJSON(json: String, expected: String) throws {
        let quantity = try JSONDecoder().decode(Quantity.self, from: Data(json.utf8))
        #expect(quantity == (try Quantity(expected)))
    }

    @Test(arguments: [#""abc""#, "true", "[1]", "{}", #""""#, #""1 Gi""#])
    func rejectsBadJSON(json: String) {
        #expect(throws: (any Error).self) { try JSONDecoder().decode(Quantity.self, from: Data(json.utf8)) }
    }

    @Test func encodesAsString() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let resources = Resources(limits: ["cpu": try Quantity("0.5"), "memory": try Quantity("1024Mi")])
        let data = try encoder.encode(resources)
        #expect(String(decoding: data, as: UTF8.self) == #"{"limits":{"cpu":"500m","memory":"1Gi"}}"#)
        #expect(try JSONDecoder().decode(Resources.self, from: data) == resources)
    }
}

@Suite("BigUInt")
struct BigUIntTests {
    @Test func decimalRoundTrip() {
        for text in ["0", "1", "4294967295", "4294967296", "18446744073709551616", "1180591620717411303424",
            "123456789012345678901234567890123456789012345678901234567890"]
        {
            #expect(BigUInt(decimalDigits: Array(text.utf8)).decimalString == text)
        }
    }

    @Test func arithmetic() {
        let a = BigUInt(decimalDigits: Array("18446744073709551615".utf8))
        let b = a + BigUInt(1)
        #expect(b.decimalString == "18446744073709551616")
        #expect((b - BigUInt(1)) == a)
        #expect((b - b).isZero)
        var c = BigUInt(1)
        c.shiftLeft(by: 70)
        #expect(c.decimalString == "1180591620717411303424")
        var d = BigUInt(7)
        d.multiplyByPowerOfTen(30)
        #expect(d.decimalString == "7" + String(repeating: "0", count: 30))
        let removed = d.removeFactorsOfTen()
        #expect(removed == 30)
        #expect(d == BigUInt(7))
        var e = BigUInt(123_456)
        let inexact = e.divideByPowerOfTen(2)
        #expect(inexact)
        #expect(e == BigUInt(1234))
        let inexact2 = e.divideByPowerOfTen(1)
        #expect(inexact2)
        #expect(e == BigUInt(123))
        var g = BigUInt(1200)
        let inexact3 = g.divideByPowerOfTen(2)
        #expect(!inexact3)
        #expect(g == BigUInt(12))
        var f = BigUInt(5)
        let inexact4 = f.divideByPowerOfTen(500)
        #expect(inexact4)
        #expect(f.isZero)
        #expect(BigUInt.compare(a, b) == -1)
        #expect(BigUInt.compare(b, a) == 1)
        #expect(BigUInt.compare(a, a) == 0)
        #expect(a.decimalDigitCount == 20)
        #expect(c.decimalDigitCount == 22)
    }
}
