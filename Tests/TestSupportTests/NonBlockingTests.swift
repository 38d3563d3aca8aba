// The test helpers must never hold a thread of the cooperative pool while they wait: Swift
// Testing runs suites in parallel on a pool as wide as the machine has cores (two here), and a
// helper that blocked one would stall every other suite. These tests fail if one blocks.
import Foundation
import Testing
import TestSupport

@Suite struct NonBlockingTests {
    /// More waits than the pool has threads, each two seconds long. If a wait blocked its
    /// thread they would run a pool-width at a time: at least 8 s. Awaited, they overlap.
    static let width = ProcessInfo.processInfo.activeProcessorCount
    static let waits = width * 4

    @Test func runAwaitsItsCommandWithoutHoldingAThread() async throws {
        let started = ContinuousClock.now
        try await withThrowingTaskGroup(of: Int32.self) { group in
            for _ in 0..<Self.waits { group.addTask { try await run("sleep", ["2"]).status } }
            for try await status in group { #expect(status == 0) }
        }
        let elapsed = ContinuousClock.now - started
        #expect(elapsed < .seconds(6), "\(Self.waits) two-second commands took \(elapsed): run() blocks a pool thread")
    }

    @Test func processesAreAwaitedWithoutHoldingAThread() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("nonblocking-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let started = ContinuousClock.now
        await withTaskGroup(of: Void.self) { group in
            for i in 0..<Self.waits {
                group.addTask {
                    guard let process = try? TestProcess(["sleep", "2"], logPath: directory + "/\(i).log") else { return }
                    #expect(await process.waitForExit(timeout: .seconds(30)) == .exited(0))
                    // And polling for a condition does not hold one either.
                    #expect(await waitUntil(timeout: .milliseconds(300)) { false } == false)
                }
            }
        }
        let elapsed = ContinuousClock.now - started
        #expect(elapsed < .seconds(6), "\(Self.waits) two-second processes took \(elapsed): a wait blocks a pool thread")
    }
}
