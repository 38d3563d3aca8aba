// The StatefulSet controller against the in-process API server, with no kubelet: the tests
// play the kubelet by marking pods Running and Ready, and watch what the controller does next.
import APIClient
import ClusterAPI
import ControllerManager
import Foundation
import Testing

func makeStatefulSet(_ name: String, replicas: Int32, policy: String = "OrderedReady", retention: (String, String)? = nil,
                     partition: Int32? = nil) -> StatefulSet {
    var set = StatefulSet()
    set.metadata = ObjectMeta(name: name, namespace: "default")
    set.spec.replicas = replicas
    set.spec.serviceName = name
    set.spec.podManagementPolicy = policy
    set.spec.selector = LabelSelectorSpec(matchLabels: ["app": name])
    set.spec.template.metadata.labels = ["app": name]
    set.spec.template.spec.terminationGracePeriodSeconds = 0
    set.spec.template.spec.containers = [Container(name: "db", image: "busybox", volumeMounts: [VolumeMount(name: "data", mountPath: "/data")])]
    var claim = PersistentVolumeClaim()
    claim.metadata.name = "data"
    claim.spec = PersistentVolumeClaimSpec(accessModes: ["ReadWriteOnce"],
                                           resources: VolumeResourceRequirements(requests: ["storage": quantity("1Gi")]))
    set.spec.volumeClaimTemplates = [claim]
    if let retention {
        set.spec.persistentVolumeClaimRetentionPolicy = StatefulSetPersistentVolumeClaimRetentionPolicy(whenDeleted: retention.0,
                                                                                                      whenScaled: retention.1)
    }
    if let partition {
        set.spec.updateStrategy = StatefulSetUpdateStrategy(type: "RollingUpdate", rollingUpdate: RollingUpdateStatefulSetStrategy(partition: partition))
    }
    return set
}

extension Harness {
    /// Plays the kubelet: the pod Running with its Ready condition true.
    func markReady(_ name: String) async throws {
        var pod = try await client.get(Pod.self, name: name, namespace: "default")
        pod.status.phase = "Running"
        pod.status.conditions = [PodCondition(type: "Ready", status: "True", lastTransitionTime: Time.now())]
        _ = try await client.updateStatus(pod)
    }

    func podNames(_ prefix: String) async throws -> [String] {
        try await client.list(Pod.self, namespace: "default").items.compactMap(\.metadata.name).filter { $0.hasPrefix(prefix + "-") }.sorted()
    }

    func set(_ name: String) async throws -> StatefulSet { try await client.get(StatefulSet.self, name: name, namespace: "default") }

    /// Changes the set's spec, read afresh until no status write of the controller races it.
    func changeSet(_ name: String, _ change: (inout StatefulSet) -> Void) async throws {
        for _ in 0..<20 {
            var set = try await self.set(name)
            change(&set)
            do {
                _ = try await client.update(set)
                return
            } catch let error as APIError where error.isConflict {
                continue
            }
        }
        throw APIError.transport("the StatefulSet \(name) kept changing")
    }
}

@Suite("StatefulSet controller", .timeLimit(.minutes(2)))
struct StatefulSetControllerTests {
    @Test func orderedReadyMakesOneReplicaAtATimeWithItsIdentityAndClaim() async throws {
        try await withHarness([.statefulSet], csi: false) { h in
            let set = try await h.client.create(makeStatefulSet("web", replicas: 3))
            for ordinal in 0..<3 {
                await h.eventually("web-\(ordinal) made") { try await h.podNames("web").count == ordinal + 1 }
                await h.stays("web-\(ordinal + 1) waits for web-\(ordinal) to be Ready", for: .milliseconds(400)) {
                    try await h.podNames("web").count == ordinal + 1
                }
                try await h.markReady("web-\(ordinal)")
            }
            let pod = try await h.client.get(Pod.self, name: "web-1", namespace: "default")
            #expect(pod.spec.hostname == "web-1" && pod.spec.subdomain == "web")
            #expect(pod.metadata.labels?["statefulset.kubernetes.io/pod-name"] == "web-1")
            #expect(pod.metadata.labels?["apps.kubernetes.io/pod-index"] == "1")
            #expect(pod.spec.volumes?.first { $0.name == "data" }?.persistentVolumeClaim?.claimName == "data-web-1")
            #expect(pod.metadata.ownerReferences == [OwnerReference(apiVersion: "apps/v1", kind: "StatefulSet", name: "web",
                                                                   uid: set.metadata.uid ?? "", controller: true, blockOwnerDeletion: true)])
            let claim = try await h.pvc("data-web-1")
            #expect(claim.metadata.labels?["app"] == "web", "claims carry the set's matchLabels")
            #expect(claim.metadata.ownerReferences == nil, "Retain: the claim has no owner")
            await h.eventually("status counts three ready replicas") {
                let status = try await h.set("web").status
                return status.replicas == 3 && status.readyReplicas == 3 && status.currentReplicas == 3
                    && status.currentRevision == status.updateRevision && !(status.currentRevision ?? "").isEmpty
            }
            #expect(await h.hasEvent("StatefulSet", "web", reason: "SuccessfulCreate", containing: "create Pod web-2 in StatefulSet web successful"))
            #expect(await h.hasEvent("StatefulSet", "web", reason: "SuccessfulCreate", containing: "create Claim data-web-2 Pod web-2 in StatefulSet web success"))

            // Scale down: the highest ordinal first; the claims stay.
            try await h.changeSet("web") { $0.spec.replicas = 1 }
            await h.eventually("web-2 and web-1 removed") { try await h.podNames("web") == ["web-0"] }
            let claims = try await h.client.list(PersistentVolumeClaim.self, namespace: "default").items.compactMap(\.metadata.name).sorted()
            #expect(claims == ["data-web-0", "data-web-1", "data-web-2"])
        }
    }

    @Test func parallelMakesEveryReplicaAtOnceAndRecreatesDeletedOnes() async throws {
        try await withHarness([.statefulSet], csi: false) { h in
            _ = try await h.client.create(makeStatefulSet("burst", replicas: 4, policy: "Parallel"))
            await h.eventually("four replicas without waiting for readiness") {
                try await h.podNames("burst") == ["burst-0", "burst-1", "burst-2", "burst-3"]
            }
            let uid = try await h.client.get(Pod.self, name: "burst-2", namespace: "default").metadata.uid
            try await h.client.delete(Pod.self, name: "burst-2", namespace: "default")
            await h.eventually("burst-2 made again, a new pod with the same name and claim") {
                let pod = try await h.client.get(Pod.self, name: "burst-2", namespace: "default")
                return pod.metadata.uid != uid && pod.spec.volumes?.first?.persistentVolumeClaim?.claimName == "data-burst-2"
            }
            #expect(try await h.client.list(PersistentVolumeClaim.self, namespace: "default").items.count == 4)
        }
    }

    @Test func rollingUpdateStopsAtThePartitionAndRollsBack() async throws {
        try await withHarness([.statefulSet], csi: false) { h in
            _ = try await h.client.create(makeStatefulSet("web", replicas: 3, policy: "Parallel", partition: 1))
            await h.eventually("three replicas") { try await h.podNames("web").count == 3 }
            for ordinal in 0..<3 { try await h.markReady("web-\(ordinal)") }
            await h.eventually("all ready") { try await h.set("web").status.readyReplicas == 3 }
            let first = try await h.set("web").status.currentRevision ?? ""
            try await h.changeSet("web") { $0.spec.template.metadata.annotations = ["rev": "2"] }
            // The controller replaces web-2, then (once it is Ready) web-1; web-0 is below the partition.
            var seen: Set<String> = []
            await h.eventually("web-2 and web-1 on the new revision", timeout: .seconds(20)) {
                let pods = try await h.client.list(Pod.self, namespace: "default").items
                let update = try await h.set("web").status.updateRevision ?? ""
                for pod in pods where pod.revisionLabel == update && pod.status.phase != "Running" {
                    try await h.markReady(pod.metadata.name ?? "")
                    seen.insert(pod.metadata.name ?? "")
                }
                return pods.filter { $0.revisionLabel == update }.map { $0.metadata.name ?? "" }.sorted() == ["web-1", "web-2"]
                    && pods.count == 3
            }
            #expect(try await h.client.get(Pod.self, name: "web-0", namespace: "default").revisionLabel == first)
            #expect(seen.contains("web-2") && seen.contains("web-1"))
            let revisions = try await h.client.list(ControllerRevision.self, namespace: "default").items
            #expect(revisions.count == 2)
            #expect(revisions.allSatisfy { $0.metadata.ownerReferences?.first?.kind == "StatefulSet" })

            // Back to the first template: the first revision is renumbered, not copied.
            try await h.changeSet("web") { $0.spec.template.metadata.annotations = nil }
            await h.eventually("the update revision is the first one again") { try await h.set("web").status.updateRevision == first }
            let renumbered = try await h.client.get(ControllerRevision.self, name: first, namespace: "default")
            #expect(renumbered.revision == 3)
            #expect(try await h.client.list(ControllerRevision.self, namespace: "default").items.count == 2)
        }
    }

    @Test func claimOwnersFollowTheRetentionPolicy() async throws {
        try await withHarness([.statefulSet], csi: false) { h in
            let set = try await h.client.create(makeStatefulSet("cache", replicas: 2, policy: "Parallel", retention: ("Delete", "Delete")))
            await h.eventually("two replicas and their claims") {
                let claims = try await h.client.list(PersistentVolumeClaim.self, namespace: "default").items.count
                let pods = try await h.podNames("cache").count
                return claims == 2 && pods == 2
            }
            let claim = try await h.pvc("data-cache-1")
            #expect(claim.metadata.ownerReferences?.contains { $0.uid == set.metadata.uid && $0.controller != true } == true,
                    "whenDeleted: Delete makes the set an owner of its claims")
            let pod = try await h.client.get(Pod.self, name: "cache-1", namespace: "default")
            try await h.changeSet("cache") { $0.spec.replicas = 1 }
            await h.eventually("cache-1 removed") { try await h.podNames("cache") == ["cache-0"] }
            let after = try await h.pvc("data-cache-1")
            #expect(after.metadata.ownerReferences?.map(\.uid) == [pod.metadata.uid ?? ""],
                    "whenScaled: Delete hands the claim of a removed replica to its pod alone, for the garbage collector")
            #expect(try await h.pvc("data-cache-0").metadata.ownerReferences?.contains { $0.kind == "Pod" } != true)
        }
    }

    @Test func adoptsAnOrphanReplicaAndIgnoresOthers() async throws {
        try await withHarness([.statefulSet], csi: false) { h in
            var orphan = makeStatefulSet("web", replicas: 1).newPodForTest(ordinal: 0)
            orphan.metadata.ownerReferences = nil
            _ = try await h.client.create(orphan)
            var stranger = orphan
            stranger.metadata.name = "web-x"
            _ = try await h.client.create(stranger)
            let set = try await h.client.create(makeStatefulSet("web", replicas: 1))
            await h.eventually("web-0 adopted") {
                try await h.client.get(Pod.self, name: "web-0", namespace: "default").metadata.ownerReferences?.first?.uid == set.metadata.uid
            }
            #expect(try await h.client.get(Pod.self, name: "web-x", namespace: "default").metadata.ownerReferences == nil,
                    "a pod not named as a replica is never adopted")
        }
    }
}

extension Pod {
    var revisionLabel: String? { metadata.labels?["controller-revision-hash"] }
}

extension StatefulSet {
    /// A pod as the set would make it, for a test to create as an orphan.
    func newPodForTest(ordinal: Int) -> Pod {
        var pod = Pod()
        pod.metadata = ObjectMeta(name: "\(metadata.name ?? "")-\(ordinal)", namespace: "default", labels: spec.template.metadata.labels)
        pod.spec = spec.template.spec
        pod.spec.volumes = [Volume(name: "data", persistentVolumeClaim: PersistentVolumeClaimVolumeSource(claimName: "data-\(metadata.name ?? "")-\(ordinal)"))]
        return pod
    }
}
