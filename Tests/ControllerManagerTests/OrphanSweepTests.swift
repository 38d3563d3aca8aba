// The orphan sweep: a disk made by CreateVolume whose PV was never written (the provisioner
// died in between) and whose claim is gone is deleted; a disk that had a PV never is.
import APIClient
import ClusterAPI
import ControllerManager
import CSIProto
import Testing

@Suite("Orphan sweep", .timeLimit(.minutes(1)))
struct OrphanSweepTests {
    @Test("A pvc-<uid> disk without PV or claim is swept after the grace period; a Retain disk whose PV was deleted is kept")
    func sweep() async throws {
        try await withHarness(provisioning, configure: {
            $0.orphanGracePeriod = .seconds(1)
            $0.orphanSweepPeriod = .milliseconds(300)
        }) { h in
            // A Retain volume: bound, then its claim and its PV deleted by the user.
            _ = try await h.client.create(makeClass("keep", reclaim: "Retain"))
            _ = try await h.client.create(makePVC("kept", size: "16Mi", className: "keep"))
            await h.eventually("bound") { try await h.pvc("kept").status.phase == "Bound" }
            let keptVolume = try await h.pvc("kept").spec.volumeName ?? ""
            let keptHandle = try await h.pv(keptVolume).spec.csi?.volumeHandle ?? ""
            await h.eventually("its disk is marked as having had a PV") {
                try await h.disks().first { $0.id == keptHandle }?.tags["csi.ballast.dev/pv"] == keptVolume
            }
            try await h.client.delete(PersistentVolumeClaim.self, name: "kept", namespace: "default")
            await h.eventually("Released") { try await h.pv(keptVolume).status.phase == "Released" }
            try await h.client.delete(PersistentVolume.self, name: keptVolume)
            await h.eventually("PV gone") { !(await h.exists(PersistentVolume.self, keptVolume)) }

            // What a provisioner that died after CreateVolume leaves: a disk, no PV, no claim.
            let made = ContinuousClock.now
            let orphan = try await h.plugin!.createVolume(.with {
                $0.name = "pvc-0b1e2c3d-0000-4000-8000-00000000dead"
                $0.capacityRange = .with { $0.requiredBytes = 16 << 20 }
                $0.volumeCapabilities = [.with {
                    $0.mount = Csi_V1_VolumeCapability.MountVolume()
                    $0.accessMode = .with { $0.mode = .singleNodeWriter }
                }]
            }).volume.volumeID
            await h.eventually("the orphan is swept", timeout: .seconds(10)) { try await !h.disks().contains { $0.id == orphan } }
            #expect(ContinuousClock.now - made >= .milliseconds(900), "swept before its grace period")
            await h.stays("the Retain disk is kept") { try await h.disks().contains { $0.id == keptHandle } }
        }
    }
}
