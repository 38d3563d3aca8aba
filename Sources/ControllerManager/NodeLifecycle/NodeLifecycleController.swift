// Node lifecycle (Kubernetes' nodelifecycle controller and its taint-based eviction): a node
// whose kubelet stops renewing its Lease in `kube-node-lease` goes Ready=Unknown and is tainted
// unreachable; the pods on it are deleted once their toleration of the taint runs out.
//
// | node (every --node-monitor-period)                           | action                                      |
// |--------------------------------------------------------------|---------------------------------------------|
// | Lease and Ready heartbeat unchanged for --node-monitor-grace-period | conditions Unknown (NodeStatusUnknown, "Kubelet stopped posting node status."), event NodeNotReady |
// | Ready Unknown                                                | taints node.kubernetes.io/unreachable NoSchedule + NoExecute |
// | Ready False                                                  | taints node.kubernetes.io/not-ready NoSchedule + NoExecute |
// | Ready True                                                   | those taints removed                        |
// | NoExecute taint, pod not tolerating it (longer)              | pod deleted, event TaintManagerEviction     |
// | not Ready and tainted node.kubernetes.io/out-of-service       | its terminating pods deleted at once (pod GC) |
//
// Silence is judged by this controller's own clock: the time it last saw the Lease's renewTime
// (or the Ready heartbeat) change, never the remote timestamps. A pod without a toleration of
// the unreachable/not-ready taints is treated as tolerating them for --pod-eviction-timeout
// (300 s), the toleration kube-apiserver's DefaultTolerationSeconds admission gives every pod.
import APIClient
import ClusterAPI
import Logging
import Synchronization

public final class NodeLifecycleController: Sendable {
    let client: KubeClient
    let nodes: Informer<Node>
    let leases: Informer<Lease>
    let pods: Informer<Pod>
    let recorder: EventRecorder
    let gracePeriod: Duration
    let monitorPeriod: Duration
    let podEvictionTimeout: Duration
    let logger: Logger
    let controller: Controller<String>
    private let observations = Mutex<[String: Observation]>([:])

    struct Observation {
        var lease: MicroTime?
        var heartbeat: Time?
        var probed: ContinuousClock.Instant
    }

    init(client: KubeClient, nodes: Informer<Node>, leases: Informer<Lease>, pods: Informer<Pod>, recorder: EventRecorder,
         gracePeriod: Duration, monitorPeriod: Duration, podEvictionTimeout: Duration, logger: Logger) async {
        self.client = client
        self.nodes = nodes
        self.leases = leases
        self.pods = pods
        self.recorder = recorder
        self.gracePeriod = gracePeriod
        self.monitorPeriod = monitorPeriod
        self.podEvictionTimeout = podEvictionTimeout
        self.logger = logger
        let box = LateBound<NodeLifecycleController>()
        controller = Controller(name: "nodelifecycle", workers: 2, logger: logger) { name in
            guard let controller = box.value else { return .done }
            return try await controller.sync(name)
        }
        box.value = self
        await controller.enqueue(from: nodes) { event in
            if case .deleted = event { return [] }
            return [event.object.metadata.name ?? ""]
        }
        let queue = controller.queue
        controller.addTask {
            while !Task.isCancelled {
                try? await Task.sleep(for: monitorPeriod)
                for node in await nodes.list() { await queue.add(node.metadata.name ?? "") }
            }
        }
    }

    func run() async { await controller.run() }

    func sync(_ name: String) async throws -> SyncResult {
        guard var node = await nodes.get(name: name) else {
            observations.withLock { $0[name] = nil }
            return .done
        }
        let lease = await leases.get(name: name, namespace: "kube-node-lease")
        let heartbeat = node.status.conditions?.first { $0.type == "Ready" }?.lastHeartbeatTime
        let silentFor = observations.withLock { observations -> Duration in
            let now = ContinuousClock.now
            var observation = observations[name] ?? Observation(lease: lease?.spec.renewTime, heartbeat: heartbeat, probed: now)
            if observation.lease != lease?.spec.renewTime || observation.heartbeat != heartbeat {
                observation = Observation(lease: lease?.spec.renewTime, heartbeat: heartbeat, probed: now)
            }
            observations[name] = observation
            return now - observation.probed
        }
        if silentFor > gracePeriod && node.readyStatus != "Unknown" {
            node = try await markUnknown(node)
        }
        node = try await reconcileTaints(node)
        try await evictPods(from: node)
        try await deleteTerminatingPods(onOutOfService: node)
        return .done
    }

    /// Kubernetes' pod GC of terminating pods on an out-of-service node: the node is not Ready
    /// and its operator tainted it `node.kubernetes.io/out-of-service` (it is shut down), so its
    /// kubelet will never finish its terminating pods. They are deleted at once, which lets the
    /// attach/detach controller detach their volumes and their replacements start elsewhere.
    private func deleteTerminatingPods(onOutOfService node: Node) async throws {
        guard node.readyStatus != "True", node.hasTaint(Taint.outOfService), let name = node.metadata.name else { return }
        for pod in await pods.list() where pod.spec.nodeName == name && pod.metadata.deletionTimestamp != nil {
            do {
                try await client.delete(Pod.self, name: pod.metadata.name ?? "", namespace: pod.metadata.namespace,
                                        options: DeleteOptions(preconditionUID: pod.metadata.uid, gracePeriodSeconds: 0))
                logger.warning("terminating pod deleted from an out-of-service node", metadata: ["pod": "\(pod.key)", "node": "\(name)"])
            } catch let error as APIError where error.isNotFound || error.isConflict {}
        }
    }

    /// Every condition to Unknown, as the controller does when the kubelet goes silent.
    private func markUnknown(_ node: Node) async throws -> Node {
        var updated = node
        let now = Time.now()
        var conditions = node.status.conditions ?? []
        if let index = conditions.firstIndex(where: { $0.type == "Ready" }) {
            for i in conditions.indices where conditions[i].status != "Unknown" {
                conditions[i].status = "Unknown"
                conditions[i].reason = "NodeStatusUnknown"
                conditions[i].message = "Kubelet stopped posting node status."
                conditions[i].lastTransitionTime = now
            }
            _ = index
        } else {
            conditions.append(NodeCondition(type: "Ready", status: "Unknown", lastHeartbeatTime: node.metadata.creationTimestamp,
                                            lastTransitionTime: now, reason: "NodeStatusNeverUpdated", message: "Kubelet never posted node status."))
        }
        updated.status.conditions = conditions
        let written = try await client.updateStatus(updated)
        logger.warning("node stopped reporting; Ready=Unknown", metadata: ["node": "\(node.metadata.name ?? "")"])
        recorder.event(written, .normal, "NodeNotReady", "Node \(node.metadata.name ?? "") status is now: NodeNotReady")
        return written
    }

    /// The unreachable / not-ready taints that match the Ready condition.
    private func reconcileTaints(_ node: Node) async throws -> Node {
        let ready = node.readyStatus
        let wanted: String? = ready == "Unknown" ? Taint.unreachable : (ready == "False" ? Taint.notReady : nil)
        var taints = node.spec.taints ?? []
        let before = taints
        taints.removeAll { ($0.key == Taint.unreachable || $0.key == Taint.notReady) && $0.key != wanted }
        if let wanted {
            for effect in ["NoSchedule", "NoExecute"] where !taints.contains(where: { $0.key == wanted && $0.effect == effect }) {
                taints.append(ClusterAPI.Taint(key: wanted, effect: effect, timeAdded: effect == "NoExecute" ? Time.now() : nil))
            }
        }
        guard taints != before else { return node }
        var updated = node
        updated.spec.taints = taints.isEmpty ? nil : taints
        let written = try await client.update(updated)
        logger.info("node taints updated", metadata: ["node": "\(node.metadata.name ?? "")", "taints": "\(taints.map { "\($0.key):\($0.effect)" })"])
        return written
    }

    /// Deletes the pods whose toleration of the node's NoExecute taints has run out.
    private func evictPods(from node: Node) async throws {
        let taints = (node.spec.taints ?? []).filter { $0.effect == "NoExecute" }
        guard !taints.isEmpty, let name = node.metadata.name else { return }
        let now = Time.now()
        for pod in await pods.list() where pod.spec.nodeName == name && pod.metadata.deletionTimestamp == nil {
            let deadline = taints.map { taint -> Int64 in
                let seconds = tolerationSeconds(pod, taint)
                return seconds.map { (taint.timeAdded ?? now).secondsSinceEpoch + $0 } ?? Int64.max
            }.min() ?? Int64.max
            guard deadline <= now.secondsSinceEpoch else { continue }
            do {
                try await client.delete(Pod.self, name: pod.metadata.name ?? "", namespace: pod.metadata.namespace,
                                        options: DeleteOptions(preconditionUID: pod.metadata.uid))
                recorder.event(pod, .normal, "TaintManagerEviction", "Marking for deletion Pod \(pod.key)")
                logger.warning("pod evicted from an unreachable node", metadata: ["pod": "\(pod.key)", "node": "\(name)"])
            } catch let error as APIError where error.isNotFound || error.isConflict {}
        }
    }

    /// How long `pod` tolerates `taint` (nil: forever; 0: not at all).
    func tolerationSeconds(_ pod: Pod, _ taint: ClusterAPI.Taint) -> Int64? {
        Self.tolerationSeconds(pod.spec.tolerations ?? [], taint, defaultSeconds: podEvictionTimeout.components.seconds)
    }

    /// The taint eviction controller's `getMinTolerationTime` over the tolerations that match
    /// `taint`: the smallest `tolerationSeconds` among those that have one (0 when it is not
    /// positive); forever (nil) only when none of them has one. No matching toleration: not
    /// tolerated (0), except the unreachable and not-ready taints, tolerated for
    /// `defaultSeconds` (what the DefaultTolerationSeconds admission would have added).
    public static func tolerationSeconds(_ tolerations: [Toleration], _ taint: ClusterAPI.Taint, defaultSeconds: Int64) -> Int64? {
        let matching = tolerations.filter { tolerates($0, taint) }
        if matching.isEmpty {
            if taint.key == Taint.unreachable || taint.key == Taint.notReady { return defaultSeconds }
            return 0
        }
        guard let shortest = matching.compactMap(\.tolerationSeconds).min() else { return nil }
        return max(0, shortest)
    }

    /// Kubernetes' `Toleration.ToleratesTaint`.
    public static func tolerates(_ toleration: Toleration, _ taint: ClusterAPI.Taint) -> Bool {
        if let effect = toleration.effect, !effect.isEmpty, effect != taint.effect { return false }
        let key = toleration.key ?? ""
        if !key.isEmpty && key != taint.key { return false }
        switch toleration.operator ?? "Equal" {
        case "Exists": return true
        case "Equal", "": return (toleration.value ?? "") == (taint.value ?? "")
        default: return false
        }
    }
}
