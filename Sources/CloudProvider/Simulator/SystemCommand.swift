// Runs a system tool (losetup, cp, …) without blocking a thread of the cooperative pool, and turns
// a failure into an error that shows the command and what it printed.
import Foundation

public struct CommandResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

public struct CommandError: Error, CustomStringConvertible, Sendable {
    public var command: [String]
    public var result: CommandResult

    public init(command: [String], result: CommandResult) {
        self.command = command
        self.result = result
    }

    public var description: String {
        let output = result.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
        return "`\(command.joined(separator: " "))` exited with status \(result.status)" + (output.isEmpty ? "" : ": \(output)")
    }
}

public enum SystemCommand {
    /// Runs `arguments[0]` (looked up in /usr/sbin, /sbin, /usr/bin, /bin unless it is a path)
    /// and returns what it printed. Outputs are expected to be small (read after exit).
    public static func run(_ arguments: [String]) async throws -> CommandResult {
        precondition(!arguments.isEmpty)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: resolve(arguments[0]))
        process.arguments = Array(arguments.dropFirst())
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        process.standardInput = FileHandle.nullDevice
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do { try process.run() } catch {
                process.terminationHandler = nil
                continuation.resume(throwing: error)
            }
        }
        let out = String(decoding: stdout.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let err = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return CommandResult(status: status, stdout: out, stderr: err)
    }

    /// Runs the command and throws `CommandError` unless it exits with status 0.
    @discardableResult
    public static func check(_ arguments: [String]) async throws -> String {
        let result = try await run(arguments)
        guard result.status == 0 else { throw CommandError(command: arguments, result: result) }
        return result.stdout
    }

    /// The absolute path of `tool`, or `tool` itself when it is not found.
    public static func resolve(_ tool: String) -> String {
        if tool.hasPrefix("/") { return tool }
        for directory in ["/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin", "/usr/local/bin"] {
            let path = directory + "/" + tool
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return tool
    }
}
