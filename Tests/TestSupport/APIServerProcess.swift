// `ballast apiserver` as the integration tests run it.
import Foundation

/// A `ballast apiserver` process on 127.0.0.1 with a temporary data directory, and
/// kubectl pointed at its admin.kubeconfig. `stop()` ends the server with SIGTERM and
/// removes the directory.
public final class ServerProcess: @unchecked Sendable {
    public let directory: String
    public let port: Int
    public let process: Process
    public var kubeconfig: String { directory + "/admin.kubeconfig" }

    /// `prepare` gets the data directory before the start and returns extra arguments.
    public init(prepare: (String) throws -> [String] = { _ in [] }) throws {
        guard (try? run("kubectl", ["version", "--client"]))?.status == 0 else {
            throw TestFailure("kubectl is not on the PATH: these tests drive the real kubectl (Debian package kubectl, or google-cloud-cli's)")
        }
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("ballast-apiserver-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let extraArguments: [String]
        do {
            extraArguments = try prepare(directory)
        } catch {
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
        port = freePort()
        process = Process()
        process.executableURL = URL(fileURLWithPath: ballastBinary())
        process.arguments = ["apiserver", "--data-dir", directory, "--secure-port", String(port), "--bind-address", "127.0.0.1"]
            + extraArguments
        let log = FileHandle(forWritingAtPath: directory + "/server.log") ?? {
            FileManager.default.createFile(atPath: directory + "/server.log", contents: nil)
            return FileHandle(forWritingAtPath: directory + "/server.log")!
        }()
        process.standardOutput = log
        process.standardError = log
        try process.run()
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if FileManager.default.fileExists(atPath: kubeconfig), (try? kubectl(["get", "--raw", "/readyz"]))?.status == 0 { return }
            if !process.isRunning { break }
            usleep(100_000)
        }
        let output = (try? String(contentsOfFile: directory + "/server.log", encoding: .utf8)) ?? ""
        stop()
        throw TestFailure("ballast apiserver did not become ready on port \(port): \(output)")
    }

    /// Runs kubectl with this server's kubeconfig and a private discovery cache.
    @discardableResult
    public func kubectl(_ args: [String], input: String? = nil, timeout: Double = 60) throws -> CommandResult {
        try run("kubectl", ["--kubeconfig", kubeconfig, "--cache-dir", directory + "/kube-cache"] + args, input: input,
                env: ["HOME": directory], timeout: timeout)
    }

    /// kubectl that must succeed; returns its stdout.
    public func ok(_ args: String..., input: String? = nil) throws -> String {
        let r = try kubectl(args, input: input)
        guard r.status == 0 else { throw TestFailure("kubectl \(args.joined(separator: " ")) failed (\(r.status)): \(r.stderr)\(r.stdout)") }
        return r.stdout
    }

    /// Sends SIGTERM and returns the exit status (the directory stays until `stop()`).
    public func terminate() -> Int32 {
        if process.isRunning { process.terminate() }
        let deadline = Date().addingTimeInterval(15)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        if process.isRunning { return -1 }
        return process.terminationStatus
    }

    public func stop() {
        if process.isRunning {
            process.terminate()
            let deadline = Date().addingTimeInterval(15)
            while process.isRunning && Date() < deadline { usleep(50_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: directory)
    }
}


/// A kubectl left running (`get -w`, `wait`, `delete --wait`), its stdout and stderr in a file.
/// `stop()` ends it if it still runs; `finish` waits for it with a bound.
public final class BackgroundKubectl: @unchecked Sendable {
    public let process = Process()
    public let outputPath: String

    init(server: ServerProcess, _ args: [String]) throws {
        outputPath = server.directory + "/kubectl-\(UUID().uuidString.prefix(8)).out"
        FileManager.default.createFile(atPath: outputPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["kubectl", "--kubeconfig", server.kubeconfig, "--cache-dir", server.directory + "/kube-cache"] + args
        var environment = ProcessInfo.processInfo.environment
        environment["HOME"] = server.directory
        process.environment = environment
        let handle = FileHandle(forWritingAtPath: outputPath)
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    public var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }
    public var isRunning: Bool { process.isRunning }

    /// Waits until the output satisfies `condition` (true) or `timeout` passes (false).
    public func waitForOutput(timeout: Double = 30, _ condition: (String) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition(output) { return true }
            usleep(100_000)
        }
        return condition(output)
    }

    /// Waits for the exit (killing it after `timeout`); returns the exit status and the output.
    public func finish(timeout: Double = 30) -> (status: Int32, output: String) {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        if process.isRunning {
            stop()
            return (-1, output)
        }
        return (process.terminationStatus, output)
    }

    public func stop() {
        if process.isRunning {
            process.terminate()
            let deadline = Date().addingTimeInterval(5)
            while process.isRunning && Date() < deadline { usleep(50_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
    }
}

extension ServerProcess {
    /// Starts kubectl in the background; the caller stops it (`defer { k.stop() }`).
    public func background(_ args: String...) throws -> BackgroundKubectl {
        try BackgroundKubectl(server: self, args)
    }
}
