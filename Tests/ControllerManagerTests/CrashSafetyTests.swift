// Crash safety: `kill -9` of the controller manager (one test) or of the cloud (another) at
// random points, restarted at once, while 50 claims are provisioned, their 50 pods attach, move
// to the other node (detach, then attach there) and go (detach), and 20 claims are deleted.
// Kills land in every phase — one asked for at the start of each, while its work is being done,
// and others at random between — until the deletions have been processed. Throughout, a monitor
// polls the cloud and the API server: no disk may ever be attached (or attaching, or detaching)
// to two instances, and no volume may ever have two VolumeAttachments. Afterwards: every
// remaining claim Bound, no leaked disk (the cloud's API), no orphan PV, no stuck finalizer.
import ClusterTesting
import APIClient
import ClusterAPI
import CloudProvider
import Foundation
import Synchronization
import Testing
import TestSupport

@Suite("Crash safety", .serialized, .enabled(if: processTestsCanRun, "needs root, /dev/loop-control and the built ballast binary"),
       .timeLimit(.minutes(3)))
struct CrashSafetyTests {
    static let claims = 50
    static let deleted = 20
    static let phases = ["provision", "attach", "move", "detach", "delete"]

    @Test("kill -9 of the controller manager during provisions, attach/detach cycles and deletions")
    func controllerManagerKills() async throws {
        try await chaos(.controllerManager)
    }

    @Test("kill -9 of the cloud during provisions, attach/detach cycles and deletions")
    func cloudKills() async throws {
        try await chaos(.cloud)
    }

    func chaos(_ target: Chaos.Target) async throws {
        try await withCluster(cloudFlags: ["--latency", "create=30ms,attach=30ms,detach=30ms,delete=30ms"],
                              managerFlags: ["--leader-elect=false", "--orphan-grace-period", "5s"]) { c in
            try await c.addNode("node-a")
            try await c.addNode("node-b")
            _ = try await c.client.create(StorageClass(metadata: ObjectMeta(name: "fast"), provisioner: driverName, reclaimPolicy: "Delete",
                                                       volumeBindingMode: "Immediate"))
            let chaos = Chaos(c, target: target)
            let monitor = try ExclusivityMonitor(c)
            let chaosTask = Task { await chaos.run() }
            let monitorTask = Task { await monitor.run() }
            defer { monitorTask.cancel() }
            do {
                try await workload(c, chaos)
            } catch {
                chaos.stop()
                await chaosTask.value
                throw error
            }
            chaos.stop()
            await chaosTask.value
            if !c.manager.isRunning { try c.restartManager() }
            if !c.cloudDaemon.isRunning { try c.cloudDaemon.start() }
            try await c.waitForCloud()

            // The end state.
            try await settle("the world settles: \(Self.claims - Self.deleted) claims, as many PVs and disks", c, timeout: .seconds(60)) {
                try await Self.invariantsHold(c)
            }
            monitorTask.cancel()
            await monitorTask.value
            let kills = chaos.kills
            print("crash safety, \(target.rawValue) killed: \(kills.count) kills \(kills); the monitor looked \(monitor.polls) times")
            for phase in Self.phases {
                #expect(kills.contains { $0.phase == phase }, "no kill while the \(phase) phase was processed: \(kills)")
            }
            #expect(kills.count >= Self.phases.count, "\(kills)")
            #expect(monitor.violations.isEmpty, "a volume was on two instances or had two VolumeAttachments: \(monitor.violations)")
            #expect(monitor.polls >= 20, "the monitor looked only \(monitor.polls) times")
        }
    }

    /// 50 provisions; a pod per claim on alternating nodes, attached; each pod replaced by one on
    /// the other node (the volume detaches, then attaches there); the pods deleted, detached; 20
    /// claims deleted and their disks and PVs gone. Each phase starts with a kill asked for.
    func workload(_ c: ProcessCluster, _ chaos: Chaos) async throws {
        chaos.enter("provision")
        for index in 0..<Self.claims {
            var claim = PersistentVolumeClaim(metadata: ObjectMeta(name: "claim-\(index)", namespace: "default"))
            claim.spec.accessModes = ["ReadWriteOnce"]
            claim.spec.storageClassName = "fast"
            claim.spec.resources = VolumeResourceRequirements(requests: ["storage": try Quantity("16Mi")])
            _ = try await retrying { try await c.client.create(claim) }
            try await Task.sleep(for: .milliseconds(40))
        }
        try await settle("every claim Bound", c) {
            try await c.client.list(PersistentVolumeClaim.self, namespace: "default").items.filter { $0.status.phase == "Bound" }.count == Self.claims
        }

        chaos.enter("attach")
        for index in 0..<Self.claims {
            _ = try await retrying { try await c.client.create(Self.pod("pod-\(index)", claim: "claim-\(index)", node: index % 2 == 0 ? "node-a" : "node-b")) }
        }
        try await settle("every volume attached", c) { try await Self.attached(c, on: { index in index % 2 == 0 ? "node-a" : "node-b" }) }

        chaos.enter("move")
        for index in 0..<Self.claims {
            try await retrying { try await c.client.delete(Pod.self, name: "pod-\(index)", namespace: "default",
                                                           options: DeleteOptions(gracePeriodSeconds: 0)) }
            _ = try await retrying { try await c.client.create(Self.pod("moved-\(index)", claim: "claim-\(index)", node: index % 2 == 0 ? "node-b" : "node-a")) }
        }
        try await settle("every volume attached to the other node", c) { try await Self.attached(c, on: { index in index % 2 == 0 ? "node-b" : "node-a" }) }

        chaos.enter("detach")
        for index in 0..<Self.claims {
            try await retrying { try await c.client.delete(Pod.self, name: "moved-\(index)", namespace: "default",
                                                           options: DeleteOptions(gracePeriodSeconds: 0)) }
        }
        try await settle("every volume detached", c) { try await c.client.list(VolumeAttachment.self).items.isEmpty }

        chaos.enter("delete")
        for index in 0..<Self.deleted {
            try await retrying { try await c.client.delete(PersistentVolumeClaim.self, name: "claim-\(index)", namespace: "default") }
        }
        // The kills go on until the deletions have been processed (the PVs and their disks gone).
        try await settle("the deleted claims' volumes gone", c) {
            try await c.client.list(PersistentVolume.self).items.count == Self.claims - Self.deleted
        }
    }

    static func pod(_ name: String, claim: String, node: String) -> Pod {
        var pod = Pod(metadata: ObjectMeta(name: name, namespace: "default"))
        pod.spec.containers = [Container(name: "app", image: "busybox")]
        pod.spec.volumes = [Volume(name: "data", persistentVolumeClaim: PersistentVolumeClaimVolumeSource(claimName: claim))]
        pod.spec.nodeName = node
        pod.status.phase = "Running"
        return pod
    }

    /// Every claim's volume has exactly one VolumeAttachment, attached, on the node `node(index)` gives.
    static func attached(_ c: ProcessCluster, on node: (Int) -> String) async throws -> Bool {
        let claims = try await c.client.list(PersistentVolumeClaim.self, namespace: "default").items
        let attachments = try await c.client.list(VolumeAttachment.self).items
        guard attachments.count == Self.claims else { return false }
        for claim in claims {
            guard let index = Int((claim.metadata.name ?? "").dropFirst("claim-".count)) else { return false }
            let mine = attachments.filter { $0.spec.source.persistentVolumeName == claim.spec.volumeName }
            guard mine.count == 1, mine[0].spec.nodeName == node(index), mine[0].status?.attached == true,
                  mine[0].metadata.deletionTimestamp == nil else { return false }
        }
        return true
    }

    static func invariantsHold(_ c: ProcessCluster) async throws -> Bool {
        let claims = try await c.client.list(PersistentVolumeClaim.self, namespace: "default").items
        let volumes = try await c.client.list(PersistentVolume.self).items
        let attachments = try await c.client.list(VolumeAttachment.self).items
        let disks = try await c.cloud.allDisks()
        // Every remaining claim Bound; none of the deleted ones left.
        guard claims.count == claims.filter({ $0.status.phase == "Bound" }).count, claims.count == Self.claims - Self.deleted else { return false }
        // No orphan PV: every PV belongs to a claim that exists (by uid).
        let uids = Set(claims.compactMap(\.metadata.uid))
        guard volumes.count == claims.count, volumes.allSatisfy({ uids.contains($0.spec.claimRef?.uid ?? "") }) else { return false }
        // No leaked disk: exactly the PVs' disks.
        guard Set(disks.map(\.id)) == Set(volumes.compactMap(\.spec.csi?.volumeHandle)) else { return false }
        // No stuck finalizer: nothing waiting to be deleted.
        guard claims.allSatisfy({ $0.metadata.deletionTimestamp == nil }), volumes.allSatisfy({ $0.metadata.deletionTimestamp == nil }),
              attachments.isEmpty else { return false }
        // Nothing attached any more, now that no pod runs.
        guard disks.allSatisfy({ $0.attachments.filter { $0.state != .detached }.isEmpty }) else { return false }
        return true
    }

    /// Waits for `condition`, failing with what is left after `timeout`.
    func settle(_ what: String, _ c: ProcessCluster, timeout: Duration = .seconds(60), _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if (try? await condition()) == true { return }
            try await Task.sleep(for: .milliseconds(200))
        }
        let claims = (try? await c.client.list(PersistentVolumeClaim.self, namespace: "default").items) ?? []
        let phases = Dictionary(grouping: claims, by: { $0.status.phase ?? "?" }).mapValues(\.count)
        let disks = (try? await c.cloud.allDisks()) ?? []
        let volumes = (try? await c.client.list(PersistentVolume.self).items) ?? []
        let attachments = (try? await c.client.list(VolumeAttachment.self).items) ?? []
        throw TestFailure("""
            not within \(timeout): \(what)
            claims by phase: \(phases); PVs: \(volumes.count) \(Dictionary(grouping: volumes, by: { $0.status.phase ?? "?" }).mapValues(\.count)); \
            disks: \(disks.count); attachments: \(attachments.count) (attached \(attachments.filter { $0.status?.attached == true }.count)); \
            terminating: \(claims.filter { $0.metadata.deletionTimestamp != nil }.map { $0.metadata.name ?? "" } + volumes.filter { $0.metadata.deletionTimestamp != nil }.map { $0.metadata.name ?? "" })
            not bound: \(volumes.filter { $0.status.phase != "Bound" }.map { "\($0.metadata.name ?? ""): \($0.status.phase ?? "") \($0.status.message ?? "") finalizers \($0.metadata.finalizers ?? [])" })
            disks not idle: \(disks.filter { $0.state != .available }.map { "\($0.id) \($0.state) \($0.attachments.map { "\($0.instanceId) \($0.state)" })" })
            controller manager log (last lines): \(c.manager.output.split(separator: "\n").filter { $0.contains("warning") || $0.contains("error") }.suffix(30).joined(separator: "\n"))
            """)
    }
}

/// Kills one of the cluster's processes with SIGKILL and restarts it at once: at random every
/// 1.5–3.5 s (time enough for a restarted process to make progress), and shortly (0.1–0.4 s)
/// after each `enter(phase)`, so that every phase of the workload is hit while its work is in
/// flight. One task does every kill, so two never overlap.
final class Chaos: Sendable {
    enum Target: String, Sendable {
        case controllerManager = "controller-manager"
        case cloud
    }

    struct Kill: Sendable, CustomStringConvertible {
        var phase: String
        var at: Duration
        var description: String { "\(phase)@\(at)" }
    }

    private struct State {
        var phase = "setup"
        var requested: ContinuousClock.Instant?
        var kills: [Kill] = []
        var stopped = false
    }

    let cluster: ProcessCluster
    let target: Target
    private let started = ContinuousClock.now
    private let state = Mutex(State())

    init(_ cluster: ProcessCluster, target: Target) {
        self.cluster = cluster
        self.target = target
    }

    var kills: [Kill] { state.withLock { $0.kills } }

    /// The workload moves to `phase`: a kill is due within 0.1–0.4 s.
    func enter(_ phase: String) {
        let delay = Duration.milliseconds(Int64.random(in: 100...400))
        state.withLock {
            $0.phase = phase
            $0.requested = .now + delay
        }
    }

    /// Ends `run` after the kill in progress, if any, has restarted what it killed.
    func stop() { state.withLock { $0.stopped = true } }

    func run() async {
        var next = ContinuousClock.now + Self.randomInterval()
        while true {
            try? await Task.sleep(for: .milliseconds(25))
            let (stopped, requested) = state.withLock { ($0.stopped, $0.requested) }
            if stopped { return }
            let due = min(next, requested ?? next)
            guard ContinuousClock.now >= due else { continue }
            state.withLock { $0.requested = nil }
            await killAndRestart()
            next = ContinuousClock.now + Self.randomInterval()
        }
    }

    static func randomInterval() -> Duration { .milliseconds(Int64.random(in: 1500...3500)) }

    private func killAndRestart() async {
        let phase = state.withLock { $0.phase }
        let kill = Kill(phase: phase, at: ContinuousClock.now - started)
        switch target {
        case .controllerManager:
            await cluster.manager.kill9()
            state.withLock { $0.kills.append(kill) }
            try? cluster.restartManager()
        case .cloud:
            await cluster.cloudDaemon.kill9()
            state.withLock { $0.kills.append(kill) }
            try? await Task.sleep(for: .milliseconds(200))
            try? cluster.cloudDaemon.start()
            try? await cluster.waitForCloud()
        }
    }
}

/// Polls the cloud and the API server for the one thing that must never happen, not even for a
/// moment: a disk attached, attaching or detaching on two instances at once, or a volume with
/// two VolumeAttachments (every claim here is ReadWriteOnce).
final class ExclusivityMonitor: Sendable {
    let client: KubeClient
    let cloud: CloudClient
    private let state = Mutex<(violations: [String], polls: Int)>(([], 0))

    init(_ cluster: ProcessCluster) throws {
        client = cluster.client
        cloud = try CloudClient(url: "http://127.0.0.1:\(cluster.cloudPort)", keyFile: cluster.root + "/cloud/admin.key")
    }

    var violations: [String] { state.withLock { $0.violations } }
    var polls: Int { state.withLock { $0.polls } }

    func run() async {
        while !Task.isCancelled {
            var found: [String] = []
            var polled = false
            if let disks = try? await cloud.allDisks() {
                polled = true
                for disk in disks {
                    let instances = Set(disk.attachments.filter { $0.state != .detached }.map(\.instanceId))
                    if instances.count > 1 { found.append("disk \(disk.id) on \(instances.sorted())") }
                }
            }
            if let attachments = try? await client.list(VolumeAttachment.self).items {
                let byVolume = Dictionary(grouping: attachments, by: { $0.spec.source.persistentVolumeName ?? "" })
                for (volume, list) in byVolume where list.count > 1 {
                    found.append("volume \(volume) has VolumeAttachments on \(list.map(\.spec.nodeName).sorted())")
                }
            }
            state.withLock {
                $0.violations += found
                if polled { $0.polls += 1 }
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }
}

/// Retries a call the API server refused because it was busy (or a conflict) a few times.
@discardableResult
func retrying<T>(_ body: () async throws -> T) async throws -> T {
    var attempt = 0
    while true {
        do { return try await body() } catch {
            attempt += 1
            if attempt >= 5 { throw error }
            try await Task.sleep(for: .milliseconds(100))
        }
    }
}
