// The processes of a cluster `ballast up` runs: each component is this binary started again
// with its subcommand, in a session of its own (Ctrl-C reaches only the supervisor, which stops
// them in order), its output appended to DATA_DIR/logs/<component>.log. A component that dies
// while the cluster runs is started again after a back-off (1 s doubling to 30 s, reset after a
// minute of running), and that is logged — unless it is held: a file `<logs>/<name>.held`
// (`ballast node stop`) keeps it stopped until the file goes (`ballast node start`). The pid of
// each component's current process is in `<logs>/<name>.pid` (read by `ballast status`).
import Foundation
import HostSystem
import Logging
import Synchronization

final class Supervisor: Sendable {
    struct Component: Sendable {
        let name: String
        let arguments: [String]
    }

    private struct Running {
        var children: [String: ChildProcess] = [:]
        var order: [String] = []
        var stopping = false
    }

    let logsDirectory: String
    let logger: Logger
    private let state = Mutex(Running())
    private let watchers = Mutex<[Task<Void, Never>]>([])

    init(logsDirectory: String, logger: Logger) {
        self.logsDirectory = logsDirectory
        self.logger = logger
    }

    func logPath(_ name: String) -> String { logsDirectory + "/" + name + ".log" }
    func holdPath(_ name: String) -> String { logsDirectory + "/" + name + ".held" }
    static func pidPath(logsDirectory: String, _ name: String) -> String { logsDirectory + "/" + name + ".pid" }
    private func isHeld(_ name: String) -> Bool { FileManager.default.fileExists(atPath: holdPath(name)) }

    /// Starts `component` and restarts it whenever it ends, until `stopAll`.
    func start(_ component: Component) throws {
        let child = try spawn(component)
        state.withLock {
            $0.children[component.name] = child
            $0.order.append(component.name)
        }
        let watcher = Task { await self.supervise(component, first: child) }
        watchers.withLock { $0.append(watcher) }
    }

    private func spawn(_ component: Component) throws -> ChildProcess {
        do {
            let child = try ChildProcess(["/proc/self/exe"] + component.arguments, newSession: true,
                                         standardOutput: .file(logPath(component.name)), standardError: .sameAsOutput)
            try? "\(child.pid)\n".write(toFile: Self.pidPath(logsDirectory: logsDirectory, component.name), atomically: true, encoding: .utf8)
            return child
        } catch {
            throw UpFailure("cannot start \(component.name): \(error)")
        }
    }

    private func supervise(_ component: Component, first: ChildProcess) async {
        var child = first
        var backoff: Duration = .seconds(1)
        while true {
            let started = ContinuousClock.now
            let termination = (try? await child.wait()) ?? .unknown
            if state.withLock({ $0.stopping }) { return }
            if ContinuousClock.now - started > .seconds(60) { backoff = .seconds(1) }
            if isHeld(component.name) {
                logger.info("component stopped and held (ballast node stop)", metadata: ["component": "\(component.name)"])
                while isHeld(component.name) && !state.withLock({ $0.stopping }) { try? await Task.sleep(for: .milliseconds(500)) }
                if state.withLock({ $0.stopping }) { return }
                backoff = .zero
            }
            logger.warning("component ended; restarting it", metadata: ["component": "\(component.name)", "status": "\(termination)",
                                                                        "in": "\(backoff)", "log": "\(logPath(component.name))"])
            try? await Task.sleep(for: backoff)
            backoff = min(max(backoff * 2, .seconds(1)), .seconds(30))
            if state.withLock({ $0.stopping }) { return }
            do {
                child = try spawn(component)
                // stopAll may have taken its list between the check above and the spawn: a child
                // it did not see is stopped here, or it would outlive `ballast up`.
                let stopping = state.withLock { state -> Bool in
                    if !state.stopping { state.children[component.name] = child }
                    return state.stopping
                }
                if stopping {
                    await child.terminate(grace: .seconds(5))
                    return
                }
            } catch {
                logger.error("cannot restart the component", metadata: ["component": "\(component.name)", "error": "\(error)"])
            }
        }
    }

    /// Whether `name` runs now.
    func isRunning(_ name: String) -> Bool {
        state.withLock { $0.children[name]?.termination == nil }
    }

    /// The last `bytes` of a component's log.
    func logTail(_ name: String, bytes: Int = 3000) -> String {
        let text = (try? String(contentsOfFile: logPath(name), encoding: .utf8)) ?? ""
        return String(text.suffix(bytes))
    }

    /// Stops every component, the last started first (SIGTERM, SIGKILL after `grace`).
    func stopAll(grace: Duration = .seconds(15)) async {
        let (order, children) = state.withLock { state -> ([String], [String: ChildProcess]) in
            state.stopping = true
            return (state.order, state.children)
        }
        for watcher in watchers.withLock({ $0 }) { watcher.cancel() }
        for name in order.reversed() {
            guard let child = children[name], child.termination == nil else { continue }
            logger.info("stopping", metadata: ["component": "\(name)"])
            await child.terminate(grace: grace)
        }
        for name in order { try? FileManager.default.removeItem(atPath: Self.pidPath(logsDirectory: logsDirectory, name)) }
    }
}
