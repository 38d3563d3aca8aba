// Kubernetes' e2e StatefulSet suite as storage users drive it (test/e2e/apps/statefulset.go),
// plus a Deployment's rollout and a Job on real kubelets:
// kubectl against `ballast up`, busybox replicas that each write an identity of their own to
// their own volume once, then read it back after scaling, rolling updates and moves. The
// scenarios that can share a cluster run on the storage suites' one; moving a replica (a
// cordoned node) and killing the controller manager get a cluster of their own.
import ClusterTesting
import Foundation
import HostSystem
import Testing
import TestSupport

enum WorkloadScenario: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case statefulSetKeepsEachReplicasData, claimRetentionDelete, pythonClient, deploymentRollout, jobCompletions
    var testDescription: String { rawValue }
}

/// A StatefulSet of busybox replicas with one claim template `data` mounted at /data. Each
/// replica writes `<hostname> <random>` to /data/identity the first time it starts, then sleeps.
func statefulSetYAML(_ name: String, replicas: Int, policy: String = "OrderedReady", extraSpec: String = "",
                     templateSpec: String = "") -> String {
    """
    apiVersion: apps/v1
    kind: StatefulSet
    metadata: {name: \(name)}
    spec:
      serviceName: \(name)
      replicas: \(replicas)
      podManagementPolicy: \(policy)
      selector: {matchLabels: {app: \(name)}}
    \(extraSpec)  template:
        metadata: {labels: {app: \(name)}}
        spec:
          terminationGracePeriodSeconds: 1
    \(templateSpec)      containers:
          - name: db
            image: busybox
            command: ["sh", "-c", "[ -s /data/identity ] || { echo $HOSTNAME $RANDOM$RANDOM > /data/identity; sync; }; exec sleep 3600"]
            volumeMounts: [{name: data, mountPath: /data}]
      volumeClaimTemplates:
      - metadata: {name: data}
        spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 32Mi}}}

    """
}

extension TestCluster {
    /// Waits until the set reports `replicas` ready replicas and exactly that many pods exist.
    @discardableResult
    func waitSetReady(_ name: String, replicas: Int, namespace: String, timeout: Duration = .seconds(180),
                      sourceLocation: SourceLocation = #_sourceLocation) async -> Bool {
        await waitFor("StatefulSet \(name) with \(replicas) ready replicas", namespace: namespace, timeout: timeout,
                      sourceLocation: sourceLocation) {
            let ready = await get("statefulset/" + name, namespace: namespace, "{.status.readyReplicas}")
            let pods = await get("pods", namespace: namespace, "{.items[*].metadata.name}").split(separator: " ")
            return (ready == String(replicas) || (replicas == 0 && ready.isEmpty))
                && pods.filter({ $0.hasPrefix(name + "-") }).count == replicas
        }
    }

    /// The identity each replica wrote, by pod name.
    func replicaIDs(_ name: String, ordinals: Range<Int>, namespace: String) async throws -> [String: String] {
        var ids: [String: String] = [:]
        for ordinal in ordinals {
            let pod = "\(name)-\(ordinal)"
            ids[pod] = try await ok(["exec", "-n", namespace, pod, "--", "cat", "/data/identity"])
        }
        return ids
    }
}

@Suite("end-to-end workloads", .enabled(if: endToEndCanRun), .timeLimit(.minutes(10)))
struct WorkloadTests {
    @Test(arguments: WorkloadScenario.allCases)
    func scenario(_ scenario: WorkloadScenario) async throws {
        try await sharedCluster.with { cluster in
            let ns = try await cluster.namespace("e2e-wl-" + scenario.rawValue.lowercased())
            switch scenario {
            case .statefulSetKeepsEachReplicasData: try await statefulSetKeepsEachReplicasData(cluster, ns)
            case .claimRetentionDelete: try await claimRetentionDelete(cluster, ns)
            case .pythonClient: try await pythonClient(cluster, ns)
            case .deploymentRollout: try await deploymentRollout(cluster, ns)
            case .jobCompletions: try await jobCompletions(cluster, ns)
            }
        }
    }

    /// The README's StatefulSet (fixtures/statefulset/kv.yaml, renamed db): three replicas made
    /// in order, each with its own claim; scaled to 1 and back to 3, replicas 1 and 2 find their
    /// own data; a rolling update with a partition changes only the replicas at or above it,
    /// then all of them, and `kubectl rollout status` returns.
    func statefulSetKeepsEachReplicasData(_ cluster: TestCluster, _ ns: String) async throws {
        let fixture = try String(contentsOf: packageRoot.appendingPathComponent("fixtures/statefulset/kv.yaml"), encoding: .utf8)
        try await cluster.apply(fixture.replacingOccurrences(of: "kv", with: "db"), namespace: ns)
        guard await cluster.waitSetReady("db", replicas: 3, namespace: ns) else { return }
        let ids = try await cluster.replicaIDs("db", ordinals: 0..<3, namespace: ns)
        for ordinal in 0..<3 {
            #expect(ids["db-\(ordinal)"]?.hasPrefix("db-\(ordinal) first started ") == true, "db-\(ordinal) wrote its own identity: \(ids)")
        }
        #expect(Set(ids.values).count == 3, "three volumes, three identities")
        // OrderedReady: each replica was made only once the one before it was Ready.
        for ordinal in 1..<3 {
            let previousReady = await cluster.get("pod/db-\(ordinal - 1)", namespace: ns,
                                                  "{.status.conditions[?(@.type==\"Ready\")].lastTransitionTime}")
            let created = await cluster.get("pod/db-\(ordinal)", namespace: ns, "{.metadata.creationTimestamp}")
            #expect(!previousReady.isEmpty && created >= previousReady, "db-\(ordinal) created at \(created), db-\(ordinal - 1) Ready at \(previousReady)")
        }
        #expect(await cluster.get("pvc", namespace: ns, "{.items[*].metadata.name}") == "data-db-0 data-db-1 data-db-2")

        try await cluster.ok(["scale", "-n", ns, "statefulset/db", "--replicas=1"])
        guard await cluster.waitSetReady("db", replicas: 1, namespace: ns) else { return }
        #expect(await cluster.get("pvc", namespace: ns, "{.items[*].metadata.name}") == "data-db-0 data-db-1 data-db-2",
                "scaling down keeps the claims (whenScaled: Retain)")
        try await cluster.ok(["scale", "-n", ns, "statefulset/db", "--replicas=3"])
        guard await cluster.waitSetReady("db", replicas: 3, namespace: ns) else { return }
        #expect(try await cluster.replicaIDs("db", ordinals: 0..<3, namespace: ns) == ids, "replicas 1 and 2 came back to their own data")

        // Rolling update with partition 2: only db-2 moves to the new revision.
        let oldRevision = await cluster.get("statefulset/db", namespace: ns, "{.status.currentRevision}")
        try await cluster.ok(["patch", "-n", ns, "statefulset/db", "-p",
                              #"{"spec":{"updateStrategy":{"rollingUpdate":{"partition":2}},"template":{"metadata":{"annotations":{"rev":"2"}}}}}"#])
        guard await cluster.waitFor("db-2 on the new revision", namespace: ns, {
            let update = await cluster.get("statefulset/db", namespace: ns, "{.status.updateRevision}")
            let podRevision = await cluster.get("pod/db-2", namespace: ns, "{.metadata.labels.controller-revision-hash}")
            let ready = await cluster.get("statefulset/db", namespace: ns, "{.status.readyReplicas}")
            return update != oldRevision && podRevision == update && ready == "3"
        }) else { return }
        for ordinal in 0..<2 {
            #expect(await cluster.get("pod/db-\(ordinal)", namespace: ns, "{.metadata.labels.controller-revision-hash}") == oldRevision,
                    "db-\(ordinal) is below the partition")
        }
        try await cluster.ok(["patch", "-n", ns, "statefulset/db", "-p", #"{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}"#])
        try await cluster.ok(["rollout", "status", "-n", ns, "statefulset/db", "--timeout=150s"], timeout: .seconds(160))
        let update = await cluster.get("statefulset/db", namespace: ns, "{.status.updateRevision}")
        #expect(await cluster.get("pods", namespace: ns, "{.items[*].metadata.labels.controller-revision-hash}") == "\(update) \(update) \(update)")
        #expect(await cluster.get("statefulset/db", namespace: ns, "{.status.currentRevision}") == update)
        #expect(try await cluster.replicaIDs("db", ordinals: 0..<3, namespace: ns) == ids, "the rolling update kept every replica's data")
        #expect(try await cluster.ok(["get", "controllerrevisions", "-n", ns]).contains("statefulset.apps/db"))
    }

    /// A Deployment of busybox on real kubelets: rollout status returns, a template change rolls
    /// out a second ReplicaSet, undo goes back to the first, scale changes the pod count; then
    /// deleted with `--cascade=foreground`, it goes only after its ReplicaSets and pods.
    func deploymentRollout(_ cluster: TestCluster, _ ns: String) async throws {
        let deployment = """
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: web}
            spec:
              replicas: 2
              selector: {matchLabels: {app: web}}
              template:
                metadata: {labels: {app: web}}
                spec:
                  terminationGracePeriodSeconds: 1
                  containers: [{name: web, image: busybox, command: ["sh", "-c", "exec sleep 3600"]}]

            """
        try await cluster.apply(deployment, namespace: ns)
        try await cluster.ok(["rollout", "status", "-n", ns, "deployment/web", "--timeout=150s"], timeout: .seconds(160))
        let first = await cluster.get("deployment/web", namespace: ns, "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}")
        #expect(first == "1")
        try await cluster.ok(["patch", "-n", ns, "deployment/web", "-p", #"{"spec":{"template":{"metadata":{"annotations":{"rev":"2"}}}}}"#])
        try await cluster.ok(["rollout", "status", "-n", ns, "deployment/web", "--timeout=150s"], timeout: .seconds(160))
        #expect(await cluster.get("replicasets", namespace: ns, "{.items[*].spec.replicas}").split(separator: " ").sorted() == ["0", "2"],
                "the old ReplicaSet scaled to 0, the new one to 2")
        let history = try await cluster.ok(["rollout", "history", "-n", ns, "deployment/web"])
        #expect(history.contains("1 ") && history.contains("2 "), "\(history)")
        try await cluster.ok(["rollout", "undo", "-n", ns, "deployment/web"])
        try await cluster.ok(["rollout", "status", "-n", ns, "deployment/web", "--timeout=150s"], timeout: .seconds(160))
        #expect(await cluster.get("deployment/web", namespace: ns, "{.spec.template.metadata.annotations.rev}") == "", "undo restored the first template")
        try await cluster.ok(["scale", "-n", ns, "deployment/web", "--replicas=3"])
        try await cluster.ok(["rollout", "status", "-n", ns, "deployment/web", "--timeout=150s"], timeout: .seconds(160))
        #expect(await cluster.get("deployment/web", namespace: ns, "{.status.readyReplicas}") == "3")
        try await cluster.ok(["delete", "-n", ns, "deployment/web", "--cascade=foreground", "--timeout=120s"], timeout: .seconds(130))
        await cluster.waitFor("the Deployment's ReplicaSets and pods gone with it", namespace: ns) {
            let sets = await cluster.get("replicasets", namespace: ns, "{.items[*].metadata.name}")
            let pods = await cluster.get("pods", namespace: ns, "{.items[*].metadata.name}")
            return sets.isEmpty && pods.isEmpty
        }
    }

    /// A Job of 5 completions with parallelism 2 on real kubelets: never more than 2 pods at once,
    /// Complete with 5 succeeded, `kubectl wait --for=condition=complete` returns.
    func jobCompletions(_ cluster: TestCluster, _ ns: String) async throws {
        let job = """
            apiVersion: batch/v1
            kind: Job
            metadata: {name: count}
            spec:
              completions: 5
              parallelism: 2
              template:
                spec:
                  restartPolicy: Never
                  terminationGracePeriodSeconds: 1
                  containers: [{name: c, image: busybox, command: ["sh", "-c", "sleep 1; echo done"]}]

            """
        try await cluster.apply(job, namespace: ns)
        var most = 0
        let done = await cluster.waitFor("Job count Complete", namespace: ns, timeout: .seconds(180)) {
            let active = await cluster.get("pods", namespace: ns, "{.items[?(@.status.phase==\"Running\")].metadata.name}")
            most = max(most, active.split(separator: " ").count)
            return await cluster.get("job/count", namespace: ns, "{.status.conditions[?(@.type==\"Complete\")].status}") == "True"
        }
        guard done else { return }
        #expect(most <= 2, "at most parallelism pods ran at once, saw \(most)")
        #expect(await cluster.get("job/count", namespace: ns, "{.status.succeeded}") == "5")
        try await cluster.ok(["wait", "-n", ns, "--for=condition=complete", "job/count", "--timeout=10s"], timeout: .seconds(20))
        #expect(try await cluster.ok(["get", "-n", ns, "job/count"]).contains("Complete"))
    }

    /// The official Python client: AppsV1Api create, watch, the scale subresource, ControllerRevisions.
    func pythonClient(_ cluster: TestCluster, _ ns: String) async throws {
        let steps = try await runInteropScript("kube_statefulset.py", [cluster.kubeconfig, ns], needs: "kubernetes",
                                               env: ["HOME": cluster.root], timeout: 300)
        #expect(steps["create"]?["policy"] as? String == "Parallel" && steps["create"]?["strategy"] as? String == "RollingUpdate")
        #expect(steps["ready"]?["ready"] as? Int == 2, "\(steps["ready"] ?? [:])")
        #expect(steps["ready"]?["claims"] as? [String] == ["data-py-sts-0", "data-py-sts-1"])
        #expect(steps["scaled"]?["spec"] as? Int == 1 && steps["scaled"]?["selector"] as? String == "app=py-sts")
        #expect(steps["scaled"]?["pods"] as? [String] == ["py-sts-0"], "\(steps["scaled"] ?? [:])")
        #expect(steps["revisions"]?["count"] as? Int == 1 && steps["revisions"]?["owner"] as? String == "StatefulSet")
        #expect(steps["done"] != nil)
    }

    /// `persistentVolumeClaimRetentionPolicy` Delete: scaling down removes the claims of the
    /// removed replicas (and their volumes and disks), deleting the set removes the rest.
    func claimRetentionDelete(_ cluster: TestCluster, _ ns: String) async throws {
        try await cluster.apply(statefulSetYAML("cache", replicas: 2, policy: "Parallel",
                                                extraSpec: "  persistentVolumeClaimRetentionPolicy: {whenScaled: Delete, whenDeleted: Delete}\n"),
                                namespace: ns)
        guard await cluster.waitSetReady("cache", replicas: 2, namespace: ns) else { return }
        var disks: [String: (pv: String, file: String)] = [:]
        for ordinal in 0..<2 {
            let claim = "data-cache-\(ordinal)"
            let pv = await cluster.get("pvc/" + claim, namespace: ns, "{.spec.volumeName}")
            let handle = await cluster.get("pv/" + pv, "{.spec.csi.volumeHandle}")
            let zone = await cluster.get("pv/" + pv, "{.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values[0]}")
            disks[claim] = (pv, cluster.volumes + "/\(zone)/\(handle).img")
            #expect(FileManager.default.fileExists(atPath: cluster.volumes + "/\(zone)/\(handle).img"), "\(claim)'s disk file")
        }
        try await cluster.ok(["scale", "-n", ns, "statefulset/cache", "--replicas=1"])
        guard let scaled = disks["data-cache-1"], let kept = disks["data-cache-0"] else { return }
        await cluster.waitFor("whenScaled: Delete removes data-cache-1, its PV and its disk", namespace: ns) {
            let claim = try await cluster.kubectl(["get", "pvc", "-n", ns, "data-cache-1"]).status
            let volume = try await cluster.kubectl(["get", "pv", scaled.pv]).status
            return claim != 0 && volume != 0 && !FileManager.default.fileExists(atPath: scaled.file)
        }
        #expect(await cluster.get("pvc/data-cache-0", namespace: ns, "{.status.phase}") == "Bound", "the remaining replica keeps its claim")
        try await cluster.ok(["delete", "-n", ns, "statefulset/cache", "--wait=true"])
        await cluster.waitFor("whenDeleted: Delete removes data-cache-0, its PV and its disk", namespace: ns) {
            let claim = try await cluster.kubectl(["get", "pvc", "-n", ns, "data-cache-0"]).status
            let volume = try await cluster.kubectl(["get", "pv", kept.pv]).status
            return claim != 0 && volume != 0 && !FileManager.default.fileExists(atPath: kept.file)
        }
    }
}

@Suite("end-to-end workloads, own cluster", .enabled(if: endToEndCanRun), .timeLimit(.minutes(10)))
struct WorkloadLifecycleTests {
    /// A replica whose node is cordoned comes back on the other node of its zone with its
    /// volume and data; a controller manager killed (`kill -9`) during a Parallel scale-up is
    /// restarted by the supervisor and makes no extra pod and no extra claim.
    @Test func replicaMovesAndControllerManagerCrash() async throws {
        try await TestCluster.start(nodes: 3, zones: 2).run { cluster in
            let ns = try await cluster.namespace("e2e-sts-moves")
            let zoneA = """
                      affinity:
                        nodeAffinity:
                          requiredDuringSchedulingIgnoredDuringExecution:
                            nodeSelectorTerms: [{matchExpressions: [{key: topology.kubernetes.io/zone, operator: In, values: [ballast-1a]}]}]

                """
            try await cluster.apply(statefulSetYAML("db", replicas: 2, templateSpec: zoneA), namespace: ns)
            guard await cluster.waitSetReady("db", replicas: 2, namespace: ns) else { return }
            let ids = try await cluster.replicaIDs("db", ordinals: 0..<2, namespace: ns)
            let (node, back) = try await cluster.moveOffItsNode("db-0", namespace: ns)
            guard back else { return }
            let other = node == "node-1" ? "node-3" : "node-1"
            #expect(await cluster.get("pod/db-0", namespace: ns, "{.spec.nodeName}") == other, "db-0 moved to the other node of zone a")
            #expect(try await cluster.replicaIDs("db", ordinals: 0..<2, namespace: ns) == ids, "db-0 found its data on \(other)")

            // kill -9 mid scale-up: the restarted controller manager finishes it without duplicates.
            try await cluster.apply(statefulSetYAML("burst", replicas: 0, policy: "Parallel"), namespace: ns)
            func controllerManager() -> [Int32] {
                ProcessTable.pids { $0.count > 1 && $0[1] == "controller-manager" && $0.contains { $0.hasPrefix(cluster.data + "/") } }
            }
            let before = controllerManager()
            #expect(before.count == 1, "one controller manager runs: \(before)")
            try await cluster.ok(["scale", "-n", ns, "statefulset/burst", "--replicas=6"])
            for pid in before { kill(pid, SIGKILL) }
            guard await cluster.waitFor("a new controller manager", namespace: ns, {
                let now = controllerManager()
                return now.count == 1 && now != before
            }) else { return }
            guard await cluster.waitSetReady("burst", replicas: 6, namespace: ns, timeout: .seconds(240)) else { return }
            try await Task.sleep(for: .seconds(3))
            let pods = await cluster.get("pods", namespace: ns, "{.items[*].metadata.name}").split(separator: " ").filter { $0.hasPrefix("burst-") }
            #expect(pods.sorted() == (0..<6).map { "burst-\($0)" }, "exactly the six replicas: \(pods)")
            let claims = await cluster.get("pvc", namespace: ns, "{.items[*].metadata.name}").split(separator: " ").filter { $0.hasPrefix("data-burst-") }
            #expect(claims.sorted() == (0..<6).map { "data-burst-\($0)" },
                    "exactly one claim per replica: \(claims)")
        }
    }
}
