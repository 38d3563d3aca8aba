// A cluster as users start it, `ballast up --detach`, on temporary dirs, free ports and a cgroup
// root of its own (so that several run at once beside the other suites), driven with kubectl;
// `close()` runs `ballast down --purge` and says what it left behind. `SharedCluster` lends one
// cluster to the scenarios that can share it, and stops it when the last one is done.
import ClusterTesting
import Foundation
import HostSystem
import Primitives
import Testing
import TestSupport

/// Whether the end-to-end suites can run here: root, loop devices, runc.
let endToEndCanRun: Bool = {
    let can = processTestsCanRun && FileManager.default.isExecutableFile(atPath: "/usr/sbin/runc")
    if !can { print("⚠️  SKIPPED: the end-to-end suites need root, /dev/loop-control and runc (make deps)") }
    return can
}()

final class TestCluster: Sendable {
    let root: String
    let data: String
    let volumes: String
    let nodes: Int
    /// The cluster's own pod and Service ranges and kernel object names.
    let network: TestNetwork
    var kubeconfig: String { data + "/admin.kubeconfig" }
    /// Every test cluster's root is this and its id; its cgroups are under `cgroupPrefix` and the id.
    static let rootPrefix = "/tmp/bup-"
    static let cgroupPrefix = "/ballast/e2e-"
    /// The cgroup its kubelets put every pod in, below each hierarchy's root.
    var cgroupRoot: String { Self.cgroupPrefix + root.dropFirst(Self.rootPrefix.count) }

    /// `ballast up --detach --nodes N --zones Z` plus `flags`, on a pod network of its own;
    /// throws with up's output when it fails.
    static func start(nodes: Int, zones: Int, flags: [String] = []) async throws -> TestCluster {
        let id = UUID().uuidString.prefix(8).lowercased()
        let cluster = TestCluster(root: Self.rootPrefix + id, nodes: nodes, network: try await TestNetwork.claim())
        let up = try await cluster.ballast(["up", "--detach", "--volumes-dir", cluster.volumes, "--nodes", "\(nodes)", "--zones", "\(zones)",
                                            "--api-port", "\(freePort())", "--cloud-port", "\(freePort())", "--kubelet-port", "\(freePort())",
                                            "--cgroup-root", cluster.cgroupRoot, "--log-level", "info"] + cluster.network.upArguments + flags,
                                           timeout: .seconds(300))
        guard up.status == 0, up.stdout.contains("Ballast is ready") else {
            _ = await cluster.close()
            throw TestClusterError("ballast up failed (\(up.status)):\n\(up.stdout)\(up.stderr)")
        }
        return cluster
    }

    init(root: String, nodes: Int, network: TestNetwork) {
        self.network = network
        self.root = root
        self.data = root + "/data"
        self.volumes = root + "/volumes"
        self.nodes = nodes
    }

    /// `ballast ARGS --data-dir DATA`.
    func ballast(_ arguments: [String], timeout: Duration = .seconds(60)) async throws -> CommandResult {
        try await runCommand(ballastBinary(), arguments + ["--data-dir", data], timeout: timeout)
    }

    func kubectl(_ arguments: [String], input: String? = nil, timeout: Duration = .seconds(60)) async throws -> CommandResult {
        try await runCommand("kubectl", ["--kubeconfig", kubeconfig, "--cache-dir", root + "/kube-cache"] + arguments,
                             env: ["HOME": root], input: input, timeout: timeout)
    }

    /// kubectl that must succeed: its stdout, or an error with its output.
    @discardableResult
    func ok(_ arguments: [String], input: String? = nil, timeout: Duration = .seconds(60)) async throws -> String {
        let result = try await kubectl(arguments, input: input, timeout: timeout)
        guard result.status == 0 else {
            throw TestClusterError("kubectl \(arguments.joined(separator: " ")) failed (\(result.status)): \(result.stderr)\(result.stdout)")
        }
        return result.stdout
    }

    /// `kubectl get … -o jsonpath=PATH`, "" when it fails.
    func get(_ resource: String, namespace: String? = nil, _ path: String) async -> String {
        let scope = namespace.map { ["-n", $0] } ?? []
        return (try? await kubectl(["get", resource, "-o", "jsonpath=" + path] + scope))?.stdout ?? ""
    }

    /// Waits until `condition` holds; on timeout records an issue with `what` and the namespace's
    /// pods, claims and events, and returns false.
    @discardableResult
    func waitFor(_ what: String, namespace: String, timeout: Duration = .seconds(120), interval: Duration = .milliseconds(500),
                 sourceLocation: SourceLocation = #_sourceLocation, _ condition: () async throws -> Bool) async -> Bool {
        if await waitUntil(timeout: timeout, interval: interval, { (try? await condition()) ?? false }) { return true }
        Issue.record("\(what): not within \(timeout)\n\(await diagnostics(namespace))", sourceLocation: sourceLocation)
        return false
    }

    /// Pod `name` Ready, or an issue recorded with what the cluster says about it.
    @discardableResult
    func waitReady(_ pod: String, namespace: String, timeout: Duration = .seconds(120),
                   sourceLocation: SourceLocation = #_sourceLocation) async -> Bool {
        await waitFor("pod \(namespace)/\(pod) Ready", namespace: namespace, timeout: timeout, sourceLocation: sourceLocation) {
            await get("pod/" + pod, namespace: namespace, "{.status.conditions[?(@.type==\"Ready\")].status}") == "True"
        }
    }

    /// A StatefulSet's pod moved off its node: the node cordoned, the pod deleted and waited for
    /// Ready again (elsewhere), the node uncordoned, also when something fails. The node it left,
    /// and whether it came back Ready (an issue is recorded when not).
    func moveOffItsNode(_ pod: String, namespace: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> (from: String, back: Bool) {
        try await Self.nodeMoves.run { try await moveOffItsNodeAlone(pod, namespace: namespace, sourceLocation: sourceLocation) }
    }

    /// One move at a time in this process: two tests' moves that had cordoned both nodes of a
    /// zone at once each waited for the other's pod to leave, until both timed out, and the
    /// tests that needed either node failed with them (make test, 2026-12-07).
    private static let nodeMoves = ConcurrencyGate(limit: 1)

    private func moveOffItsNodeAlone(_ pod: String, namespace: String, sourceLocation: SourceLocation) async throws -> (from: String, back: Bool) {
        let node = await get("pod/" + pod, namespace: namespace, "{.spec.nodeName}")
        try await ok(["cordon", node])
        let cordoned = Date()
        do {
            try await ok(["delete", "pod", "-n", namespace, pod, "--wait=true", "--timeout=90s"], timeout: .seconds(100))
            let back = await waitReady(pod, namespace: namespace, timeout: .seconds(180), sourceLocation: sourceLocation)
            if back, await get("pod/" + pod, namespace: namespace, "{.spec.nodeName}") == node {
                // Judged before the uncordon, with what explains it: whether the node was still
                // cordoned, who placed the pod there, and what the scheduler said.
                let diagnostics = await placementDiagnostics(pod, namespace: namespace, node: node)
                Issue.record("\(pod) came back on its cordoned node \(node) (cordoned at \(cordoned.ISO8601Format()))\n\(diagnostics)",
                             sourceLocation: sourceLocation)
            }
            try await ok(["uncordon", node])
            return (node, back)
        } catch {
            _ = try? await ok(["uncordon", node])
            throw error
        }
    }

    /// Why `pod` is on `node`: the node's schedulability and taints, the pod's events and
    /// scheduling fields, and the scheduler's and controller manager's last words.
    func placementDiagnostics(_ pod: String, namespace: String, node: String) async -> String {
        var text = "node \(node): unschedulable=\(await get("node/" + node, "{.spec.unschedulable}")) taints=\(await get("node/" + node, "{.spec.taints}"))\n"
        text += "pod: uid=\(await get("pod/" + pod, namespace: namespace, "{.metadata.uid}")) created=\(await get("pod/" + pod, namespace: namespace, "{.metadata.creationTimestamp}"))"
            + " schedulerName=\(await get("pod/" + pod, namespace: namespace, "{.spec.schedulerName}"))\n"
        let events = try? await kubectl(["get", "events", "-n", namespace, "--field-selector", "involvedObject.name=" + pod, "--sort-by=.lastTimestamp",
                                         "-o", "custom-columns=TIME:.lastTimestamp,REASON:.reason,SOURCE:.source.component,MESSAGE:.message"])
        text += "$ kubectl get events (\(pod))\n\(events?.stdout ?? "")\(events?.stderr ?? "")\n"
        for component in ["scheduler", "controller-manager"] {
            let log = (try? String(contentsOfFile: data + "/logs/\(component).log", encoding: .utf8)) ?? ""
            text += "$ tail \(component).log\n\(log.split(separator: "\n").suffix(15).joined(separator: "\n"))\n"
        }
        return text
    }

    /// `wget` of `url` in `pod` (busybox's wget crashes with `-T`: kubectl's timeout bounds it).
    func fetch(from pod: String, namespace: String, _ url: String) async throws -> CommandResult {
        try await kubectl(["exec", "-n", namespace, pod, "--", "wget", "-q", "-O", "-", url], timeout: .seconds(30))
    }

    /// What a failing scenario needs to be understood: pods, claims, volumes, attachments, events.
    func diagnostics(_ namespace: String) async -> String {
        var text = ""
        for arguments in [["get", "pods,pvc", "-n", namespace, "-o", "wide"], ["get", "pv,volumeattachments,nodes"],
                          ["get", "volumeattachments", "-o", "jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.metadata.deletionTimestamp} {.status}{\"\\n\"}{end}"],
                          ["get", "events", "-n", namespace, "--sort-by=.lastTimestamp"]] {
            let result = try? await kubectl(arguments)
            text += "$ kubectl \(arguments.joined(separator: " "))\n\(result?.stdout ?? "")\(result?.stderr ?? "")\n"
        }
        // What the nodes' kubelets said last.
        for index in 1...nodes {
            let log = (try? String(contentsOfFile: data + "/logs/kubelet-node-\(index).log", encoding: .utf8)) ?? ""
            let tail = log.split(separator: "\n").suffix(25).joined(separator: "\n")
            text += "$ tail kubelet-node-\(index).log\n\(tail)\n"
        }
        return text
    }

    /// A namespace of the scenario's own.
    func namespace(_ name: String) async throws -> String {
        try await ok(["create", "namespace", name])
        return name
    }

    func apply(_ yaml: String, namespace: String) async throws {
        try await ok(["apply", "-n", namespace, "-f", "-"], input: yaml)
    }

    /// `ballast down --purge`; what it left behind (processes, mounts, loop devices, cgroups,
    /// files, and what `afterDown` finds, asked before the test network is released), empty
    /// when nothing.
    func close(afterDown: () async -> [String] = { [] }) async -> [String] {
        let down = try? await ballast(["down", "--purge"], timeout: .seconds(240))
        var left: [String] = []
        if down?.status != 0 { left.append("ballast down --purge failed: \(down?.stdout ?? "")\(down?.stderr ?? "")") }
        left += await afterDown()
        left += Mounts.current().filter { $0.mountPoint.hasPrefix(root + "/") }.map { "mount \($0.mountPoint)" }
        left += LoopDevices.all().filter { LoopDevices.backingFile(of: $0)?.hasPrefix(root + "/") == true }.map { "loop device \($0)" }
        left += ProcessTable.pids { $0.contains { $0.contains(root + "/") } }.map { "process \($0)" }
        if FileManager.default.fileExists(atPath: data) { left.append("data dir \(data)") }
        // The pod network: bridges, Service device, routes, nftables table; veths on its bridges.
        left += await network.leftovers()
        left += await network.release()
        try? FileManager.default.removeItem(atPath: root)
        return left
    }

    /// `close()`, recording an issue that names what it left.
    func closeExpectingNothingLeft(afterDown: () async -> [String] = { [] }, sourceLocation: SourceLocation = #_sourceLocation) async {
        let left = await close(afterDown: afterDown)
        #expect(left.isEmpty, "ballast down --purge left: \(left)", sourceLocation: sourceLocation)
    }

    /// Runs `body` on this cluster, then closes it whatever `body` did (`afterDown` as `close`'s).
    func run(afterDown: () async -> [String] = { [] }, _ body: (TestCluster) async throws -> Void) async throws {
        do {
            try await body(self)
        } catch {
            await closeExpectingNothingLeft(afterDown: afterDown)
            throw error
        }
        await closeExpectingNothingLeft(afterDown: afterDown)
    }
}

struct TestClusterError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// One cluster lent to the scenarios that share it: the first to come starts it, the last to
/// leave stops it (a later one starts another).
actor SharedCluster {
    private let nodes: Int
    private let zones: Int
    private var starting: Task<TestCluster, any Error>?
    private var users = 0

    init(nodes: Int, zones: Int) {
        self.nodes = nodes
        self.zones = zones
    }

    /// Runs `body` with the cluster; records what the cluster left behind when it stops.
    func with(_ body: (TestCluster) async throws -> Void) async throws {
        users += 1
        let task = starting ?? Task { [nodes, zones] in try await TestCluster.start(nodes: nodes, zones: zones) }
        starting = task
        let outcome: Result<Void, any Error>
        do {
            let cluster = try await task.value
            do {
                try await body(cluster)
                outcome = .success(())
            } catch {
                outcome = .failure(error)
            }
        } catch {
            outcome = .failure(error)
        }
        users -= 1
        if users == 0, let done = starting {
            starting = nil
            await (try? await done.value)?.closeExpectingNothingLeft()
        }
        try outcome.get()
    }
}

/// A busybox pod with claim `claim` mounted at /data (or, `block`, its device at /dev/xvda),
/// running `command`, on `node` when given.
func podYAML(_ name: String, claim: String, node: String? = nil, command: String, block: Bool = false, extraSpec: String = "") -> String {
    let placement = node.map { "  nodeSelector: {kubernetes.io/hostname: \($0)}\n" } ?? ""
    let attach = block ? "volumeDevices: [{name: d, devicePath: /dev/xvda}]" : "volumeMounts: [{name: d, mountPath: /data}]"
    return """
        apiVersion: v1
        kind: Pod
        metadata: {name: \(name)}
        spec:
          terminationGracePeriodSeconds: 1
        \(placement)\(extraSpec)  containers:
          - name: c
            image: busybox
            command: ["sh", "-c", "\(command)"]
            \(attach)
          volumes:
          - {name: d, persistentVolumeClaim: {claimName: \(claim)}}

        """
}

/// A StorageClass of the loop driver with `extra` lines (each ending in a newline), then the
/// document separator.
func storageClassYAML(_ name: String, binding: String, _ extra: String = "") -> String {
    """
    apiVersion: storage.k8s.io/v1
    kind: StorageClass
    metadata: {name: \(name)}
    provisioner: loop.csi.ballast.dev
    volumeBindingMode: \(binding)
    \(extra)---

    """
}

/// A claim of `size` in class `storageClass` (nil: the default class).
func claimYAML(_ name: String, size: String = "32Mi", storageClass: String? = nil, accessMode: String = "ReadWriteOnce", block: Bool = false) -> String {
    """
    apiVersion: v1
    kind: PersistentVolumeClaim
    metadata: {name: \(name)}
    spec:
      accessModes: [\(accessMode)]
      resources: {requests: {storage: \(size)}}
    \(storageClass.map { "  storageClassName: \($0)\n" } ?? "")\(block ? "  volumeMode: Block\n" : "")
    """
}

/// A pod that only sleeps on `node`: the client of network tests' requests (its `wget`, `nc`,
/// `nslookup` run through `kubectl exec`).
func clientPod(_ name: String, node: String) -> String {
    """
    apiVersion: v1
    kind: Pod
    metadata: {name: \(name)}
    spec:
      nodeSelector: {kubernetes.io/hostname: \(node)}
      terminationGracePeriodSeconds: 1
      containers:
      - {name: c, image: busybox, command: ["sleep", "3600"]}
    ---

    """
}

/// A busybox pod on `node` labelled `app`, answering HTTP on 8080 with its own name (and a
/// newline), Ready while /tmp/ready exists (it does from the start): the network suites' server.
func webServerPod(_ name: String, node: String, app: String) -> String {
    """
    apiVersion: v1
    kind: Pod
    metadata: {name: \(name), labels: {app: \(app)}}
    spec:
      nodeSelector: {kubernetes.io/hostname: \(node)}
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: busybox
        command: ["sh", "-c", "mkdir -p /www && echo $(hostname) > /www/index.html && touch /tmp/ready && exec httpd -f -p 8080 -h /www"]
        readinessProbe: {exec: {command: ["cat", "/tmp/ready"]}, periodSeconds: 1}
    ---

    """
}
