// The Deployment controller's arithmetic and the ReplicaSet deletion order, alone, as tables
// (upstream's deployment_util_test.go and controller_utils_test.go cases, in spirit).
@testable import ControllerManager
import ClusterAPI
import Foundation
import Testing

@Suite("Deployment arithmetic and pod ranking")
struct WorkloadArithmeticTests {
    @Test("Fenceposts: surge rounds up, unavailability down, both 0 makes unavailability 1", arguments: [
        (IntOrString.string("25%"), IntOrString.string("25%"), Int32(10), Int32(3), Int32(2)),
        (.string("25%"), .string("25%"), 1, 1, 0),
        (.string("0%"), .string("0%"), 10, 0, 1),
        (.int(0), .int(0), 5, 0, 1),
        (.string("100%"), .string("0%"), 3, 3, 0),
        (.string("30%"), .string("30%"), 5, 2, 1),
        (.int(2), .string("50%"), 3, 2, 1),
    ])
    func fenceposts(surge: IntOrString, unavailable: IntOrString, desired: Int32, expectedSurge: Int32, expectedUnavailable: Int32) {
        let resolved = DeploymentUtil.resolveFenceposts(surge: surge, unavailable: unavailable, desired: desired)
        #expect(resolved.surge == expectedSurge && resolved.unavailable == expectedUnavailable)
    }

    static func deployment(replicas: Int32, surge: IntOrString = .string("25%"), unavailable: IntOrString = .string("25%"),
                           statusReplicas: Int32? = nil) -> Deployment {
        var d = Deployment()
        d.spec.replicas = replicas
        d.spec.strategy = DeploymentStrategy(type: "RollingUpdate", rollingUpdate: RollingUpdateDeployment(maxUnavailable: unavailable, maxSurge: surge))
        d.status.replicas = statusReplicas
        return d
    }

    static func replicaSet(_ name: String, _ replicas: Int32, maxReplicas: Int32? = nil, created: Int64 = 0) -> ReplicaSet {
        var rs = ReplicaSet(metadata: ObjectMeta(name: name, uid: name, creationTimestamp: Time(secondsSinceEpoch: 1_800_000_000 + created)))
        rs.spec.replicas = replicas
        if let maxReplicas { rs.metadata.annotations = [DeploymentAnnotation.maxReplicas: String(maxReplicas)] }
        return rs
    }

    @Test("maxUnavailable never exceeds the replicas; 0 for Recreate and for no replicas")
    func maxUnavailable() {
        #expect(DeploymentUtil.maxUnavailable(Self.deployment(replicas: 2, unavailable: .int(5))) == 2)
        #expect(DeploymentUtil.maxUnavailable(Self.deployment(replicas: 0, unavailable: .int(5))) == 0)
        var recreate = Self.deployment(replicas: 4)
        recreate.spec.strategy = DeploymentStrategy(type: "Recreate")
        #expect(DeploymentUtil.maxUnavailable(recreate) == 0 && DeploymentUtil.maxSurge(recreate) == 0)
    }

    @Test("New ReplicaSet growth: within replicas + maxSurge, never past the replicas", arguments: [
        // replicas, surge, old, new, → new size
        (Int32(10), IntOrString.string("25%"), Int32(10), Int32(0), Int32(3)),
        (10, .string("25%"), 8, 3, 5),
        (10, .string("25%"), 13, 0, 0),
        (10, .int(20), 0, 4, 10),
        (4, .int(0), 4, 0, 0),
    ])
    func newReplicas(replicas: Int32, surge: IntOrString, old: Int32, new: Int32, expected: Int32) {
        let d = Self.deployment(replicas: replicas, surge: surge)
        let oldRS = Self.replicaSet("old", old), newRS = Self.replicaSet("new", new, created: 10)
        #expect(DeploymentUtil.newReplicaSetReplicas(d, all: [oldRS, newRS], new: newRS) == expected)
    }

    @Test("Pods still being removed count against the surge (Pass.existingPods)")
    func surgeCountsLeavingPods() {
        let d = Self.deployment(replicas: 4, surge: .int(1), unavailable: .int(0))
        var old = Self.replicaSet("old", 2)
        old.status.replicas = 4  // scaled 4 → 2, its two extra pods not removed yet
        let new = Self.replicaSet("new", 2, created: 10)
        #expect(DeploymentUtil.newReplicaSetReplicas(d, all: [old, new], new: new) == 3)
        #expect(DeploymentUtil.newReplicaSetReplicas(d, all: [old, new], new: new) { max(DeploymentUtil.specReplicas($0), $0.status.replicas) } == 2)
    }

    @Test("Proportions: size × (replicas + surge) / max-replicas, rounded half away from zero, capped by what is left")
    func proportions() {
        // 10 → 20 replicas (surge 3 → 5 at 25%: 13 → 25), rollout half-way at 8 + 5.
        let d = Self.deployment(replicas: 20, surge: .int(3), unavailable: .int(2))
        let old = Self.replicaSet("old", 8, maxReplicas: 13), new = Self.replicaSet("new", 5, maxReplicas: 13, created: 10)
        #expect(DeploymentUtil.replicaSetFraction(old, d) == 6)   // 8·23/13 = 14.15 → 14
        #expect(DeploymentUtil.replicaSetFraction(new, d) == 4)   // 5·23/13 = 8.85 → 9
        #expect(DeploymentUtil.proportion(old, d, toAdd: 10, added: 0) == 6)
        #expect(DeploymentUtil.proportion(new, d, toAdd: 10, added: 6) == 4)
        #expect(DeploymentUtil.proportion(new, d, toAdd: 10, added: 8) == 2)
        // Scaling to zero takes everything.
        let zero = Self.deployment(replicas: 0)
        #expect(DeploymentUtil.replicaSetFraction(old, zero) == -8)
        // Without the annotation, the Deployment's status replicas are the base; none: no share.
        #expect(DeploymentUtil.replicaSetFraction(Self.replicaSet("x", 4), Self.deployment(replicas: 8, surge: .int(0), unavailable: .int(1), statusReplicas: 4)) == 4)
        #expect(DeploymentUtil.replicaSetFraction(Self.replicaSet("x", 4), Self.deployment(replicas: 8)) == 0)
    }

    @Test("Revision annotations: raised above the old ones, the replaced revision kept in revision-history, capped in length")
    func revisions() {
        var d = Self.deployment(replicas: 3)
        d.metadata.annotations = [DeploymentAnnotation.changeCause: "undo", DeploymentAnnotation.lastAppliedConfiguration: "{}",
                                  DeploymentAnnotation.revision: "7"]
        var rs = Self.replicaSet("web-abc", 0)
        rs.metadata.annotations = [DeploymentAnnotation.revision: "2", DeploymentAnnotation.revisionHistory: "1"]
        #expect(DeploymentUtil.setNewReplicaSetAnnotations(d, &rs, newRevision: 5, exists: true))
        #expect(rs.metadata.annotations == [DeploymentAnnotation.revision: "5", DeploymentAnnotation.revisionHistory: "1,2",
                                            DeploymentAnnotation.changeCause: "undo"])
        #expect(!DeploymentUtil.setNewReplicaSetAnnotations(d, &rs, newRevision: 5, exists: true), "nothing changes a second time")
        var fresh = Self.replicaSet("web-new", 0)
        #expect(DeploymentUtil.setNewReplicaSetAnnotations(d, &fresh, newRevision: 1, exists: false))
        #expect(fresh.metadata.annotations?[DeploymentAnnotation.desiredReplicas] == "3")
        #expect(fresh.metadata.annotations?[DeploymentAnnotation.maxReplicas] == "4")
        #expect(fresh.metadata.annotations?[DeploymentAnnotation.revisionHistory] == nil)
        var long = Self.replicaSet("web-long", 0)
        long.metadata.annotations = [DeploymentAnnotation.revision: "9", DeploymentAnnotation.revisionHistory: "1,2,3,4"]
        _ = DeploymentUtil.setNewReplicaSetAnnotations(d, &long, newRevision: 10, exists: true, historyLimit: 8)
        #expect(long.metadata.annotations?[DeploymentAnnotation.revisionHistory] == "2,3,4,9")  // "1," dropped to fit 8 characters
    }

    @Test("The template hash: stable, blind to the hash label, changed by the template and by collisionCount")
    func templateHash() {
        var template = PodTemplateSpec(metadata: ObjectMeta(labels: ["app": "web"]))
        template.spec.containers = [Container(name: "app", image: "nginx:1.27")]
        let hash = DeploymentUtil.podTemplateHash(template, collisionCount: nil)
        #expect(hash == DeploymentUtil.podTemplateHash(template, collisionCount: nil))
        #expect(hash.allSatisfy { "bcdfghjklmnpqrstvwxz2456789".contains($0) } && (1...10).contains(hash.count))
        #expect(hash != DeploymentUtil.podTemplateHash(template, collisionCount: 1))
        #expect(DeploymentUtil.podTemplateHash(template, collisionCount: 1) != DeploymentUtil.podTemplateHash(template, collisionCount: 2))
        var other = template
        other.spec.containers[0].image = "nginx:1.28"
        #expect(hash != DeploymentUtil.podTemplateHash(other, collisionCount: nil))
        var labelled = template
        labelled.metadata.labels?["pod-template-hash"] = hash
        #expect(DeploymentUtil.equalIgnoringHash(labelled, template))
        #expect(!DeploymentUtil.equalIgnoringHash(other, template))
        var emptied = template
        emptied.metadata.annotations = [:]
        #expect(DeploymentUtil.equalIgnoringHash(emptied, template), "an empty map is no map")
    }

    static func pod(_ name: String, node: String? = nil, phase: String = "Running", ready: Bool = false, readySince: Int64 = 0,
                    restarts: Int64 = 0, created: Int64 = 0, cost: Int32? = nil) -> Pod {
        var pod = Pod(metadata: ObjectMeta(name: name, uid: name, creationTimestamp: Time(secondsSinceEpoch: 1_800_000_000 + created)))
        if let cost { pod.metadata.annotations = ["controller.kubernetes.io/pod-deletion-cost": String(cost)] }
        pod.spec.nodeName = node
        pod.status.phase = phase
        pod.status.conditions = [PodCondition(type: "Ready", status: ready ? "True" : "False",
                                              lastTransitionTime: Time(secondsSinceEpoch: 1_800_000_000 + readySince))]
        pod.status.containerStatuses = [["name": "app", "restartCount": .integer(restarts)]]
        return pod
    }

    @Test("Deletion order: unassigned, phase, readiness, deletion cost, doubled-up nodes, ready time, restarts, age", arguments: [
        ([pod("assigned", node: "a"), pod("unassigned")], ["unassigned", "assigned"]),
        ([pod("running", node: "a"), pod("unknown", node: "a", phase: "Unknown"), pod("pending", node: "a", phase: "Pending")],
         ["pending", "unknown", "running"]),
        ([pod("ready", node: "a", ready: true), pod("notready", node: "a")], ["notready", "ready"]),
        ([pod("dear", node: "a", cost: 100), pod("cheap", node: "a", cost: -5)], ["cheap", "dear"]),
        ([pod("alone", node: "b"), pod("crowded", node: "a")], ["crowded", "alone"]),
        // Ready for 1 s vs 1000 s: the more recently ready goes first.
        ([pod("old", node: "c", ready: true, readySince: 1000 - 1000), pod("new", node: "d", ready: true, readySince: 1000 - 1)],
         ["new", "old"]),
        ([pod("calm", node: "c"), pod("flappy", node: "d", restarts: 7)], ["flappy", "calm"]),
        ([pod("elder", node: "c", created: 0), pod("young", node: "d", created: 999)], ["young", "elder"]),
    ])
    func deletionOrder(_ pods: [Pod], _ expected: [String]) {
        // Node "a" holds two more active pods of the family than "b" (rank).
        let related = pods + [Self.pod("x1", node: "a"), Self.pod("x2", node: "a")]
        let ranked = RankedPods(pods, related: related, now: Time(secondsSinceEpoch: 1_800_001_000)).sorted()
        #expect(ranked.compactMap(\.metadata.name) == expected)
    }

    @Test("Ready times in the same power of two of age are ordered by uid, not by the second")
    func logarithmicBuckets() {
        let now = Time(secondsSinceEpoch: 1_800_001_000)
        // Ready 100 s and 101 s ago: the same bucket (2^36 ns ≈ 68.7 s … 137 s).
        let a = Self.pod("b-pod", node: "n", ready: true, readySince: 900), b = Self.pod("a-pod", node: "m", ready: true, readySince: 899)
        #expect(RankedPods([a, b], related: [], now: now).sorted().compactMap(\.metadata.name) == ["a-pod", "b-pod"])
    }

    @Test("Status: fully labelled, ready, available after minReadySeconds; ReplicaFailure set on a failure and cleared after")
    func replicaSetStatus() {
        var rs = ReplicaSet(metadata: ObjectMeta(name: "web", generation: 2))
        rs.spec.replicas = 4
        rs.spec.minReadySeconds = 10
        rs.spec.template = PodTemplateSpec(metadata: ObjectMeta(labels: ["app": "web", "tier": "front"]))
        let now = Time(secondsSinceEpoch: 1_800_001_000)
        var partial = Self.pod("p1", ready: true, readySince: 995)       // ready 5 s: not available
        partial.metadata.labels = ["app": "web"]
        var full = Self.pod("p2", ready: true, readySince: 900)          // ready 100 s: available
        full.metadata.labels = ["app": "web", "tier": "front"]
        let failed = ReplicaSetController.calculateStatus(rs, pods: [partial, full], manageError: WorkloadError("quota"), now: now)
        #expect(failed.replicas == 2 && failed.fullyLabeledReplicas == 1 && failed.readyReplicas == 2 && failed.availableReplicas == 1)
        #expect(failed.conditions?.first?.reason == "FailedCreate" && failed.conditions?.first?.message == "quota")
        rs.status = failed
        let healed = ReplicaSetController.calculateStatus(rs, pods: [partial, full], manageError: nil, now: now)
        #expect(healed.conditions == nil)
    }
}
