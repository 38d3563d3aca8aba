import Testing
import Units

@Suite struct GoDurationTests {
    @Test(arguments: [
        ("0", Duration.zero), ("32s", .seconds(32)), ("5m0s", .seconds(300)), ("1h", .seconds(3600)),
        ("250ms", .milliseconds(250)), ("1.5s", .milliseconds(1500)), ("1h30m", .seconds(5400)), ("-2m", .seconds(-120)),
        ("+3s", .seconds(3)), ("100us", .microseconds(100)), ("100µs", .microseconds(100)), ("7ns", .nanoseconds(7)),
        (".5s", .milliseconds(500)), ("1.s", .seconds(1)), ("2562047h47m16.854775807s", .nanoseconds(Int64.max)),
        ("1.0000000001s", .seconds(1)),
    ])
    func parsesWhatGoParses(text: String, expected: Duration) {
        #expect(GoDuration.parse(text) == expected, "\(text)")
    }

    /// Go's "invalid duration": no unit, unknown unit, empty, junk — and numbers too large
    /// for Int64 nanoseconds, which must never trap (Kubernetes' `timeout=99999999999999999h`).
    @Test(arguments: ["", "s", "1", "10", "1x", "1 s", "--1s", ".s", "1..5s", "1h-1m", "99999999999999999h",
                      "2562047h47m16.854775808s", "9223372036854775807s", String(repeating: "9", count: 1000) + "s",
                      "1e3s", "0x10s", "１s"])
    func refusesWhatGoRefuses(text: String) {
        #expect(GoDuration.parse(text) == nil, "\(text)")
    }

    @Test(arguments: [
        (Duration.zero, "0s"), (.seconds(5400), "1h30m0s"), (.milliseconds(1500), "1.5s"), (.milliseconds(250), "250ms"),
        (.seconds(-120), "-2m0s"), (.microseconds(100), "100µs"), (.nanoseconds(7), "7ns"), (.seconds(3600), "1h0m0s"),
        (.nanoseconds(1_000_000_001), "1.000000001s"),
    ])
    func formatsAsGoDoes(duration: Duration, expected: String) {
        #expect(GoDuration.format(duration) == expected)
        #expect(GoDuration.parse(expected) == duration, "round trip of \(expected)")
    }
}

@Suite struct ByteSizeTests {
    @Test(arguments: [("1048576", Int64(1 << 20)), ("64Mi", 64 << 20), ("1Ti", 1 << 40), ("500G", 500_000_000_000), ("0", 0),
                      ("7Ei", 7 << 60), ("1k", 1000)])
    func parses(text: String, expected: Int64) {
        #expect(ByteSize.parse(text) == expected)
    }

    @Test(arguments: ["", "Mi", "-1", "1.5Gi", "8Ei", "9223372036854775808", "1 Mi", "1mi", "+1", "1Mi ", "99999999999999999999Ti"])
    func refuses(text: String) {
        #expect(ByteSize.parse(text) == nil, "\(text)")
    }

    @Test func formats() {
        #expect(ByteSize.format(64 << 20) == "64Mi")
        #expect(ByteSize.format(1 << 40) == "1Ti")
        #expect(ByteSize.format(1000) == "1000")
        #expect(ByteSize.format(0) == "0")
        #expect(ByteSize.format(1536) == "1536")
    }
}
