// Runs one timed phase on worker threads while the main thread reports progress.
//
// Writes are blocking calls, so the workers are plain threads (Foundation.Thread), not Swift
// concurrency tasks: a blocked task would hold one of the cooperative pool's few threads.
import Dispatch
import Foundation
import Synchronization

/// The outcome of one timed phase of one engine.
struct PhaseResult: Sendable {
    /// "fill", "read" or "scan".
    let phase: String
    /// Entries: keys written (fill), keys read (read), rows returned (scan).
    let ops: Int
    /// Timed calls, each one latency sample: write-batch calls for the fill, else `ops`.
    let calls: Int
    /// Key and value bytes moved.
    let userBytes: UInt64
    /// Wall time of the whole phase, all threads.
    let seconds: Double
    /// Latency of each timed call, merged over the threads.
    let latency: LatencyHistogram

    var opsPerSecond: Double { seconds > 0 ? Double(ops) / seconds : 0 }
    /// User bytes per second in MB (10^6 bytes).
    var megabytesPerSecond: Double { seconds > 0 ? Double(userBytes) / 1e6 / seconds : 0 }
}

/// What one worker thread measured.
struct WorkerOutcome: Sendable {
    var latency = LatencyHistogram()
    var ops = 0
    var calls = 0
    var userBytes: UInt64 = 0
}

/// A worker's count of finished entries, read by the progress line. The worker stores into it
/// now and then (relaxed); nothing else depends on it.
final class ProgressCounter: Sendable {
    let done = Atomic<Int>(0)
}

/// Where workers leave their outcomes for the main thread.
private final class OutcomeSlots: Sendable {
    private let slots: Mutex<[Result<WorkerOutcome, any Error>?]>

    init(count: Int) { slots = Mutex(Array(repeating: nil, count: count)) }

    func set(_ index: Int, _ result: Result<WorkerOutcome, any Error>) {
        slots.withLock { $0[index] = result }
    }

    func all() -> [Result<WorkerOutcome, any Error>?] { slots.withLock { $0 } }
}

/// Runs phases of one engine and reports their progress.
struct PhaseRunner {
    let engine: String
    let progress: ProgressLine

    /// Runs `body(threadIndex, counter)` on `threads` new threads and waits for all of them,
    /// updating the progress line every 0.5 s. The phase's time runs from just before the
    /// threads start until the last one ends. The first error any thread throws is rethrown.
    func run(
        phase: String, total: Int, threads: Int,
        body: @escaping @Sendable (_ thread: Int, _ counter: ProgressCounter) throws -> WorkerOutcome
    ) throws -> PhaseResult {
        let counters = (0..<threads).map { _ in ProgressCounter() }
        let slots = OutcomeSlots(count: threads)
        let group = DispatchGroup()
        let start = monotonicNanos()
        for index in 0..<threads {
            group.enter()
            let counter = counters[index]
            let thread = Thread {
                slots.set(index, Result { try body(index, counter) })
                group.leave()
            }
            thread.name = "bench-\(engine)-\(phase)-\(index)"
            thread.start()
        }
        var lastDone = 0
        var lastTime = start
        while group.wait(timeout: .now() + .milliseconds(500)) == .timedOut {
            let now = monotonicNanos()
            let done = counters.reduce(0) { $0 + $1.done.load(ordering: .relaxed) }
            let rate = Double(done - lastDone) / (Double(now - lastTime) / 1e9)
            progress.update("\(engine) \(phase): \(grouped(done))/\(grouped(total)) "
                + "(\(Int(100 * Double(done) / Double(Swift.max(total, 1))))%), \(grouped(rate)) ops/s")
            lastDone = done
            lastTime = now
        }
        let seconds = Double(monotonicNanos() - start) / 1e9

        var merged = WorkerOutcome()
        for slot in slots.all() {
            guard let slot else { continue }
            let outcome = try slot.get()
            merged.latency.merge(outcome.latency)
            merged.ops += outcome.ops
            merged.calls += outcome.calls
            merged.userBytes += outcome.userBytes
        }
        let result = PhaseResult(phase: phase, ops: merged.ops, calls: merged.calls,
                                 userBytes: merged.userBytes, seconds: seconds, latency: merged.latency)
        progress.finish("\(engine) \(phase): \(grouped(result.ops)) ops in \(fixed(seconds, 2)) s, "
            + "\(grouped(result.opsPerSecond)) ops/s")
        return result
    }
}

/// The progress line on stderr. On a terminal it is rewritten in place (`\r`, at most every
/// 0.5 s) and cleared when a phase ends; otherwise only each phase's end is printed, one line
/// each, so logs stay readable.
final class ProgressLine: Sendable {
    let isTerminal: Bool

    init() { isTerminal = isatty(STDERR_FILENO) == 1 }

    func update(_ text: String) {
        guard isTerminal else { return }
        writeStandardError("\r\u{1B}[K" + text)
    }

    func finish(_ text: String) {
        writeStandardError(isTerminal ? "\r\u{1B}[K" + text + "\n" : text + "\n")
    }

    /// A line of its own, e.g. "lsm settle: …".
    func note(_ text: String) {
        writeStandardError(isTerminal ? "\r\u{1B}[K" + text + "\n" : text + "\n")
    }
}

/// Writes straight to file descriptor 2 (the `stderr` global is not concurrency-safe in Swift 6).
func writeStandardError(_ text: String) {
    var text = text
    text.withUTF8 { bytes in
        var offset = 0
        while offset < bytes.count {
            let n = write(STDERR_FILENO, bytes.baseAddress! + offset, bytes.count - offset)
            if n <= 0 { return }
            offset += n
        }
    }
}
