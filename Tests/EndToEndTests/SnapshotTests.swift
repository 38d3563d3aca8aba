// Kubernetes' e2e snapshot suites (snapshottable, provisioning from a snapshot and from a claim)
// as a user drives them: kubectl against the shared 3-node cluster of `ballast up` (node-1 and
// node-3 in zone ballast-1a, node-2 in ballast-1b), with the CRDs and the default
// VolumeSnapshotClass `ballast up` installs, busybox pods reading what was written. The
// controller manager killed during a snapshot's creation gets a cluster of its own.
import ClusterTesting
import Foundation
import Testing
import TestSupport

enum SnapshotScenario: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case restore, clone, deleteWhileRestoring, retain
    var testDescription: String { rawValue }
}

func snapshotYAML(_ name: String, claim: String, snapshotClass: String? = nil) -> String {
    """
    apiVersion: snapshot.storage.k8s.io/v1
    kind: VolumeSnapshot
    metadata: {name: \(name)}
    spec:
    \(snapshotClass.map { "  volumeSnapshotClassName: \($0)\n" } ?? "")  source: {persistentVolumeClaimName: \(claim)}

    """
}

/// A claim provisioned from `kind` `source` (a VolumeSnapshot, or a PersistentVolumeClaim: a clone).
func restoreClaimYAML(_ name: String, from source: String, kind: String = "VolumeSnapshot", size: String = "32Mi",
                      storageClass: String? = nil) -> String {
    let group = kind == "VolumeSnapshot" ? "apiGroup: snapshot.storage.k8s.io, " : ""
    return claimYAML(name, size: size, storageClass: storageClass) + "  dataSource: {\(group)kind: \(kind), name: \(source)}\n"
}

extension TestCluster {
    /// Waits until the VolumeSnapshot is readyToUse.
    @discardableResult
    func waitSnapshotReady(_ name: String, namespace: String, timeout: Duration = .seconds(60),
                           sourceLocation: SourceLocation = #_sourceLocation) async -> Bool {
        await waitFor("VolumeSnapshot \(namespace)/\(name) readyToUse", namespace: namespace, timeout: timeout, sourceLocation: sourceLocation) {
            await get("volumesnapshot/" + name, namespace: namespace, "{.status.readyToUse}") == "true"
        }
    }

    /// The cloud's snapshot files.
    func snapshotFiles() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: volumes + "/snapshots")) ?? []).filter { $0.hasSuffix(".img") }.sorted()
    }
}

@Suite("end-to-end snapshots", .enabled(if: endToEndCanRun), .timeLimit(.minutes(10)))
struct SnapshotTests {
    @Test(arguments: SnapshotScenario.allCases)
    func scenario(_ scenario: SnapshotScenario) async throws {
        try await sharedCluster.with { cluster in
            let ns = try await cluster.namespace("e2e-snap-" + scenario.rawValue.lowercased())
            switch scenario {
            case .restore: try await restore(cluster, ns)
            case .clone: try await clone(cluster, ns)
            case .deleteWhileRestoring: try await deleteWhileRestoring(cluster, ns)
            case .retain: try await retain(cluster, ns)
            }
        }
    }

    /// Written, snapshotted (default class), overwritten; restored into a new claim read on
    /// node-1, and into another read on node-2, in the other zone: both see the old data.
    func restore(_ cluster: TestCluster, _ ns: String) async throws {
        try await cluster.apply(claimYAML("data") + "---\n" + podYAML("writer", claim: "data", node: "node-1",
                                                                       command: "echo before > /data/f && sync && exec sleep 3600"), namespace: ns)
        guard await cluster.waitReady("writer", namespace: ns) else { return }
        try await cluster.apply(snapshotYAML("snap", claim: "data"), namespace: ns)
        guard await cluster.waitSnapshotReady("snap", namespace: ns) else { return }
        #expect(await cluster.get("volumesnapshot/snap", namespace: ns, "{.spec.volumeSnapshotClassName}") == "ballast-snapshots")
        let table = try await cluster.ok(["get", "volumesnapshot", "-n", ns])
        #expect(table.contains("READYTOUSE") && table.contains("SOURCEPVC") && table.contains("true") && table.contains("32Mi"), "\(table)")
        let content = await cluster.get("volumesnapshot/snap", namespace: ns, "{.status.boundVolumeSnapshotContentName}")
        #expect(await cluster.get("volumesnapshotcontent/" + content, "{.spec.volumeSnapshotRef.name}") == "snap")
        try await cluster.ok(["exec", "-n", ns, "writer", "--", "sh", "-c", "echo after > /data/f && sync"])
        try await cluster.apply(restoreClaimYAML("same-zone", from: "snap") + "---\n" + restoreClaimYAML("other-zone", from: "snap") + "---\n"
                                + podYAML("reader-1", claim: "same-zone", node: "node-1", command: "cat /data/f && exec sleep 3600") + "---\n"
                                + podYAML("reader-2", claim: "other-zone", node: "node-2", command: "cat /data/f && exec sleep 3600"), namespace: ns)
        for (pod, node) in [("reader-1", "node-1"), ("reader-2", "node-2")] {
            guard await cluster.waitReady(pod, namespace: ns, timeout: .seconds(180)) else { return }
            #expect(try await cluster.ok(["logs", "-n", ns, pod]) == "before\n", "\(pod) on \(node) reads the snapshot's data")
        }
        let pv = await cluster.get("pvc/other-zone", namespace: ns, "{.spec.volumeName}")
        #expect(await cluster.get("pv/" + pv, "{.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values[0]}") == "ballast-1b",
                "restored in the other zone")
        #expect(try await cluster.ok(["exec", "-n", ns, "writer", "--", "cat", "/data/f"]) == "after\n")
        try await cluster.ok(["delete", "pod", "-n", ns, "--all", "--wait=true", "--timeout=90s"], timeout: .seconds(100))
        try await cluster.ok(["delete", "volumesnapshot", "-n", ns, "snap", "--wait=true", "--timeout=60s"])
        #expect(try await cluster.kubectl(["get", "volumesnapshotcontent", content]).status != 0, "the content went with its snapshot")
    }

    /// A claim cloned from another: same class, at least its size; the clone has its data.
    func clone(_ cluster: TestCluster, _ ns: String) async throws {
        try await cluster.apply(claimYAML("origin") + "---\n" + podYAML("writer", claim: "origin", node: "node-3",
                                                                         command: "echo original > /data/f && sync && exec sleep 3600"), namespace: ns)
        guard await cluster.waitReady("writer", namespace: ns) else { return }
        try await cluster.apply(restoreClaimYAML("copy", from: "origin", kind: "PersistentVolumeClaim", size: "64Mi") + "---\n"
                                + restoreClaimYAML("too-small", from: "origin", kind: "PersistentVolumeClaim", size: "16Mi",
                                                   storageClass: "ballast-loop-immediate") + "---\n"
                                + podYAML("reader", claim: "copy", node: "node-3", command: "cat /data/f && exec sleep 3600"), namespace: ns)
        guard await cluster.waitReady("reader", namespace: ns, timeout: .seconds(180)) else { return }
        #expect(try await cluster.ok(["logs", "-n", ns, "reader"]) == "original\n")
        #expect(await cluster.get("pvc/copy", namespace: ns, "{.status.capacity.storage}") == "64Mi")
        await cluster.waitFor("a clone of another class is refused with an event", namespace: ns) {
            try await cluster.ok(["get", "events", "-n", ns, "--field-selector", "involvedObject.name=too-small"])
                .contains("must be in the same storage class for cloning")
        }
        #expect(await cluster.get("pvc/too-small", namespace: ns, "{.status.phase}") == "Pending")
        try await cluster.ok(["delete", "pod", "-n", ns, "--all", "--wait=true", "--timeout=90s"], timeout: .seconds(100))
    }

    /// A snapshot deleted while a claim is being restored from it waits, held by its
    /// as-source finalizer, until the claim is provisioned.
    func deleteWhileRestoring(_ cluster: TestCluster, _ ns: String) async throws {
        try await cluster.apply(claimYAML("data", storageClass: "ballast-loop-immediate") + "---\n" + snapshotYAML("snap", claim: "data"), namespace: ns)
        guard await cluster.waitSnapshotReady("snap", namespace: ns) else { return }
        // The default class waits for a consumer: the restored claim stays Pending for now.
        try await cluster.apply(restoreClaimYAML("restored", from: "snap"), namespace: ns)
        try await cluster.ok(["delete", "volumesnapshot", "-n", ns, "snap", "--wait=false"])
        await cluster.waitFor("SnapshotDeletePending", namespace: ns) {
            try await cluster.ok(["get", "events", "-n", ns, "--field-selector", "involvedObject.name=snap"]).contains("SnapshotDeletePending")
        }
        try await Task.sleep(for: .seconds(2))
        #expect(await cluster.get("volumesnapshot/snap", namespace: ns, "{.metadata.finalizers}").contains("volumesnapshot-as-source-protection"))
        #expect(!(await cluster.get("volumesnapshot/snap", namespace: ns, "{.metadata.deletionTimestamp}")).isEmpty)
        try await cluster.apply(podYAML("reader", claim: "restored", command: "exec sleep 3600"), namespace: ns)
        guard await cluster.waitReady("reader", namespace: ns, timeout: .seconds(180)) else { return }
        await cluster.waitFor("the snapshot gone once the claim is provisioned", namespace: ns) {
            try await cluster.kubectl(["get", "volumesnapshot", "-n", ns, "snap"]).status != 0
        }
        try await cluster.ok(["delete", "pod", "-n", ns, "--all", "--wait=true", "--timeout=90s"], timeout: .seconds(100))
    }

    /// deletionPolicy Retain: the VolumeSnapshot goes, its content and the cloud's snapshot stay;
    /// switched to Delete, the orphaned content is deleted with the cloud's snapshot.
    func retain(_ cluster: TestCluster, _ ns: String) async throws {
        try await cluster.apply("""
            apiVersion: snapshot.storage.k8s.io/v1
            kind: VolumeSnapshotClass
            metadata: {name: e2e-retain}
            driver: loop.csi.ballast.dev
            deletionPolicy: Retain
            ---

            """ + claimYAML("data", storageClass: "ballast-loop-immediate") + "---\n" + snapshotYAML("kept", claim: "data", snapshotClass: "e2e-retain"),
                                namespace: ns)
        guard await cluster.waitSnapshotReady("kept", namespace: ns) else { return }
        let content = await cluster.get("volumesnapshot/kept", namespace: ns, "{.status.boundVolumeSnapshotContentName}")
        let handle = await cluster.get("volumesnapshotcontent/" + content, "{.status.snapshotHandle}")
        #expect(cluster.snapshotFiles().contains(handle + ".img"))
        try await cluster.ok(["delete", "volumesnapshot", "-n", ns, "kept", "--wait=true", "--timeout=60s"])
        try await Task.sleep(for: .seconds(2))
        #expect(await cluster.get("volumesnapshotcontent/" + content, "{.status.snapshotHandle}") == handle, "Retain keeps the content")
        #expect(cluster.snapshotFiles().contains(handle + ".img"), "Retain keeps the cloud's snapshot")
        try await cluster.ok(["patch", "volumesnapshotcontent", content, "--type=merge", "-p", #"{"spec":{"deletionPolicy":"Delete"}}"#])
        await cluster.waitFor("the orphaned content deleted with its snapshot", namespace: ns) {
            let gone = try await cluster.kubectl(["get", "volumesnapshotcontent", content]).status != 0
            return gone && !cluster.snapshotFiles().contains(handle + ".img")
        }
        try await cluster.ok(["delete", "volumesnapshotclass", "e2e-retain"])
    }
}

@Suite("end-to-end snapshots, own cluster", .enabled(if: endToEndCanRun), .timeLimit(.minutes(10)))
struct SnapshotCrashTests {
    /// `kill -9` of the controller manager while the cloud is taking the snapshot: the restarted
    /// one finishes it, with exactly one cloud snapshot and both objects bound; deleting the
    /// VolumeSnapshot then leaves no content and no cloud snapshot.
    @Test func controllerManagerKilledDuringSnapshotCreation() async throws {
        let latency = "create=100ms,attach=200ms,detach=200ms,resize=100ms,snapshot=4s"
        try await TestCluster.start(nodes: 1, zones: 1, flags: ["--cloud-latency", latency]).run { cluster in
            let ns = try await cluster.namespace("e2e-snap-crash")
            try await cluster.apply(claimYAML("data", storageClass: "ballast-loop-immediate"), namespace: ns)
            guard await cluster.waitFor("claim Bound", namespace: ns, { await cluster.get("pvc/data", namespace: ns, "{.status.phase}") == "Bound" })
            else { return }
            func controllerManager() -> [Int32] {
                ProcessTable.pids { $0.count > 1 && $0[1] == "controller-manager" && $0.contains { $0.hasPrefix(cluster.data + "/") } }
            }
            let before = controllerManager()
            #expect(before.count == 1, "one controller manager runs: \(before)")
            try await cluster.apply(snapshotYAML("snap", claim: "data"), namespace: ns)
            // The content exists and CreateSnapshot is in flight (the cloud takes 4 s).
            guard await cluster.waitFor("the content being created", namespace: ns, interval: .milliseconds(100), {
                let content = await cluster.get("volumesnapshot/snap", namespace: ns, "{.status.boundVolumeSnapshotContentName}")
                guard !content.isEmpty else { return false }
                return await cluster.get("volumesnapshotcontent/" + content, "{.metadata.annotations}").contains("volumesnapshot-being-created")
            }) else { return }
            for pid in before { kill(pid, SIGKILL) }
            guard await cluster.waitFor("a new controller manager", namespace: ns, {
                let now = controllerManager()
                return now.count == 1 && now != before
            }) else { return }
            guard await cluster.waitSnapshotReady("snap", namespace: ns, timeout: .seconds(90)) else { return }
            let content = await cluster.get("volumesnapshot/snap", namespace: ns, "{.status.boundVolumeSnapshotContentName}")
            let uid = await cluster.get("volumesnapshot/snap", namespace: ns, "{.metadata.uid}")
            #expect(await cluster.get("volumesnapshotcontent/" + content, "{.spec.volumeSnapshotRef.uid}") == uid, "bound both ways")
            #expect(!(await cluster.get("volumesnapshotcontent/" + content, "{.metadata.annotations}")).contains("volumesnapshot-being-created"))
            let handle = await cluster.get("volumesnapshotcontent/" + content, "{.status.snapshotHandle}")
            #expect(cluster.snapshotFiles() == [handle + ".img"], "exactly one cloud snapshot: \(cluster.snapshotFiles())")
            #expect(await cluster.get("volumesnapshotcontents", "{.items[*].metadata.name}") == content, "one content")
            try await cluster.ok(["delete", "volumesnapshot", "-n", ns, "snap", "--wait=true", "--timeout=60s"])
            await cluster.waitFor("no content and no cloud snapshot left", namespace: ns) {
                await cluster.get("volumesnapshotcontents", "{.items[*].metadata.name}").isEmpty && cluster.snapshotFiles().isEmpty
            }
        }
    }
}
