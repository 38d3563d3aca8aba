// `ballast apiserver` as the integration tests run it.
import Foundation

/// A `ballast apiserver` process on 127.0.0.1 with a temporary data directory, and
/// kubectl pointed at its admin.kubeconfig. `stop()` kills it and removes the directory
/// (without waiting: use it in a `defer`); `terminate()` stops it with SIGTERM and awaits it.
public final class ServerProcess: Sendable {
    public let directory: String
    public let port: Int
    public let process: TestProcess
    public var kubeconfig: String { directory + "/admin.kubeconfig" }

    private init(directory: String, port: Int, process: TestProcess) {
        self.directory = directory
        self.port = port
        self.process = process
    }

    /// Starts a server and waits until /readyz answers. `prepare` gets the data directory
    /// before the start and returns extra arguments.
    public static func start(prepare: (String) throws -> [String] = { _ in [] }) async throws -> ServerProcess {
        guard (try? await run("kubectl", ["version", "--client"]))?.status == 0 else {
            throw TestFailure("kubectl is not on the PATH: these tests drive the real kubectl (Debian package kubectl, or google-cloud-cli's)")
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ballast-apiserver-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let port = freePort()
        let server: ServerProcess
        do {
            // The API server alone: no controller manager removes the storage protection
            // finalizers, so deletes of claims and volumes would wait forever.
            let arguments = ["apiserver", "--data-dir", directory, "--secure-port", String(port), "--bind-address", "127.0.0.1",
                             "--disable-admission-plugins", "StorageObjectInUseProtection"]
                + (try prepare(directory))
            server = ServerProcess(directory: directory, port: port,
                                   process: try TestProcess([ballastBinary()] + arguments, logPath: directory + "/server.log"))
        } catch {
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
        let ready = await waitUntil(timeout: .seconds(30), interval: .milliseconds(100)) {
            guard server.process.isRunning else { return true }
            guard FileManager.default.fileExists(atPath: server.kubeconfig) else { return false }
            return (try? await server.kubectl(["get", "--raw", "/readyz"]))?.status == 0
        }
        guard ready, server.process.isRunning else {
            let output = server.process.log
            server.stop()
            throw TestFailure("ballast apiserver did not become ready on port \(port): \(output)")
        }
        return server
    }

    /// Runs kubectl with this server's kubeconfig and a private discovery cache.
    @discardableResult
    public func kubectl(_ args: [String], input: String? = nil, timeout: Double = 60) async throws -> CommandResult {
        try await run("kubectl", ["--kubeconfig", kubeconfig, "--cache-dir", directory + "/kube-cache"] + args, input: input,
                      env: ["HOME": directory], timeout: timeout)
    }

    /// kubectl that must succeed; returns its stdout.
    public func ok(_ args: String..., input: String? = nil) async throws -> String {
        let r = try await kubectl(args, input: input)
        guard r.status == 0 else { throw TestFailure("kubectl \(args.joined(separator: " ")) failed (\(r.status)): \(r.stderr)\(r.stdout)") }
        return r.stdout
    }

    /// Sends SIGTERM and returns the exit status, or -1 if it has not exited within 15 s
    /// (the directory stays until `stop()`).
    public func terminate() async -> Int32 {
        process.signal(SIGTERM)
        guard let ended = await process.waitForExit(timeout: .seconds(15)) else { return -1 }
        return ended.shellStatus
    }

    /// Kills the server (if it still runs) and removes its directory.
    public func stop() {
        process.kill()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Starts kubectl in the background; the caller stops it (`defer { k.stop() }`).
    public func background(_ args: String...) throws -> BackgroundKubectl {
        try BackgroundKubectl(server: self, args)
    }
}

/// A kubectl left running (`get -w`, `wait`, `delete --wait`), its stdout and stderr in a file.
/// `stop()` kills it if it still runs; `finish` waits for it with a bound.
public final class BackgroundKubectl: Sendable {
    public let process: TestProcess
    public var outputPath: String { process.logPath }

    init(server: ServerProcess, _ args: [String]) throws {
        let path = server.directory + "/kubectl-\(UUID().uuidString.prefix(8)).out"
        process = try TestProcess(["kubectl", "--kubeconfig", server.kubeconfig, "--cache-dir", server.directory + "/kube-cache"] + args,
                                  environment: ["HOME": server.directory], logPath: path)
    }

    public var output: String { process.log }
    public var isRunning: Bool { process.isRunning }

    /// Waits until the output satisfies `condition` (true) or `timeout` seconds pass (false).
    public func waitForOutput(timeout: Double = 30, _ condition: @escaping (String) -> Bool) async -> Bool {
        await waitUntil(timeout: .milliseconds(Int64(timeout * 1000)), interval: .milliseconds(100)) { condition(output) }
    }

    /// Waits for the exit (killing it after `timeout` seconds); returns the exit status (-1
    /// when it had to be killed) and the output.
    public func finish(timeout: Double = 30) async -> (status: Int32, output: String) {
        guard let ended = await process.waitForExit(timeout: .milliseconds(Int64(timeout * 1000))) else {
            await process.terminate(grace: .seconds(5))
            return (-1, output)
        }
        return (ended.shellStatus, output)
    }

    public func stop() { process.kill() }
}
