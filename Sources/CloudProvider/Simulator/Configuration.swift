// The simulator's settings: region and zones, limits, and per-action latency and fault rates.
import Foundation
import Units

/// Requests the simulator can delay or fail on purpose (`--latency`, `--faults`).
public enum CloudAction: String, Sendable, CaseIterable, Codable {
    case create, delete, resize, attach, detach, snapshot
    case deleteSnapshot = "delete-snapshot"
    case describe, list, register
    case instanceState = "instance-state"
}

public struct SimulatorConfiguration: Sendable {
    public var region: String
    public var zones: [String]
    /// The most the disks of one zone may add up to.
    public var zoneCapacityBytes: Int64
    /// The largest single disk.
    public var maxDiskBytes: Int64
    /// Attach limit of instances registered without one.
    public var defaultAttachLimit: Int
    public var defaultInstanceType: String
    /// How long the asynchronous work of an action takes before it is done.
    public var latency: [CloudAction: Duration]
    /// The share (0…1) of requests of an action that fail with Throttled or Internal.
    public var faults: [CloudAction: Double]
    /// Seed of the fault dice, for reproducible runs; nil for a random one.
    public var faultSeed: UInt64?

    public init(region: String = "ballast-1", zoneCount: Int = 2, zoneCapacityBytes: Int64 = 1 << 40,
                maxDiskBytes: Int64 = 1 << 40, defaultAttachLimit: Int = 16, defaultInstanceType: String = "sim.standard",
                latency: [CloudAction: Duration] = [:], faults: [CloudAction: Double] = [:], faultSeed: UInt64? = nil) {
        self.region = region
        self.zones = (0..<max(1, min(zoneCount, 26))).map { region + String(UnicodeScalar(UInt8(ascii: "a") + UInt8($0))) }
        self.zoneCapacityBytes = zoneCapacityBytes
        self.maxDiskBytes = maxDiskBytes
        self.defaultAttachLimit = defaultAttachLimit
        self.defaultInstanceType = defaultInstanceType
        self.latency = latency
        self.faults = faults
        self.faultSeed = faultSeed
    }

    /// Parses "attach=0.1,create=0.05".
    public static func parseFaults(_ text: String) throws -> [CloudAction: Double] {
        try parsePairs(text, option: "--faults") { value in
            guard let rate = Double(value), (0...1).contains(rate) else { return nil }
            return rate
        }
    }

    /// Parses "attach=200ms,detach=1s,create=0".
    public static func parseLatencies(_ text: String) throws -> [CloudAction: Duration] {
        try parsePairs(text, option: "--latency", parseDuration)
    }

    /// A latency: a Go duration ("250ms", "2s", "1.5s", "0") of at most an hour.
    public static func parseDuration(_ text: String) -> Duration? {
        guard let duration = try? GoDuration.parse(text), duration >= .zero, duration <= .seconds(3600) else { return nil }
        return duration
    }

    private static func parsePairs<T>(_ text: String, option: String, _ parse: (String) -> T?) throws -> [CloudAction: T] {
        var result: [CloudAction: T] = [:]
        for pair in text.split(separator: ",") where !pair.isEmpty {
            let parts = pair.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, let action = CloudAction(rawValue: parts[0]) else {
                let actions = CloudAction.allCases.map(\.rawValue).joined(separator: ", ")
                throw CloudError.invalid(option, "\"\(pair)\" is not ACTION=VALUE with ACTION one of \(actions)")
            }
            guard let value = parse(parts[1]) else {
                throw CloudError.invalid(option, "\"\(parts[1])\" is not a valid value for \(action.rawValue) (rates are 0…1, latencies like 200ms or 1.5s)")
            }
            result[action] = value
        }
        return result
    }
}
