// Crash safety: `kill -9` of the controller manager, and separately of the cloud, at random
// points while 50 claims are provisioned, 50 pods attach and detach their volumes and 20
// claims are deleted; each is restarted at once. Afterwards: every remaining claim Bound, no
// leaked disk (the cloud's API), no orphan PV, no stuck finalizer, no volume attached to two
// instances. The kills are bounded in count and time.
import APIClient
import ClusterAPI
import CloudProvider
import Foundation
import Synchronization
import Testing
import TestSupport

@Suite("Crash safety", .serialized, .enabled(if: processTestsCanRun, "needs root, /dev/loop-control and the built ballast binary"),
       .timeLimit(.minutes(6)))
struct CrashSafetyTests {
    static let claims = 50
    static let deleted = 20

    @Test("kill -9 of the controller manager and of the cloud during provisions, attach/detach cycles and deletions")
    func chaos() async throws {
        try await withCluster(cloudFlags: ["--latency", "create=30ms,attach=30ms,detach=30ms,delete=30ms"],
                              managerFlags: ["--leader-elect=false", "--orphan-grace-period", "5s"]) { c in
            try await c.addNode("node-a")
            try await c.addNode("node-b")
            _ = try await c.client.create(StorageClass(metadata: ObjectMeta(name: "fast"), provisioner: driverName, reclaimPolicy: "Delete",
                                                       volumeBindingMode: "Immediate"))
            let kills = KillLog()
            let chaos = Task { await CrashSafetyTests.chaos(c, kills: kills) }

            // 50 provisions.
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
            // 50 attach/detach cycles: a pod per claim, alternating nodes; attached; deleted; detached.
            for index in 0..<Self.claims {
                var pod = Pod(metadata: ObjectMeta(name: "pod-\(index)", namespace: "default"))
                pod.spec.containers = [Container(name: "app", image: "busybox")]
                pod.spec.volumes = [Volume(name: "data", persistentVolumeClaim: PersistentVolumeClaimVolumeSource(claimName: "claim-\(index)"))]
                pod.spec.nodeName = index % 2 == 0 ? "node-a" : "node-b"
                _ = try await retrying { try await c.client.create(pod) }
            }
            try await settle("every volume attached", c) {
                try await c.client.list(VolumeAttachment.self).items.filter { $0.status?.attached == true }.count == Self.claims
            }
            for index in 0..<Self.claims {
                try await retrying { try await c.client.delete(Pod.self, name: "pod-\(index)", namespace: "default",
                                                               options: DeleteOptions(gracePeriodSeconds: 0)) }
            }
            try await settle("every volume detached", c) { try await c.client.list(VolumeAttachment.self).items.isEmpty }
            // 20 deletions.
            for index in 0..<Self.deleted {
                try await retrying { try await c.client.delete(PersistentVolumeClaim.self, name: "claim-\(index)", namespace: "default") }
            }
            chaos.cancel()
            _ = await chaos.value
            if !c.manager.isRunning { try c.restartManager() }
            if !c.cloudDaemon.isRunning { try c.cloudDaemon.start() }

            // The end state.
            try await settle("the world settles: \(Self.claims - Self.deleted) claims, as many PVs and disks", c, timeout: .seconds(90)) {
                try await Self.invariantsHold(c)
            }
            let record = kills.entries
            #expect(record.filter { $0.hasPrefix("controller-manager") }.count >= 3, "too few kills of the controller manager: \(record)")
            #expect(record.contains { $0.hasPrefix("cloud") }, "the cloud was never killed: \(record)")
        }
    }

    /// Kills at random points: the controller manager every 0.6–2.5 s (at most 8 times), the
    /// cloud every third time (at most 3 times); each restarted at once, for at most 90 s.
    static func chaos(_ c: ProcessCluster, kills: KillLog) async {
        var generator = SystemRandomNumberGenerator()
        let deadline = ContinuousClock.now + .seconds(90)
        var round = 0
        while !Task.isCancelled && ContinuousClock.now < deadline && round < 8 {
            try? await Task.sleep(for: .milliseconds(Int64.random(in: 600...2500, using: &generator)))
            if Task.isCancelled { return }
            round += 1
            if round % 3 == 0 && kills.entries.filter { $0.hasPrefix("cloud") }.count < 3 {
                await c.cloudDaemon.kill9()
                kills.append("cloud #\(round)")
                try? await Task.sleep(for: .milliseconds(300))
                try? c.cloudDaemon.start()
                try? await c.waitForCloud()
            } else {
                await c.manager.kill9()
                kills.append("controller-manager #\(round)")
                try? c.restartManager()
            }
        }
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
        // No volume attached to two instances (or attached at all, now that no pod runs).
        guard disks.allSatisfy({ $0.attachments.filter { $0.state != .detached }.isEmpty }) else { return false }
        return true
    }

    /// Waits for `condition`, failing with what is left after `timeout`.
    func settle(_ what: String, _ c: ProcessCluster, timeout: Duration = .seconds(120), _ condition: () async throws -> Bool) async throws {
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

/// What the chaos killed, in order.
final class KillLog: Sendable {
    private let log = Mutex<[String]>([])
    func append(_ entry: String) { log.withLock { $0.append(entry) } }
    var entries: [String] { log.withLock { $0 } }
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
