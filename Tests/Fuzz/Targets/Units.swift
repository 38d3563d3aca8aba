// Fuzz targets of the Units module: Go durations and byte sizes, which flags, configs and
// query parameters (`timeout=`, `timeoutSeconds=`) carry.
import Units

extension FuzzTargets {
    static let units: [FuzzTarget] = [
        FuzzTarget("go-duration", maxLength: 256) { input in
            let text = String(decoding: input, as: UTF8.self)
            guard let duration = GoDuration.parse(text) else { return }
            let printed = GoDuration.format(duration)
            fuzzCheck(GoDuration.parse(printed) == duration, "format(parse(\(text))) = \(printed) does not parse back")
        },
        FuzzTarget("byte-size", maxLength: 256) { input in
            let text = String(decoding: input, as: UTF8.self)
            guard let bytes = ByteSize.parse(text) else { return }
            fuzzCheck(bytes >= 0, "a size parsed negative: \(text)")
            fuzzCheck(ByteSize.parse(ByteSize.format(bytes)) == bytes, "format(parse(\(text))) does not parse back")
        },
    ]
}
