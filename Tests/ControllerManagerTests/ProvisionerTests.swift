// The built-in provisioner with the binder, against the real CSI driver (controller mode) in
// front of the in-memory simulated cloud.
import APIClient
import ClusterAPI
import CloudProvider
import ControllerManager
import CSIProto
import GRPCCore
import Synchronization
import Testing

/// Fails the first `count` calls of the chosen RPCs with `code`, then passes them on.
final class FaultyPlugin: CSIPlugin {
    let base: any CSIPlugin
    let failures = Mutex<[String: (code: RPCError.Code, left: Int)]>([:])
    let calls = Mutex<[String: Int]>([:])
    /// Runs before each CreateVolume (with its 1-based call number): a test's way to change the
    /// world while the call is in flight.
    let beforeCreate = Locked<(@Sendable (Int) async throws -> Void)?>(nil)

    init(_ base: any CSIPlugin, failing: [String: (RPCError.Code, Int)] = [:]) {
        self.base = base
        failures.withLock { state in for (name, failure) in failing { state[name] = (failure.0, failure.1) } }
    }

    func count(_ name: String) -> Int { calls.withLock { $0[name, default: 0] } }

    private func check(_ name: String) throws {
        calls.withLock { $0[name, default: 0] += 1 }
        try fault(name)
    }

    private func fault(_ name: String) throws {
        let code: RPCError.Code? = failures.withLock { state in
            guard let failure = state[name], failure.left > 0 else { return nil }
            state[name] = (failure.code, failure.left - 1)
            return failure.code
        }
        if let code { throw RPCError(code: code, message: "injected \(name) failure") }
    }

    func getPluginInfo() async throws -> Csi_V1_GetPluginInfoResponse { try await base.getPluginInfo() }
    func controllerGetCapabilities() async throws -> Csi_V1_ControllerGetCapabilitiesResponse { try await base.controllerGetCapabilities() }
    func createVolume(_ request: Csi_V1_CreateVolumeRequest) async throws -> Csi_V1_CreateVolumeResponse {
        let call = calls.withLock { calls -> Int in
            calls["CreateVolume", default: 0] += 1
            return calls["CreateVolume"]!
        }
        if let hook = beforeCreate.withLock({ $0 }) { try await hook(call) }
        try fault("CreateVolume")
        return try await base.createVolume(request)
    }
    /// Fails the next `count` calls of `name` with `code` (replacing what was left of an earlier fault).
    func fail(_ name: String, with code: RPCError.Code, times count: Int) {
        failures.withLock { $0[name] = (code, count) }
    }

    func deleteVolume(_ request: Csi_V1_DeleteVolumeRequest) async throws -> Csi_V1_DeleteVolumeResponse {
        try check("DeleteVolume")
        return try await base.deleteVolume(request)
    }
    func controllerPublishVolume(_ request: Csi_V1_ControllerPublishVolumeRequest) async throws -> Csi_V1_ControllerPublishVolumeResponse {
        try check("ControllerPublishVolume")
        return try await base.controllerPublishVolume(request)
    }
    func controllerUnpublishVolume(_ request: Csi_V1_ControllerUnpublishVolumeRequest) async throws -> Csi_V1_ControllerUnpublishVolumeResponse {
        try check("ControllerUnpublishVolume")
        return try await base.controllerUnpublishVolume(request)
    }
    func controllerExpandVolume(_ request: Csi_V1_ControllerExpandVolumeRequest) async throws -> Csi_V1_ControllerExpandVolumeResponse {
        try check("ControllerExpandVolume")
        return try await base.controllerExpandVolume(request)
    }
    func controllerModifyVolume(_ request: Csi_V1_ControllerModifyVolumeRequest) async throws -> Csi_V1_ControllerModifyVolumeResponse {
        try check("ControllerModifyVolume")
        return try await base.controllerModifyVolume(request)
    }
    func listVolumes(_ request: Csi_V1_ListVolumesRequest) async throws -> Csi_V1_ListVolumesResponse { try await base.listVolumes(request) }
    func createSnapshot(_ request: Csi_V1_CreateSnapshotRequest) async throws -> Csi_V1_CreateSnapshotResponse {
        try check("CreateSnapshot")
        return try await base.createSnapshot(request)
    }
    func deleteSnapshot(_ request: Csi_V1_DeleteSnapshotRequest) async throws -> Csi_V1_DeleteSnapshotResponse {
        try check("DeleteSnapshot")
        return try await base.deleteSnapshot(request)
    }
    func listSnapshots(_ request: Csi_V1_ListSnapshotsRequest) async throws -> Csi_V1_ListSnapshotsResponse { try await base.listSnapshots(request) }
}

let provisioning: Set<ControllerName> = [.persistentVolumeBinder, .provisioner, .pvcProtection, .pvProtection]

@Suite("Provisioner", .timeLimit(.minutes(2)))
struct ProvisionerTests {
    @Test("Immediate class: PVC → CreateVolume pvc-<uid> → PV with finalizer, claimRef uid, topology → Bound")
    func immediate() async throws {
        try await withHarness(provisioning) { h in
            _ = try await h.client.create(makeClass("fast", reclaim: "Delete", parameters: ["type": "ssd", "csi.storage.k8s.io/fstype": "xfs"]))
            let claim = try await h.client.create(makePVC("data", size: "100Mi", className: "fast"))
            let name = "pvc-\(claim.metadata.uid!)"
            await h.eventually("claim bound to \(name)") { try await h.pvc("data").status.phase == "Bound" }
            let pv = try await h.pv(name)
            #expect(try await h.pvc("data").spec.volumeName == name)
            #expect(pv.metadata.annotations?[Annotation.provisionedBy] == driverName)
            #expect(pv.metadata.finalizers?.contains(Finalizer.provisioner) == true)
            #expect(pv.metadata.finalizers?.contains(Finalizer.pvProtection) == true)
            #expect(pv.spec.claimRef?.uid == claim.metadata.uid)
            #expect(pv.spec.persistentVolumeReclaimPolicy == "Delete")
            #expect(pv.spec.csi?.fsType == "xfs")
            #expect(pv.spec.storageClassName == "fast")
            #expect(pv.spec.capacity?["storage"] == quantity("100Mi"))
            let zone = pv.spec.nodeAffinity?.required?.nodeSelectorTerms.first?.matchExpressions?.first
            #expect(zone?.key == "topology.kubernetes.io/zone" && zone?.operator == "In" && zone?.values?.count == 1)
            let disks = try await h.disks()
            #expect(disks.count == 1 && disks.first?.id == pv.spec.csi?.volumeHandle && disks.first?.type == "ssd")
            await h.eventually("events Provisioning, ProvisioningSucceeded") {
                let started = await h.hasEvent("PersistentVolumeClaim", "data", reason: "Provisioning",
                                               containing: "External provisioner is provisioning volume for claim \"default/data\"")
                let succeeded = await h.hasEvent("PersistentVolumeClaim", "data", reason: "ProvisioningSucceeded",
                                                 containing: "Successfully provisioned volume \(name)")
                return started && succeeded
            }
        }
    }

    @Test("Delete: the claim goes, the disk is deleted, then the PV")
    func deleteReclaim() async throws {
        try await withHarness(provisioning) { h in
            _ = try await h.client.create(makeClass("fast", reclaim: "Delete"))
            let claim = try await h.client.create(makePVC("data", size: "64Mi", className: "fast"))
            await h.eventually("bound") { try await h.pvc("data").status.phase == "Bound" }
            #expect(try await h.disks().count == 1)
            try await h.client.delete(PersistentVolumeClaim.self, name: "data", namespace: "default")
            await h.eventually("PV gone") { !(await h.exists(PersistentVolume.self, "pvc-\(claim.metadata.uid!)")) }
            await h.eventually("disk gone") { try await h.disks().isEmpty }
        }
    }

    @Test("Retain: the claim goes, the PV stays Released and the disk stays")
    func retainReclaim() async throws {
        try await withHarness(provisioning) { h in
            _ = try await h.client.create(makeClass("keep", reclaim: "Retain"))
            let claim = try await h.client.create(makePVC("data", size: "64Mi", className: "keep"))
            await h.eventually("bound") { try await h.pvc("data").status.phase == "Bound" }
            let name = "pvc-\(claim.metadata.uid!)"
            #expect(try await h.pv(name).metadata.finalizers?.contains(Finalizer.provisioner) != true)
            try await h.client.delete(PersistentVolumeClaim.self, name: "data", namespace: "default")
            await h.eventually("Released") { try await h.pv(name).status.phase == "Released" }
            await h.stays("PV and disk kept") {
                let phase = try await h.pv(name).status.phase, disks = try await h.disks().count
                return phase == "Released" && disks == 1
            }
        }
    }

    @Test("WaitForFirstConsumer: nothing until selected-node; then the node's zone is requisite and preferred")
    func waitForFirstConsumer() async throws {
        var simulator = SimulatorConfiguration()
        simulator.zones = ["ballast-1a", "ballast-1b"]
        try await withHarness(provisioning, simulator: simulator) { h in
            _ = try await h.client.create(makeClass("late", binding: "WaitForFirstConsumer"))
            _ = try await h.client.create(makeNode("node-b", zone: "ballast-1b"))
            _ = try await h.client.create(makeCSINode("node-b", nodeID: "i-00000000000000001"))
            _ = try await h.client.create(makePVC("data", size: "64Mi", className: "late"))
            await h.eventually("WaitForFirstConsumer event") {
                await h.hasEvent("PersistentVolumeClaim", "data", reason: "WaitForFirstConsumer")
            }
            await h.stays("no disk before a node is chosen") { try await h.disks().isEmpty }
            _ = try await h.client.mergePatch(PersistentVolumeClaim.self, name: "data", namespace: "default",
                                              patch: ["metadata": ["annotations": .object([Annotation.selectedNode: "node-b"])]])
            await h.eventually("bound") { try await h.pvc("data").status.phase == "Bound" }
            let disks = try await h.disks()
            #expect(disks.map(\.zone) == ["ballast-1b"])
            let pv = try await h.pv(try await h.pvc("data").spec.volumeName ?? "")
            #expect(pv.spec.nodeAffinity?.required?.nodeSelectorTerms.first?.matchExpressions?.first?.values == ["ballast-1b"])
        }
    }

    @Test("Immediate class with allowedTopologies: the volume lands in an allowed zone")
    func allowedTopologies() async throws {
        var simulator = SimulatorConfiguration()
        simulator.zones = ["ballast-1a", "ballast-1b", "ballast-1c"]
        try await withHarness(provisioning, simulator: simulator) { h in
            _ = try await h.client.create(makeClass("zoned", topologies: ["topology.kubernetes.io/zone": ["ballast-1c"]]))
            for index in 0..<3 { _ = try await h.client.create(makePVC("data-\(index)", size: "16Mi", className: "zoned")) }
            for index in 0..<3 { await h.eventually("bound \(index)") { try await h.pvc("data-\(index)").status.phase == "Bound" } }
            #expect(Set(try await h.disks().map(\.zone)) == ["ballast-1c"])
        }
    }

    @Test("Too large for the cloud: ProvisioningFailed with the cloud's message, and others still provision")
    func tooLarge() async throws {
        var simulator = SimulatorConfiguration()
        simulator.maxDiskBytes = 1 << 30
        try await withHarness(provisioning, simulator: simulator) { h in
            _ = try await h.client.create(makeClass("fast"))
            _ = try await h.client.create(makePVC("huge", size: "5Gi", className: "fast"))
            _ = try await h.client.create(makePVC("absurd", size: "8Ei", className: "fast"))
            _ = try await h.client.create(makePVC("fine", size: "64Mi", className: "fast"))
            await h.eventually("fine is bound") { try await h.pvc("fine").status.phase == "Bound" }
            await h.eventually("ProvisioningFailed on huge, with the cloud's words") {
                await h.hasEvent("PersistentVolumeClaim", "huge", reason: "ProvisioningFailed",
                                 containing: "failed to provision volume with StorageClass \"fast\": rpc error: code = OutOfRange")
            }
            await h.eventually("ProvisioningFailed on absurd") {
                await h.hasEvent("PersistentVolumeClaim", "absurd", reason: "ProvisioningFailed", containing: "rpc error: code = OutOfRange")
            }
            #expect(try await h.pvc("huge").status.phase == "Pending")
            #expect(try await h.disks().count == 1)
        }
    }

    @Test("A negative or zero size is refused by the API server (422) and the controllers go on serving others")
    func nonPositiveSize() async throws {
        try await withHarness(provisioning) { h in
            _ = try await h.client.create(makeClass("fast"))
            for size in ["-1Gi", "0"] {
                do {
                    _ = try await h.client.create(makePVC("bad", size: size, className: "fast"))
                    Issue.record("a claim of \(size) was accepted")
                } catch let error as APIError {
                    #expect(error.code == 422)
                    #expect(error.description.contains("spec.resources[storage]") && error.description.contains("must be greater than zero"),
                            "\(error)")
                }
            }
            _ = try await h.client.create(makePVC("fine", size: "16Mi", className: "fast"))
            await h.eventually("fine is bound") { try await h.pvc("fine").status.phase == "Bound" }
            #expect(try await h.disks().count == 1)
        }
    }

    @Test("A failed DeleteVolume: the PV is Failed with the error, VolumeFailedDelete, retried; gone once the fault clears")
    func deleteFailsThenSucceeds() async throws {
        let faulty = Locked<FaultyPlugin?>(nil)
        try await withHarness(provisioning, wrap: { base in
            let plugin = FaultyPlugin(base)
            faulty.withLock { $0 = plugin }
            return plugin
        }) { h in
            _ = try await h.client.create(makeClass("fast", reclaim: "Delete"))
            let claim = try await h.client.create(makePVC("data", size: "16Mi", className: "fast"))
            let name = "pvc-\(claim.metadata.uid!)"
            await h.eventually("bound") { try await h.pvc("data").status.phase == "Bound" }
            faulty.withLock { $0!.fail("DeleteVolume", with: .internalError, times: 1000) }
            try await h.client.delete(PersistentVolumeClaim.self, name: "data", namespace: "default")
            await h.eventually("PV Failed with the plugin's error") {
                let pv = try await h.pv(name)
                return pv.status.phase == "Failed" && (pv.status.message ?? "").contains("rpc error: code = Internal desc = injected DeleteVolume failure")
            }
            await h.eventually("VolumeFailedDelete on the PV") {
                await h.hasEvent("PersistentVolume", name, reason: "VolumeFailedDelete", containing: "injected DeleteVolume failure")
            }
            #expect(try await h.disks().count == 1, "the disk went although DeleteVolume failed")
            await h.eventually("retried") { faulty.withLock { $0!.count("DeleteVolume") } >= 2 }
            #expect(try await h.pv(name).status.phase == "Failed")
            // The fault clears: the next retry deletes the disk, then the PV.
            faulty.withLock { $0!.fail("DeleteVolume", with: .internalError, times: 0) }
            await h.eventually("PV gone", timeout: .seconds(30)) { !(await h.exists(PersistentVolume.self, name)) }
            #expect(try await h.disks().isEmpty)
        }
    }

    @Test("A selected node without CSINode: ProvisioningFailed, no CreateVolume; provisioned once the CSINode is there")
    func selectedNodeWithoutTopology() async throws {
        var simulator = SimulatorConfiguration()
        simulator.zones = ["ballast-1a", "ballast-1b"]
        let faulty = Locked<FaultyPlugin?>(nil)
        try await withHarness(provisioning, simulator: simulator, wrap: { base in
            let plugin = FaultyPlugin(base)
            faulty.withLock { $0 = plugin }
            return plugin
        }) { h in
            _ = try await h.client.create(makeClass("late", binding: "WaitForFirstConsumer"))
            _ = try await h.client.create(makeNode("node-b", zone: "ballast-1b"))
            _ = try await h.client.create(makePVC("data", size: "16Mi", className: "late", annotations: [Annotation.selectedNode: "node-b"]))
            await h.eventually("ProvisioningFailed: no topology for the selected node") {
                await h.hasEvent("PersistentVolumeClaim", "data", reason: "ProvisioningFailed",
                                 containing: "failed to provision volume with StorageClass \"late\": error generating accessibility requirements: error getting CSINode for selected node \"node-b\"")
            }
            #expect(faulty.withLock { $0!.count("CreateVolume") } == 0, "CreateVolume was called without the node's topology")
            #expect(try await h.disks().isEmpty)
            #expect(try await h.pvc("data").metadata.annotations?[Annotation.selectedNode] == "node-b", "a missing CSINode is no reason to reschedule")
            // The node's driver registers: the retry provisions in its zone.
            _ = try await h.client.create(makeCSINode("node-b", nodeID: "i-00000000000000001"))
            await h.eventually("bound", timeout: .seconds(30)) { try await h.pvc("data").status.phase == "Bound" }
            #expect(try await h.disks().map(\.zone) == ["ballast-1b"])
        }
    }

    @Test("Removing selected-node carries the resourceVersion: a node the scheduler chose again meanwhile is kept")
    func rescheduleKeepsANewerChoice() async throws {
        var simulator = SimulatorConfiguration()
        simulator.zones = ["ballast-1a", "ballast-1b"]
        let client = Locked<KubeClient?>(nil)
        try await withHarness(provisioning, simulator: simulator, wrap: { base in
            let plugin = FaultyPlugin(base)
            plugin.beforeCreate.withLock { hook in
                hook = { call in
                    guard call == 1, let client = client.withLock({ $0 }) else { return }
                    // While the first CreateVolume runs, the scheduler picks node-b instead; then
                    // the call fails with ResourceExhausted.
                    _ = try await client.mergePatch(PersistentVolumeClaim.self, name: "data", namespace: "default",
                                                    patch: ["metadata": ["annotations": .object([Annotation.selectedNode: "node-b"])]])
                    throw RPCError(code: .resourceExhausted, message: "injected: zone ballast-1a is full")
                }
            }
            return plugin
        }) { h in
            client.withLock { $0 = h.client }
            _ = try await h.client.create(makeClass("late", binding: "WaitForFirstConsumer"))
            for (node, zone) in [("node-a", "ballast-1a"), ("node-b", "ballast-1b")] {
                _ = try await h.client.create(makeNode(node, zone: zone))
                _ = try await h.client.create(makeCSINode(node, nodeID: node == "node-a" ? "i-00000000000000001" : "i-00000000000000002"))
            }
            _ = try await h.client.create(makePVC("data", size: "16Mi", className: "late", annotations: [Annotation.selectedNode: "node-a"]))
            await h.eventually("ProvisioningFailed for node-a") {
                await h.hasEvent("PersistentVolumeClaim", "data", reason: "ProvisioningFailed", containing: "injected: zone ballast-1a is full")
            }
            await h.eventually("bound on the node chosen again", timeout: .seconds(30)) { try await h.pvc("data").status.phase == "Bound" }
            #expect(try await h.pvc("data").metadata.annotations?[Annotation.selectedNode] == "node-b")
            #expect(try await h.disks().map(\.zone) == ["ballast-1b"])
        }
    }

    @Test("Transient CreateVolume failures are retried with the same name: one disk")
    func transientRetried() async throws {
        let faulty = Locked<FaultyPlugin?>(nil)
        try await withHarness(provisioning, wrap: { base in
            let plugin = FaultyPlugin(base, failing: ["CreateVolume": (.unavailable, 1), "ControllerModifyVolume": (.deadlineExceeded, 1)])
            faulty.withLock { $0 = plugin }
            return plugin
        }) { h in
            _ = try await h.client.create(makeClass("fast"))
            _ = try await h.client.create(makePVC("data", size: "16Mi", className: "fast"))
            await h.eventually("bound after a retry", timeout: .seconds(15)) { try await h.pvc("data").status.phase == "Bound" }
            #expect(faulty.withLock { $0!.count("CreateVolume") } >= 2)
            #expect(try await h.disks().count == 1)
            await h.eventually("ProvisioningFailed with Unavailable") {
                await h.hasEvent("PersistentVolumeClaim", "data", reason: "ProvisioningFailed", containing: "code = Unavailable")
            }
        }
    }

    @Test("A selected node that no longer exists, and ResourceExhausted: selected-node is removed")
    func reschedule() async throws {
        var simulator = SimulatorConfiguration()
        simulator.zones = ["ballast-1a"]
        simulator.zoneCapacityBytes = 64 << 20
        try await withHarness(provisioning, simulator: simulator) { h in
            _ = try await h.client.create(makeClass("late", binding: "WaitForFirstConsumer"))
            _ = try await h.client.create(makePVC("orphaned", size: "16Mi", className: "late",
                                                  annotations: [Annotation.selectedNode: "node-gone"]))
            await h.eventually("selected-node removed for a missing node") {
                try await h.pvc("orphaned").metadata.annotations?[Annotation.selectedNode] == nil
            }
            await h.eventually("ProvisioningFailed for the missing node") {
                await h.hasEvent("PersistentVolumeClaim", "orphaned", reason: "ProvisioningFailed", containing: "nodes \"node-gone\" not found")
            }
            _ = try await h.client.create(makeNode("node-a"))
            _ = try await h.client.create(makeCSINode("node-a", nodeID: "i-00000000000000001"))
            _ = try await h.client.create(makePVC("full", size: "128Mi", className: "late", annotations: [Annotation.selectedNode: "node-a"]))
            await h.eventually("selected-node removed on ResourceExhausted") {
                try await h.pvc("full").metadata.annotations?[Annotation.selectedNode] == nil
            }
            await h.eventually("ProvisioningFailed with ResourceExhausted") {
                await h.hasEvent("PersistentVolumeClaim", "full", reason: "ProvisioningFailed", containing: "code = ResourceExhausted")
            }
            #expect(try await h.disks().isEmpty)
        }
    }
}
