// Fuzz targets of the Units module: Go durations and byte sizes, which flags, configs and
// query parameters (`timeout=`, `timeoutSeconds=`) carry.
import Units

extension FuzzTargets {
    static let units: [FuzzTarget] = [
        FuzzTarget("go-duration", maxLength: 256) { input in
            let text = String(decoding: input, as: UTF8.self)
            guard let nanoseconds = try? GoDuration.nanoseconds(text) else { return }
            let printed = GoDuration.format(nanoseconds: nanoseconds)
            fuzzCheck((try? GoDuration.nanoseconds(printed)) == nanoseconds,
                      "duration \(text.debugDescription) = \(nanoseconds) ns printed as \(printed.debugDescription), which parses to another value")
        },
        FuzzTarget("byte-size", maxLength: 256) { input in
            let text = String(decoding: input, as: UTF8.self)
            guard let bytes = ByteSize.parse(text) else { return }
            fuzzCheck(bytes >= 0, "a size parsed negative: \(text)")
            fuzzCheck(ByteSize.parse(ByteSize.format(bytes)) == bytes, "format(parse(\(text))) does not parse back")
        },
    ]
}
