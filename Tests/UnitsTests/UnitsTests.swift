import Testing
import Units

@Suite struct GoDurationTests {
    @Test(arguments: [
        ("32s", Int64(32_000_000_000)), ("1h2m3.5s", 3_723_500_000_000), ("250ms", 250_000_000), ("-1.5us", -1_500),
        ("0", 0), ("1µs", 1_000), ("2562047h47m16.854775807s", Int64.max), ("-2562047h47m16.854775808s", Int64.min),
        (".5s", 500_000_000), ("1.s", 1_000_000_000),
    ])
    func goDurations(text: String, nanoseconds: Int64) throws {
        #expect(try GoDuration.nanoseconds(text) == nanoseconds)
        #expect(try GoDuration.nanoseconds(GoDuration.format(nanoseconds: nanoseconds)) == nanoseconds)
    }

    @Test(arguments: ["99999999999999999h", "2562047h47m16.854775808s", "9223372036854775808ns", "1e3s", "", "s", "1", "1x", "..5s", "+"])
    func goDurationErrors(text: String) {
        // The first of these trapped the API server converting a Double to Int64 (GET /healthz?timeout=…).
        #expect(throws: GoDurationError.self) { try GoDuration.nanoseconds(text) }
    }

    @Test func goDurationMessagesAreGos() {
        #expect { try GoDuration.nanoseconds("99999999999999999h") } throws: { "\($0)" == #"time: invalid duration "99999999999999999h""# }
        #expect { try GoDuration.nanoseconds("3") } throws: { "\($0)" == #"time: missing unit in duration "3""# }
        #expect { try GoDuration.nanoseconds("3d") } throws: { "\($0)" == #"time: unknown unit "d" in duration "3d""# }
        #expect(GoDuration.format(nanoseconds: 3_723_500_000_000) == "1h2m3.5s")
        #expect(GoDuration.format(nanoseconds: 1_500) == "1.5µs")
    }

    @Test(arguments: [
        (Duration.zero, "0s"), (.seconds(5400), "1h30m0s"), (.milliseconds(1500), "1.5s"), (.milliseconds(250), "250ms"),
        (.seconds(-120), "-2m0s"), (.microseconds(100), "100µs"), (.nanoseconds(7), "7ns"), (.seconds(3600), "1h0m0s"),
        (.nanoseconds(1_000_000_001), "1.000000001s"),
    ])
    func formatsDurationsAsGoDoes(duration: Duration, expected: String) throws {
        #expect(GoDuration.format(duration) == expected)
        #expect(try GoDuration.parse(expected) == duration, "round trip of \(expected)")
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
