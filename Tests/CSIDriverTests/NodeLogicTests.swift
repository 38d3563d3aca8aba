// The node service's logic on a `RecordingMounter`: no root, no devices, every call to the
// kernel recorded. What is formatted and what never is, which mounts may be unmounted, mount
// flags, path confinement through symlinks, and injected failures. The same rules run for real
// in NodeTests (root, loop devices).
import CloudProvider
import CSIDriver
import Foundation
import GRPCCore
import HostSystem
import Testing

private typealias H = DriverHarness

/// A disk of the cloud attached to the driver's node, seen through a fake loop device (its
/// backing file named as the cloud names it): NodeStage checks both.
private func fakeVolume(_ driver: DriverHarness, _ mounter: RecordingMounter, number: Int = 900, signature: DeviceSignature = .blank,
                        readOnly: Bool = false) async throws -> (id: String, context: [String: String]) {
    let created = try await driver.cloud.wait(for: try await driver.cloud.createDisk(CreateDiskRequest(name: "fake-\(number)", zone: "ballast-1a",
                                                                                                         sizeBytes: 64 << 20)))
    let volumeID = created.targetId
    _ = try await driver.cloud.wait(for: try await driver.cloud.attachDisk(id: volumeID, instanceId: driver.node.id))
    let device = "/dev/loop\(number)"
    mounter.add(BlockDevice(path: device, majorMinor: "7:\(number)", sizeBytes: 64 << 20, readOnly: readOnly,
                            backingFile: "/var/lib/ballast/volumes/ballast-1a/\(volumeID).img"), signature: signature)
    return (volumeID, ["devicePath": device, "serial": volumeID])
}

/// Volumes the cloud does not know (refused before any cloud call).
private let volumeA = "vol-0a1b2c3d4e5f60718"
private let volumeB = "vol-1b2c3d4e5f6071829"

@Suite struct NodeLogicTests {
    @Test func aBlankDeviceIsFormattedOnceAndStagedIdempotently() async throws {
        let mounter = RecordingMounter()
        try await withDriver(mounter: mounter) { driver in
            let (volumeA, context) = try await fakeVolume(driver, mounter)
            let staging = driver.kubeletRoot + "/staging/a"
            try await driver.stage(volumeA, context: context, path: staging, capability: H.capability(fsType: "ext4"))
            try await driver.stage(volumeA, context: context, path: staging, capability: H.capability(fsType: "ext4"))
            #expect(mounter.calls(.format) == [.format(device: "/dev/loop900", fsType: "ext4")])
            #expect(mounter.calls(.mount) == [.mount(device: "/dev/loop900", target: staging, fsType: "ext4", options: [])])
            #expect(mounter.mount(at: staging)?.majorMinor == "7:900")
        }
    }

    /// Issue 12 finding 7: a disk holding only a partition table probed as "no file system" and
    /// was formatted. Any signature that is not the asked-for file system is refused.
    @Test(arguments: [
        DeviceSignature(partitionTable: "dos"),
        DeviceSignature(partitionTable: "gpt"),
        DeviceSignature(type: "xfs"),
        DeviceSignature(type: "LVM2_member"),
        DeviceSignature(type: "ext4", partitionTable: "dos"),
        DeviceSignature(ambivalent: true),
    ])
    func aDeviceWithAnySignatureButTheFileSystemIsNeverFormatted(signature: DeviceSignature) async throws {
        let mounter = RecordingMounter()
        try await withDriver(mounter: mounter) { driver in
            let (volumeA, context) = try await fakeVolume(driver, mounter, signature: signature)
            let staging = driver.kubeletRoot + "/staging/a"
            let message = await expectCode(.failedPrecondition) {
                try await driver.stage(volumeA, context: context, path: staging, capability: H.capability(fsType: "ext4"))
            }
            #expect(message.contains(volumeA) && message.contains("not formatted"), "\(message)")
            #expect(mounter.calls(.format).isEmpty && mounter.calls(.mount).isEmpty)
            #expect(mounter.signature(of: "/dev/loop900") == signature)
        }
    }

    @Test func aReadOnlyBlankDeviceIsNotFormatted() async throws {
        let mounter = RecordingMounter()
        try await withDriver(mounter: mounter) { driver in
            let (volumeA, context) = try await fakeVolume(driver, mounter, readOnly: true)
            await expectCode(.failedPrecondition) {
                try await driver.stage(volumeA, context: context, path: driver.kubeletRoot + "/staging/a")
            }
            #expect(mounter.calls(.format).isEmpty)
        }
    }

    /// Issue 16: the kubelets of one machine share its loop devices; a node must not stage a
    /// volume the cloud attached to another node's instance, though the device holds it.
    @Test func aVolumeAttachedToAnotherInstanceIsNotStaged() async throws {
        let mounter = RecordingMounter()
        try await withDriver(mounter: mounter) { driver in
            let (volume, context) = try await fakeVolume(driver, mounter)
            _ = try await driver.cloud.wait(for: try await driver.cloud.detachDisk(id: volume, instanceId: driver.node.id, force: false))
            _ = try await driver.cloud.wait(for: try await driver.cloud.attachDisk(id: volume, instanceId: driver.otherNode.id))
            let message = await expectCode(.failedPrecondition) {
                try await driver.stage(volume, context: context, path: driver.kubeletRoot + "/staging/a")
            }
            #expect(message.contains("not attached to this node's instance \(driver.node.id)") && message.contains(driver.otherNode.id), "\(message)")
            #expect(mounter.calls(.format).isEmpty && mounter.calls(.mount).isEmpty)
        }
    }

    @Test func anotherVolumesDeviceIsRefusedBeforeItIsProbed() async throws {
        let mounter = RecordingMounter()
        try await withDriver(mounter: mounter) { driver in
            let (volumeB, made) = try await fakeVolume(driver, mounter)
            var context = made
            context["serial"] = nil
            let message = await expectCode(.failedPrecondition) {
                try await driver.stage(volumeA, context: context, path: driver.kubeletRoot + "/staging/a")
            }
            #expect(message.contains(volumeB + ".img"))
            #expect(mounter.calls.isEmpty, "nothing was probed, formatted or mounted: \(mounter.calls)")
            await expectCode(.notFound) {
                try await driver.stage(volumeA, context: ["devicePath": "/dev/loop901"], path: driver.kubeletRoot + "/staging/a")
            }
        }
    }

    /// Issue 12 finding 19: unpublish and unstage unmounted whatever was at the path.
    @Test func onlyTheVolumesOwnMountsAreUnmounted() async throws {
        let mounter = RecordingMounter()
        try await withDriver(mounter: mounter) { driver in
            let (volumeA, _) = try await fakeVolume(driver, mounter)
            let (volumeB, _) = try await fakeVolume(driver, mounter, number: 901)
            let target = driver.kubeletRoot + "/pods/p/volumes/v"
            let staging = driver.kubeletRoot + "/staging/a"
            try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
            // Volume B's file system is mounted at both paths, and a tmpfs is stacked on one.
            mounter.addMount(MountInfo(majorMinor: "7:901", root: "/", mountPoint: target, options: "rw", fsType: "ext4", source: "/dev/loop901"))
            mounter.addMount(MountInfo(majorMinor: "7:901", root: "/", mountPoint: staging, options: "rw", fsType: "ext4", source: "/dev/loop901"))
            let message = await expectCode(.failedPrecondition) { try await driver.nodeUnpublish(volumeA, target: target) }
            #expect(message.contains("/dev/loop901") && message.contains("not volume \(volumeA)"), "\(message)")
            await expectCode(.failedPrecondition) { try await driver.unstage(volumeA, staging: staging) }
            mounter.addMount(MountInfo(majorMinor: "0:99", root: "/", mountPoint: staging, options: "rw", fsType: "tmpfs", source: "tmpfs"))
            await expectCode(.failedPrecondition) { try await driver.unstage(volumeB, staging: staging) }
            #expect(mounter.calls(.unmount).isEmpty, "nothing was unmounted")
            #expect(FileManager.default.fileExists(atPath: target), "nor removed")
            // The volume's own mount is unmounted, the path removed.
            try await driver.nodeUnpublish(volumeB, target: target)
            #expect(mounter.calls(.unmount) == [.unmount(target)])
            #expect(!FileManager.default.fileExists(atPath: target))
        }
    }

    @Test func mountFlagsAreCheckedAgainstTheAllowlist() async throws {
        let mounter = RecordingMounter()
        try await withDriver(mounter: mounter) { driver in
            let (volumeA, context) = try await fakeVolume(driver, mounter)
            let staging = driver.kubeletRoot + "/staging/a"
            for flag in ["noatime,exec", "bind", "remount", "errors=panic", "context=system_u:object_r:tmp_t", "data=foo", "norecovery", "x-mount.mkdir", "no atime", ""] {
                let message = await expectCode(.invalidArgument) {
                    try await driver.stage(volumeA, context: context, path: staging, capability: H.capability(flags: ["nodev", flag]))
                }
                #expect(message.contains("mount_flags") && message.contains("\"\(flag)\""), "\(message)")
            }
            // CreateVolume refuses them too, before anything is made.
            await expectCode(.invalidArgument) { _ = try await driver.createVolume("flags", capability: H.capability(flags: ["rw,suid"])) }
            #expect(mounter.calls.isEmpty)
            let allowed = ["noatime", "nodev", "nosuid", "data=journal", "commit=30", "errors=remount-ro", "discard"]
            try await driver.stage(volumeA, context: context, path: staging, capability: H.capability(flags: allowed))
            #expect(mounter.calls(.mount) == [.mount(device: "/dev/loop900", target: staging, fsType: "ext4", options: allowed)])
        }
    }

    /// Issue 12 finding 19: paths were checked by their spelling, so a symlink under the kubelet
    /// root led anywhere; and volume_path was not checked at all.
    @Test func symlinksOutOfTheKubeletRootAreRefused() async throws {
        let mounter = RecordingMounter()
        try await withDriver(mounter: mounter) { driver in
            let (volumeA, context) = try await fakeVolume(driver, mounter)
            let outside = driver.root + "/outside"
            try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(atPath: driver.kubeletRoot + "/escape", withDestinationPath: outside)
            try FileManager.default.createDirectory(atPath: driver.kubeletRoot + "/inside", withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(atPath: driver.kubeletRoot + "/link-in", withDestinationPath: driver.kubeletRoot + "/inside")
            try FileManager.default.createSymbolicLink(atPath: driver.kubeletRoot + "/target-link", withDestinationPath: driver.kubeletRoot + "/inside")
            for path in [driver.kubeletRoot + "/escape/staging", driver.kubeletRoot + "/escape", driver.kubeletRoot + "/target-link"] {
                let message = await expectCode(.invalidArgument) { try await driver.stage(volumeA, context: context, path: path) }
                #expect(message.contains("staging_target_path"), "\(message)")
                await expectCode(.invalidArgument) { try await driver.unstage(volumeA, staging: path) }
                await expectCode(.invalidArgument) { try await driver.nodeUnpublish(volumeA, target: path) }
            }
            #expect(mounter.calls.isEmpty)
            #expect(try FileManager.default.contentsOfDirectory(atPath: outside).isEmpty, "nothing was made outside")
            // A symlink that stays inside is followed, and the real path is what gets mounted.
            try await driver.stage(volumeA, context: context, path: driver.kubeletRoot + "/link-in/staging")
            #expect(mounter.calls(.mount).first == .mount(device: "/dev/loop900", target: driver.kubeletRoot + "/inside/staging", fsType: "ext4", options: []))
            // volume_path is confined too.
            for path in ["/etc", driver.kubeletRoot + "/escape", "relative"] {
                await expectCode(.invalidArgument) {
                    _ = try await driver.nodeService.nodeGetVolumeStats(.with { $0.volumeID = volumeA; $0.volumePath = path })
                }
                await expectCode(.invalidArgument) {
                    _ = try await driver.nodeService.nodeExpandVolume(.with { $0.volumeID = volumeA; $0.volumePath = path })
                }
            }
            let stats = try await driver.nodeService.nodeGetVolumeStats(.with { $0.volumeID = volumeA; $0.volumePath = driver.kubeletRoot + "/inside/staging" })
            #expect(!stats.volumeCondition.abnormal)
        }
    }

    @Test func aFailedMountRecordsNothingAndARetrySucceeds() async throws {
        let mounter = RecordingMounter()
        try await withDriver(mounter: mounter) { driver in
            let (volumeA, context) = try await fakeVolume(driver, mounter)
            let staging = driver.kubeletRoot + "/staging/a"
            mounter.fail(.mount, with: HostSystemError(.commandFailed, "mount: injected failure"))
            let message = await expectCode(.internalError) { try await driver.stage(volumeA, context: context, path: staging) }
            #expect(message.contains("injected failure"))
            await expectCode(.failedPrecondition) {
                try await driver.nodePublish(volumeA, staging: staging, target: driver.kubeletRoot + "/pods/p/v")
            }
            try await driver.stage(volumeA, context: context, path: staging)
            #expect(mounter.calls(.format).count == 1, "formatted once: the retry found the file system")
            mounter.fail(.bind, with: HostSystemError(.commandFailed, "mount --bind: injected failure"))
            let target = driver.kubeletRoot + "/pods/p/v"
            await expectCode(.internalError) { try await driver.nodePublish(volumeA, staging: staging, target: target) }
            #expect(!FileManager.default.fileExists(atPath: target), "the target it made was removed")
            try await driver.nodePublish(volumeA, staging: staging, target: target)
            #expect(mounter.mount(at: target)?.majorMinor == "7:900")
        }
    }
}
