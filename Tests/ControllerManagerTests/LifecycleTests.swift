// Resizing (and the API server's expansion admission), protection, node lifecycle.
import APIClient
import ClusterAPI
import CloudProvider
import ControllerManager
import Foundation
import Testing

@Suite("Resizer, protection, node lifecycle", .timeLimit(.minutes(2)))
struct LifecycleTests {
    @Test("Expansion: allocatedResources, ControllerExpandVolume, PV capacity, NodeResizePending + FileSystemResizePending")
    func expand() async throws {
        try await withHarness(provisioning.union([.resizer])) { h in
            _ = try await h.client.create(makeClass("growable", expansion: true))
            _ = try await h.client.create(makePVC("data", size: "64Mi", className: "growable"))
            await h.eventually("bound") { try await h.pvc("data").status.phase == "Bound" }
            let volume = try await h.pvc("data").spec.volumeName ?? ""
            _ = try await h.client.mergePatch(PersistentVolumeClaim.self, name: "data", namespace: "default",
                                              patch: ["spec": ["resources": ["requests": ["storage": "128Mi"]]]])
            await h.eventually("PV grown") { try await h.pv(volume).spec.capacity?["storage"] == quantity("128Mi") }
            await h.eventually("NodeResizePending with FileSystemResizePending") {
                let claim = try await h.pvc("data")
                return claim.status.allocatedResourceStatuses?["storage"] == "NodeResizePending"
                    && claim.status.allocatedResources?["storage"] == quantity("128Mi")
                    && claim.status.conditions?.contains { $0.type == "FileSystemResizePending" && $0.status == "True" } == true
                    && claim.metadata.annotations?[Annotation.storageResizer] == driverName
            }
            #expect(try await h.pvc("data").status.capacity?["storage"] == quantity("64Mi"))
            #expect(try await h.disks().first?.sizeBytes == 128 << 20)
            await h.eventually("events Resizing, FileSystemResizeRequired") {
                let resizing = await h.hasEvent("PersistentVolumeClaim", "data", reason: "Resizing",
                                                containing: "External resizer is resizing volume \(volume)")
                let required = await h.hasEvent("PersistentVolumeClaim", "data", reason: "FileSystemResizeRequired")
                return resizing && required
            }
        }
    }

    @Test("ControllerResizeInfeasible: a size the cloud refuses sets the status and VolumeResizeFailed, is not retried; a smaller request then succeeds")
    func resizeInfeasible() async throws {
        var simulator = SimulatorConfiguration()
        simulator.maxDiskBytes = 256 << 20
        let plugin = Locked<FaultyPlugin?>(nil)
        try await withHarness(provisioning.union([.resizer]), simulator: simulator, wrap: { base in
            let counting = FaultyPlugin(base)
            plugin.withLock { $0 = counting }
            return counting
        }) { h in
            _ = try await h.client.create(makeClass("growable", expansion: true))
            _ = try await h.client.create(makePVC("data", size: "64Mi", className: "growable"))
            await h.eventually("bound") { try await h.pvc("data").status.phase == "Bound" }
            let volume = try await h.pvc("data").spec.volumeName ?? ""
            _ = try await h.client.mergePatch(PersistentVolumeClaim.self, name: "data", namespace: "default",
                                              patch: ["spec": ["resources": ["requests": ["storage": "1Gi"]]]])
            await h.eventually("ControllerResizeInfeasible") {
                let claim = try await h.pvc("data")
                return claim.status.allocatedResourceStatuses?["storage"] == "ControllerResizeInfeasible"
                    && claim.status.allocatedResources?["storage"] == quantity("1Gi")
                    && !(claim.status.conditions ?? []).contains { $0.type == "Resizing" }
            }
            await h.eventually("VolumeResizeFailed with the cloud's refusal") {
                await h.hasEvent("PersistentVolumeClaim", "data", reason: "VolumeResizeFailed",
                                 containing: "resize volume \"\(volume)\" by resizer \"\(driverName)\" failed: rpc error: code = OutOfRange")
            }
            #expect(try await h.pv(volume).spec.capacity?["storage"] == quantity("64Mi"))
            #expect(try await h.pvc("data").status.capacity?["storage"] == quantity("64Mi"))
            #expect(try await h.disks().first?.sizeBytes == 64 << 20)
            let calls = plugin.withLock { $0!.count("ControllerExpandVolume") }
            await h.stays("not retried while the request is unchanged") {
                plugin.withLock { $0!.count("ControllerExpandVolume") } == calls
            }
            // The user asks for less (still more than the capacity): the resizer tries again.
            _ = try await h.client.mergePatch(PersistentVolumeClaim.self, name: "data", namespace: "default",
                                              patch: ["spec": ["resources": ["requests": ["storage": "128Mi"]]]])
            await h.eventually("expanded to the new request") {
                let claim = try await h.pvc("data")
                return claim.status.allocatedResourceStatuses?["storage"] == "NodeResizePending"
                    && claim.status.allocatedResources?["storage"] == quantity("128Mi")
            }
            #expect(try await h.pv(volume).spec.capacity?["storage"] == quantity("128Mi"))
        }
    }

    @Test("The API server refuses expansion without allowVolumeExpansion (403) and shrinking (422)")
    func expansionAdmission() async throws {
        try await withHarness(provisioning) { h in
            _ = try await h.client.create(makeClass("fixed"))
            _ = try await h.client.create(makeClass("growable", expansion: true))
            _ = try await h.client.create(makePVC("fixed", size: "64Mi", className: "fixed"))
            _ = try await h.client.create(makePVC("growable", size: "64Mi", className: "growable"))
            await h.eventually("bound") {
                let fixed = try await h.pvc("fixed").status.phase, growable = try await h.pvc("growable").status.phase
                return fixed == "Bound" && growable == "Bound"
            }
            do {
                _ = try await h.client.mergePatch(PersistentVolumeClaim.self, name: "fixed", namespace: "default",
                                                  patch: ["spec": ["resources": ["requests": ["storage": "128Mi"]]]])
                Issue.record("expansion of a fixed class was accepted")
            } catch let error as APIError {
                #expect(error.code == 403)
                #expect(error.description.contains("persistentvolumeclaims \"fixed\" is forbidden: only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize"))
            }
            do {
                _ = try await h.client.mergePatch(PersistentVolumeClaim.self, name: "growable", namespace: "default",
                                                  patch: ["spec": ["resources": ["requests": ["storage": "32Mi"]]]])
                Issue.record("shrinking was accepted")
            } catch let error as APIError {
                #expect(error.code == 422)
                #expect(error.description.contains("field can not be less than"))
            }
        }
    }

    @Test("Admission: default class filled in, protection finalizers added on create")
    func admissionDefaults() async throws {
        try await withHarness([], csi: false) { h in
            var standard = makeClass("standard")
            standard.metadata.annotations = [Annotation.defaultStorageClass: "true"]
            _ = try await h.client.create(standard)
            let claim = try await h.client.create(makePVC("data", className: nil))
            #expect(claim.spec.storageClassName == "standard")
            #expect(claim.metadata.finalizers == [Finalizer.pvcProtection])
            let explicit = try await h.client.create(makePVC("none", className: ""))
            #expect(explicit.spec.storageClassName == "")
            let volume = try await h.client.create(makePV("pv-1"))
            #expect(volume.metadata.finalizers == [Finalizer.pvProtection])
        }
    }

    @Test("A claim deleted while its pod runs stays Terminating until the pod is gone")
    func pvcProtection() async throws {
        try await withHarness(.binderOnly, csi: false) { h in
            _ = try await h.client.create(makePV("pv-1"))
            _ = try await h.client.create(makePVC("data"))
            await h.eventually("bound") { try await h.pvc("data").status.phase == "Bound" }
            _ = try await h.client.create(makePod("app", claims: ["data"], node: "node-a"))
            try await h.client.delete(PersistentVolumeClaim.self, name: "data", namespace: "default")
            await h.stays("Terminating while the pod runs") { try await h.pvc("data").metadata.deletionTimestamp != nil }
            #expect(try await h.pv("pv-1").status.phase == "Bound")
            try await h.client.delete(Pod.self, name: "app", namespace: "default", options: DeleteOptions(gracePeriodSeconds: 0))
            await h.eventually("claim gone") { !(await h.exists(PersistentVolumeClaim.self, "data", namespace: "default")) }
            await h.eventually("volume Released") { try await h.pv("pv-1").status.phase == "Released" }
            // pv-protection: a Released volume can be deleted.
            try await h.client.delete(PersistentVolume.self, name: "pv-1")
            await h.eventually("volume gone") { !(await h.exists(PersistentVolume.self, "pv-1")) }
        }
    }

    @Test("pv-protection holds a Bound volume")
    func pvProtection() async throws {
        try await withHarness(.binderOnly, csi: false) { h in
            _ = try await h.client.create(makePV("pv-1"))
            _ = try await h.client.create(makePVC("data"))
            await h.eventually("bound") { try await h.pvc("data").status.phase == "Bound" }
            try await h.client.delete(PersistentVolume.self, name: "pv-1")
            await h.stays("Terminating while Bound") { try await h.pv("pv-1").metadata.deletionTimestamp != nil }
        }
    }

    @Test("Toleration time: the smallest tolerationSeconds among the matching tolerations; forever only when none has one")
    func tolerationTime() {
        let taint = ClusterAPI.Taint(key: Taint.unreachable, effect: "NoExecute")
        let forever = Toleration(key: Taint.unreachable, operator: "Exists", effect: "NoExecute")
        func seconds(_ tolerations: [Toleration], _ taint: ClusterAPI.Taint = taint) -> Int64? {
            NodeLifecycleController.tolerationSeconds(tolerations, taint, defaultSeconds: 300)
        }
        #expect(seconds([forever]) == nil)
        #expect(seconds([forever, Toleration(operator: "Exists", tolerationSeconds: 60)]) == 60)
        #expect(seconds([Toleration(operator: "Exists", tolerationSeconds: 600), forever,
                         Toleration(key: Taint.unreachable, operator: "Exists", tolerationSeconds: 30)]) == 30)
        #expect(seconds([Toleration(operator: "Exists", tolerationSeconds: -5), forever]) == 0)
        // Tolerations of other taints or effects do not count.
        #expect(seconds([forever, Toleration(key: Taint.notReady, operator: "Exists", tolerationSeconds: 5),
                         Toleration(operator: "Exists", effect: "NoSchedule", tolerationSeconds: 5)]) == nil)
        // None matching: the default for unreachable/not-ready, not tolerated otherwise.
        #expect(seconds([]) == 300)
        #expect(seconds([], ClusterAPI.Taint(key: Taint.outOfService, value: "nodeshutdown", effect: "NoExecute")) == 0)
    }

    @Test("A pod tolerating the unreachable taint forever and for 1 s is evicted after 1 s")
    func minimumTolerationEvicts() async throws {
        try await withHarness([.nodeLifecycle], csi: false, configure: {
            $0.nodeMonitorGracePeriod = .milliseconds(500)
            $0.podEvictionTimeout = .seconds(3600)
        }) { h in
            _ = try await h.client.create(makeNode("node-a"))
            _ = try await h.client.create(makePod("mixed", claims: [], node: "node-a", tolerations: [
                Toleration(key: Taint.unreachable, operator: "Exists", effect: "NoExecute"),
                Toleration(operator: "Exists", effect: "NoExecute", tolerationSeconds: 1)]))
            _ = try await h.client.create(makePod("forever", claims: [], node: "node-a", tolerations: [
                Toleration(key: Taint.unreachable, operator: "Exists", effect: "NoExecute")]))
            await h.eventually("unreachable NoExecute taint") {
                (try await h.client.get(Node.self, name: "node-a").spec.taints ?? []).contains { $0.key == Taint.unreachable && $0.effect == "NoExecute" }
            }
            await h.eventually("the pod with a 1 s toleration is marked for deletion") {
                try await h.client.get(Pod.self, name: "mixed", namespace: "default").metadata.deletionTimestamp != nil
            }
            await h.stays("the pod tolerating it forever stays") {
                try await h.client.get(Pod.self, name: "forever", namespace: "default").metadata.deletionTimestamp == nil
            }
        }
    }

    @Test("Node lifecycle: silent node → Ready=Unknown, unreachable taints, pods evicted after their toleration; back → taints gone")
    func nodeLifecycle() async throws {
        try await withHarness([.nodeLifecycle], csi: false, configure: {
            // Wide enough that a renewal delayed by a loaded machine is not silence.
            $0.nodeMonitorGracePeriod = .seconds(3)
            $0.podEvictionTimeout = .seconds(1)
        }) { h in
            _ = try await h.client.create(makeNode("node-a"))
            var lease = Lease(metadata: ObjectMeta(name: "node-a", namespace: "kube-node-lease"))
            lease.spec = LeaseSpec(holderIdentity: "node-a", leaseDurationSeconds: 40, renewTime: MicroTime.now())
            lease = try await h.client.create(lease)
            _ = try await h.client.create(makePod("plain", claims: [], node: "node-a"))
            _ = try await h.client.create(makePod("patient", claims: [], node: "node-a", tolerations: [
                Toleration(key: Taint.unreachable, operator: "Exists", effect: "NoExecute", tolerationSeconds: 3600)]))
            // Renewed for longer than the grace period: stays Ready.
            for _ in 0..<12 {
                try await Task.sleep(for: .milliseconds(400))
                lease.spec.renewTime = MicroTime.now()
                lease = try await h.client.update(lease)
            }
            #expect(try await h.client.get(Node.self, name: "node-a").readyCondition == "True")
            // Silent: Unknown and tainted.
            await h.eventually("Ready=Unknown") { try await h.client.get(Node.self, name: "node-a").readyCondition == "Unknown" }
            await h.eventually("unreachable taints") {
                let taints = try await h.client.get(Node.self, name: "node-a").spec.taints ?? []
                return Set(taints.filter { $0.key == Taint.unreachable }.map(\.effect)) == ["NoSchedule", "NoExecute"]
            }
            await h.eventually("the pod without a toleration is marked for deletion") {
                try await h.client.get(Pod.self, name: "plain", namespace: "default").metadata.deletionTimestamp != nil
            }
            #expect(try await h.client.get(Pod.self, name: "patient", namespace: "default").metadata.deletionTimestamp == nil)
            await h.eventually("TaintManagerEviction on the evicted pod") {
                await h.hasEvent("Pod", "plain", reason: "TaintManagerEviction", containing: "Marking for deletion Pod default/plain")
            }
            // Back: the kubelet reports Ready and renews its lease.
            try await h.modifyNode("node-a", status: true) {
                $0.status.conditions = [NodeCondition(type: "Ready", status: "True", lastHeartbeatTime: Time.now(), lastTransitionTime: Time.now())]
            }
            await h.eventually("taints removed") { (try await h.client.get(Node.self, name: "node-a").spec.taints ?? []).isEmpty }
        }
    }
}

extension Node {
    var readyCondition: String? { status.conditions?.first { $0.type == "Ready" }?.status }
}
