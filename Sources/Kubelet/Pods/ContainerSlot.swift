// What a pod worker knows of one container of its pod: the container running (or last run)
// for it, how that ended, the one before (`lastState`), its restart count and back-off, why it
// waits, and what its probes say.
import ClusterAPI
import Foundation

struct ContainerSlot: Sendable {
    let name: String
    let isInit: Bool
    /// The current (or last) container.
    var record: ContainerRecord?
    var started: ContainerStarted?
    var exit: ContainerExit?
    /// The container before the current one, and how it ended.
    var previous: LastTermination?
    var restartCount: Int { record?.attempt ?? 0 }
    /// Why it is not running, when it is not (waiting reason and message).
    var waiting: (reason: String, message: String?)?
    /// Restart back-off: the current delay, and when it was last set.
    var backoff: Duration?
    var backoffSetAt: ContinuousClock.Instant?
    /// Image and config errors retry no sooner than this.
    var retryAt: ContinuousClock.Instant?
    /// Probes: readiness result, startup passed.
    var ready = false
    var startupPassed = false
    var probes: Task<Void, Never>?

    init(name: String, isInit: Bool) {
        self.name = name
        self.isInit = isInit
    }

    var isRunning: Bool { record != nil && started != nil && exit == nil }
    var succeeded: Bool { exit?.exitCode == 0 && exit?.startFailure == nil }
}

/// How the previous container of a slot ended (persisted as `last.json` under the pod's
/// directory, so that `lastState` survives a kubelet restart).
struct LastTermination: Codable, Sendable, Equatable {
    var record: ContainerRecord
    var exit: ContainerExit
}

extension ContainerExit {
    /// Kubernetes' terminated reason: OOMKilled, Completed, Error, StartError.
    var reason: String {
        if startFailure != nil { return "StartError" }
        if oomKilled { return "OOMKilled" }
        return exitCode == 0 ? "Completed" : "Error"
    }
}
