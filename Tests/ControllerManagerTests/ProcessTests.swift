// The real `ballast apiserver`, `ballast cloud serve`, `ballast csi --mode controller` and
// `ballast controller-manager` processes, driven with kubectl and the Python kubernetes client.
import ClusterTesting
import APIClient
import ClusterAPI
import Foundation
import Testing
import TestSupport

let manifest = """
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: fast
provisioner: loop.csi.ballast.dev
reclaimPolicy: Delete
volumeBindingMode: Immediate
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
  namespace: default
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: fast
  resources:
    requests:
      storage: 32Mi
"""

@Suite("Controller manager processes", .serialized, .enabled(if: processTestsCanRun, "needs root, /dev/loop-control and the built ballast binary"),
       .timeLimit(.minutes(5)))
struct ProcessTests {
    @Test("kubectl: apply a class and a PVC → Bound, describe shows the events, delete → PV and disk gone")
    func kubectlEndToEnd() async throws {
        try await withCluster(cloudFlags: ["--latency", "create=50ms,attach=50ms"]) { c in
            let applied = try await c.kubectl("apply", "-f", "-", input: manifest)
            #expect(applied.status == 0, "\(applied.stderr)")
            let waited = try await c.kubectl("wait", "--for=jsonpath={.status.phase}=Bound", "pvc/data", "--timeout=60s")
            #expect(waited.status == 0, "\(waited.stderr)")
            let volume = try await c.kubectl("get", "pvc", "data", "-o", "jsonpath={.spec.volumeName}").stdout
            #expect(volume.hasPrefix("pvc-"))
            let described = try await c.kubectl("describe", "pvc", "data").stdout
            for reason in ["ExternalProvisioning", "Provisioning", "ProvisioningSucceeded"] {
                #expect(described.contains(reason), "describe pvc lacks \(reason):\n\(described)")
            }
            let pv = try await c.kubectl("get", "pv", volume, "-o", "json")
            let handle = try JSONDecoder().decode(PersistentVolume.self, from: Data(pv.stdout.utf8)).spec.csi?.volumeHandle ?? ""
            #expect(try await c.cloud.allDisks().map(\.id) == [handle])
            #expect(try await c.kubectl("delete", "pvc", "data", "--timeout=60s").status == 0)
            let gone = try await c.kubectl("wait", "--for=delete", "pv/\(volume)", "--timeout=60s")
            #expect(gone.status == 0 || gone.stderr.contains("NotFound"), "\(gone.stderr)")
            let deadline = ContinuousClock.now + .seconds(30)
            while try await !c.cloud.allDisks().isEmpty && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
            #expect(try await c.cloud.allDisks().isEmpty)
        }
    }

    @Test("cloud serve --faults delete=1: the PV is Failed with the cloud's error and VolumeFailedDelete; once the fault clears, disk and PV go")
    func cloudFaultsOnDelete() async throws {
        try await withCluster(cloudFlags: ["--latency", "create=20ms,delete=20ms", "--faults", "delete=1", "--fault-seed", "7"]) { c in
            #expect(try await c.kubectl("apply", "-f", "-", input: manifest).status == 0)
            #expect(try await c.kubectl("wait", "--for=jsonpath={.status.phase}=Bound", "pvc/data", "--timeout=60s").status == 0)
            let volume = try await c.kubectl("get", "pvc", "data", "-o", "jsonpath={.spec.volumeName}").stdout
            #expect(volume.hasPrefix("pvc-"))
            #expect(try await c.kubectl("delete", "pvc", "data", "--wait=false").status == 0)
            // Every DeleteVolume fails in the cloud (after the cloud client's own retries).
            let failed = await waitUntil(timeout: .seconds(60), interval: .milliseconds(100)) {
                guard let pv = try? await c.client.get(PersistentVolume.self, name: volume) else { return false }
                return pv.status.phase == "Failed" && (pv.status.message ?? "").contains("injected fault")
            }
            let status = (try? await c.client.get(PersistentVolume.self, name: volume)).map { "\($0.status)" } ?? "gone"
            #expect(failed, "the PV never became Failed with the cloud's error: \(status)")
            let described = try await c.kubectl("describe", "pv", volume).stdout
            #expect(described.contains("VolumeFailedDelete") && described.contains("injected fault"), "\(described)")
            #expect(try await c.cloud.allDisks().count == 1, "the disk went although every delete failed")
            // The fault clears: the provisioner's retry deletes the disk, then the PV.
            try await c.restartCloud()
            let gone = try await c.kubectl("wait", "--for=delete", "pv/\(volume)", "--timeout=90s")
            #expect(gone.status == 0 || gone.stderr.contains("NotFound"), "\(gone.stderr)")
            let disksGone = await waitUntil(timeout: .seconds(30)) { (try? await c.cloud.allDisks().isEmpty) == true }
            #expect(disksGone)
        }
    }

    @Test("The Python kubernetes client: PVC → Bound, pod → attached, delete → detached and gone")
    func pythonClient() async throws {
        try await withCluster(cloudFlags: ["--latency", "create=50ms,attach=50ms"]) { c in
            try await c.addNode("node-a")
            let steps = try await runInteropScript("controller_client.py", [c.kubeconfig, "node-a"], needs: "kubernetes", timeout: 180)
            #expect((steps["created"]?["finalizers"] as? [String]) == ["kubernetes.io/pvc-protection"])
            #expect((steps["bound"]?["annotations"] as? [String: String])?["pv.kubernetes.io/bind-completed"] == "yes")
            #expect((steps["bound"]?["capacity"] as? String) == "32Mi")
            let reasons = steps["claim_events"]?["reasons"] as? [String] ?? []
            #expect(reasons.contains("ProvisioningSucceeded") && reasons.contains("ExternalProvisioning"))
            #expect((steps["attached"]?["finalizers"] as? [String]) == ["external-attacher/loop-csi-ballast-dev"])
            #expect((steps["attached"]?["name"] as? String)?.hasPrefix("csi-") == true)
            #expect(try await c.cloud.allDisks().isEmpty)
        }
    }

    @Test("Two instances: only the leader acts; kill -9 of the leader hands over")
    func leaderElection() async throws {
        try await withCluster(managerFlags: ["--leader-elect-lease-duration", "3s", "--leader-elect-renew-deadline", "2s",
                                             "--leader-elect-retry-period", "500ms"]) { c in
            let second = Daemon("controller-manager-2", arguments: c.managerArguments, log: c.root + "/controller-manager-2.log")
            try second.start()
            defer { second.signal(SIGKILL) }
            _ = try await c.kubectl("apply", "-f", "-", input: manifest)
            #expect(try await c.kubectl("wait", "--for=jsonpath={.status.phase}=Bound", "pvc/data", "--timeout=60s").status == 0)
            let lease = try await c.client.get(Lease.self, name: "ballast-controller-manager", namespace: "kube-system")
            let holder = lease.spec.holderIdentity ?? ""
            #expect(!holder.isEmpty)
            // Kill the leader, whichever it is; the other must take over and serve a new claim.
            let leaderLog = c.manager.output.contains("became leader") ? c.manager : second
            let follower = leaderLog === c.manager ? second : c.manager
            #expect(!follower.output.contains("became leader"), "both instances led")
            await leaderLog.kill9()
            _ = try await c.kubectl("apply", "-f", "-", input: manifest.replacingOccurrences(of: "name: data", with: "name: data-2"))
            #expect(try await c.kubectl("wait", "--for=jsonpath={.status.phase}=Bound", "pvc/data-2", "--timeout=60s").status == 0)
            let after = try await c.client.get(Lease.self, name: "ballast-controller-manager", namespace: "kube-system")
            #expect(after.spec.holderIdentity != holder && (after.spec.leaseTransitions ?? 0) >= 1)
            await follower.stop()
        }
    }
}
