// `/exec/{namespace}/{pod}/{container}?command=…&stdin=1&stdout=1&stderr=1&tty=1` over a
// WebSocket with Kubernetes' channel protocol (v5.channel.k8s.io, as kubectl 1.32 speaks it;
// v4 accepted too): every binary message starts with its channel — 0 stdin, 1 stdout,
// 2 stderr, 3 error (a Status once the command ends: Success, or NonZeroExitCode with the exit
// code as a cause), 4 resize (`{"Width":…,"Height":…}`), 255 close (v5: `[255, 0]` ends stdin).
// The command runs with `runc exec` in the container; with tty on a pseudo-terminal whose size
// follows the resize channel.
import CKubelet
import ClusterAPI
import Foundation
import HTTPKit
import HostSystem
#if canImport(Glibc)
import Glibc
#endif

/// The channel numbers of the remote-command protocol.
enum ExecChannel {
    static let stdin: UInt8 = 0, stdout: UInt8 = 1, stderr: UInt8 = 2, error: UInt8 = 3, resize: UInt8 = 4, close: UInt8 = 255
    static let protocols = ["v5.channel.k8s.io", "v4.channel.k8s.io"]
}

/// What an exec request asks for.
struct ExecRequest: Sendable {
    var namespace: String
    var pod: String
    var container: String
    var command: [String]
    var stdin: Bool
    var stdout: Bool
    var stderr: Bool
    var tty: Bool

    /// Parses `/exec/{ns}/{pod}/{container}` and its query (repeated `command`); nil if malformed.
    init?(_ request: HTTPRequest) {
        let segments = request.pathSegments
        guard segments.count == 4, segments[0] == "exec" else { return nil }
        namespace = segments[1]
        pod = segments[2]
        container = segments[3]
        var command: [String] = []
        var flags: [String: String] = [:]
        for pair in request.rawQuery.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map { String($0) }
            let name = parts[0].removingPercentEncoding ?? parts[0]
            let value = parts.count > 1 ? (parts[1].replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? parts[1]) : ""
            if name == "command" { command.append(value) } else { flags[name] = value }
        }
        guard !command.isEmpty else { return nil }
        self.command = command
        func flag(_ name: String) -> Bool { ["1", "true"].contains(flags[name]?.lowercased() ?? "") }
        stdin = flag("stdin")
        stdout = flag("stdout")
        stderr = flag("stderr")
        tty = flag("tty")
    }
}

extension KubeletHTTPServer {
    /// Accepts an exec upgrade when the container runs on this node.
    func webSocket(_ request: HTTPRequest) async -> WebSocketAcceptance? {
        guard let exec = ExecRequest(request) else { return nil }
        let offered = (request.headers.first(name: "Sec-WebSocket-Protocol") ?? "").split(separator: ",").map {
            $0.trimmingCharacters(in: .whitespaces)
        }
        guard let subprotocol = ExecChannel.protocols.first(where: offered.contains) else { return nil }
        guard let id = await runningContainer(namespace: exec.namespace, pod: exec.pod, container: exec.container) else { return nil }
        let runtime = kubelet.runtime
        let logger = kubelet.logger
        return WebSocketAcceptance(subprotocol: subprotocol) { connection in
            await Self.runExec(exec, containerID: id, runtime: runtime, connection: connection, v5: subprotocol.hasPrefix("v5"))
            logger.debug("exec ended", metadata: ["pod": "\(exec.namespace)/\(exec.pod)", "container": "\(exec.container)"])
        }
    }

    /// The id of the running container `container` of the pod, if there is one.
    func runningContainer(namespace: String, pod name: String, container: String) async -> String? {
        guard let pod = await findPod(namespace: namespace, name: name) else { return nil }
        let records = kubelet.runtime.records().filter { $0.podUID == pod.uid && $0.name == container }.sorted { $0.attempt > $1.attempt }
        guard let current = records.first, case .running = kubelet.runtime.state(current.id) else { return nil }
        return current.id
    }

    static func runExec(_ exec: ExecRequest, containerID: String, runtime: OCIRuntime, connection: WebSocketConnection, v5: Bool) async {
        let session: ExecSession
        do {
            session = try runtime.exec(containerID, command: exec.command, stdin: exec.stdin, tty: exec.tty)
        } catch {
            await sendStatus(connection, failure: "\(error)", exitCode: nil)
            return
        }
        let process = session.process
        // The pty master, closed when both this handler and the thread reading it are done with
        // it: closed here while that thread still reads, its number could be another file's by
        // the time the read comes.
        let terminal = session.terminal.map(TerminalDescriptor.init)
        // What the client types goes to the terminal without ever blocking a thread: a command
        // that does not read its terminal fills it, and a blocking write would hold a thread of
        // the cooperative pool until it does (the master is non-blocking from here on).
        let typed = terminal.flatMap { try? ChildInput.writer(duplicating: $0.fd) }
        defer { typed?.close() }
        await withTaskGroup(of: Void.self) { group in
            // Client → process: stdin, resize, close.
            group.addTask {
                for await message in connection.messages {
                    guard let channel = message.bytes.first else { continue }
                    let data = message.bytes.dropFirst()
                    switch channel {
                    case ExecChannel.stdin:
                        if let typed {
                            try? await typed.write(data)
                        } else {
                            try? await process.standardInput?.write(data)
                        }
                    case ExecChannel.resize:
                        if let terminal, let size = try? JSONDecoder().decode(TerminalSize.self, from: Data(data)) {
                            // runc relays the size of its terminal when told (it has no controlling terminal
                            // to get SIGWINCH from).
                            _ = ckl_set_window_size(terminal.fd, size.Width, size.Height)
                            try? process.signal(SIGWINCH)
                        }
                    case ExecChannel.close where v5 && data.first == ExecChannel.stdin:
                        if let typed {
                            try? await typed.write([4])   // ^D: end of input on a terminal
                        } else {
                            process.standardInput?.close()
                        }
                    default:
                        break
                    }
                }
                // The client went away: the command is stopped.
                if process.termination == nil { await process.terminate(grace: .seconds(1)) }
            }
            // The client gone while its last input still waits to be written (a command that
            // reads no input fills its terminal or pipe): the end of its messages comes only
            // after that input, the end of the connection at once. The command is stopped.
            group.addTask {
                await connection.closed()
                if !Task.isCancelled && process.termination == nil { await process.terminate(grace: .seconds(1)) }
            }
            // Process → client.
            group.addTask {
                if let terminal {
                    for await chunk in Self.readTerminal(terminal) {
                        try? await connection.send([ExecChannel.stdout] + chunk)
                    }
                } else {
                    await withTaskGroup(of: Void.self) { outputs in
                        if let out = process.standardOutput {
                            outputs.addTask {
                                do { for try await chunk in out { try await connection.send([ExecChannel.stdout] + chunk) } } catch {}
                            }
                        }
                        if let err = process.standardError {
                            outputs.addTask {
                                do { for try await chunk in err { try await connection.send([ExecChannel.stderr] + chunk) } } catch {}
                            }
                        }
                    }
                }
                let termination = (try? await process.wait()) ?? .unknown
                let code = termination.shellStatus
                if code == 0 {
                    await sendStatus(connection, failure: nil, exitCode: 0)
                } else {
                    await sendStatus(connection, failure: "command terminated with non-zero exit code: error executing command \(exec.command), exit code \(code)",
                                     exitCode: code)
                }
            }
            await group.next()
            group.cancelAll()
        }
    }

    /// A descriptor closed when its last user lets it go.
    final class TerminalDescriptor: Sendable {
        let fd: Int32
        init(_ fd: Int32) { self.fd = fd }
        deinit { close(fd) }
    }

    struct TerminalSize: Decodable {
        var Width: UInt16
        var Height: UInt16
    }

    /// The error channel's Status: Success, or Failure (NonZeroExitCode with the code).
    static func sendStatus(_ connection: WebSocketConnection, failure: String?, exitCode: Int32?) async {
        var status: JSONValue = ["metadata": [:], "status": "Success"]
        if let failure {
            status = ["metadata": [:], "status": "Failure", "message": .string(failure)]
            if let exitCode {
                status["reason"] = "NonZeroExitCode"
                status["details"] = ["causes": [["reason": "ExitCode", "message": .string(String(exitCode))]]]
            } else {
                status["reason"] = "InternalError"
            }
        }
        let body = (try? JSONEncoder().encode(status)) ?? Data()
        try? await connection.send([ExecChannel.error] + Array(body))
    }

    /// What the terminal's process writes, read on a thread of its own until the terminal
    /// closes (EIO once the process and its children are gone).
    static func readTerminal(_ terminal: TerminalDescriptor) -> AsyncStream<[UInt8]> {
        AsyncStream { continuation in
            let thread = Thread {
                var buffer = [UInt8](repeating: 0, count: 32 * 1024)
                while true {
                    // The master may be non-blocking (its writer): wait here, on this thread.
                    var ready = pollfd(fd: terminal.fd, events: Int16(POLLIN), revents: 0)
                    if poll(&ready, 1, -1) < 0 && errno != EINTR { break }
                    let count = buffer.withUnsafeMutableBytes { Glibc.read(terminal.fd, $0.baseAddress, $0.count) }
                    if count > 0 {
                        continuation.yield(Array(buffer[..<count]))
                    } else if count < 0 && (errno == EINTR || errno == EAGAIN) {
                        continue
                    } else {
                        break
                    }
                }
                continuation.finish()
            }
            thread.start()
        }
    }
}
