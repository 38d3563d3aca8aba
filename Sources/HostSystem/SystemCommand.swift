// Runs a system tool (losetup, mount, blkid, mkfs, cp, …) to completion on `ChildProcess`: its
// outputs are read while it runs (a tool may print any amount; the first `outputLimit` bytes
// of each are kept), it is killed when it overruns its timeout, and a failure becomes an error
// that shows the command and what it printed.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What a tool printed and how it ended.
public struct CommandResult: Sendable {
    /// The exit status, or 128 + the signal that killed it (as a shell reports it).
    public var status: Int32
    public var stdout: String
    public var stderr: String
    /// How it ended.
    public var termination: ChildProcess.Termination
    /// True when it printed more than the limit on stdout or stderr (the rest was discarded).
    public var truncated: Bool = false

    public init(status: Int32, stdout: String, stderr: String, termination: ChildProcess.Termination? = nil, truncated: Bool = false) {
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
        self.termination = termination ?? .exited(status)
        self.truncated = truncated
    }
}

/// A tool that failed: the command, and what it printed.
public struct CommandError: Error, CustomStringConvertible, Sendable {
    public var command: [String]
    public var result: CommandResult
    /// It was killed after running longer than this.
    public var timedOut: Duration?

    public init(command: [String], result: CommandResult, timedOut: Duration? = nil) {
        self.command = command
        self.result = result
        self.timedOut = timedOut
    }

    public var description: String {
        let output = result.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
        let how = timedOut.map { "did not finish within \($0) and was killed" } ?? result.termination.description
        return "`\(command.joined(separator: " "))` \(how)" + (output.isEmpty ? "" : ": \(output)")
    }
}

public enum SystemCommand {
    /// How long a tool may run unless the caller says otherwise.
    public static let defaultTimeout: Duration = .seconds(300)
    /// Bytes of each output kept unless the caller says otherwise.
    public static let defaultOutputLimit = 1 << 20

    /// Runs `arguments[0]` (looked up in /usr/sbin, /sbin, /usr/bin, /bin unless it is a path)
    /// with stdin from /dev/null, or `input`, and returns what it printed and how it ended.
    /// Past `timeout` it gets SIGTERM, then SIGKILL after 2 s, and the result says so by
    /// throwing `CommandError` with `timedOut`. Throws `HostSystemError` when it cannot start.
    public static func run(_ arguments: [String], input: [UInt8]? = nil, environment: [String: String]? = nil,
                           timeout: Duration = defaultTimeout, outputLimit: Int = defaultOutputLimit) async throws -> CommandResult {
        guard let tool = arguments.first else { throw HostSystemError(.invalidArgument, "an empty command") }
        let child = try ChildProcess([resolve(tool)] + arguments.dropFirst(), environment: environment,
                                     standardInput: input.map { .bytes($0) } ?? .null, standardOutput: .stream, standardError: .stream)
        // Both outputs are read at once, while the tool runs: a tool that fills one pipe while
        // the other is read would otherwise wait forever.
        let stdout = Task { try await child.standardOutput!.collect(upTo: outputLimit) }
        let stderr = Task { try await child.standardError!.collect(upTo: outputLimit) }
        var timedOut = false
        let termination: ChildProcess.Termination
        if let ended = await child.wait(timeout: timeout) {
            termination = ended
        } else {
            timedOut = !Task.isCancelled
            termination = await child.terminate(grace: .seconds(2))
        }
        // A daemon the tool started may hold its pipes open: what came within a second of
        // its exit is all that is read.
        let drained = Task {
            try? await Task.sleep(for: .seconds(1))
            stdout.cancel()
            stderr.cancel()
        }
        let out = try await stdout.value, err = try await stderr.value
        drained.cancel()
        child.standardOutput!.close()
        child.standardError!.close()
        let result = CommandResult(status: termination.shellStatus, stdout: out.text, stderr: err.text,
                                   termination: termination, truncated: out.truncated || err.truncated)
        try Task.checkCancellation()
        if timedOut { throw CommandError(command: arguments, result: result, timedOut: timeout) }
        return result
    }

    /// Runs the command and throws `CommandError` unless it exits with status 0; returns stdout.
    @discardableResult
    public static func check(_ arguments: [String], input: [UInt8]? = nil, timeout: Duration = defaultTimeout) async throws -> String {
        let result = try await run(arguments, input: input, timeout: timeout)
        guard result.status == 0 else { throw CommandError(command: arguments, result: result) }
        return result.stdout
    }

    /// The absolute path of `tool` (searched in the sbin and bin directories, sbin first, as
    /// root's PATH has them), or `tool` itself when it is a path or is not found.
    public static func resolve(_ tool: String) -> String {
        Spawner.resolve(tool, searchPath: Spawner.defaultPath) ?? tool
    }
}
