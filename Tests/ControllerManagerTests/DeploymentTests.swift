// The Deployment controller (with the ReplicaSet controller) against the real API handler; pods
// made Ready by the test in the kubelet's place.
import APIClient
import ClusterAPI
import ControllerManager
import Foundation
import Testing

@Suite("Deployment controller", .serialized, .timeLimit(.minutes(5)))
struct DeploymentTests {
    /// Waits until the Deployment's rollout is done as `kubectl rollout status` judges it.
    static func rolledOut(_ h: WorkloadHarness, _ name: String, timeout: Duration = .seconds(30),
                          sourceLocation: SourceLocation = #_sourceLocation) async {
        await h.eventually("deployment \(name) rolled out", timeout: timeout, sourceLocation: sourceLocation) {
            let d = try await h.deployment(name)
            let replicas = d.spec.replicas ?? 1
            return (d.status.observedGeneration ?? 0) >= (d.metadata.generation ?? 0) && (d.status.updatedReplicas ?? 0) == replicas
                && (d.status.replicas ?? 0) == replicas && (d.status.availableReplicas ?? 0) == replicas
        }
    }

    @Test("A ReplicaSet <name>-<pod-template-hash>, its label and selector, revision and replica annotations, conditions and events")
    func firstRollout() async throws {
        try await withWorkloads { h in
            h.startKubelet()
            var d = makeDeployment("web", replicas: 3)
            d.metadata.annotations = ["kubernetes.io/change-cause": "first", "team": "storage"]
            let created = try await h.client.create(d)
            await Self.rolledOut(h, "web")
            let sets = try await h.replicaSets(of: "web")
            #expect(sets.count == 1)
            let rs = try #require(sets.first)
            let hash = try #require(rs.metadata.labels?["pod-template-hash"])
            #expect(rs.metadata.name == "web-\(hash)")
            #expect(hash.count >= 6 && hash.allSatisfy { "bcdfghjklmnpqrstvwxz2456789".contains($0) })
            #expect(rs.spec.selector?.matchLabels == ["app": "web", "pod-template-hash": hash])
            #expect(rs.spec.template?.metadata.labels == ["app": "web", "pod-template-hash": hash])
            let ref = try #require(rs.metadata.ownerReferences?.first)
            #expect(ref.kind == "Deployment" && ref.uid == created.metadata.uid && ref.controller == true && ref.blockOwnerDeletion == true)
            let annotations = rs.metadata.annotations ?? [:]
            #expect(annotations["deployment.kubernetes.io/revision"] == "1")
            #expect(annotations["deployment.kubernetes.io/desired-replicas"] == "3")
            #expect(annotations["deployment.kubernetes.io/max-replicas"] == "4")  // 25% of 3, rounded up
            #expect(annotations["kubernetes.io/change-cause"] == "first" && annotations["team"] == "storage")
            let now = try await h.deployment("web")
            #expect(now.metadata.annotations?["deployment.kubernetes.io/revision"] == "1")
            let available = now.status.conditions?.first { $0.type == "Available" }
            #expect(available?.status == "True" && available?.reason == "MinimumReplicasAvailable")
            await h.eventually("Progressing NewReplicaSetAvailable") {
                let progressing = try await h.deployment("web").status.conditions?.first { $0.type == "Progressing" }
                return progressing?.status == "True" && progressing?.reason == "NewReplicaSetAvailable"
                    && progressing?.message == "ReplicaSet \"web-\(hash)\" has successfully progressed."
            }
            #expect(await h.hasEvent("Deployment", "web", reason: "ScalingReplicaSet", containing: "Scaled up replica set web-\(hash) to 3"))
            // The pods carry the hash too, and belong to the ReplicaSet.
            let pods = try await h.pods(ownedBy: rs.metadata.uid ?? "")
            #expect(pods.count == 3 && pods.allSatisfy { $0.metadata.labels?["pod-template-hash"] == hash })
        }
    }

    struct Bounds: Sendable, CustomTestStringConvertible {
        var replicas: Int32
        var surge: IntOrString
        var unavailable: IntOrString
        /// What the percentages resolve to (surge rounded up, unavailability down).
        var maxPods: Int
        var minReady: Int
        var testDescription: String { "\(replicas) replicas, maxSurge \(surge), maxUnavailable \(unavailable)" }
    }

    @Test("RollingUpdate never exceeds maxSurge nor maxUnavailable at any moment a pods watch shows", arguments: [
        Bounds(replicas: 10, surge: .string("25%"), unavailable: .string("25%"), maxPods: 13, minReady: 8),
        Bounds(replicas: 4, surge: .int(1), unavailable: .int(0), maxPods: 5, minReady: 4),
        Bounds(replicas: 4, surge: .int(0), unavailable: .int(1), maxPods: 4, minReady: 3),
        Bounds(replicas: 5, surge: .string("30%"), unavailable: .string("30%"), maxPods: 7, minReady: 4),
    ])
    func rollingBounds(_ bounds: Bounds) async throws {
        try await withWorkloads { h in
            h.startKubelet(delay: .milliseconds(30))
            _ = try await h.client.create(makeDeployment("web", replicas: bounds.replicas,
                                                         strategy: rolling(surge: bounds.surge, unavailable: bounds.unavailable)))
            await Self.rolledOut(h, "web")
            let census = try await PodCensus.start(h.client, selector: "app=web")
            defer { census.stop() }
            try await h.modifyDeployment("web") { $0.spec.template.spec.containers[0].image = "nginx:1.28" }
            await Self.rolledOut(h, "web")
            try await Task.sleep(for: .milliseconds(200))
            #expect(census.maxActive <= bounds.maxPods, "\(census.maxActive) pods at once, over replicas + maxSurge = \(bounds.maxPods)")
            #expect(census.minReady >= bounds.minReady, "\(census.minReady) ready pods at once, under replicas − maxUnavailable = \(bounds.minReady)")
            #expect(census.samples > Int(bounds.replicas) * 2, "the watch saw the rollout")
            let sets = try await h.replicaSets(of: "web")
            #expect(sets.count == 2)
            #expect(sets.map { $0.spec.replicas ?? -1 } == [0, bounds.replicas])
            #expect(sets.last?.metadata.annotations?["deployment.kubernetes.io/revision"] == "2")
            #expect(try await h.deployment("web").metadata.annotations?["deployment.kubernetes.io/revision"] == "2")
            let old = try #require(sets.first?.metadata.name), new = try #require(sets.last?.metadata.name)
            #expect(await h.hasEvent("Deployment", "web", reason: "ScalingReplicaSet", containing: "Scaled down replica set \(old) to"))
            #expect(await h.hasEvent("Deployment", "web", reason: "ScalingReplicaSet", containing: "Scaled up replica set \(new) to"))
        }
    }

    @Test("Recreate: the old pods are all gone before the new ReplicaSet's first pod")
    func recreate() async throws {
        try await withWorkloads { h in
            h.startKubelet()
            _ = try await h.client.create(makeDeployment("db", replicas: 3, strategy: DeploymentStrategy(type: "Recreate")))
            await Self.rolledOut(h, "db")
            let census = try await PodCensus.start(h.client, selector: "app=db")
            defer { census.stop() }
            try await h.modifyDeployment("db") { $0.spec.template.spec.containers[0].image = "postgres:17" }
            await Self.rolledOut(h, "db")
            try await Task.sleep(for: .milliseconds(200))
            #expect(census.maxOwners == 1, "pods of two ReplicaSets existed at once")
            #expect(census.maxActive == 3)
            let sets = try await h.replicaSets(of: "db")
            #expect(sets.map { $0.spec.replicas ?? -1 } == [0, 3])
        }
    }

    @Test("Rollback by changing the template back: the first ReplicaSet is reused with revision 3 and revision-history 1")
    func rollbackByTemplate() async throws {
        try await withWorkloads { h in
            h.startKubelet()
            _ = try await h.client.create(makeDeployment("web", replicas: 2))
            await Self.rolledOut(h, "web")
            let first = try #require(try await h.replicaSets(of: "web").first)
            try await h.modifyDeployment("web") { $0.spec.template.spec.containers[0].image = "nginx:1.28" }
            await Self.rolledOut(h, "web")
            try await h.modifyDeployment("web") { $0.spec.template.spec.containers[0].image = "nginx:1.27" }
            await Self.rolledOut(h, "web")
            await h.eventually("the first ReplicaSet is the new one again, at revision 3") {
                let sets = try await h.replicaSets(of: "web")
                guard sets.count == 2, let again = sets.first(where: { $0.metadata.uid == first.metadata.uid }) else { return false }
                let revision = try await h.deployment("web").metadata.annotations?["deployment.kubernetes.io/revision"]
                return again.spec.replicas == 2 && again.metadata.annotations?["deployment.kubernetes.io/revision"] == "3"
                    && again.metadata.annotations?["deployment.kubernetes.io/revision-history"] == "1" && revision == "3"
            }
            let pods = try await h.activePods("app=web")
            #expect(pods.count == 2 && pods.allSatisfy { $0.spec.containers.first?.image == "nginx:1.27" })
        }
    }

    @Test("revisionHistoryLimit: old ReplicaSets beyond it are deleted, lowest revision first")
    func historyLimit() async throws {
        try await withWorkloads { h in
            h.startKubelet()
            _ = try await h.client.create(makeDeployment("web", replicas: 1, revisionHistoryLimit: 1))
            await Self.rolledOut(h, "web")
            for version in 1...3 {
                try await h.modifyDeployment("web") { $0.spec.template.spec.containers[0].image = "nginx:1.\(27 + version)" }
                await Self.rolledOut(h, "web")
            }
            await h.eventually("the new ReplicaSet and one old one") {
                let revisions = try await h.replicaSets(of: "web").compactMap { $0.metadata.annotations?["deployment.kubernetes.io/revision"] }
                return revisions.sorted() == ["3", "4"]
            }
        }
    }

    @Test("Paused: a template change makes no ReplicaSet, scaling still applies; resumed, the rollout proceeds")
    func paused() async throws {
        try await withWorkloads { h in
            h.startKubelet()
            _ = try await h.client.create(makeDeployment("web", replicas: 2))
            await Self.rolledOut(h, "web")
            try await h.modifyDeployment("web") {
                $0.spec.paused = true
                $0.spec.template.spec.containers[0].image = "nginx:1.28"
            }
            await h.eventually("Progressing Unknown DeploymentPaused") {
                let progressing = try await h.deployment("web").status.conditions?.first { $0.type == "Progressing" }
                return progressing?.status == "Unknown" && progressing?.reason == "DeploymentPaused" && progressing?.message == "Deployment is paused"
            }
            try await h.modifyDeployment("web") { $0.spec.replicas = 4 }
            await h.eventually("the old ReplicaSet scaled to 4") {
                try await h.replicaSets(of: "web").map { $0.spec.replicas ?? -1 } == [4]
            }
            await h.stays("still one ReplicaSet", for: .seconds(1)) { try await h.replicaSets(of: "web").count == 1 }
            try await h.modifyDeployment("web") { $0.spec.paused = false }
            await Self.rolledOut(h, "web")
            await h.eventually("rolled to the new template") {
                let pods = try await h.activePods("app=web")
                let sets = try await h.replicaSets(of: "web")
                return pods.count == 4 && pods.allSatisfy { $0.spec.containers.first?.image == "nginx:1.28" } && sets.count == 2
            }
        }
    }

    @Test("Scaling mid-rollout is proportional: both ReplicaSets grow, together up to replicas + maxSurge")
    func proportionalScaling() async throws {
        try await withWorkloads { h in
            // Only the first template's pods ever become ready: the rollout stays half-way.
            h.startKubelet { $0.spec.containers.first?.image == "nginx:1.27" }
            _ = try await h.client.create(makeDeployment("web", replicas: 10, strategy: rolling(surge: .int(3), unavailable: .int(2))))
            await Self.rolledOut(h, "web")
            try await h.modifyDeployment("web") { $0.spec.template.spec.containers[0].image = "nginx:1.28" }
            // Old 8 (10 − 2 unavailable), new 5 (13 − 8): stuck, the new pods never ready.
            await h.eventually("stuck half-way at 8 + 5") { try await h.replicaSets(of: "web").map { $0.spec.replicas ?? -1 } == [8, 5] }
            try await h.modifyDeployment("web") { $0.spec.replicas = 20 }
            // 20 + 3 surge = 23; 10 more split by size over max-replicas 13: old 8·23/13 ≈ 14.2 → +6,
            // new 5·23/13 ≈ 8.8 → +4 (and no leftover).
            await h.eventually("scaled proportionally to 14 + 9") { try await h.replicaSets(of: "web").map { $0.spec.replicas ?? -1 } == [14, 9] }
            let sets = try await h.replicaSets(of: "web")
            #expect(sets.allSatisfy { $0.metadata.annotations?["deployment.kubernetes.io/desired-replicas"] == "20"
                && $0.metadata.annotations?["deployment.kubernetes.io/max-replicas"] == "23" })
        }
    }

    @Test("progressDeadlineSeconds: a rollout without progress is ProgressDeadlineExceeded")
    func progressDeadline() async throws {
        try await withWorkloads { h in
            h.startKubelet { $0.spec.containers.first?.image == "nginx:1.27" }
            _ = try await h.client.create(makeDeployment("web", replicas: 2, progressDeadlineSeconds: 2))
            await Self.rolledOut(h, "web")
            try await h.modifyDeployment("web") { $0.spec.template.spec.containers[0].image = "nginx:broken" }
            await h.eventually("ProgressDeadlineExceeded", timeout: .seconds(15)) {
                let progressing = try await h.deployment("web").status.conditions?.first { $0.type == "Progressing" }
                return progressing?.status == "False" && progressing?.reason == "ProgressDeadlineExceeded"
                    && progressing?.message?.hasSuffix("has timed out progressing.") == true
            }
            // Still available: the old pods stay within maxUnavailable.
            let available = try await h.deployment("web").status.conditions?.first { $0.type == "Available" }
            #expect(available?.status == "True")
        }
    }

    @Test("A name taken by a ReplicaSet it does not own: collisionCount is raised and another name used")
    func hashCollision() async throws {
        try await withWorkloads { h in
            h.startKubelet()
            var d = makeDeployment("web", replicas: 1)
            d.spec.template = (try await h.client.create(d)).spec.template  // as defaulted by the server
            await Self.rolledOut(h, "web")
            let taken = try #require(try await h.replicaSets(of: "web").first)
            // Replace it, controllers stopped, by an unowned one of the same name and another template.
            await h.stopManager()
            try await h.client.delete(ReplicaSet.self, name: taken.metadata.name ?? "", namespace: "default")
            for pod in try await h.activePods("app=web") { try await h.client.delete(Pod.self, name: pod.metadata.name ?? "", namespace: "default") }
            var squatter = makeReplicaSet(taken.metadata.name ?? "", replicas: 0, labels: ["app": "other"])
            squatter.metadata.labels = ["app": "other"]
            _ = try await h.client.create(squatter)
            await h.restartManager()
            await h.eventually("collisionCount 1, a ReplicaSet of another name, rolled out") {
                let now = try await h.deployment("web")
                let sets = try await h.replicaSets(of: "web")
                return now.status.collisionCount == 1 && sets.count == 1 && sets.first?.metadata.name != taken.metadata.name
                    && now.status.availableReplicas == 1 && now.status.updatedReplicas == 1
            }
            #expect(try await h.replicaSet(taken.metadata.name ?? "").metadata.labels == ["app": "other"], "the squatter was left alone")
        }
    }
}
