import Foundation
import Testing

/// The repository root (for the built `ballast` binary).
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

func ballastBinary() -> String {
    if let p = ProcessInfo.processInfo.environment["BALLAST_BIN"] { return p }
    return packageRoot.appendingPathComponent(".build/debug/ballast").path
}

/// Ports handed out in this process, so parallel tests never get the same one.
private let usedPorts = NSLockedSet()

final class NSLockedSet: @unchecked Sendable {
    private let lock = NSLock()
    private var ports = Set<Int>()
    func claim(_ p: Int) -> Bool { lock.withLock { ports.insert(p).inserted } }
}

/// A free TCP port on 127.0.0.1, never the same twice in one test process.
func freePort() -> Int {
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

struct CommandResult {
    let status: Int32
    let stdout: String
    let stderr: String
}

/// Runs a command to completion with a timeout, feeding `input` to stdin.
@discardableResult
func run(_ executable: String, _ args: [String], input: String? = nil, env: [String: String] = [:], timeout: Double = 30) throws -> CommandResult {
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

/// `ballast store serve` on a free loopback port, in a temporary data dir.
/// Stopped with SIGTERM (or SIGKILL) and its directory removed on `stop()`/deinit.
final class StoreServer {
    let port: Int
    let dataDir: String
    private(set) var process: Process?
    private let ownsDir: Bool

    var endpoint: String { "http://127.0.0.1:\(port)" }

    /// Port that answers /health (the client port unless metrics have their own).
    private let healthPort: Int?

    init(dataDir: String? = nil, extraArgs: [String] = [], healthPort: Int? = nil) throws {
        port = freePort()
        self.healthPort = healthPort
        ownsDir = dataDir == nil
        self.dataDir = dataDir ?? FileManager.default.temporaryDirectory.path + "/ballast-etcd-\(UUID().uuidString.prefix(8))"
        try start(extraArgs)
    }

    private var lastArgs: [String] = []

    func start(_ extraArgs: [String]? = nil) throws {
        let extraArgs = extraArgs ?? lastArgs
        lastArgs = extraArgs
        let p = Process()
        p.executableURL = URL(fileURLWithPath: ballastBinary())
        p.arguments = ["store", "serve", "--data-dir", dataDir, "--listen-client-urls", endpoint] + extraArgs
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        process = p
        // Ready when the port answers /health.
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            let health = healthPort.map { "http://127.0.0.1:\($0)" } ?? endpoint
            if let r = try? run("curl", ["-s", "--max-time", "1", "\(health)/health"], timeout: 3), r.stdout.contains("health") { return }
            if !p.isRunning { throw TestFailure("ballast store serve exited with \(p.terminationStatus) before it served") }
            usleep(50_000)
        }
        throw TestFailure("ballast store serve did not answer on \(endpoint) within 20 s")
    }

    /// Stops the server and returns its exit status.
    func stopAndReturnStatus(signal sig: Int32) -> Int32 {
        guard let p = process else { return -1 }
        if p.isRunning { kill(p.processIdentifier, sig) }
        p.waitUntilExit()
        process = nil
        return p.terminationStatus
    }

    func stop(signal sig: Int32 = SIGTERM) {
        guard let p = process else { return }
        if p.isRunning { kill(p.processIdentifier, sig) }
        p.waitUntilExit()
        process = nil
    }

    deinit {
        stop(signal: SIGKILL)
        if ownsDir { try? FileManager.default.removeItem(atPath: dataDir) }
    }

    /// Runs etcdctl (API v3) against this server.
    @discardableResult
    func etcdctl(_ args: [String], input: String? = nil, timeout: Double = 30) throws -> CommandResult {
        try run("etcdctl", ["--endpoints", endpoint] + args, input: input, env: ["ETCDCTL_API": "3"], timeout: timeout)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Whether etcdctl is installed; the suite requires it (make test installs etcd-client).
let haveEtcdctl = (try? run("etcdctl", ["version"]).status) == 0
