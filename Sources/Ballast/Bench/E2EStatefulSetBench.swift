// `ballast bench e2e`'s StatefulSet phase: one StatefulSet per pod management policy scaled
// from 0 to N replicas, each replica with a fresh claim from the set's volumeClaimTemplates —
// the whole path of the bare pods (provision, attach, stage, publish, run) plus the StatefulSet
// controller, which under OrderedReady waits for each replica to be Ready before the next.
import APIClient
import ClusterAPI
import Foundation

/// One scale-up: scale requested → every replica Ready, and per replica created → Running.
struct StatefulSetScaleResult {
    var policy: String
    var replicas: Int
    var allReadySeconds: Double
    var perReplica: [Double]
}

extension E2EBenchRun {
    /// Scales a new StatefulSet of `policy` from 0 to `replicas` and times it; the set is
    /// deleted afterwards (its claims and disks are left to the purge).
    func measureStatefulSet(policy: String, replicas: Int) async throws -> StatefulSetScaleResult {
        let client = self.client!
        let name = policy == "Parallel" ? "parallel" : "ordered"
        var set = StatefulSet(metadata: ObjectMeta(name: name, namespace: "default"))
        set.spec.replicas = 0
        set.spec.serviceName = name
        set.spec.podManagementPolicy = policy
        set.spec.selector = LabelSelectorSpec(matchLabels: ["app": name])
        set.spec.template.metadata.labels = ["app": name]
        var container = Container(name: "app", image: "busybox")
        container.command = ["sh", "-c", "exec sleep 3600"]
        container.volumeMounts = [VolumeMount(name: "data", mountPath: "/data")]
        set.spec.template.spec.containers = [container]
        set.spec.template.spec.terminationGracePeriodSeconds = 1
        var claim = PersistentVolumeClaim(metadata: ObjectMeta(name: "data"))
        claim.spec.accessModes = ["ReadWriteOnce"]
        claim.spec.resources = VolumeResourceRequirements(requests: ["storage": Quantity(settings.size, format: .binarySI)])
        set.spec.volumeClaimTemplates = [claim]
        _ = try await client.create(set)

        let seen = ReplicaWatch()
        let watching = Task {
            while !Task.isCancelled {
                do {
                    for try await event in try await client.watch(Pod.self, namespace: "default", labelSelector: "app=\(name)") {
                        if let pod = event.object { await seen.saw(pod, at: .now) }
                    }
                } catch {
                    try? await Task.sleep(for: .milliseconds(100))
                }
            }
        }
        defer { watching.cancel() }
        try await Task.sleep(for: .milliseconds(300))
        let start = ContinuousClock.now
        _ = try await client.mergePatch(StatefulSet.self, name: name, namespace: "default", patch: ["spec": ["replicas": .integer(Int64(replicas))]],
                                        subresource: "scale")
        let deadline = start + .seconds(60) + .seconds(Double(replicas) * 5)
        var shown = -1
        while true {
            let running = await seen.runningCount
            if running != shown {
                progress("StatefulSet \(policy) 0→\(replicas): \(running) Running")
                shown = running
            }
            if running >= replicas { break }
            guard ContinuousClock.now < deadline else {
                throw BenchFailure("StatefulSet \(name): only \(running) of \(replicas) replicas Running in time; logs in \(root)/logs")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        let done = ContinuousClock.now
        progress("")
        let perReplica = await seen.startupSeconds()
        _ = try? await client.delete(StatefulSet.self, name: name, namespace: "default", options: DeleteOptions())
        for index in 0..<replicas {
            _ = try? await client.delete(Pod.self, name: "\(name)-\(index)", namespace: "default", options: DeleteOptions())
        }
        return StatefulSetScaleResult(policy: policy, replicas: replicas, allReadySeconds: (done - start).seconds, perReplica: perReplica)
    }
}

/// When each replica was first seen, and first seen Running.
actor ReplicaWatch {
    private var created: [String: ContinuousClock.Instant] = [:]
    private var running: [String: ContinuousClock.Instant] = [:]

    func saw(_ pod: Pod, at now: ContinuousClock.Instant) {
        guard let name = pod.metadata.name else { return }
        if created[name] == nil { created[name] = now }
        if KubeletBenchRun.isRunning(pod), running[name] == nil { running[name] = now }
    }

    var runningCount: Int { running.count }

    /// Per replica: first seen → first seen Running.
    func startupSeconds() -> [Double] {
        running.compactMap { name, at in created[name].map { (at - $0).seconds } }
    }
}
