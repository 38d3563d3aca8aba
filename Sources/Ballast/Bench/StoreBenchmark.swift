// One engine's run of the store benchmark: fill, settle, read, scan, then the disk figures.
import Foundation
import Primitives

/// Everything measured for one engine.
struct EngineReport: Sendable {
    let engine: String
    var phases: [PhaseResult] = []
    var settleSeconds: Double = 0
    var settleDescription = ""
    /// Sum of file sizes in the engine's directory after the scan (before close).
    var diskBytes: UInt64 = 0
    /// Key and value bytes written by the fill.
    var fillUserBytes: UInt64 = 0
    /// LSM: the engine's own figure. SQLite: user bytes / disk bytes.
    var compressionRatio: Double?
    /// LSM: the engine's own figure. SQLite: growth of /proc/self/io `write_bytes` over the
    /// fill and its settle (the final WAL checkpoint), divided by user bytes.
    var writeAmplification: Double?
    /// VmHWM right after the fill (reset before the engine starts, where the kernel allows).
    var peakRSSBytes: UInt64?
    var stallCount: UInt64?
    var stallMicros: UInt64?

    func phase(_ name: String) -> PhaseResult? { phases.first { $0.phase == name } }
}

/// A result the benchmark refuses to report because the engine returned wrong data.
struct BenchError: Error, CustomStringConvertible, LocalizedError {
    let description: String
    var errorDescription: String? { description }
}

/// The workload, pre-generated once and shared by every engine of the run.
final class StoreBenchmark: Sendable {
    let workload: StoreWorkload
    /// Key indexes in fill order (a permutation of 0..<keys).
    let fillOrder: [UInt64]
    let pool: ValuePool
    let progress: ProgressLine

    init(workload: StoreWorkload, progress: ProgressLine) {
        self.workload = workload
        self.progress = progress
        fillOrder = workload.fillOrder()
        pool = ValuePool(workload: workload)
    }

    /// Opens `kind` in `directory` (which must be empty or absent), runs every phase, and
    /// closes it.
    func run(_ kind: EngineKind, directory: String) throws -> EngineReport {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if let existing = try? FileManager.default.contentsOfDirectory(atPath: directory), !existing.isEmpty {
            throw BenchError(description: "\(directory) is not empty: give an empty --dir or remove it")
        }
        ProcessStats.resetPeakRSS()
        let engine: any BenchEngine
        switch kind {
        case .lsm: engine = try LSMBenchEngine(directory: directory, sync: workload.sync)
        case .sqlite: engine = try SQLiteBenchEngine(directory: directory, sync: workload.sync)
        }
        do {
            let report = try run(engine, directory: directory)
            try engine.close()
            return report
        } catch {
            try? engine.close()
            throw error
        }
    }

    private func run(_ engine: any BenchEngine, directory: String) throws -> EngineReport {
        let runner = PhaseRunner(engine: engine.name, progress: progress)
        var report = EngineReport(engine: engine.name)
        report.settleDescription = engine.settleDescription

        // Fill.
        let writeBytesBefore = ProcessStats.writeBytes()
        let fill = try fillPhase(engine, runner)
        report.phases.append(fill)
        report.fillUserBytes = fill.userBytes
        report.peakRSSBytes = ProcessStats.peakRSSBytes()

        // Settle, untimed as far as the fill is concerned.
        progress.update("\(engine.name) settle: \(engine.settleDescription)…")
        let settleStart = monotonicNanos()
        try engine.settle()
        report.settleSeconds = Double(monotonicNanos() - settleStart) / 1e9
        progress.finish("\(engine.name) settle: \(fixed(report.settleSeconds, 2)) s (\(engine.settleDescription))")
        let writeBytesAfter = ProcessStats.writeBytes()

        // Read and scan.
        let reader = try engine.makeReader()
        do {
            if workload.reads > 0 { report.phases.append(try readPhase(reader, engine: engine.name, runner)) }
            report.phases.append(try scanPhase(reader, engine: engine.name, runner))
            try reader.close()
        } catch {
            try? reader.close()
            throw error
        }

        report.diskBytes = ProcessStats.directoryBytes(directory)
        let own = engine.ownStatistics()
        report.stallCount = own.stallCount
        report.stallMicros = own.stallMicros
        report.compressionRatio = own.compressionRatio
            ?? (report.diskBytes > 0 ? Double(report.fillUserBytes) / Double(report.diskBytes) : nil)
        if let amplification = own.writeAmplification {
            report.writeAmplification = amplification
        } else if let before = writeBytesBefore, let after = writeBytesAfter, report.fillUserBytes > 0 {
            report.writeAmplification = Double(after &- before) / Double(report.fillUserBytes)
        }
        return report
    }

    /// `writers` threads, each writing a contiguous share of the fill order in batches.
    private func fillPhase(_ engine: any BenchEngine, _ runner: PhaseRunner) throws -> PhaseResult {
        let workload = self.workload
        var writers: [any BenchWriter] = []
        do {
            for _ in 0..<workload.writers { writers.append(try engine.makeWriter()) }
        } catch {
            for writer in writers { try? writer.close() }
            throw error
        }
        let order = fillOrder
        let pool = self.pool
        let shares = writers
        let result: PhaseResult
        do {
            result = try runner.run(phase: "fill", total: workload.keys, threads: workload.writers) { thread, counter in
                let lower = workload.keys * thread / workload.writers
                let upper = workload.keys * (thread + 1) / workload.writers
                let writer = shares[thread]
                let buffer = BatchBuffer(keySize: workload.keySize, valueSize: workload.valueSize,
                                         capacity: workload.batch)
                var rng = SplitMix64(seed: workload.seed &+ 0x1234_5678 &* UInt64(thread + 1))
                var outcome = WorkerOutcome()
                var position = lower
                while position < upper {
                    let end = Swift.min(position + workload.batch, upper)
                    buffer.fill(order[position..<end], pool: pool, rng: &rng)
                    let start = monotonicNanos()
                    try writer.write(buffer.batch)
                    outcome.latency.record(monotonicNanos() &- start)
                    outcome.calls += 1
                    position = end
                    if outcome.calls & 63 == 0 { counter.done.store(position - lower, ordering: .relaxed) }
                }
                counter.done.store(upper - lower, ordering: .relaxed)
                outcome.ops = upper - lower
                outcome.userBytes = UInt64(outcome.ops) * UInt64(workload.entryBytes)
                return outcome
            }
        } catch {
            for writer in writers { try? writer.close() }
            throw error
        }
        for writer in writers { try writer.close() }
        return result
    }

    /// `reads` gets of keys picked uniformly (seeded) from 0..<keys; each must find a value of
    /// the size written.
    private func readPhase(_ reader: any BenchReader, engine: String, _ runner: PhaseRunner) throws -> PhaseResult {
        let workload = self.workload
        return try runner.run(phase: "read", total: workload.reads, threads: 1) { _, counter in
            var rng = SplitMix64(seed: workload.seed ^ 0x7EAD_7EAD_7EAD_7EAD)
            let key = UnsafeMutableRawPointer.allocate(byteCount: Swift.max(workload.keySize, 1), alignment: 16)
            defer { key.deallocate() }
            let view = UnsafeRawBufferPointer(start: key, count: workload.keySize)
            var outcome = WorkerOutcome()
            for i in 0..<workload.reads {
                let index = rng.next(below: UInt64(workload.keys))
                renderKey(index, into: key, size: workload.keySize)
                let start = monotonicNanos()
                let length = try reader.get(view)
                outcome.latency.record(monotonicNanos() &- start)
                guard let length else {
                    throw BenchError(description: "\(engine): get of written key \(String(decoding: view, as: UTF8.self)) found nothing")
                }
                guard length == workload.valueSize else {
                    throw BenchError(description: "\(engine): get of key \(String(decoding: view, as: UTF8.self)) "
                        + "returned \(length) bytes, \(workload.valueSize) were written")
                }
                outcome.userBytes += UInt64(workload.keySize + length)
                if i & 255 == 0 { counter.done.store(i, ordering: .relaxed) }
            }
            outcome.ops = workload.reads
            outcome.calls = workload.reads
            return outcome
        }
    }

    /// One forward pass over every entry; it must return exactly `keys` rows.
    private func scanPhase(_ reader: any BenchReader, engine: String, _ runner: PhaseRunner) throws -> PhaseResult {
        let workload = self.workload
        let result = try runner.run(phase: "scan", total: workload.keys, threads: 1) { _, counter in
            let scan = try reader.makeScan()
            var outcome = WorkerOutcome()
            // One clock read per row: each row's time runs from the end of the previous one.
            var last = monotonicNanos()
            while let bytes = try scan.next() {
                let now = monotonicNanos()
                outcome.latency.record(now &- last)
                last = now
                outcome.ops += 1
                outcome.userBytes += UInt64(bytes)
                if outcome.ops & 1023 == 0 { counter.done.store(outcome.ops, ordering: .relaxed) }
            }
            outcome.calls = outcome.ops
            return outcome
        }
        guard result.ops == workload.keys else {
            throw BenchError(description: "\(engine): the scan returned \(result.ops) entries, \(workload.keys) were written")
        }
        return result
    }
}
