// A child process, started with posix_spawn from an argv (never through a shell), awaited
// without holding a thread, and stopped gracefully. The kubelet's pods, `ballast up`'s
// supervisor, the tests and the benchmarks start their processes with it; `SystemCommand` runs a
// tool to completion on it.
//
//     let child = try ChildProcess(["ballast", "store", "serve"], newSession: true,
//                                  standardOutput: .file(logPath), standardError: .sameAsOutput)
//     ...
//     let termination = await child.terminate(grace: .seconds(10))   // SIGTERM, wait, SIGKILL
//
// Exit is learnt from a pidfd that the reactor thread (`Reactor`) watches in epoll, and the child
// is reaped then, by its own pid only (never `waitpid(-1)`, which would steal the children of
// Foundation's `Process`). Without pidfds (Linux < 5.3, or a sandbox that forbids them) a
// dedicated thread per child waits in `waitid` instead. Signals go through the pidfd, so they
// never reach a recycled pid.
import Foundation
import Synchronization
import CHostSystem
#if canImport(Glibc)
import Glibc
#endif

public final class ChildProcess: Sendable {
    /// Where the child's stdin comes from.
    public enum Input: Sendable {
        /// /dev/null (the default): the child reads end of file at once.
        case null
        /// This process's stdin.
        case inherit
        /// A file, opened read-only.
        case file(String)
        /// These bytes, written by a background task, then end of file.
        case bytes([UInt8])
        /// A pipe written through `standardInput`.
        case pipe
    }

    /// Where one of the child's outputs goes.
    public enum Output: Sendable {
        /// /dev/null (the default).
        case discard
        /// This process's stdout or stderr.
        case inherit
        /// A file the child writes directly (created with `mode` if missing; appended to or
        /// truncated). The usual choice for logs: nothing passes through this process.
        case file(String, append: Bool = true, mode: mode_t = 0o600)
        /// A pipe read through `standardOutput` / `standardError` while the child runs.
        case stream
        /// stderr only: wherever stdout goes (2>&1).
        case sameAsOutput
    }

    /// How a child ended.
    public enum Termination: Sendable, Equatable, CustomStringConvertible {
        /// It exited with this status.
        case exited(Int32)
        /// A signal killed it.
        case signaled(Int32)
        /// It was reaped by other code of this process (something called `waitpid(-1)`), so
        /// its status is lost.
        case unknown

        /// Exited with status 0.
        public var isSuccess: Bool { self == .exited(0) }

        /// The status as a shell reports it: the exit status, 128 + the signal, or 255.
        public var shellStatus: Int32 {
            switch self {
            case .exited(let status): status
            case .signaled(let signal): 128 + signal
            case .unknown: 255
            }
        }

        public var description: String {
            switch self {
            case .exited(let status): "exited with status \(status)"
            case .signaled(let signal): "killed by signal \(signal) (\(String(cString: strsignal(signal))))"
            case .unknown: "ended with a status that was reaped elsewhere"
            }
        }
    }

    /// The argv it was started with.
    public let arguments: [String]
    /// Its process id (also its process group and session id when started with `newSession`).
    public let pid: pid_t
    /// It leads its own session and process group.
    public let newSession: Bool
    /// Its stdout, when started with `standardOutput: .stream`.
    public let standardOutput: ChildOutput?
    /// Its stderr, when started with `standardError: .stream`.
    public let standardError: ChildOutput?
    /// Its stdin, when started with `standardInput: .pipe`.
    public let standardInput: ChildInput?

    private let exit: ExitState

    /// Starts `arguments[0]` with `arguments` as its argv.
    ///
    /// - Parameters:
    ///   - arguments: the argv; `arguments[0]` is a path, or a name looked up in the `PATH` of
    ///     `environment` (or of this process) as `execvp` does.
    ///   - environment: the child's whole environment; nil inherits this process's.
    ///   - workingDirectory: where the child starts; nil keeps this process's.
    ///   - newSession: the child calls `setsid()`: it leads a new session and process group,
    ///     has no controlling terminal, and `signal(_:toGroup: true)` reaches its descendants.
    /// - Throws: `HostSystemError` `.notFound` when the executable or a file is missing,
    ///   `.spawnFailed` or `.system` otherwise. Nothing is left running or open on failure.
    ///
    /// The child starts with every signal at its default disposition and none blocked, and
    /// inherits no descriptor but 0, 1 and 2.
    public init(_ arguments: [String], environment: [String: String]? = nil, workingDirectory: String? = nil,
                newSession: Bool = false, standardInput: Input = .null, standardOutput: Output = .discard,
                standardError: Output = .discard) throws(HostSystemError) {
        let spawned = try Spawner(arguments: arguments, environment: environment, workingDirectory: workingDirectory,
                                  newSession: newSession, input: standardInput, output: standardOutput,
                                  error: standardError).spawn()
        self.arguments = arguments
        self.pid = spawned.pid
        self.newSession = newSession
        self.standardOutput = spawned.stdout.map(ChildOutput.init)
        self.standardError = spawned.stderr.map(ChildOutput.init)
        let input = spawned.stdin.map(ChildInput.init)
        self.exit = ExitState(pid: spawned.pid)
        if case .bytes(let bytes) = standardInput, let input {
            self.standardInput = nil
            Task {
                try? await input.write(bytes)
                input.close()
            }
        } else {
            self.standardInput = input
        }
        exit.watch()
    }

    /// How it ended, or nil while it runs.
    public var termination: Termination? { exit.termination }

    /// Waits until it has ended and been reaped. Cancelling the waiting task throws
    /// `CancellationError` and leaves the child running.
    @discardableResult
    public func wait() async throws(CancellationError) -> Termination {
        try await exit.wait()
    }

    /// Waits at most `timeout`; nil when it is still running then (or the task was cancelled).
    public func wait(timeout: Duration) async -> Termination? {
        if let termination { return termination }
        return await withTaskGroup(of: Termination?.self) { group in
            group.addTask { try? await self.wait() }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first ?? self.termination
        }
    }

    /// Sends `signal` to the child, or with `toGroup` to its whole process group (only for a
    /// child started with `newSession`). Does nothing once the child has been reaped.
    public func signal(_ signal: Int32, toGroup: Bool = false) throws(HostSystemError) {
        guard !toGroup || newSession else {
            throw HostSystemError(.invalidArgument, "process \(pid) (\(arguments[0])) has no process group of its own; start it with newSession to signal its group")
        }
        try exit.send(signal, toGroup: toGroup)
    }

    /// Stops the child: SIGTERM, up to `grace` for it to exit, then SIGKILL; returns once it is
    /// reaped. With `newSession` the signals go to its whole process group, so helpers it
    /// started stop too. Cancelling the task skips the rest of the grace period (the SIGKILL
    /// and the reaping still happen).
    @discardableResult
    public func terminate(grace: Duration = .seconds(10)) async -> Termination {
        if let termination { return termination }
        // What the leader leaves behind is killed when it is reaped, not after: until then its
        // zombie holds its pid, so the group's id cannot have been taken by another process.
        if newSession { exit.killGroupWhenReaped() }
        try? signal(SIGTERM, toGroup: newSession)
        if let ended = await wait(timeout: grace) { return ended }
        try? signal(SIGKILL, toGroup: newSession)
        return await exit.waitIgnoringCancellation()
    }
}

/// The child's end: learnt from its pidfd (or a waiting thread), reaped once, announced to
/// every waiter.
final class ExitState: Sendable {
    private struct State {
        var termination: ChildProcess.Termination?
        var waiters: [UInt64: CheckedContinuation<ChildProcess.Termination, any Error>] = [:]
        var nextWaiter: UInt64 = 0
        /// Open until the child is reaped.
        var pidfd: Int32?
        /// SIGKILL to the child's process group just before it is reaped (`terminate`).
        var killGroup = false
    }

    let pid: pid_t
    // Lock order: before the reactor's lock (reaping removes the pidfd from epoll while holding
    // it), never after. Held across kill/pidfd_send_signal and the reaping waitpid, so that no
    // signal can reach a recycled pid.
    private let state = Mutex(State())

    init(pid: pid_t) { self.pid = pid }

    var termination: ChildProcess.Termination? { state.withLock { $0.termination } }

    func watch() {
        let pidfd = chs_pidfd_open(pid)
        if pidfd >= 0 {
            state.withLock { $0.pidfd = pidfd }
            // Readable once the child has exited; reap's waitpid then returns at once. Not on
            // an error (epoll refused the pidfd): a waitpid on the reactor's thread would block
            // every other wait until this child ends, so a thread of its own waits instead.
            Reactor.shared.onReady(pidfd, .readable) { [self] result in
                if case .success = result { reap() } else { waitOnThread() }
            }
        } else {
            waitOnThread()
        }
    }

    /// Waits for the child's exit on a thread of its own (no pidfd), then reaps it.
    private func waitOnThread() {
        let pid = self.pid
        let thread = Thread { [self] in
            nameCurrentThread("ballast-wait-\(pid)")
            var info = siginfo_t()
            while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) != 0 && errno == EINTR {}
            reap()
        }
        thread.start()
    }

    /// Reaps the exited child and wakes the waiters.
    private func reap() {
        let (termination, waiters) = state.withLock { state -> (ChildProcess.Termination, [CheckedContinuation<ChildProcess.Termination, any Error>]) in
            if let done = state.termination { return (done, []) }   // reaped already
            if state.killGroup { kill(-pid, SIGKILL) }
            var status: Int32 = 0
            var reaped: pid_t
            repeat { reaped = waitpid(pid, &status, 0) } while reaped < 0 && errno == EINTR
            let termination: ChildProcess.Termination
            if reaped == pid {
                let low = status & 0x7f
                termination = low == 0 ? .exited((status >> 8) & 0xff) : .signaled(low)
            } else {
                termination = .unknown
            }
            if let pidfd = state.pidfd {
                Reactor.shared.forget(pidfd)
                close(pidfd)
                state.pidfd = nil
            }
            state.termination = termination
            defer { state.waiters = [:] }
            return (termination, Array(state.waiters.values))
        }
        for waiter in waiters { waiter.resume(returning: termination) }
    }

    func wait() async throws(CancellationError) -> ChildProcess.Termination {
        let id = state.withLock { state -> UInt64 in defer { state.nextWaiter += 1 }; return state.nextWaiter }
        do {
            return try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<ChildProcess.Termination, any Error>) in
                    let ready = state.withLock { state -> Result<ChildProcess.Termination, any Error>? in
                        if let termination = state.termination { return .success(termination) }
                        if Task.isCancelled { return .failure(CancellationError()) }
                        state.waiters[id] = continuation
                        return nil
                    }
                    if let ready { continuation.resume(with: ready) }
                }
            } onCancel: {
                let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
                waiter?.resume(throwing: CancellationError())
            }
        } catch {
            throw CancellationError()
        }
    }

    /// `wait()` in a task of its own, so that the caller's cancellation does not end it.
    func waitIgnoringCancellation() async -> ChildProcess.Termination {
        let waiting = Task { try await self.wait() }
        return (try? await waiting.value) ?? .unknown
    }

    /// Makes the reaping send SIGKILL to the child's process group first (a child started with
    /// `newSession` leads one). Nothing once it has been reaped.
    func killGroupWhenReaped() {
        state.withLock { $0.killGroup = true }
    }

    func send(_ signal: Int32, toGroup: Bool) throws(HostSystemError) {
        let failure: Int32? = state.withLock { state in
            // Once reaped, its pid (and group id) may be another process's.
            guard state.termination == nil else { return nil }
            let result: Int32
            if toGroup {
                result = kill(-pid, signal)
            } else if let pidfd = state.pidfd {
                result = chs_pidfd_send_signal(pidfd, signal)
            } else {
                result = kill(pid, signal)
            }
            return result == 0 || errno == ESRCH ? nil : errno
        }
        if let failure { throw HostSystemError.system("send signal \(signal) to process \(pid)", errno: failure) }
    }
}
