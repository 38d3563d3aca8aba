// The garbage collector against the real API handler in process: cascades in the background,
// in the foreground (the owner waits for its blocking dependents, a bound pod's grace period
// included) and orphaning; a dependent of two owners; owners that never existed; references
// across namespaces; a restart in the middle; a resource discovered later.
import APIClient
import APIServerTesting
import ClusterAPI
import Foundation
import Logging
import Synchronization
import Testing
@testable import ControllerManager

/// An ownerReference to `object`.
private func reference<T: APIObject>(to object: T, block: Bool? = nil, controller: Bool? = nil) -> OwnerReference {
    OwnerReference(apiVersion: T.defaultAPIVersion, kind: T.defaultKind, name: object.metadata.name ?? "",
                   uid: object.metadata.uid ?? "", controller: controller, blockOwnerDeletion: block)
}

private func configMap(_ name: String, namespace: String = "default", owners: [OwnerReference] = [],
                       finalizers: [String]? = nil) -> ConfigMap {
    ConfigMap(metadata: ObjectMeta(name: name, namespace: namespace, ownerReferences: owners.isEmpty ? nil : owners,
                                   finalizers: finalizers), data: ["k": "v"])
}

private func secret(_ name: String, owners: [OwnerReference]) -> Secret {
    Secret(metadata: ObjectMeta(name: name, namespace: "default", ownerReferences: owners), stringData: ["k": "v"])
}

private func pod(_ name: String, owners: [OwnerReference], node: String? = nil) -> Pod {
    var pod = makePod(name, claims: [], node: node)
    pod.metadata.ownerReferences = owners
    return pod
}

private func withCollector(workers: Int = 4, _ body: (Harness) async throws -> Void) async throws {
    try await withHarness([.garbageCollector], csi: false, configure: { $0.garbageCollectorWorkers = workers }, body)
}

extension Harness {
    func configMapRefs(_ name: String, namespace: String = "default") async throws -> [String] {
        try await client.get(ConfigMap.self, name: name, namespace: namespace).metadata.ownerReferences?.map(\.name) ?? []
    }
}

@Suite("Garbage collector", .timeLimit(.minutes(3)))
struct GarbageCollectorTests {
    @Test("Background: the owner goes at once, then its dependents of every kind, and theirs")
    func backgroundCascade() async throws {
        try await withCollector { h in
            let owner = try await h.client.create(configMap("app"))
            let child = try await h.client.create(configMap("app-config", owners: [reference(to: owner)]))
            _ = try await h.client.create(secret("app-secret", owners: [reference(to: owner, controller: true)]))
            _ = try await h.client.create(pod("app-pod", owners: [reference(to: owner, block: true, controller: true)]))
            _ = try await h.client.create(secret("grandchild", owners: [reference(to: child)]))
            _ = try await h.client.create(configMap("unrelated"))
            try await h.client.delete(ConfigMap.self, name: "app", namespace: "default")
            #expect(await !h.exists(ConfigMap.self, "app", namespace: "default"), "Background deletes the owner at once")
            await h.eventually("every dependent, and the dependent's dependent, collected", timeout: .seconds(20)) {
                let left = [await h.exists(ConfigMap.self, "app-config", namespace: "default"),
                            await h.exists(Secret.self, "app-secret", namespace: "default"),
                            await h.exists(Pod.self, "app-pod", namespace: "default"),
                            await h.exists(Secret.self, "grandchild", namespace: "default")]
                return !left.contains(true)
            }
            #expect(await h.exists(ConfigMap.self, "unrelated", namespace: "default"))
        }
    }

    @Test("Foreground: the owner stays with foregroundDeletion until its blocking dependents are gone (a bound pod's grace period too), then goes")
    func foregroundCascade() async throws {
        try await withCollector { h in
            let owner = try await h.client.create(configMap("web"))
            _ = try await h.client.create(pod("web-0", owners: [reference(to: owner, block: true, controller: true)], node: "node-a"))
            _ = try await h.client.create(configMap("web-blocking", owners: [reference(to: owner, block: true)]))
            _ = try await h.client.create(configMap("web-loose", owners: [reference(to: owner, block: false)]))
            try await h.client.delete(ConfigMap.self, name: "web", namespace: "default", options: DeleteOptions(propagationPolicy: .foreground))
            let deleting = try await h.client.get(ConfigMap.self, name: "web", namespace: "default")
            #expect(deleting.metadata.deletionTimestamp != nil)
            #expect(deleting.metadata.finalizers == [GarbageCollector.foregroundDeletion])
            await h.eventually("the dependents deleted: config maps gone, the bound pod terminating", timeout: .seconds(20)) {
                let pod = try await h.client.get(Pod.self, name: "web-0", namespace: "default")
                let blocking = await h.exists(ConfigMap.self, "web-blocking", namespace: "default")
                let loose = await h.exists(ConfigMap.self, "web-loose", namespace: "default")
                return pod.metadata.deletionTimestamp != nil && !blocking && !loose
            }
            // The pod's kubelet has not confirmed yet: the owner must wait for it.
            await h.stays("the owner waits for its terminating pod") {
                let web = try await h.client.get(ConfigMap.self, name: "web", namespace: "default")
                return web.metadata.finalizers == [GarbageCollector.foregroundDeletion]
            }
            try await h.client.delete(Pod.self, name: "web-0", namespace: "default", options: DeleteOptions(gracePeriodSeconds: 0))
            await h.eventually("the owner gone once its last blocking dependent went", timeout: .seconds(20)) {
                !(await h.exists(ConfigMap.self, "web", namespace: "default"))
            }
        }
    }

    @Test("apps/v1 owners: a Deployment deleted in the foreground waits for its ReplicaSet, deleted in the foreground as it has pods, which waits for them")
    func appsChainInTheForeground() async throws {
        try await withCollector { h in
            let template = PodTemplateSpec(metadata: ObjectMeta(labels: ["app": "web"]), spec: makePod("template", claims: []).spec)
            var deployment = Deployment(metadata: ObjectMeta(name: "web", namespace: "default"))
            deployment.spec.selector = LabelSelectorSpec(matchLabels: ["app": "web"])
            deployment.spec.template = template
            deployment = try await h.client.create(deployment)
            var replicaSet = ReplicaSet(metadata: ObjectMeta(name: "web-1", namespace: "default",
                                                             ownerReferences: [reference(to: deployment, block: true, controller: true)]))
            replicaSet.spec.selector = LabelSelectorSpec(matchLabels: ["app": "web"])
            replicaSet.spec.template = template
            replicaSet = try await h.client.create(replicaSet)
            for index in 0..<3 {
                _ = try await h.client.create(pod("web-1-\(index)", owners: [reference(to: replicaSet, block: true, controller: true)], node: "node-a"))
            }
            try await h.client.delete(Deployment.self, name: "web", namespace: "default", options: DeleteOptions(propagationPolicy: .foreground))
            await h.eventually("the ReplicaSet deleted in the foreground, its pods terminating", timeout: .seconds(20)) {
                let set = try await h.client.get(ReplicaSet.self, name: "web-1", namespace: "default")
                let pods = try await h.client.list(Pod.self, namespace: "default").items
                return set.metadata.finalizers == [GarbageCollector.foregroundDeletion] && pods.count == 3
                    && pods.allSatisfy { $0.metadata.deletionTimestamp != nil }
            }
            await h.stays("the Deployment and the ReplicaSet wait for the pods") {
                let deploymentWaits = await h.exists(Deployment.self, "web", namespace: "default")
                let setWaits = await h.exists(ReplicaSet.self, "web-1", namespace: "default")
                return deploymentWaits && setWaits
            }
            for index in 0..<3 {
                try await h.client.delete(Pod.self, name: "web-1-\(index)", namespace: "default", options: DeleteOptions(gracePeriodSeconds: 0))
            }
            await h.eventually("the ReplicaSet, then the Deployment, gone", timeout: .seconds(20)) {
                let set = await h.exists(ReplicaSet.self, "web-1", namespace: "default")
                let owner = await h.exists(Deployment.self, "web", namespace: "default")
                return !set && !owner
            }
        }
    }

    @Test("Orphan: the owner goes, its dependents live on without the reference (and keep their other owners')")
    func orphan() async throws {
        try await withCollector { h in
            let owner = try await h.client.create(configMap("owner"))
            let other = try await h.client.create(configMap("other"))
            _ = try await h.client.create(configMap("child", owners: [reference(to: owner, block: true)]))
            _ = try await h.client.create(secret("child-secret", owners: [reference(to: owner)]))
            _ = try await h.client.create(configMap("shared", owners: [reference(to: owner), reference(to: other)]))
            try await h.client.delete(ConfigMap.self, name: "owner", namespace: "default", options: DeleteOptions(propagationPolicy: .orphan))
            await h.eventually("the owner gone after its orphan finalizer", timeout: .seconds(20)) {
                !(await h.exists(ConfigMap.self, "owner", namespace: "default"))
            }
            #expect(try await h.configMapRefs("child").isEmpty)
            let secretReferences = try await h.client.get(Secret.self, name: "child-secret", namespace: "default").metadata.ownerReferences
            #expect(secretReferences ?? [] == [])
            #expect(try await h.configMapRefs("shared") == ["other"])
            await h.stays("orphans are never collected") {
                let child = await h.exists(ConfigMap.self, "child", namespace: "default")
                let secret = await h.exists(Secret.self, "child-secret", namespace: "default")
                let shared = await h.exists(ConfigMap.self, "shared", namespace: "default")
                return child && secret && shared
            }
        }
    }

    @Test("A dependent of two owners: one deleted, the dependent loses that reference and lives")
    func twoOwners() async throws {
        try await withCollector { h in
            let first = try await h.client.create(configMap("first"))
            let second = try await h.client.create(configMap("second"))
            _ = try await h.client.create(configMap("both", owners: [reference(to: first, block: true), reference(to: second)]))
            try await h.client.delete(ConfigMap.self, name: "first", namespace: "default")
            await h.eventually("the dangling reference removed", timeout: .seconds(20)) {
                try await h.configMapRefs("both") == ["second"]
            }
            await h.stays("the dependent with a living owner stays") { await h.exists(ConfigMap.self, "both", namespace: "default") }
            // Its last owner goes: now it goes too.
            try await h.client.delete(ConfigMap.self, name: "second", namespace: "default")
            await h.eventually("collected with its last owner", timeout: .seconds(20)) {
                !(await h.exists(ConfigMap.self, "both", namespace: "default"))
            }
        }
    }

    @Test("An ownerReference to a uid that never existed: collected; a living namesake with another uid does not count")
    func ownerThatNeverExisted() async throws {
        try await withCollector { h in
            let ghost = OwnerReference(apiVersion: "v1", kind: "ConfigMap", name: "ghost", uid: UUID().uuidString.lowercased())
            _ = try await h.client.create(configMap("haunted", owners: [ghost]))
            _ = try await h.client.create(configMap("impostor"))
            let stale = OwnerReference(apiVersion: "v1", kind: "ConfigMap", name: "impostor", uid: UUID().uuidString.lowercased())
            _ = try await h.client.create(configMap("fooled", owners: [stale]))
            await h.eventually("both dependents collected", timeout: .seconds(20)) {
                let haunted = await h.exists(ConfigMap.self, "haunted", namespace: "default")
                let fooled = await h.exists(ConfigMap.self, "fooled", namespace: "default")
                return !haunted && !fooled
            }
            #expect(await h.exists(ConfigMap.self, "impostor", namespace: "default"))
        }
    }

    @Test("References across namespaces: looked up in the dependent's namespace only; OwnerRefInvalidNamespace; a cluster-scoped object naming a namespaced kind is left alone")
    func crossNamespaceReferences() async throws {
        try await withCollector { h in
            _ = try await h.client.create(Namespace(metadata: ObjectMeta(name: "other")))
            let owner = try await h.client.create(configMap("real-owner", namespace: "other"))
            _ = try await h.client.create(configMap("legit", namespace: "other", owners: [reference(to: owner)]))
            // Names the owner's uid from another namespace: not its owner there.
            _ = try await h.client.create(configMap("stray", namespace: "default", owners: [reference(to: owner)]))
            var storageClass = makeClass("odd")
            storageClass.metadata.ownerReferences = [reference(to: owner)]
            _ = try await h.client.create(storageClass)
            await h.eventually("the stray dependent collected", timeout: .seconds(20)) {
                !(await h.exists(ConfigMap.self, "stray", namespace: "default"))
            }
            await h.eventually("OwnerRefInvalidNamespace reported on the stray dependent", timeout: .seconds(10)) {
                await h.hasEvent("ConfigMap", "stray", reason: "OwnerRefInvalidNamespace", containing: "does not exist in namespace \"default\"")
            }
            await h.eventually("OwnerRefInvalidNamespace reported on the cluster-scoped object", timeout: .seconds(10)) {
                await h.hasEvent("StorageClass", "odd", reason: "OwnerRefInvalidNamespace")
            }
            await h.stays("the real owner, its real dependent and the cluster-scoped object untouched") {
                let owner = await h.exists(ConfigMap.self, "real-owner", namespace: "other")
                let legit = await h.exists(ConfigMap.self, "legit", namespace: "other")
                let odd = await h.exists(StorageClass.self, "odd")
                return owner && legit && odd
            }
        }
    }

    @Test("Restarts: killed in the middle of a cascade, and down while owners are deleted in each mode; the new one rebuilds from lists and finishes")
    func restartMidway() async throws {
        try await withCollector(workers: 1) { h in
            let big = try await h.client.create(configMap("big"))
            let count = 200
            for index in 0..<count {
                _ = try await h.client.create(configMap("big-\(index)", owners: [reference(to: big, block: true)]))
            }
            func left() async throws -> Int {
                try await h.client.list(ConfigMap.self, namespace: "default").items.filter { $0.metadata.name?.hasPrefix("big-") == true }.count
            }
            try await h.client.delete(ConfigMap.self, name: "big", namespace: "default")
            await h.eventually("the cascade under way", timeout: .seconds(20)) { try await left() < count }
            await h.stopManager()
            let remaining = try await left()
            try await h.restartManager()
            await h.eventually("the cascade finished by the new instance", timeout: .seconds(30)) { try await left() == 0 }
            #expect(remaining > 0, "the first instance was to be stopped in the middle of the cascade")

            // Down: owners deleted in each mode, and a dependent made for an owner that is gone.
            let background = try await h.client.create(configMap("bg"))
            let foreground = try await h.client.create(configMap("fg"))
            let orphaning = try await h.client.create(configMap("orph"))
            _ = try await h.client.create(configMap("bg-child", owners: [reference(to: background)]))
            _ = try await h.client.create(configMap("fg-child", owners: [reference(to: foreground, block: true)]))
            _ = try await h.client.create(configMap("orph-child", owners: [reference(to: orphaning, block: true)]))
            await h.stopManager()
            try await h.client.delete(ConfigMap.self, name: "bg", namespace: "default")
            try await h.client.delete(ConfigMap.self, name: "fg", namespace: "default", options: DeleteOptions(propagationPolicy: .foreground))
            try await h.client.delete(ConfigMap.self, name: "orph", namespace: "default", options: DeleteOptions(propagationPolicy: .orphan))
            await h.stays("nothing happens while the collector is down", for: .milliseconds(500)) {
                let child = await h.exists(ConfigMap.self, "bg-child", namespace: "default")
                let foreground = await h.exists(ConfigMap.self, "fg", namespace: "default")
                let orphaning = await h.exists(ConfigMap.self, "orph", namespace: "default")
                return child && foreground && orphaning
            }
            try await h.restartManager()
            await h.eventually("background: the child collected", timeout: .seconds(30)) {
                !(await h.exists(ConfigMap.self, "bg-child", namespace: "default"))
            }
            await h.eventually("foreground: the child, then the owner, gone", timeout: .seconds(30)) {
                let child = await h.exists(ConfigMap.self, "fg-child", namespace: "default")
                let owner = await h.exists(ConfigMap.self, "fg", namespace: "default")
                return !child && !owner
            }
            await h.eventually("orphan: the owner gone, the child without its reference", timeout: .seconds(30)) {
                let owner = await h.exists(ConfigMap.self, "orph", namespace: "default")
                let references = try await h.configMapRefs("orph-child")
                return !owner && references.isEmpty
            }
        }
    }

    @Test("A resource that appears in discovery later is watched from the next discovery on")
    func resourceDiscoveredLater() async throws {
        try await InProcessAPIServer.with { api in
            let client = api.client()
            let all = try await client.serverPreferredResources()
            #expect(all.resources.contains { $0.name == "secrets" })
            let secretsServed = Mutex(false)
            var logger = Logger(label: "test.gc")
            logger.logLevel = .warning
            let recorder = EventRecorder(client: client, component: GarbageCollector.eventSource, logger: logger)
            let collector = GarbageCollector(client: client, recorder: recorder, workers: 2, resync: .seconds(1),
                                             discoveryPeriod: .milliseconds(300), logger: logger) {
                var found = try await client.serverPreferredResources()
                if !secretsServed.withLock({ $0 }) { found.resources.removeAll { $0.name == "secrets" } }
                return found
            }
            let running = Task { await collector.run() }
            defer { running.cancel() }
            let owner = try await client.create(configMap("owner"))
            _ = try await client.create(secret("dependent", owners: [reference(to: owner)]))
            _ = try await client.create(configMap("config-dependent", owners: [reference(to: owner)]))
            try await client.delete(ConfigMap.self, name: "owner", namespace: "default")
            let configGone = await waitFor(.seconds(20)) { (try? await client.get(ConfigMap.self, name: "config-dependent", namespace: "default")) == nil }
            #expect(configGone)
            // Secrets are not served (as far as the collector knows): the secret is not seen.
            try await Task.sleep(for: .seconds(1))
            #expect((try? await client.get(Secret.self, name: "dependent", namespace: "default")) != nil)
            secretsServed.withLock { $0 = true }
            let secretGone = await waitFor(.seconds(20)) { (try? await client.get(Secret.self, name: "dependent", namespace: "default")) == nil }
            #expect(secretGone, "the secret's resource was discovered and watched, and its dangling dependent collected")
            running.cancel()
            await running.value
        }
    }

    @Test("The graph: dependents by uid, foreground and orphan transitions, unblocked owners, deletions")
    func graphBookkeeping() {
        let graph = DependencyGraph()
        let configMaps = APIResource(group: "", version: "v1", name: "configmaps", kind: "ConfigMap", namespaced: true, verbs: [])
        func object(_ name: String, uid: String, owners: [OwnerReference] = [], deleting: Bool = false, finalizers: [String]? = nil) -> PartialObjectMetadata {
            PartialObjectMetadata(metadata: ObjectMeta(name: name, namespace: "default", uid: uid, deletionTimestamp: deleting ? Time.now() : nil,
                                                       ownerReferences: owners, finalizers: finalizers))
        }
        let ownerRef = OwnerReference(apiVersion: "v1", kind: "ConfigMap", name: "o", uid: "o-uid", blockOwnerDeletion: true)
        // A dependent of an owner not seen yet: the owner is to be verified.
        var changes = graph.observe(.added(object("d", uid: "d-uid", owners: [ownerRef])), resource: configMaps)
        #expect(changes.attemptToDelete == ["o-uid"])
        changes = graph.observe(.added(object("o", uid: "o-uid")), resource: configMaps)
        #expect(changes.isEmpty)
        #expect(graph.blockingDependents(of: "o-uid").map(\.identity.name) == ["d"])
        // The owner starts waiting for its dependents: the dependents, then the owner.
        let deleting = object("o", uid: "o-uid", deleting: true, finalizers: ["foregroundDeletion"])
        changes = graph.observe(.updated(old: object("o", uid: "o-uid"), new: deleting), resource: configMaps)
        #expect(changes.attemptToDelete == ["d-uid", "o-uid"])
        #expect(graph.node("o-uid")?.deletingDependents == true)
        // The dependent stops blocking: the owner is looked at again.
        var loose = ownerRef
        loose.blockOwnerDeletion = false
        changes = graph.observe(.updated(old: object("d", uid: "d-uid", owners: [ownerRef]), new: object("d", uid: "d-uid", owners: [loose])),
                                resource: configMaps)
        #expect(changes.attemptToDelete == ["o-uid"])
        #expect(graph.blockingDependents(of: "o-uid").isEmpty)
        // The owner goes: its dependents are looked at, and it is known absent.
        changes = graph.observe(.deleted(deleting), resource: configMaps)
        #expect(changes.attemptToDelete == ["d-uid"])
        #expect(changes.absent.map(\.name) == ["o"])
        // Orphan: a resync of an owner still waiting asks again.
        let orphaning = object("p", uid: "p-uid", deleting: true, finalizers: ["orphan"])
        #expect(graph.observe(.added(orphaning), resource: configMaps).attemptToOrphan == ["p-uid"])
        #expect(graph.observe(.updated(old: orphaning, new: orphaning), resource: configMaps).attemptToOrphan.isEmpty)
        #expect(graph.observe(.resync(orphaning), resource: configMaps).attemptToOrphan == ["p-uid"])
        // A dependent in another namespace than its observed owner: reported, and verified.
        var stray = object("s", uid: "s-uid", owners: [OwnerReference(apiVersion: "v1", kind: "ConfigMap", name: "p", uid: "p-uid")])
        stray.metadata.namespace = "elsewhere"
        changes = graph.observe(.added(stray), resource: configMaps)
        #expect(changes.invalidNamespace.map(\.dependent.name) == ["s"])
        #expect(changes.attemptToDelete == ["s-uid"])
    }
}

private func waitFor(_ timeout: Duration, _ condition: () async -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(50))
    }
    return false
}
