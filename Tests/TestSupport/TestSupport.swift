// Helpers shared by the test targets that drive the built `ballast` binary and real tools:
// free loopback ports, commands run to completion with a timeout, polling with a deadline, the
// binary's path. Everything here is async and never blocks a thread of the cooperative pool
// (which has two threads on a two-core machine, shared by every suite running in parallel):
// processes are awaited through HostSystem's ChildProcess, waits are Task.sleep.
@_exported import HostSystem
import Foundation
import Synchronization

/// The repository root (for the built `ballast` binary).
public let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

public func ballastBinary() -> String {
    if let p = ProcessInfo.processInfo.environment["BALLAST_BIN"] { return p }
    return packageRoot.appendingPathComponent(".build/debug/ballast").path
}

/// The kubelet's container shim, `ballast-shim`, beside the `ballast` binary (where the kubelet
/// looks for it, and where `swift build` puts it).
public func shimBinary() -> String {
    URL(fileURLWithPath: ballastBinary()).deletingLastPathComponent().appendingPathComponent("ballast-shim").path
}

/// The interop tests' Python: BALLAST_PYTHON, or .venv/bin/python made by `make pydeps`
/// (grpcio, grpcio-tools and kubernetes).
public let interopPython = ProcessInfo.processInfo.environment["BALLAST_PYTHON"] ?? packageRoot.appendingPathComponent(".venv/bin/python").path

/// Runs one of Tests/Interop's Python scripts, which print one JSON object per
/// step (`{"step": name, ...}`) and a last `done` step; returns the steps by name.
/// Throws when `module` cannot be imported, the script fails or stops early.
public func runInteropScript(_ script: String, _ args: [String], needs module: String,
                             env: [String: String] = [:], timeout: Double = 120) async throws -> [String: [String: Any]] {
    guard try await run(interopPython, ["-c", "import \(module)"]).status == 0 else {
        throw TestFailure("Python with \(module) is needed at \(interopPython): run `make pydeps` (make test does)")
    }
    let result = try await run(interopPython, [packageRoot.appendingPathComponent("Tests/Interop/\(script)").path] + args,
                               env: env, timeout: timeout)
    guard result.status == 0 else { throw TestFailure("\(script) failed (\(result.status)): \(result.stderr)\n\(result.stdout)") }
    var steps: [String: [String: Any]] = [:]
    for line in result.stdout.split(separator: "\n") {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw TestFailure("\(script) printed a line that is not a JSON object: \(line)")
        }
        steps[object["step"] as? String ?? ""] = object
    }
    guard steps["done"] != nil else { throw TestFailure("\(script) stopped early: \(result.stdout)") }
    return steps
}

/// Ports handed out in this process, so parallel tests never get the same one.
private let usedPorts = Mutex(Set<Int>())

/// A free TCP port on 127.0.0.1, never the same twice in one test process.
public func freePort() -> Int {
    while true {
        let p = probeFreePort()
        if usedPorts.withLock({ $0.insert(p).inserted }) { return p }
    }
}

private func probeFreePort() -> Int {
    let (fd, port) = boundLoopbackSocket()
    close(fd)
    return port
}

/// A TCP socket bound to a port of 127.0.0.1 that the kernel picks: its descriptor (the caller
/// closes it) and the port.
public func boundLoopbackSocket() -> (fd: Int32, port: Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return (fd, Int(UInt16(bigEndian: addr.sin_port)))
}

/// Runs a command to completion, feeding `input` to stdin; past `timeout` seconds it is
/// stopped (SIGTERM, then SIGKILL) and its result returned with the signal's status.
/// `executable` is a path or a name looked up in the PATH; `env` is added to this process's
/// environment.
@discardableResult
public func run(_ executable: String, _ args: [String], input: String? = nil, env: [String: String] = [:],
                timeout: Double = 30) async throws -> CommandResult {
    var environment = ProcessInfo.processInfo.environment
    for (k, v) in env { environment[k] = v }
    do {
        return try await SystemCommand.run([executable] + args, input: input.map { Array($0.utf8) }, environment: environment,
                                           timeout: .milliseconds(Int64(timeout * 1000)))
    } catch let error as CommandError where error.timedOut != nil {
        return error.result
    }
}

/// Polls `condition` every `interval` until it holds or `timeout` passes; returns whether it held.
@discardableResult
public func waitUntil(timeout: Duration = .seconds(30), interval: Duration = .milliseconds(50),
                      _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while true {
        if try await condition() { return true }
        if ContinuousClock.now >= deadline { return false }
        try? await Task.sleep(for: interval)
    }
}

public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// Runs `body`, then `cleanup`, awaited, also when `body` throws: the async `defer` that Swift
/// does not have (tests that detach loop devices or unmount with system tools use it).
public func withCleanup<T>(_ body: () async throws -> T, cleanup: () async -> Void) async throws -> T {
    let result: T
    do {
        result = try await body()
    } catch {
        await cleanup()
        throw error
    }
    await cleanup()
    return result
}

/// Runs `body` on a thread of its own instead of the cooperative pool, in the same task (so
/// `#expect` still reports to the running test): for test bodies that compute for seconds or
/// wait in blocking calls (an engine's flushes and compactions), which would otherwise hold
/// one of the pool's threads — two on this machine — and stall every suite running beside them.
public func onOwnThread<T>(_ body: () async throws -> T) async throws -> T {
    let executor = ThreadExecutor(name: "test-own-thread")
    return try await withTaskExecutorPreference(executor) { try await body() }
}
