// `ballast bench controllers`: the controller manager end to end, on real processes — `ballast
// apiserver` (embedded store), `ballast cloud serve` (with latencies), `ballast csi --mode
// controller` and `ballast controller-manager` — beside the floor measured in the same run:
// the same number of CreateVolume / ControllerPublish / DeleteVolume calls made directly on the
// CSI socket at the same rate. What the controllers add is what separates the two.
import APIClient
import ArgumentParser
import ClusterAPI
import CloudProvider
import ControllerManager
import CSIProto
import Foundation
import Logging

struct BenchControllersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "controllers",
        abstract: "PVC→Bound, VolumeAttachment→attached and delete→disk gone through the controllers, beside direct CSI calls."
    )

    @Option(help: "PVCs (and pods) to create.")
    var pvcs: Int = 200

    @Option(help: "Creations per second.")
    var rate: Double = 20

    @Option(help: "The cloud's latencies (ballast cloud serve --latency).")
    var latency: String = "create=100ms,attach=200ms"

    @Option(help: "Simulated nodes the pods are spread over.")
    var nodes: Int = 4

    @Option(help: "Size of each volume.")
    var size = ByteCount(16 << 20)

    @Option(help: "Write the latency CDFs (controllers vs the direct CSI floor) to this SVG file.")
    var plot: String?

    @Option(help: "Working directory (a new /tmp/ballast-bench-cm-* by default; removed at the end).")
    var dir: String?

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard (1...2000).contains(pvcs) else { throw ValidationError("--pvcs \(pvcs): expected 1 to 2000") }
        guard rate > 0 else { throw ValidationError("--rate must be positive") }
        guard (1...64).contains(nodes) else { throw ValidationError("--nodes \(nodes): expected 1 to 64") }
        guard getuid() == 0, FileManager.default.fileExists(atPath: "/dev/loop-control") else {
            throw ValidationError("bench controllers needs root and /dev/loop-control: the simulated cloud attaches disks as loop devices")
        }
    }

    /// The cloud's CreateVolume latency this run asked for (none when `--latency` omits create).
    var createLatency: Duration {
        ((try? SimulatorConfiguration.parseLatencies(latency)) ?? [:])[.create] ?? .zero
    }

    func run() async throws {
        let root = dir ?? "/tmp/ballast-bench-cm-" + UUID().uuidString.prefix(6).lowercased()
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let logger = logging.logger("ballast.bench", defaultLevel: .warning)
        print("ballast bench controllers: \(pvcs) PVCs at \(fixed(rate, 1))/s, cloud latency \(latency), \(nodes) nodes, in \(root)\n")
        let cluster = BenchCluster(root: root, logger: logger)
        let result: ControllersBenchResult
        do {
            try await cluster.start(latency: latency, nodes: nodes)
            let floor = try await cluster.measureFloor(count: pvcs, rate: rate, bytes: size.bytes)
            result = try await cluster.measureControllers(count: pvcs, rate: rate, size: size.bytes, floor: floor)
        } catch {
            await cluster.stop()
            try? FileManager.default.removeItem(atPath: root)
            throw error
        }
        await cluster.stop()
        if dir == nil { try? FileManager.default.removeItem(atPath: root) }
        print(result.report(pvcs: pvcs, latency: latency))
        print("")
        print(result.targets(createLatency: createLatency, pvcs: pvcs, rate: rate))
        if let plot {
            try result.svg().write(toFile: plot, atomically: true, encoding: .utf8)
            print("\nlatency CDFs written to \(plot)")
        }
    }
}

/// Latencies in seconds, per measurement.
struct ControllersBenchResult {
    var bound: [Double] = []
    var attached: [Double] = []
    var deleted: [Double] = []
    var floorCreate: [Double] = []
    var floorPublish: [Double] = []
    var floorDelete: [Double] = []
    var managerCPU: Double = 0
    var apiserverCPU: Double = 0
    var elapsed: Double = 0

    static func percentile(_ values: [Double], _ q: Double) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        return sorted[max(0, min(sorted.count - 1, Int((Double(sorted.count) * q).rounded(.up)) - 1))]
    }

    func report(pvcs: Int, latency: String) -> String {
        var table = TextTable([("measurement", .left), ("controllers p50", .right), ("p99", .right), ("direct CSI floor p50", .right), ("p99", .right), ("p50 ratio", .right)])
        for (name, mine, floor) in [("PVC → Bound  vs  CreateVolume", bound, floorCreate),
                                    ("pod → VolumeAttachment attached  vs  ControllerPublish", attached, floorPublish),
                                    ("PVC delete → disk gone  vs  DeleteVolume", deleted, floorDelete)] {
            let p50 = Self.percentile(mine, 0.5), floor50 = Self.percentile(floor, 0.5)
            table.append([name, milliseconds(p50), milliseconds(Self.percentile(mine, 0.99)), milliseconds(floor50), milliseconds(Self.percentile(floor, 0.99)),
                          ratio(p50.flatMap { a in floor50.map { a / $0 } }, suffix: "×")])
        }
        var text = table.render()
        text += "\nCPU per PVC (bind, attach, detach, delete): controller manager \(fixed(managerCPU / Double(pvcs) * 1000, 2)) ms, "
        text += "API server \(fixed(apiserverCPU / Double(pvcs) * 1000, 2)) ms  (whole controller phase \(fixed(elapsed, 1)) s)"
        return text
    }

    /// The targets (defined at 200 PVCs created at 20/s) beside this run's figures, each
    /// with whether it is met: PVC→Bound p50 ≤ the cloud's create latency + 100 ms, PVC→Bound
    /// p99 ≤ 1 s, and the overhead over the direct CSI floor at p50 ≤ 1.5× (PVC→Bound against
    /// CreateVolume; shown for attach against ControllerPublish too).
    func targets(createLatency: Duration, pvcs: Int, rate: Double) -> String {
        let bound50 = Self.percentile(bound, 0.5), bound99 = Self.percentile(bound, 0.99)
        let create50 = Self.percentile(floorCreate, 0.5)
        let attached50 = Self.percentile(attached, 0.5), publish50 = Self.percentile(floorPublish, 0.5)
        let createLimit = createLatency.seconds + 0.1
        let boundOverhead = bound50.flatMap { b in create50.flatMap { $0 > 0 ? b / $0 : nil } }
        let attachOverhead = attached50.flatMap { a in publish50.flatMap { $0 > 0 ? a / $0 : nil } }
        var table = TextTable([("target (issue 14)", .left), ("limit", .right), ("this run", .right), ("", .left)])
        table.append(["PVC → Bound p50 ≤ cloud create latency + 100 ms", milliseconds(createLimit), milliseconds(bound50), verdict(bound50, atMost: createLimit)])
        table.append(["PVC → Bound p99 ≤ 1 s", milliseconds(1), milliseconds(bound99), verdict(bound99, atMost: 1)])
        table.append(["overhead over the direct CSI floor at p50 ≤ 1.5× (Bound / CreateVolume)", "1.50×",
                      ratio(boundOverhead, suffix: "×"), verdict(boundOverhead, atMost: 1.5)])
        table.append(["  the same for attach (attached / ControllerPublish)", "1.50×",
                      ratio(attachOverhead, suffix: "×"), verdict(attachOverhead, atMost: 1.5)])
        var text = table.render()
        if pvcs != 200 || rate != 20 {
            text += "\n(the targets are defined at --pvcs 200 --rate 20; this run used --pvcs \(pvcs) --rate \(fixed(rate, 1)))"
        }
        return text
    }

    /// Cumulative distributions, controllers (solid) against the floor (dashed), one panel each.
    func svg() -> String {
        LatencyCDFPlot.svg([("PVC → Bound vs CreateVolume", bound, floorCreate),
                            ("VolumeAttachment attached vs ControllerPublish", attached, floorPublish),
                            ("delete → disk gone vs DeleteVolume", deleted, floorDelete)],
                           measured: "controllers", floor: "direct CSI floor")
    }
}
