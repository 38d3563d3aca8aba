// A process a test started (a server, a kubectl left running): its output goes to a log file,
// and it is stopped without blocking — `kill()` for cleanup in a `defer`, `terminate()` (awaited)
// when the test checks how it stops.
import Foundation
import Synchronization

public final class TestProcess: Sendable {
    public let child: ChildProcess
    /// Where its stdout and stderr go.
    public let logPath: String

    /// Starts `arguments` in a session of its own (so a kill reaches what it started), its output
    /// appended to `logPath`; `environment` is added to this process's environment.
    public init(_ arguments: [String], environment: [String: String] = [:], logPath: String) throws {
        var merged = ProcessInfo.processInfo.environment
        for (k, v) in environment { merged[k] = v }
        self.logPath = logPath
        child = try ChildProcess(arguments, environment: merged, newSession: true,
                                 standardOutput: .file(logPath, append: true), standardError: .sameAsOutput)
    }

    /// What it has printed so far.
    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    public var isRunning: Bool { child.termination == nil }

    public var pid: pid_t { child.pid }

    /// SIGKILL to it and its process group, without waiting (it is reaped in the background):
    /// what a `defer` calls, since a `defer` cannot await.
    public func kill() {
        try? child.signal(SIGKILL, toGroup: true)
    }

    /// Sends `signal` to it (not to its group).
    public func signal(_ signal: Int32) {
        try? child.signal(signal)
    }

    /// SIGTERM, up to `grace` to exit, then SIGKILL; returns how it ended.
    @discardableResult
    public func terminate(grace: Duration = .seconds(10)) async -> ChildProcess.Termination {
        await child.terminate(grace: grace)
    }

    /// Waits for it to end by itself, at most `timeout`; nil if it still runs.
    public func waitForExit(timeout: Duration) async -> ChildProcess.Termination? {
        await child.wait(timeout: timeout)
    }
}

/// The processes a test started, for its cleanup.
public final class ProcessList: Sendable {
    private let processes = Mutex<[TestProcess]>([])
    public init() {}
    public func append(_ process: TestProcess) { processes.withLock { $0.append(process) } }
    public var all: [TestProcess] { processes.withLock { $0 } }
}
