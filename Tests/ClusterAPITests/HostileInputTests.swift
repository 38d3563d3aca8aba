import ClusterAPI
import Foundation
import Testing

/// Parsers of the object model against what an attacker or a careless client sends: every
/// answer is an error or a value, never a trap, and never a minute of CPU.
@Suite struct HostileInputTests {
    @Test func aMegabyteQuantityIsRefusedAtOnce() throws {
        // 52 s before the cap (quadratic digit-by-digit parsing and printing).
        let huge = String(repeating: "9", count: 1_000_000)
        let started = ContinuousClock.now
        #expect { try Quantity(huge) } throws: { ($0 as? QuantityParseError)?.kind == .tooLong }
        let body = Data(#"{"q":""#.utf8) + Data(huge.utf8) + Data(#""}"#.utf8)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([String: Quantity].self, from: body) }
        // Reading the megabyte of JSON itself takes a few hundred milliseconds in a debug build.
        #expect(started.duration(to: .now) < .seconds(5))
        let longest = "1" + String(repeating: "0", count: Quantity.maxLength - 2) + "m"
        #expect(try Quantity(longest) == (try Quantity("1e1019")))
        // Significant digits are bounded, and what prints parses again (found by fuzzing: a
        // 90-digit quantity printed with two more digits and an exponent).
        #expect { try Quantity(String(repeating: "7", count: Quantity.maxSignificantDigits + 1)) } throws: {
            ($0 as? QuantityParseError)?.kind == .tooLong
        }
        let wide = try Quantity("1" + String(repeating: "9", count: Quantity.maxSignificantDigits - 1) + "e2147483647")
        #expect(try Quantity(wide.canonicalString) == wide)
    }

    @Test func sumsOfFarApartQuantitiesStayCheap() throws {
        // apimachinery's int32 exponents: aligning 1e2147483647 with 1 took two billion digits.
        let started = ContinuousClock.now
        let huge = try Quantity("1e2147483647")
        let one = try Quantity("1")
        #expect(huge + one == huge && one + huge == huge && one - huge == -huge)
        let near = try Quantity("1e\(Quantity.maxAlignment)")
        #expect(near + one > near, "within the alignment bound sums stay exact")
        #expect(started.duration(to: .now) < .milliseconds(500))
    }

    @Test func timesSaturateInsteadOfOverflowing() {
        // DELETE …?gracePeriodSeconds=9223372036854775807 trapped turning now + grace into a Time.
        #expect(Time.now().adding(seconds: .max) == Time.maximum)
        #expect(Time.now().adding(seconds: .min) == Time.minimum)
        #expect(Time(Date(timeIntervalSince1970: 1e30)) == Time.maximum)
        #expect(Time(Date(timeIntervalSince1970: .nan)) == Time.minimum)
        #expect(Time.maximum.rfc3339 == "9999-12-31T23:59:59Z")
        #expect(Time(secondsSinceEpoch: .min).rfc3339 == "0000-01-01T00:00:00Z")
        #expect(Time(secondsSinceEpoch: 0).adding(seconds: 30).rfc3339 == "1970-01-01T00:00:30Z")
    }
}

extension HostileInputTests {
    @Test func quantitiesPrintToWhatParses() throws {
        // Found by the quantity fuzz target: 5e2147483649 printed with an exponent no int32 holds.
        #expect { try Quantity("500e2147483647") } throws: { ($0 as? QuantityParseError)?.kind == .numeric }
        let largest = try Quantity("5e2147483647")
        #expect(try Quantity(largest.canonicalString) == largest)
    }
}
