// Kubernetes' e2e storage suites (provisioning, volume_expand, topology, readwriteoncepod,
// volume modes) as a user drives them: kubectl against a 3-node cluster of `ballast up`
// (node-1 and node-3 in zone ballast-1a, node-2 in ballast-1b), busybox pods judged by phase, logs
// and exec. The scenarios share one cluster, each in a namespace of its own, and run at once.
import ClusterTesting
import Foundation
import Testing
import TestSupport

let sharedCluster = SharedCluster(nodes: 3, zones: 2)

enum StorageScenario: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case dataFollowsThePod, immediateAndWaitForFirstConsumer, reclaimPolicies, expansion, topology, readWriteOncePod,
         multiAttach, claimProtection, blockVolume, pythonClient
    var testDescription: String { rawValue }
}

@Suite("end-to-end storage", .enabled(if: endToEndCanRun), .timeLimit(.minutes(10)))
struct StorageTests {
    @Test(arguments: StorageScenario.allCases)
    func scenario(_ scenario: StorageScenario) async throws {
        try await sharedCluster.with { cluster in
            let ns = try await cluster.namespace("e2e-" + scenario.rawValue.lowercased())
            switch scenario {
            case .dataFollowsThePod: try await dataFollowsThePod(cluster, ns)
            case .immediateAndWaitForFirstConsumer: try await immediateAndWaitForFirstConsumer(cluster, ns)
            case .reclaimPolicies: try await reclaimPolicies(cluster, ns)
            case .expansion: try await expansion(cluster, ns)
            case .topology: try await topology(cluster, ns)
            case .readWriteOncePod: try await readWriteOncePod(cluster, ns)
            case .multiAttach: try await multiAttach(cluster, ns)
            case .claimProtection: try await claimProtection(cluster, ns)
            case .blockVolume: try await blockVolume(cluster, ns)
            case .pythonClient: try await pythonClient(cluster, ns)
            }
        }
    }

    /// Written on node-1, read again on node-1 by a new pod, then on node-3 (same zone): the
    /// disk is detached from one node and attached to the other, the data with it.
    func dataFollowsThePod(_ cluster: TestCluster, _ ns: String) async throws {
        try await cluster.apply(claimYAML("data") + "---\n" + podYAML("writer", claim: "data", node: "node-1",
                                                                       command: "echo written-on-node-1 > /data/f && sync && exec sleep 3600"), namespace: ns)
        guard await cluster.waitReady("writer", namespace: ns) else { return }
        #expect(try await cluster.ok(["exec", "-n", ns, "writer", "--", "cat", "/data/f"]) == "written-on-node-1\n")
        let pv = await cluster.get("pvc/data", namespace: ns, "{.spec.volumeName}")
        #expect(await cluster.get("pv/" + pv, "{.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values[0]}") == "ballast-1a",
                "the disk was provisioned in the zone of the node the pod was scheduled to")
        for (pod, node) in [("again", "node-1"), ("moved", "node-3")] {
            try await cluster.ok(["delete", "pod", "-n", ns, "--all", "--wait=true", "--timeout=90s"], timeout: .seconds(100))
            try await cluster.apply(podYAML(pod, claim: "data", node: node, command: "cat /data/f && exec sleep 3600"), namespace: ns)
            guard await cluster.waitReady(pod, namespace: ns) else { return }
            #expect(try await cluster.ok(["logs", "-n", ns, pod]) == "written-on-node-1\n", "\(pod) on \(node) reads what writer wrote")
        }
        let attachedTo = await cluster.get("volumeattachments", "{range .items[?(@.spec.source.persistentVolumeName==\"\(pv)\")]}{.spec.nodeName} {end}")
        #expect(attachedTo == "node-3 ", "the disk is attached to node-3 only once node-1 let it go")
    }

    /// An Immediate claim binds with no pod; a WaitForFirstConsumer claim waits for one, and says so.
    func immediateAndWaitForFirstConsumer(_ cluster: TestCluster, _ ns: String) async throws {
        try await cluster.apply(claimYAML("now", storageClass: "ballast-loop-immediate") + "---\n" + claimYAML("later"), namespace: ns)
        await cluster.waitFor("claim now Bound without a pod", namespace: ns) {
            await cluster.get("pvc/now", namespace: ns, "{.status.phase}") == "Bound"
        }
        await cluster.waitFor("claim later says it waits for its first consumer", namespace: ns) {
            try await cluster.ok(["get", "events", "-n", ns, "--field-selector", "involvedObject.name=later"]).contains("WaitForFirstConsumer")
        }
        #expect(await cluster.get("pvc/later", namespace: ns, "{.status.phase}") == "Pending")
        try await cluster.apply(podYAML("consumer", claim: "later", command: "exec sleep 3600"), namespace: ns)
        await cluster.waitReady("consumer", namespace: ns)
        #expect(await cluster.get("pvc/later", namespace: ns, "{.status.phase}") == "Bound")
    }

    /// Delete: the PV and the cloud's disk go with the claim. Retain: the PV is Released, the disk kept.
    func reclaimPolicies(_ cluster: TestCluster, _ ns: String) async throws {
        try await cluster.apply(storageClassYAML("e2e-retain", binding: "Immediate", "reclaimPolicy: Retain\nparameters: {csi.storage.k8s.io/fstype: ext4}\n")
            + claimYAML("kept", storageClass: "e2e-retain") + "---\n" + claimYAML("gone", storageClass: "ballast-loop-immediate"), namespace: ns)
        var disks: [String: (pv: String, file: String)] = [:]
        for claim in ["kept", "gone"] {
            guard await cluster.waitFor("claim \(claim) Bound", namespace: ns, { await cluster.get("pvc/" + claim, namespace: ns, "{.status.phase}") == "Bound" })
            else { return }
            let pv = await cluster.get("pvc/" + claim, namespace: ns, "{.spec.volumeName}")
            let handle = await cluster.get("pv/" + pv, "{.spec.csi.volumeHandle}")
            let zone = await cluster.get("pv/" + pv, "{.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values[0]}")
            disks[claim] = (pv, cluster.volumes + "/\(zone)/\(handle).img")
            #expect(FileManager.default.fileExists(atPath: cluster.volumes + "/\(zone)/\(handle).img"), "\(claim)'s disk file")
        }
        try await cluster.ok(["delete", "pvc", "-n", ns, "kept", "gone", "--wait=true"])
        guard let kept = disks["kept"], let gone = disks["gone"] else { return }
        await cluster.waitFor("Delete: the PV \(gone.pv) and its disk removed", namespace: ns) {
            try await cluster.kubectl(["get", "pv", gone.pv]).status != 0 && !FileManager.default.fileExists(atPath: gone.file)
        }
        await cluster.waitFor("Retain: the PV \(kept.pv) Released", namespace: ns) {
            await cluster.get("pv/" + kept.pv, "{.status.phase}") == "Released"
        }
        #expect(FileManager.default.fileExists(atPath: kept.file), "Retain keeps the cloud's disk")
        try await cluster.ok(["delete", "pv/" + kept.pv, "storageclass/e2e-retain"])
    }

    /// Online (the pod keeps running, `df` in it grows: XFS, which grows mounted with the
    /// CAP_SYS_ADMIN every root process has, where ext4 needs CAP_SYS_RESOURCE, which some
    /// containers lack), offline (ext4 grown while no pod uses it, the file system at the next
    /// mount), and refused for a class without allowVolumeExpansion.
    func expansion(_ cluster: TestCluster, _ ns: String) async throws {
        let size = { (pod: String) async -> Int in
            let output = (try? await cluster.ok(["exec", "-n", ns, pod, "--", "sh", "-c", "df -k /data | tail -1"])) ?? ""
            return output.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Int($0) } ?? 0
        }
        let resize = { (claim: String, to: String) in
            _ = try await cluster.ok(["patch", "pvc", claim, "-n", ns, "-p", #"{"spec":{"resources":{"requests":{"storage":"\#(to)"}}}}"#])
        }
        // XFS needs 300 MiB at least; the disk is a sparse file.
        try await cluster.apply(storageClassYAML("e2e-xfs", binding: "WaitForFirstConsumer", "allowVolumeExpansion: true\nparameters: {csi.storage.k8s.io/fstype: xfs}\n")
            + claimYAML("online", size: "320Mi", storageClass: "e2e-xfs") + "---\n"
            + podYAML("online", claim: "online", node: "node-2", command: "exec sleep 3600") + "---\n"
            + claimYAML("offline") + "---\n" + podYAML("offline", claim: "offline", node: "node-2", command: "exec sleep 3600"), namespace: ns)
        guard await cluster.waitReady("online", namespace: ns), await cluster.waitReady("offline", namespace: ns) else { return }
        let before = await size("online")
        #expect(before > 250_000 && before < 330_000, "320Mi XFS file system: \(before) KiB")
        try await resize("online", "400Mi")
        await cluster.waitFor("df in the running pod shows the claim grown to 400Mi", namespace: ns, timeout: .seconds(90)) {
            await size("online") > before + 60_000
        }
        await cluster.waitFor("the claim's capacity 400Mi", namespace: ns) {
            await cluster.get("pvc/online", namespace: ns, "{.status.capacity.storage}") == "400Mi"
        }
        // Events are written in the background (the kubelet's wait while its pods are being
        // synced, at most 2 s): looked for until they are there.
        await cluster.waitFor("the pod's FileSystemResizeSuccessful event", namespace: ns, timeout: .seconds(30)) {
            let events = (try? await cluster.ok(["get", "events", "-n", ns, "--field-selector", "involvedObject.name=online"])) ?? ""
            return events.contains("FileSystemResizeSuccessful")
        }

        let small = await size("offline")
        #expect(small > 20_000 && small < 40_000, "32Mi ext4 file system: \(small) KiB")
        try await cluster.ok(["delete", "pod", "offline", "-n", ns, "--wait=true", "--timeout=90s"], timeout: .seconds(100))
        try await resize("offline", "64Mi")
        await cluster.waitFor("the disk grown while no pod uses it", namespace: ns) {
            await cluster.get("pv/" + (await cluster.get("pvc/offline", namespace: ns, "{.spec.volumeName}")), "{.spec.capacity.storage}") == "64Mi"
        }
        try await cluster.apply(podYAML("offline-again", claim: "offline", node: "node-2", command: "exec sleep 3600"), namespace: ns)
        guard await cluster.waitReady("offline-again", namespace: ns) else { return }
        await cluster.waitFor("df in the new pod shows 64Mi", namespace: ns, timeout: .seconds(60)) { await size("offline-again") > small + 25_000 }
        await cluster.waitFor("the claim's capacity 64Mi", namespace: ns) {
            await cluster.get("pvc/offline", namespace: ns, "{.status.capacity.storage}") == "64Mi"
        }
        try await cluster.ok(["delete", "pod", "--all", "-n", ns, "--wait=true", "--timeout=90s"], timeout: .seconds(100))
        try await cluster.ok(["delete", "pvc", "--all", "-n", ns, "--wait=true"])
        try await cluster.ok(["delete", "storageclass", "e2e-xfs"])

        try await cluster.apply(storageClassYAML("e2e-fixed-size", binding: "Immediate") + claimYAML("fixed", storageClass: "e2e-fixed-size"), namespace: ns)
        guard await cluster.waitFor("claim fixed Bound", namespace: ns, { await cluster.get("pvc/fixed", namespace: ns, "{.status.phase}") == "Bound" })
        else { return }
        let refused = try await cluster.kubectl(["patch", "pvc", "fixed", "-n", ns, "-p", #"{"spec":{"resources":{"requests":{"storage":"64Mi"}}}}"#])
        #expect(refused.status != 0 && refused.stderr.contains("only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize"),
                "\(refused.stderr)")
        try await cluster.ok(["delete", "pvc", "fixed", "-n", ns, "--wait=true"])
        try await cluster.ok(["delete", "storageclass", "e2e-fixed-size"])
    }

    /// A class allowed in zone b only puts the pod on node-2; a pod held to zone a by its
    /// node selector stays Pending with the scheduler's reason.
    func topology(_ cluster: TestCluster, _ ns: String) async throws {
        try await cluster.apply(storageClassYAML("e2e-zone-b", binding: "WaitForFirstConsumer", """
            allowedTopologies:
            - matchLabelExpressions:
              - {key: topology.kubernetes.io/zone, values: [ballast-1b]}

            """) + claimYAML("b", storageClass: "e2e-zone-b") + "---\n" + claimYAML("conflict", storageClass: "e2e-zone-b") + "---\n"
            + podYAML("in-b", claim: "b", command: "exec sleep 3600") + "---\n"
            + podYAML("in-a", claim: "conflict", command: "exec sleep 3600", extraSpec: "  nodeSelector: {topology.kubernetes.io/zone: ballast-1a}\n"),
            namespace: ns)
        if await cluster.waitReady("in-b", namespace: ns) {
            #expect(await cluster.get("pod/in-b", namespace: ns, "{.spec.nodeName}") == "node-2")
        }
        await cluster.waitFor("pod in-a Pending with the scheduler's reason", namespace: ns) {
            let message = await cluster.get("pod/in-a", namespace: ns, "{.status.conditions[?(@.type==\"PodScheduled\")].message}")
            return message.contains("0/3 nodes are available") && message.contains("node(s) didn't find available persistent volumes to bind")
        }
        #expect(await cluster.get("pvc/conflict", namespace: ns, "{.status.phase}") == "Pending")
        try await cluster.ok(["delete", "pod", "--all", "-n", ns, "--wait=true", "--timeout=90s"], timeout: .seconds(100))
        try await cluster.ok(["delete", "pvc", "--all", "-n", ns, "--wait=true"])
        try await cluster.ok(["delete", "storageclass", "e2e-zone-b"])
    }

    /// A ReadWriteOncePod claim: a second pod is unschedulable, saying why.
    func readWriteOncePod(_ cluster: TestCluster, _ ns: String) async throws {
        try await cluster.apply(claimYAML("solo", accessMode: "ReadWriteOncePod") + "---\n" + podYAML("first", claim: "solo", command: "exec sleep 3600"),
                                namespace: ns)
        guard await cluster.waitReady("first", namespace: ns) else { return }
        try await cluster.apply(podYAML("second", claim: "solo", command: "exec sleep 3600"), namespace: ns)
        await cluster.waitFor("pod second unschedulable because of ReadWriteOncePod", namespace: ns) {
            let message = await cluster.get("pod/second", namespace: ns, "{.status.conditions[?(@.type==\"PodScheduled\")].message}")
            return message.contains("ReadWriteOncePod")
        }
        #expect(await cluster.get("pod/second", namespace: ns, "{.spec.nodeName}") == "")
    }

    /// A ReadWriteOnce disk in use on node-1 cannot be attached to node-3 for a second pod: a
    /// Multi-Attach event says so, and the second pod runs once the first is gone.
    func multiAttach(_ cluster: TestCluster, _ ns: String) async throws {
        try await cluster.apply(claimYAML("one") + "---\n" + podYAML("holder", claim: "one", node: "node-1", command: "exec sleep 3600"), namespace: ns)
        guard await cluster.waitReady("holder", namespace: ns) else { return }
        try await cluster.apply(podYAML("elsewhere", claim: "one", node: "node-3", command: "exec sleep 3600"), namespace: ns)
        await cluster.waitFor("a Multi-Attach error for pod elsewhere", namespace: ns) {
            try await cluster.ok(["get", "events", "-n", ns, "--field-selector", "involvedObject.name=elsewhere"]).contains("Multi-Attach error")
        }
        #expect(await cluster.get("pod/elsewhere", namespace: ns, "{.status.phase}") == "Pending")
        try await cluster.ok(["delete", "pod", "holder", "-n", ns, "--wait=true", "--timeout=90s"], timeout: .seconds(100))
        await cluster.waitReady("elsewhere", namespace: ns)
    }

    /// A claim a pod uses is not removed when deleted (kubernetes.io/pvc-protection) until the pod goes.
    func claimProtection(_ cluster: TestCluster, _ ns: String) async throws {
        try await cluster.apply(claimYAML("used") + "---\n" + podYAML("user", claim: "used", command: "exec sleep 3600"), namespace: ns)
        guard await cluster.waitReady("user", namespace: ns) else { return }
        try await cluster.ok(["delete", "pvc", "used", "-n", ns, "--wait=false"])
        try await Task.sleep(for: .seconds(3))
        #expect(await cluster.get("pvc/used", namespace: ns, "{.metadata.deletionTimestamp}") != "", "the claim is terminating")
        #expect(await cluster.get("pvc/used", namespace: ns, "{.metadata.finalizers}").contains("kubernetes.io/pvc-protection"))
        #expect(await cluster.get("pod/user", namespace: ns, "{.status.phase}") == "Running")
        try await cluster.ok(["delete", "pod", "user", "-n", ns, "--wait=true", "--timeout=90s"], timeout: .seconds(100))
        await cluster.waitFor("the claim removed once its pod is gone", namespace: ns) {
            try await cluster.kubectl(["get", "pvc", "used", "-n", ns]).status != 0
        }
    }

    /// A raw block volume: bytes written to the device are read back by the next pod.
    func blockVolume(_ cluster: TestCluster, _ ns: String) async throws {
        try await cluster.apply(claimYAML("raw", block: true) + "---\n"
                                + podYAML("blockwriter", claim: "raw", node: "node-2", command: "exec sleep 3600", block: true), namespace: ns)
        guard await cluster.waitReady("blockwriter", namespace: ns) else { return }
        try await cluster.ok(["exec", "-n", ns, "blockwriter", "--", "sh", "-c", "echo raw-bytes | dd of=/dev/xvda bs=512 count=1 conv=sync,fsync 2>/dev/null"])
        try await cluster.ok(["delete", "pod", "blockwriter", "-n", ns, "--wait=true", "--timeout=90s"], timeout: .seconds(100))
        try await cluster.apply(podYAML("blockreader", claim: "raw", node: "node-2", command: "head -c 9 /dev/xvda && echo && exec sleep 3600", block: true), namespace: ns)
        guard await cluster.waitReady("blockreader", namespace: ns) else { return }
        let read = try await cluster.ok(["logs", "-n", ns, "blockreader"])
        #expect(read == "raw-bytes\n", "blockreader read \(read.debugDescription)")
    }

    /// The same path through the official Python client (Tests/Interop/kube_storage.py): a claim
    /// of the default class and a pod writing to it, watched until Running, its log, then both
    /// deleted and gone.
    func pythonClient(_ cluster: TestCluster, _ ns: String) async throws {
        let steps = try await runInteropScript("kube_storage.py", [cluster.kubeconfig, ns], needs: "kubernetes",
                                               env: ["HOME": cluster.root], timeout: 300)
        #expect(steps["create-pvc"]?["phase"] as? String == "Pending" && steps["create-pvc"]?["storage_class"] as? String == "ballast-loop")
        #expect((steps["watch-pod"]?["phases"] as? [String])?.last == "Running", "\(steps["watch-pod"] ?? [:])")
        #expect(steps["running"]?["log"] as? String == "from-python\n" && steps["running"]?["claim_phase"] as? String == "Bound",
                "\(steps["running"] ?? [:])")
        #expect(steps["deleted"]?["pod"] as? Bool == true && steps["deleted"]?["pvc"] as? Bool == true)
    }
}
