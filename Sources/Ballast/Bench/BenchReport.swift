// The store benchmark's output: the human tables, or one JSON object per engine and phase.

extension StoreWorkload {
    /// "1000000 keys, 16 B keys, 100 B values (compressibility 0.50), random order, batch 1,
    /// 1 writer, sync none"
    var summary: String {
        "\(keys) keys, \(keySize) B keys, \(valueSize) B values (compressibility \(fixed(compressibility, 2))), "
            + "\(order.rawValue) order, batch \(batch), \(writers) writer\(writers == 1 ? "" : "s"), sync \(sync.rawValue)"
    }
}

enum BenchReport {
    static let phaseOrder = ["fill", "read", "scan"]

    /// The human report: the workload, a table of phases, the settle lines, a table of disk and
    /// memory figures and, with two engines, Ballast's speed relative to SQLite per phase.
    static func human(_ workload: StoreWorkload, _ reports: [EngineReport]) -> String {
        var lines = ["ballast bench store: " + workload.summary, ""]

        var phases = TextTable([
            ("engine", .left), ("phase", .left), ("ops/s", .right), ("MB/s", .right),
            ("p50 µs", .right), ("p99 µs", .right), ("p999 µs", .right), ("ops", .right), ("seconds", .right),
        ])
        for report in reports {
            for phase in report.phases {
                phases.append([
                    report.engine, phase.phase, grouped(phase.opsPerSecond), fixed(phase.megabytesPerSecond, 1),
                    microseconds(phase.latency.percentile(0.50)), microseconds(phase.latency.percentile(0.99)),
                    microseconds(phase.latency.percentile(0.999)), grouped(phase.ops),
                    fixed(phase.seconds, phase.seconds < 10 ? 3 : 1),
                ])
            }
        }
        lines.append(phases.render())
        lines.append("")
        for report in reports {
            lines.append("\(report.engine) settle: \(fixed(report.settleSeconds, 2)) s (\(report.settleDescription))")
        }
        lines.append("")

        var figures = TextTable([
            ("engine", .left), ("disk MiB", .right), ("user MiB", .right), ("compression", .right),
            ("write-amp", .right), ("peak RSS MiB", .right),
        ])
        for report in reports {
            figures.append([
                report.engine, mebibytes(report.diskBytes), mebibytes(report.fillUserBytes),
                ratio(report.compressionRatio, suffix: "x"), ratio(report.writeAmplification, suffix: "x"),
                mebibytes(report.peakRSSBytes),
            ])
        }
        lines.append(figures.render())
        for report in reports {
            if let count = report.stallCount, count > 0 {
                lines.append("\(report.engine): \(grouped(Int(count))) write stalls, "
                    + "\(fixed(Double(report.stallMicros ?? 0) / 1000, 1)) ms stalled")
            }
        }

        if let lsm = reports.first(where: { $0.engine == "lsm" }),
           let sqlite = reports.first(where: { $0.engine == "sqlite" }) {
            let parts = phaseOrder.compactMap { name -> String? in
                guard let a = lsm.phase(name), let b = sqlite.phase(name), b.opsPerSecond > 0 else { return nil }
                let speedup = a.opsPerSecond / b.opsPerSecond
                return "\(name) \(ratio(speedup, decimals: speedup < 1 ? 2 : 1, suffix: "x"))"
            }
            lines.append("")
            lines.append("ballast/sqlite (ops/s): " + parts.joined(separator: ", "))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// One JSON object per phase of `report`, one per line (JSONL).
    static func jsonLines(_ workload: StoreWorkload, _ report: EngineReport) -> [String] {
        report.phases.map { phase in
            var object: [(String, JSONValue)] = [
                ("engine", .string(report.engine)),
                ("phase", .string(phase.phase)),
                ("ops", .int(phase.ops)),
                ("calls", .int(phase.calls)),
                ("seconds", .double(phase.seconds)),
                ("ops_per_sec", .double(phase.opsPerSecond)),
                ("mb_per_sec", .double(phase.megabytesPerSecond)),
                ("user_bytes", .int(Int(phase.userBytes))),
                ("p50_us", .optionalDouble(phase.latency.percentile(0.50).map { $0 / 1000 })),
                ("p99_us", .optionalDouble(phase.latency.percentile(0.99).map { $0 / 1000 })),
                ("p999_us", .optionalDouble(phase.latency.percentile(0.999).map { $0 / 1000 })),
                ("max_us", .optionalDouble(phase.latency.count > 0 ? Double(phase.latency.max) / 1000 : nil)),
                ("disk_bytes", .int(Int(report.diskBytes))),
                ("fill_user_bytes", .int(Int(report.fillUserBytes))),
            ]
            if let value = report.writeAmplification { object.append(("write_amp", .double(value))) }
            if let value = report.compressionRatio { object.append(("compression_ratio", .double(value))) }
            if let value = report.peakRSSBytes { object.append(("peak_rss_bytes", .int(Int(value)))) }
            if phase.phase == "fill" { object.append(("settle_seconds", .double(report.settleSeconds))) }
            if let value = report.stallCount { object.append(("stall_count", .int(Int(value)))) }
            if let value = report.stallMicros { object.append(("stall_micros", .int(Int(value)))) }
            object += [
                ("keys", .int(workload.keys)),
                ("key_size", .int(workload.keySize)),
                ("value_size", .int(workload.valueSize)),
                ("compressibility", .double(workload.compressibility)),
                ("order", .string(workload.order.rawValue)),
                ("batch", .int(workload.batch)),
                ("writers", .int(workload.writers)),
                ("sync", .string(workload.sync.rawValue)),
            ]
            return JSONValue.object(object)
        }
    }
}

/// Just enough JSON to write flat objects with their keys in a fixed order.
enum JSONValue {
    case string(String)
    case int(Int)
    case double(Double)
    case optionalDouble(Double?)

    static func object(_ members: [(String, JSONValue)]) -> String {
        "{" + members.map { quote($0.0) + ":" + $0.1.encoded }.joined(separator: ",") + "}"
    }

    var encoded: String {
        switch self {
        case .string(let s): return Self.quote(s)
        case .int(let i): return String(i)
        case .double(let d): return d.isFinite ? "\(d)" : "null"
        case .optionalDouble(let d): return d.map { JSONValue.double($0).encoded } ?? "null"
        }
    }

    static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
