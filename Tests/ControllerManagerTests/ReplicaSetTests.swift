// The ReplicaSet controller against the real API handler: counting and scaling, status,
// expectations under a lagging pods watch, a restart, adoption and release, the deletion order,
// terminating pods, and refused creations (ReplicaFailure).
import APIClient
import ClusterAPI
import ControllerManager
import Foundation
import HTTPKit
import Testing

@Suite("ReplicaSet controller", .serialized, .timeLimit(.minutes(3)))
struct ReplicaSetTests {
    @Test("Pods from the template, owned, counted; scaled up and down; status and events as upstream")
    func scaling() async throws {
        try await withWorkloads([.replicaSet]) { h in
            let rs = try await h.client.create(makeReplicaSet("web", replicas: 3))
            let uid = rs.metadata.uid ?? ""
            await h.eventually("3 pods") { try await h.activePods("app=web").count == 3 }
            let pods = try await h.activePods("app=web")
            for pod in pods {
                #expect(pod.metadata.name?.hasPrefix("web-") == true)
                #expect(pod.metadata.generateName == "web-")
                #expect(pod.metadata.annotations?["team"] == "storage")
                let ref = try #require(pod.metadata.ownerReferences?.first)
                #expect(ref.kind == "ReplicaSet" && ref.apiVersion == "apps/v1" && ref.name == "web" && ref.uid == uid)
                #expect(ref.controller == true && ref.blockOwnerDeletion == true)
            }
            await h.eventually("status: 3 replicas, 3 fully labelled, generation observed") {
                let status = try await h.replicaSet("web").status
                return status.replicas == 3 && status.fullyLabeledReplicas == 3 && status.observedGeneration == 1
            }
            #expect(await h.hasEvent("ReplicaSet", "web", reason: "SuccessfulCreate", containing: "Created pod: web-"))
            for pod in pods { try await h.makeReady(pod) }
            await h.eventually("3 ready and available") {
                let status = try await h.replicaSet("web").status
                return status.readyReplicas == 3 && status.availableReplicas == 3
            }
            try await h.modifyReplicaSet("web") { $0.spec.replicas = 5 }
            await h.eventually("5 pods") { try await h.activePods("app=web").count == 5 }
            try await h.modifyReplicaSet("web") { $0.spec.replicas = 1 }
            await h.eventually("1 pod, status 1, generation 3 observed") {
                let status = try await h.replicaSet("web").status
                return try await h.activePods("app=web").count == 1 && status.replicas == 1 && status.observedGeneration == 3
            }
            // The 2 pods that were never ready went first: the one left is one of the ready three.
            let left = try await h.activePods("app=web")
            let allReady = left.allSatisfy { $0.isReadyForTest }
            #expect(allReady)
            #expect(await h.hasEvent("ReplicaSet", "web", reason: "SuccessfulDelete", containing: "Deleted pod: web-"))
            try await h.modifyReplicaSet("web") { $0.spec.replicas = 0 }
            await h.eventually("no pods, status 0") {
                let replicas = try await h.replicaSet("web").status.replicas
                return try await h.activePods("app=web").isEmpty && replicas == 0
            }
            await h.stays("no pod comes back", for: .seconds(1)) { try await h.activePods("app=web").isEmpty }
        }
    }

    @Test("minReadySeconds: ready pods become available only after it")
    func minReadySeconds() async throws {
        try await withWorkloads([.replicaSet]) { h in
            _ = try await h.client.create(makeReplicaSet("slow", replicas: 2, minReadySeconds: 2))
            await h.eventually("2 pods") { try await h.activePods("app=web").count == 2 }
            let readyAt = ContinuousClock.now
            for pod in try await h.activePods("app=web") { try await h.makeReady(pod) }
            await h.eventually("2 ready, none available yet") {
                let status = try await h.replicaSet("slow").status
                return status.readyReplicas == 2 && (status.availableReplicas ?? 0) == 0
            }
            await h.eventually("2 available", timeout: .seconds(10)) { try await h.replicaSet("slow").status.availableReplicas == 2 }
            // Ready condition times are whole seconds: available no earlier than ~1 s after.
            #expect(ContinuousClock.now - readyAt >= .seconds(1))
        }
    }

    @Test("Expectations: a pods watch lagging by seconds, with a ReplicaSet synced every 50 ms, creates each pod once; without them it would not")
    func laggingWatch() async throws {
        // The control: expectations that expire at once behave as if there were none.
        try await withWorkloads([.replicaSet], configure: {
            $0.resync = .milliseconds(50)
            $0.replicaSetExpectationsTimeout = .zero
        }) { h in
            h.faults.podWatchDelay = .milliseconds(400)
            _ = try await h.client.create(makeReplicaSet("web", replicas: 5))
            await h.eventually("more than 5 pods were made", timeout: .seconds(15)) { try await h.activePods("app=web").count > 5 }
        }
        try await withWorkloads([.replicaSet], configure: { $0.resync = .milliseconds(50) }) { h in
            h.faults.podWatchDelay = .milliseconds(400)
            let census = try await PodCensus.start(h.client, selector: "app=web")
            defer { census.stop() }
            _ = try await h.client.create(makeReplicaSet("web", replicas: 5))
            await h.eventually("5 pods") { try await h.activePods("app=web").count == 5 }
            // Many more syncs while the informer still shows fewer: touch the ReplicaSet too.
            for round in 0..<10 {
                try await h.modifyReplicaSet("web") { $0.metadata.annotations = ["touch": "\(round)"] }
                try await Task.sleep(for: .milliseconds(100))
            }
            await h.eventually("the controller's status counts 5") { try await h.replicaSet("web").status.replicas == 5 }
            await h.stays("still 5", for: .seconds(1)) { try await h.activePods("app=web").count == 5 }
            #expect(census.maxActive == 5)
            #expect(h.faults.podCreateAttempts == 5)
        }
    }

    @Test("A restarted controller starts from its lists: no extra pod, and it still repairs")
    func restart() async throws {
        try await withWorkloads([.replicaSet]) { h in
            _ = try await h.client.create(makeReplicaSet("web", replicas: 4))
            await h.eventually("4 pods") { try await h.activePods("app=web").count == 4 }
            let before = h.faults.podCreateAttempts
            await h.restartManager()
            await h.stays("4 pods after the restart", for: .seconds(2)) { try await h.activePods("app=web").count == 4 }
            #expect(h.faults.podCreateAttempts == before)
            let victim = try #require(try await h.activePods("app=web").first)
            try await h.client.delete(Pod.self, name: victim.metadata.name ?? "", namespace: "default")
            await h.eventually("replaced") {
                let pods = try await h.activePods("app=web")
                return pods.count == 4 && !pods.contains { $0.metadata.name == victim.metadata.name }
            }
        }
    }

    @Test("Adoption of a matching orphan (counted, not duplicated); release of a pod whose labels no longer match (replaced)")
    func adoptionAndRelease() async throws {
        try await withWorkloads([.replicaSet]) { h in
            var orphan = Pod(metadata: ObjectMeta(name: "stray", namespace: "default", labels: ["app": "web"]))
            orphan.spec.containers = [Container(name: "app", image: "nginx:1.27")]
            _ = try await h.client.create(orphan)
            let rs = try await h.client.create(makeReplicaSet("web", replicas: 2))
            await h.eventually("the orphan adopted, one pod made") {
                let stray = try await h.client.get(Pod.self, name: "stray", namespace: "default")
                let ref = stray.metadata.ownerReferences?.first
                let count = try await h.activePods("app=web").count
                return ref?.uid == rs.metadata.uid && ref?.controller == true && ref?.blockOwnerDeletion == true && count == 2
            }
            await h.stays("still 2", for: .seconds(1)) { try await h.activePods("app=web").count == 2 }
            // Relabel one: it no longer matches, is released, and replaced.
            for attempt in 1... {
                var stray = try await h.client.get(Pod.self, name: "stray", namespace: "default")
                stray.metadata.labels = ["app": "debug"]
                do {
                    _ = try await h.client.update(stray)
                    break
                } catch let error as APIError where error.isConflict && attempt < 10 { continue }
            }
            await h.eventually("released and replaced") {
                let stray = try await h.client.get(Pod.self, name: "stray", namespace: "default")
                let count = try await h.activePods("app=web").count
                return (stray.metadata.ownerReferences ?? []).isEmpty && count == 2
            }
            // A pod another controller owns is never taken.
            var foreign = Pod(metadata: ObjectMeta(name: "foreign", namespace: "default", labels: ["app": "web"], ownerReferences: [
                OwnerReference(apiVersion: "apps/v1", kind: "ReplicaSet", name: "other", uid: "00000000-0000-0000-0000-000000000001",
                               controller: true)]))
            foreign.spec.containers = [Container(name: "app", image: "nginx:1.27")]
            _ = try await h.client.create(foreign)
            await h.stays("the foreign pod keeps its owner and does not count", for: .seconds(1)) {
                let pod = try await h.client.get(Pod.self, name: "foreign", namespace: "default")
                let owned = try await h.pods(ownedBy: rs.metadata.uid ?? "").count
                return pod.metadata.ownerReferences?.first?.name == "other" && owned == 2
            }
        }
    }

    @Test("Scaling down deletes in upstream's order: unassigned, then pending, then not ready, then ready")
    func deletionOrder() async throws {
        try await withWorkloads([.replicaSet]) { h in
            _ = try await h.client.create(makeReplicaSet("web", replicas: 4))
            await h.eventually("4 pods") { try await h.activePods("app=web").count == 4 }
            // Give the pods distinct states: a, b assigned and Running (b ready); c assigned and
            // Pending; d unassigned. Deletion order: d, c, a, b.
            let names = try await h.activePods("app=web").compactMap(\.metadata.name).sorted()
            func set(_ name: String, node: String?, phase: String, ready: Bool) async throws {
                if let node {
                    try await h.client.send(.POST, "/api/v1/namespaces/default/pods/\(name)/binding", json: JSONValue.object([
                        "apiVersion": "v1", "kind": "Binding", "metadata": .object(["name": .string(name)]),
                        "target": .object(["kind": "Node", "name": .string(node)])]).jsonData).checkOK()
                }
                var pod = try await h.client.get(Pod.self, name: name, namespace: "default")
                pod.status.phase = phase
                pod.status.conditions = [PodCondition(type: "Ready", status: ready ? "True" : "False", lastTransitionTime: Time.now())]
                _ = try await h.client.updateStatus(pod)
            }
            try await set(names[0], node: "node-a", phase: "Running", ready: false)
            try await set(names[1], node: "node-b", phase: "Running", ready: true)
            try await set(names[2], node: "node-a", phase: "Pending", ready: false)
            try await set(names[3], node: nil, phase: "Pending", ready: false)
            try await Task.sleep(for: .milliseconds(300))
            let steps: [(replicas: Int32, left: [String])] = [(3, [names[0], names[1], names[2]]), (2, [names[0], names[1]]), (1, [names[1]])]
            for step in steps {
                try await h.modifyReplicaSet("web") { $0.spec.replicas = step.replicas }
                await h.eventually("down to \(step.replicas): \(step.left) left") {
                    try await h.activePods("app=web").compactMap(\.metadata.name).sorted() == step.left
                }
            }

        }
    }

    @Test("A terminating pod is not counted: its replacement is made while it terminates")
    func terminatingPods() async throws {
        try await withWorkloads([.replicaSet]) { h in
            _ = try await h.client.create(makeReplicaSet("web", replicas: 2))
            await h.eventually("2 pods") { try await h.activePods("app=web").count == 2 }
            let victim = try #require(try await h.activePods("app=web").first?.metadata.name)
            // Bound to a node, a deleted pod waits for its kubelet (none here): it stays terminating.
            try await h.client.send(.POST, "/api/v1/namespaces/default/pods/\(victim)/binding", json: JSONValue.object([
                "apiVersion": "v1", "kind": "Binding", "metadata": .object(["name": .string(victim)]),
                "target": .object(["kind": "Node", "name": "node-a"])]).jsonData).checkOK()
            try await h.client.delete(Pod.self, name: victim, namespace: "default")
            await h.eventually("2 active pods besides the terminating one; status 2") {
                let all = try await h.client.list(Pod.self, namespace: "default", labelSelector: "app=web").items
                let terminating = all.filter { $0.metadata.deletionTimestamp != nil }
                let replicas = try await h.replicaSet("web").status.replicas
                return terminating.map(\.metadata.name) == [victim] && all.filter(\.isActiveForTest).count == 2 && replicas == 2
            }
        }
    }

    @Test("Refused creations: FailedCreate in upstream's words, slow start (one attempt per sync), ReplicaFailure until they succeed")
    func refusedCreations() async throws {
        try await withWorkloads([.replicaSet]) { h in
            let quota = "pods \"web-\" is forbidden: exceeded quota: compute, requested: pods=1, used: pods=0, limited: pods=0"
            h.faults.podCreateRefusal = quota
            _ = try await h.client.create(makeReplicaSet("web", replicas: 8))
            await h.eventually("ReplicaFailure FailedCreate with the API server's message") {
                let condition = try await h.replicaSet("web").status.conditions?.first { $0.type == "ReplicaFailure" }
                return condition?.status == "True" && condition?.reason == "FailedCreate" && condition?.message == quota
            }
            #expect(await h.hasEvent("ReplicaSet", "web", reason: "FailedCreate", containing: "Error creating: \(quota)"))
            // Slow start: each failing sync tried one pod (a first batch of 1), not eight; the
            // syncs come back with a growing back-off.
            let attempts = h.faults.podCreateAttempts
            #expect(attempts >= 1 && attempts < 8, "\(attempts) creations attempted by the time the failure was reported")
            h.faults.podCreateRefusal = nil
            await h.eventually("8 pods, condition gone") {
                let status = try await h.replicaSet("web").status
                return try await h.activePods("app=web").count == 8 && status.conditions == nil
            }
        }
    }
}

extension HTTPResponse {
    /// Throws unless 2xx.
    func checkOK() throws {
        guard (200..<300).contains(status.code) else {
            throw APIError.transport("HTTP \(status.code): \(String(decoding: body, as: UTF8.self))")
        }
    }
}
