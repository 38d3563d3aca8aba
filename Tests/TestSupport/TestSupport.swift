// Helpers shared by the test targets that drive the built `ballast` binary and real tools:
// free loopback ports, running commands with a timeout, the binary's path.
import Foundation

/// The repository root (for the built `ballast` binary).
public let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

public func ballastBinary() -> String {
    if let p = ProcessInfo.processInfo.environment["BALLAST_BIN"] { return p }
    return packageRoot.appendingPathComponent(".build/debug/ballast").path
}

/// The interop tests' Python: BALLAST_PYTHON, or .venv/bin/python made by `make pydeps`
/// (grpcio, grpcio-tools and kubernetes).
public let interopPython = ProcessInfo.processInfo.environment["BALLAST_PYTHON"] ?? packageRoot.appendingPathComponent(".venv/bin/python").path

/// Runs one of Tests/Interop's Python scripts, which print one JSON object per
/// step (`{"step": name, ...}`) and a last `done` step; returns the steps by name.
/// Throws when `module` cannot be imported, the script fails or stops early.
public func runInteropScript(_ script: String, _ args: [String], needs module: String,
                             env: [String: String] = [:], timeout: Double = 120) throws -> [String: [String: Any]] {
    guard try run(interopPython, ["-c", "import \(module)"]).status == 0 else {
        throw TestFailure("Python with \(module) is needed at \(interopPython): run `make pydeps` (make test does)")
    }
    let result = try run(interopPython, [packageRoot.appendingPathComponent("Tests/Interop/\(script)").path] + args,
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
private let usedPorts = NSLockedSet()

final class NSLockedSet: @unchecked Sendable {
    private let lock = NSLock()
    private var ports = Set<Int>()
    func claim(_ p: Int) -> Bool { lock.withLock { ports.insert(p).inserted } }
}

/// A free TCP port on 127.0.0.1, never the same twice in one test process.
public func freePort() -> Int {
    while true {
        let p = probeFreePort()
        if usedPorts.claim(p) { return p }
    }
}

private func probeFreePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}

public struct CommandResult: Sendable {
    public let status: Int32
    public let stdout: String
    public let stderr: String
}

/// Runs a command to completion with a timeout, feeding `input` to stdin.
@discardableResult
public func run(_ executable: String, _ args: [String], input: String? = nil, env: [String: String] = [:], timeout: Double = 30) throws -> CommandResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable.hasPrefix("/") ? executable : "/usr/bin/env")
    p.arguments = executable.hasPrefix("/") ? args : [executable] + args
    var environment = ProcessInfo.processInfo.environment
    for (k, v) in env { environment[k] = v }
    p.environment = environment
    let out = Pipe(), err = Pipe(), inp = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = inp
    try p.run()
    if let input { inp.fileHandleForWriting.write(Data(input.utf8)) }
    try? inp.fileHandleForWriting.close()
    let deadline = Date().addingTimeInterval(timeout)
    final class Box: @unchecked Sendable { var data = Data() }
    let outBox = Box(), errBox = Box()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async { outBox.data = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    group.enter()
    DispatchQueue.global().async { errBox.data = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    while p.isRunning && Date() < deadline { usleep(10_000) }
    if p.isRunning { p.terminate() }
    p.waitUntilExit()
    group.wait()
    let outData = outBox.data, errData = errBox.data
    return CommandResult(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData, as: UTF8.self))
}

public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

