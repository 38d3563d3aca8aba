// `ballast bench e2e --snapshots`: a 1 GiB claim with 512 MiB written by a pod, snapshotted N
// times (VolumeSnapshot created → readyToUse), each snapshot restored into a new claim read by a
// new pod (claim and pod created → Running); beside it the floor measured in the same run: a
// plain `cp --reflink=auto --sparse=always` of the source disk's backing file and its fsync,
// what the cloud's snapshot does underneath. Every timed step starts after a `sync`.
import APIClient
import ClusterAPI
import Foundation
import HostSystem

/// The snapshot phase's figures, in seconds.
struct SnapshotBenchResult {
    var readyToUse: [Double] = []
    var restoreRunning: [Double] = []
    var copyFloor: [Double] = []
}

extension E2EBenchRun {
    func measureSnapshots(runs: Int) async throws -> SnapshotBenchResult {
        let client = self.client!
        var result = SnapshotBenchResult()
        let size = Quantity(1 << 30, format: .binarySI)
        func claim(_ name: String, source: String? = nil) -> PersistentVolumeClaim {
            var claim = PersistentVolumeClaim(metadata: ObjectMeta(name: name, namespace: "default"))
            claim.spec.accessModes = ["ReadWriteOnce"]
            claim.spec.resources = VolumeResourceRequirements(requests: ["storage": size])
            if let source { claim.spec.dataSource = TypedLocalObjectReference(apiGroup: "snapshot.storage.k8s.io", kind: "VolumeSnapshot", name: source) }
            return claim
        }
        func pod(_ name: String, claim: String, command: String) -> Pod {
            var pod = Pod(metadata: ObjectMeta(name: name, namespace: "default", labels: ["app": "bench-e2e-snapshots"]))
            var container = Container(name: "app", image: "busybox")
            container.command = ["sh", "-c", command]
            container.volumeMounts = [VolumeMount(name: "data", mountPath: "/data")]
            pod.spec.containers = [container]
            pod.spec.volumes = [Volume(name: "data", persistentVolumeClaim: PersistentVolumeClaimVolumeSource(claimName: claim))]
            pod.spec.terminationGracePeriodSeconds = 1
            return pod
        }
        func waitRunning(_ name: String, timeout: Duration) async throws {
            let deadline = ContinuousClock.now + timeout
            while true {
                if let pod = try? await client.get(Pod.self, name: name, namespace: "default"), KubeletBenchRun.isRunning(pod) { return }
                guard ContinuousClock.now < deadline else { throw BenchFailure("pod \(name) not Running within \(timeout); logs in \(root)/logs") }
                try await Task.sleep(for: .milliseconds(20))
            }
        }

        progress("snapshots: writing 512 MiB into a 1 GiB claim…")
        _ = try await client.create(claim("snap-source"))
        _ = try await client.create(pod("snap-writer", claim: "snap-source",
                                        command: "dd if=/dev/urandom of=/data/blob bs=1M count=512 2>/dev/null && sync && echo written && exec sleep 3600"))
        try await waitRunning("snap-writer", timeout: .seconds(180))
        let written = ContinuousClock.now + .seconds(180)
        while true {
            let log = try? await client.send(.GET, "/api/v1/namespaces/default/pods/snap-writer/log")
            if let log, log.status.code == 200, String(decoding: log.body, as: UTF8.self).contains("written") { break }
            guard ContinuousClock.now < written else { throw BenchFailure("snap-writer did not write its 512 MiB within 180 s") }
            try await Task.sleep(for: .milliseconds(100))
        }
        let source = try await client.get(PersistentVolumeClaim.self, name: "snap-source", namespace: "default")
        let volume = try await client.get(PersistentVolume.self, name: source.spec.volumeName ?? "")
        let zone = volume.spec.nodeAffinity?.required?.nodeSelectorTerms.first?.matchExpressions?.first?.values?.first ?? ""
        let backing = volumes + "/\(zone)/\(volume.spec.csi?.volumeHandle ?? "").img"

        for run in 0..<runs {
            // The floor first, while nothing else runs: after a restore, its reader pod's teardown
            // (unmount, detach) could still be writing. Each timed step starts with nothing left
            // to write back from the one before.
            progress("snapshots: \(run + 1)/\(runs) the floor, cp --reflink=auto…")
            let copy = volumes + "/bench-copy-\(run).img"
            _ = try? await SystemCommand.run(["sync"], timeout: .seconds(120))
            // What the cloud does for a snapshot (HostSystem's FileSystem.copy): the copy, then
            // its fsync.
            let copying = ContinuousClock.now
            let cp = try await SystemCommand.run(["cp", "--reflink=auto", "--sparse=always", backing, copy], timeout: .seconds(300))
            if cp.status == 0 { _ = try await SystemCommand.run(["sync", copy], timeout: .seconds(120)) }
            let elapsed = (ContinuousClock.now - copying).seconds
            try? FileManager.default.removeItem(atPath: copy)
            guard cp.status == 0 else { throw BenchFailure("cp --reflink=auto \(backing): \(cp.stderr)") }
            result.copyFloor.append(elapsed)

            _ = try? await SystemCommand.run(["sync"], timeout: .seconds(120))
            progress("snapshots: \(run + 1)/\(runs) created → readyToUse…")
            var snapshot = VolumeSnapshot(metadata: ObjectMeta(name: "snap-\(run)", namespace: "default"))
            snapshot.spec.source = VolumeSnapshotSource(persistentVolumeClaimName: "snap-source")
            let created = ContinuousClock.now
            _ = try await client.create(snapshot)
            let deadline = created + .seconds(120)
            while true {
                if let current = try? await client.get(VolumeSnapshot.self, name: "snap-\(run)", namespace: "default"), current.isReadyToUse { break }
                guard ContinuousClock.now < deadline else { throw BenchFailure("VolumeSnapshot snap-\(run) not readyToUse within 120 s; logs in \(root)/logs") }
                try await Task.sleep(for: .milliseconds(10))
            }
            result.readyToUse.append((ContinuousClock.now - created).seconds)

            _ = try? await SystemCommand.run(["sync"], timeout: .seconds(120))
            progress("snapshots: \(run + 1)/\(runs) restore → Running…")
            let restoring = ContinuousClock.now
            _ = try await client.create(claim("snap-restored-\(run)", source: "snap-\(run)"))
            _ = try await client.create(pod("snap-reader-\(run)", claim: "snap-restored-\(run)", command: "exec sleep 3600"))
            try await waitRunning("snap-reader-\(run)", timeout: .seconds(180))
            result.restoreRunning.append((ContinuousClock.now - restoring).seconds)
            _ = try? await client.delete(Pod.self, name: "snap-reader-\(run)", namespace: "default", options: DeleteOptions())

        }
        progress("")
        return result
    }
}

extension SnapshotBenchResult {
    func rows() -> [[String]] {
        func row(_ name: String, _ values: [Double]) -> [String] {
            [name, "\(values.count)", milliseconds(E2EBenchResult.percentile(values, 0.5)), milliseconds(E2EBenchResult.percentile(values, 0.99))]
        }
        return [row("1 GiB volume, 512 MiB written: snapshot created → readyToUse", readyToUse),
                row("  restore: claim + pod created → Running", restoreRunning),
                row("  floor: cp --reflink=auto of the backing file + fsync", copyFloor)]
    }

    struct Summary: Encodable {
        var createdToReadyToUse: E2EBenchResult.Summary.Distribution
        var restoreToRunning: E2EBenchResult.Summary.Distribution
        var copyFloor: E2EBenchResult.Summary.Distribution
    }
}
