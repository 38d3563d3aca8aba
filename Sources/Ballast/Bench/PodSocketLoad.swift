// `bench network`'s traffic: a TCP server and a client that run on threads of this process
// inside pods' network namespaces. Each thread joins its pod's namespace with setns(2) (the
// namespace is the thread's alone, and every socket it makes lives there) and then drives
// blocking sockets in a tight loop: no process is forked per request at either end, so the
// figures are the network path's (veth, bridge, host routing, nftables, conntrack), not a
// shell's. The threads are Foundation threads of their own, never the cooperative pool's.
import Foundation
import Glibc
import Synchronization

enum PodNamespace {
    /// setns(2), found at run time: Swift's Glibc module does not declare it (glibc declares it
    /// under _GNU_SOURCE only).
    private static let setnsFunction: (@convention(c) (Int32, Int32) -> Int32)? = {
        guard let symbol = dlsym(nil, "setns") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int32, Int32) -> Int32).self)
    }()

    /// CLONE_NEWNET.
    private static let networkNamespace: Int32 = 0x4000_0000

    /// Moves the calling thread into the network namespace at `path` (a pod's pinned namespace).
    static func enter(_ path: String) throws {
        guard let setns = setnsFunction else { throw BenchFailure("setns(2) is not available in this C library") }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw BenchFailure("cannot open the pod's network namespace \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard setns(fd, networkNamespace) == 0 else {
            throw BenchFailure("cannot enter the network namespace \(path) (setns): \(String(cString: strerror(errno)))")
        }
    }
}

/// A set-once flag shared with the socket threads (Ctrl-C).
final class StopFlag: Sendable {
    private let raised = Atomic<Bool>(false)
    func raise() { raised.store(true, ordering: .relaxed) }
    var isRaised: Bool { raised.load(ordering: .relaxed) }
}

/// A TCP server in a pod's network namespace, on `port` of every address of the pod: accepts a
/// connection, reads the request (up to its blank line), writes a fixed 41-byte HTTP/1.0
/// answer, closes; one connection after another.
final class PodTCPServer: Sendable {
    let port: UInt16
    private let state = Mutex<(listener: Int32, done: Bool, served: Int)>((-1, false, 0))
    static let response = Array("HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n".utf8)

    private init(port: UInt16) { self.port = port }

    /// Connections answered so far.
    var served: Int { state.withLock { $0.served } }

    /// Starts the server's thread in the namespace at `netns`; returns once it listens.
    static func start(netns: String, port: UInt16) async throws -> PodTCPServer {
        let server = PodTCPServer(port: port)
        try await withCheckedThrowingContinuation { (ready: CheckedContinuation<Void, any Error>) in
            let thread = Thread {
                do {
                    try PodNamespace.enter(netns)
                    let fd = try Sockets.listen(port: port)
                    server.state.withLock { $0.listener = fd }
                    ready.resume()
                    server.serve(fd)
                } catch {
                    ready.resume(throwing: error)
                }
                server.state.withLock { $0.done = true }
            }
            thread.name = "bench-net-server"
            thread.start()
        }
        return server
    }

    private func serve(_ listener: Int32) {
        var buffer = [UInt8](repeating: 0, count: 1024)
        while true {
            let connection = accept(listener, nil, nil)
            if connection < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                break   // shut down by stop()
            }
            // Read the whole request: closing with unread bytes would send a reset, not a FIN.
            var have = 0
            while have < buffer.count {
                let n = buffer.withUnsafeMutableBytes { read(connection, $0.baseAddress! + have, $0.count - have) }
                if n <= 0 { break }
                have += n
                if have >= 4, buffer[have - 4] == 13, buffer[have - 3] == 10, buffer[have - 2] == 13, buffer[have - 1] == 10 { break }
            }
            _ = Self.response.withUnsafeBytes { write(connection, $0.baseAddress!, $0.count) }
            close(connection)
            state.withLock { $0.served += 1 }
        }
        // Closed under the lock that stop() reads it with, and forgotten: a shutdown of the
        // number after the close would hit whatever socket had it next.
        state.withLock { state in
            close(listener)
            state.listener = -1
        }
    }

    /// Stops accepting (shutdown wakes the thread's accept) and waits up to 5 s for the thread.
    func stop() async {
        let fd = state.withLock { state -> Int32 in
            if state.listener >= 0 { shutdown(state.listener, Int32(SHUT_RDWR)) }
            return state.listener
        }
        let deadline = ContinuousClock.now + .seconds(5)
        while !state.withLock({ $0.done }) && fd >= 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }
}

/// A client in a pod's network namespace making short TCP exchanges, a new connection each
/// (connect, one request, the answer to end of file, close: the path a new connection takes
/// through DNAT and conntrack), alternating between its targets request by request so that
/// the machine's noise falls on all of them alike.
enum PodTCPClient {
    struct Target: Sendable {
        var label: String
        var address: String
        var port: UInt16
    }

    struct Result: Sendable {
        /// Per target, in the targets' order: each measured exchange's duration in seconds.
        var latencies: [[Double]]
        /// Per target: exchanges that failed (refused, reset, timed out, short answer).
        var failures: [Int]
        /// The first failure's description.
        var firstFailure: String?
    }

    static let request = Array("GET / HTTP/1.0\r\n\r\n".utf8)

    /// `warmup` exchanges per target (not measured), then `count` per target.
    static func run(netns: String, targets: [Target], count: Int, warmup: Int, stop: StopFlag) async throws -> Result {
        try await withCheckedThrowingContinuation { (finished: CheckedContinuation<Result, any Error>) in
            let thread = Thread {
                do {
                    try PodNamespace.enter(netns)
                    finished.resume(returning: try exchange(targets: targets, count: count, warmup: warmup, stop: stop))
                } catch {
                    finished.resume(throwing: error)
                }
            }
            thread.name = "bench-net-client"
            thread.start()
        }
    }

    private static func exchange(targets: [Target], count: Int, warmup: Int, stop: StopFlag) throws -> Result {
        let addresses = try targets.map { try Sockets.address($0.address, port: $0.port) }
        var result = Result(latencies: Array(repeating: [], count: targets.count), failures: Array(repeating: 0, count: targets.count))
        for index in result.latencies.indices { result.latencies[index].reserveCapacity(count) }
        var buffer = [UInt8](repeating: 0, count: 256)
        for round in 0..<(warmup + count) {
            if stop.isRaised { throw CancellationError() }
            for (index, address) in addresses.enumerated() {
                let start = ContinuousClock.now
                let failure = once(address, &buffer)
                let elapsed = (ContinuousClock.now - start).seconds
                if let failure {
                    result.failures[index] += 1
                    if result.firstFailure == nil { result.firstFailure = "\(targets[index].label) \(targets[index].address):\(targets[index].port): \(failure)" }
                } else if round >= warmup {
                    result.latencies[index].append(elapsed)
                }
            }
        }
        return result
    }

    /// One exchange; nil when it went through, else what failed.
    private static func once(_ address: sockaddr_in, _ buffer: inout [UInt8]) -> String? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return "socket: \(String(cString: strerror(errno)))" }
        defer { close(fd) }
        // connect honours SO_SNDTIMEO: nothing waits longer than 5 s.
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var target = address
        let connected = withUnsafePointer(to: &target) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return "connect: \(String(cString: strerror(errno)))" }
        let sent = request.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
        guard sent == request.count else { return "write: \(String(cString: strerror(errno)))" }
        var received = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n == 0 { break }
            guard n > 0 else { return "read: \(String(cString: strerror(errno)))" }
            received += n
        }
        return received == PodTCPServer.response.count ? nil : "answer of \(received) bytes, not \(PodTCPServer.response.count)"
    }
}

enum Sockets {
    static func address(_ text: String, port: UInt16) throws -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        guard inet_pton(AF_INET, text, &address.sin_addr) == 1 else { throw BenchFailure("not an IPv4 address: \(text)") }
        return address
    }

    /// A listening TCP socket on 0.0.0.0:`port` (of the calling thread's namespace).
    static func listen(port: UInt16) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw BenchFailure("socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = try Self.address("0.0.0.0", port: port)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, Glibc.listen(fd, 1024) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw BenchFailure("cannot listen on port \(port) in the pod's namespace: \(reason)")
        }
        return fd
    }
}
