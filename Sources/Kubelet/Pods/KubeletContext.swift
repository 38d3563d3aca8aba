// What every pod worker shares: the API client, the runtime, the image store, the volume
// manager, the event recorder, the pod network, the node's settings, and the count of pod
// syncs in progress.
import APIClient
import ClusterAPI
import Foundation
import Logging
import Synchronization

/// The node's settings the pod workers need.
public struct PodSettings: Sendable {
    public var nodeName: String
    public var nodeIP: String
    /// The kubelet's root directory.
    public var root: String
    /// `--pod-logs-dir`.
    public var podLogsDirectory: String
    /// `--pod-max-pids` (nil: no limit).
    public var podPidsLimit: Int64?
    /// How long volumes may take before FailedMount is reported (Kubernetes: 2 min).
    public var volumeTimeout: Duration
    /// Back-off of restarted containers: first delay and ceiling (Kubernetes: 10 s, 5 min).
    public var backoffInitial: Duration
    public var backoffMax: Duration
    /// `--cluster-dns`, `--cluster-domain`, `--resolv-conf`.
    public var dns = DNSSettings()

    public init(nodeName: String, nodeIP: String, root: String, podLogsDirectory: String, podPidsLimit: Int64? = nil,
                volumeTimeout: Duration = .seconds(120), backoffInitial: Duration = .seconds(10), backoffMax: Duration = .seconds(300)) {
        self.nodeName = nodeName
        self.nodeIP = nodeIP
        self.root = root
        self.podLogsDirectory = podLogsDirectory
        self.podPidsLimit = podPidsLimit
        self.volumeTimeout = volumeTimeout
        self.backoffInitial = backoffInitial
        self.backoffMax = backoffMax
    }
}

struct KubeletContext: Sendable {
    let client: KubeClient
    let runtime: OCIRuntime
    let images: ImageStore
    let volumes: VolumeManager
    let events: KubeletEvents
    let settings: PodSettings
    let activity: PodSyncActivity
    /// The pods' network (nil: pods share the node's network namespace).
    var network: PodNetwork? = nil
    let logger: Logger

    func podDirectory(_ uid: String) -> String { settings.root + "/pods/" + uid }
    func sandbox(_ uid: String) -> PodSandbox { PodSandbox(directory: podDirectory(uid) + "/sandbox") }
}

/// Pod syncs in progress — a worker's pass: making the sandbox and volumes, starting containers
/// or restarting them, writing the status (a termination's pass is not counted). The kubelet's
/// events wait while there are any (`KubeletEvents`).
final class PodSyncActivity: Sendable {
    private let syncing = Atomic<Int>(0)

    var isBusy: Bool { syncing.load(ordering: .relaxed) > 0 }

    func begin() { syncing.add(1, ordering: .relaxed) }
    func end() { syncing.subtract(1, ordering: .relaxed) }
}
