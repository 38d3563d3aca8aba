// The node service with real loop devices, file systems and mounts: the whole lifecycle as a
// kubelet drives it, idempotency, block volumes, read-only, online expansion, device checks and
// a plugin restart. Needs root; skipped loudly without it.
import CloudProvider
import CSIDriver
import Foundation
import GRPCCore
import HostSystem
import Logging
import Testing
import TestSupport

private typealias H = DriverHarness

/// Whether this process may grow a mounted ext4 file system (CAP_SYS_RESOURCE, bit 24 of CapEff).
private let canResizeOnline: Bool = {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("CapEff:") }),
          let mask = UInt64(line.dropFirst(7).trimmingCharacters(in: .whitespaces), radix: 16) else { return false }
    return mask & (1 << 24) != 0
}()

/// Total bytes of the file system mounted at `path`.
private func fileSystemBytes(_ path: String) throws -> Int64? {
    var info = statvfs()
    guard statvfs(path, &info) == 0 else { return nil }
    return Int64(info.f_blocks) * Int64(info.f_frsize)
}

@Suite struct NodeArgumentTests {
    @Test func requiredFieldsAndPaths() async throws {
        try await withDriver { driver in
            let node = driver.nodeService
            let staging = driver.kubeletRoot + "/staging"
            let target = driver.kubeletRoot + "/target"
            await expectCode(.invalidArgument) { _ = try await node.nodeStageVolume(.with { $0.stagingTargetPath = staging; $0.volumeCapability = H.capability() }) }
            await expectCode(.invalidArgument) { _ = try await node.nodeStageVolume(.with { $0.volumeID = "fake-vol-id"; $0.volumeCapability = H.capability() }) }
            await expectCode(.invalidArgument) { _ = try await node.nodeStageVolume(.with { $0.volumeID = "fake-vol-id"; $0.stagingTargetPath = staging }) }
            await expectCode(.invalidArgument) { _ = try await node.nodeUnstageVolume(.with { $0.stagingTargetPath = staging }) }
            await expectCode(.invalidArgument) { _ = try await node.nodeUnstageVolume(.with { $0.volumeID = "fake-vol-id" }) }
            await expectCode(.invalidArgument) { _ = try await node.nodePublishVolume(.with { $0.targetPath = target; $0.volumeCapability = H.capability() }) }
            await expectCode(.invalidArgument) { _ = try await node.nodePublishVolume(.with { $0.volumeID = "fake-vol-id"; $0.volumeCapability = H.capability() }) }
            await expectCode(.invalidArgument) { _ = try await node.nodePublishVolume(.with { $0.volumeID = "fake-vol-id"; $0.targetPath = target }) }
            await expectCode(.invalidArgument) { _ = try await node.nodeUnpublishVolume(.with { $0.targetPath = target }) }
            await expectCode(.invalidArgument) { _ = try await node.nodeUnpublishVolume(.with { $0.volumeID = "fake-vol-id" }) }
            await expectCode(.invalidArgument) { _ = try await node.nodeGetVolumeStats(.with { $0.volumePath = target }) }
            await expectCode(.invalidArgument) { _ = try await node.nodeGetVolumeStats(.with { $0.volumeID = "fake-vol-id" }) }
            await expectCode(.notFound) { _ = try await node.nodeGetVolumeStats(.with { $0.volumeID = "fake-vol-id"; $0.volumePath = target }) }
            await expectCode(.notFound) { _ = try await node.nodeGetVolumeStats(.with { $0.volumeID = "vol-0123456789abcdef0"; $0.volumePath = "some/path" }) }
            await expectCode(.invalidArgument) { _ = try await node.nodeExpandVolume(.with { $0.volumePath = target }) }
            await expectCode(.invalidArgument) { _ = try await node.nodeExpandVolume(.with { $0.volumeID = "fake-vol-id" }) }
            await expectCode(.notFound) { _ = try await node.nodeExpandVolume(.with { $0.volumeID = "fake-vol-id"; $0.volumePath = target }) }
            // Paths outside the kubelet root are refused, whatever the volume.
            for path in ["/etc", "relative/path", driver.kubeletRoot + "/../escape", "/tmp"] {
                await expectCode(.invalidArgument) { try await driver.unstage("vol-0123456789abcdef0", staging: path) }
            }
            // Not staged: FAILED_PRECONDITION; unpublishing what is not published is fine.
            await expectCode(.failedPrecondition) { try await driver.nodePublish("vol-0123456789abcdef0", staging: staging, target: target) }
            await expectCode(.failedPrecondition) {
                _ = try await node.nodePublishVolume(.with { $0.volumeID = "vol-0123456789abcdef0"; $0.targetPath = target; $0.volumeCapability = H.capability() })
            }
            try await driver.nodeUnpublish("vol-0123456789abcdef0", target: target)
            try await driver.unstage("vol-0123456789abcdef0", staging: staging)

            let info = try await node.nodeGetInfo(Csi_V1_NodeGetInfoRequest())
            #expect(info.nodeID == driver.node.id)
            #expect(info.maxVolumesPerNode == 16)
            #expect(info.accessibleTopology.segments == ["topology.kubernetes.io/zone": "ballast-1a"])
            let capabilities = try await node.nodeGetCapabilities(Csi_V1_NodeGetCapabilitiesRequest()).capabilities.map(\.rpc.type)
            #expect(capabilities.contains(.stageUnstageVolume) && capabilities.contains(.getVolumeStats) && capabilities.contains(.expandVolume))
        }
    }
}

@Suite(.serialized, .enabled(if: loopDevicesAvailable, "needs root, /dev/loop-control, losetup, blkid, mkfs.ext4, mkfs.xfs"))
struct NodeLifecycleTests {
    @Test(arguments: ["ext4", "xfs"])
    func mountLifecycle(fsType: String) async throws {
        try await withDriver(realDevices: true) { driver in
            let capability = H.capability(fsType: fsType)
            let volume = try await driver.createVolume("data-\(fsType)", bytes: 320 << 20, capability: capability)
            let context = try await driver.publish(volume.volumeID, capability: capability)
            let staging = driver.kubeletRoot + "/plugins/kubernetes.io/csi/staging/\(volume.volumeID)"
            let targets = (1...2).map { driver.kubeletRoot + "/pods/pod-\($0)/volumes/data" }
            try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)

            try await driver.stage(volume.volumeID, context: context, path: staging, capability: capability)
            try await driver.stage(volume.volumeID, context: context, path: staging, capability: capability)
            #expect(Mounts.current().filter { $0.mountPoint == staging }.count == 1, "staging twice mounts once")
            #expect(Mounts.current().last { $0.mountPoint == staging }?.fsType == fsType)
            await expectCode(.alreadyExists) {
                try await driver.stage(volume.volumeID, context: context, path: staging, capability: H.capability(fsType: fsType == "ext4" ? "xfs" : "ext4"))
            }

            for target in targets {
                try await driver.nodePublish(volume.volumeID, staging: staging, target: target, capability: capability)
                try await driver.nodePublish(volume.volumeID, staging: staging, target: target, capability: capability)
            }
            #expect(Mounts.current().filter { $0.mountPoint == targets[0] }.count == 1, "publishing twice mounts once")
            await expectCode(.alreadyExists) { try await driver.nodePublish(volume.volumeID, staging: staging, target: targets[0], readOnly: true, capability: capability) }
            try "hello from pod 1\n".write(toFile: targets[0] + "/greeting", atomically: true, encoding: .utf8)
            #expect(try String(contentsOfFile: targets[1] + "/greeting", encoding: .utf8) == "hello from pod 1\n", "both targets show one file system")

            let stats = try await driver.nodeService.nodeGetVolumeStats(.with { $0.volumeID = volume.volumeID; $0.volumePath = targets[0] })
            let bytes = try #require(stats.usage.first { $0.unit == .bytes })
            let inodes = try #require(stats.usage.first { $0.unit == .inodes })
            #expect(bytes.total > 200 << 20 && bytes.total <= 320 << 20)
            #expect(bytes.used > 0 && bytes.available > 0)
            #expect(inodes.total > 0 && inodes.used > 0)
            #expect(!stats.volumeCondition.abnormal)

            // Online expansion: the cloud grows the disk, the node grows the file system.
            let expanded = try await driver.controller.controllerExpandVolume(.with {
                $0.volumeID = volume.volumeID; $0.capacityRange = .with { $0.requiredBytes = 640 << 20 }; $0.volumeCapability = capability
            })
            #expect(expanded.nodeExpansionRequired)
            let expandRequest = Csi_V1_NodeExpandVolumeRequest.with {
                $0.volumeID = volume.volumeID; $0.volumePath = targets[0]; $0.capacityRange = .with { $0.requiredBytes = 640 << 20 }
            }
            if fsType == "ext4" && !canResizeOnline {
                // Without CAP_SYS_RESOURCE ext4 cannot grow while mounted: a clear refusal, and
                // the file system grows offline when the volume is next staged (checked below).
                let message = await expectCode(.failedPrecondition) { _ = try await driver.nodeService.nodeExpandVolume(expandRequest) }
                #expect(message.contains("CAP_SYS_RESOURCE"))
            } else {
                #expect(try await driver.nodeService.nodeExpandVolume(expandRequest).capacityBytes == 640 << 20)
                let grown = try #require(try await driver.nodeService.nodeGetVolumeStats(.with { $0.volumeID = volume.volumeID; $0.volumePath = targets[0] })
                    .usage.first { $0.unit == .bytes })
                #expect(grown.total > 500 << 20, "the file system grew online: \(grown.total) bytes")
            }

            await expectCode(.failedPrecondition) { try await driver.unstage(volume.volumeID, staging: staging) }
            for target in targets {
                try await driver.nodeUnpublish(volume.volumeID, target: target)
                #expect(!FileManager.default.fileExists(atPath: target), "unpublish removes the target")
                try await driver.nodeUnpublish(volume.volumeID, target: target)
            }
            try await driver.unstage(volume.volumeID, staging: staging)
            try await driver.unstage(volume.volumeID, staging: staging)
            #expect(Mounts.current().first { $0.mountPoint == staging } == nil)
            try await driver.controllerUnpublish(volume.volumeID)

            // Published and staged again: the data is there, nothing was reformatted.
            let again = try await driver.publish(volume.volumeID, capability: capability)
            try await driver.stage(volume.volumeID, context: again, path: staging, capability: capability)
            #expect(try String(contentsOfFile: staging + "/greeting", encoding: .utf8) == "hello from pod 1\n")
            let restaged = try #require(try fileSystemBytes(staging))
            #expect(restaged > 500 << 20, "staging grows a file system smaller than its device: \(restaged) bytes")
            try await driver.unstage(volume.volumeID, staging: staging)
            try await driver.controllerUnpublish(volume.volumeID)
            _ = try await driver.controller.deleteVolume(.with { $0.volumeID = volume.volumeID })
            #expect(driver.loopDevices().isEmpty)
        }
    }

    @Test func blockVolume() async throws {
        try await withDriver(realDevices: true) { driver in
            let capability = H.capability(block: true)
            let volume = try await driver.createVolume("raw", bytes: 16 << 20, capability: capability)
            let context = try await driver.publish(volume.volumeID, capability: capability)
            let staging = driver.kubeletRoot + "/staging/raw"
            let target = driver.kubeletRoot + "/pods/p/volumeDevices/raw/dev"
            try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
            try await driver.stage(volume.volumeID, context: context, path: staging, capability: capability)
            #expect(Mounts.current().first { $0.mountPoint == staging } == nil, "block staging mounts nothing")
            try await driver.nodePublish(volume.volumeID, staging: staging, target: target, capability: capability)
            try await driver.nodePublish(volume.volumeID, staging: staging, target: target, capability: capability)
            let handle = try #require(FileHandle(forUpdatingAtPath: target))
            try handle.seek(toOffset: 1 << 20)
            try handle.write(contentsOf: Data("raw block data".utf8))
            try handle.synchronize()
            try handle.close()
            let device = try #require(context["devicePath"])
            let reader = try #require(FileHandle(forReadingAtPath: device))
            try reader.seek(toOffset: 1 << 20)
            #expect(try reader.read(upToCount: 14) == Data("raw block data".utf8), "the target is the volume's device")
            try reader.close()
            let stats = try await driver.nodeService.nodeGetVolumeStats(.with { $0.volumeID = volume.volumeID; $0.volumePath = target })
            #expect(stats.usage.first?.total == 16 << 20)
            try await driver.nodeUnpublish(volume.volumeID, target: target)
            #expect(!FileManager.default.fileExists(atPath: target))
            try await driver.unstage(volume.volumeID, staging: staging)
            try await driver.controllerUnpublish(volume.volumeID)
        }
    }

    @Test func singleWriterReadOnlyAndDeviceChecks() async throws {
        try await withDriver(realDevices: true) { driver in
            let single = H.capability(.singleNodeSingleWriter)
            let volume = try await driver.createVolume("rwop", bytes: 32 << 20, capability: single)
            let other = try await driver.createVolume("other", bytes: 32 << 20)
            let context = try await driver.publish(volume.volumeID, capability: single)
            let otherContext = try await driver.publish(other.volumeID)
            let staging = driver.kubeletRoot + "/staging/rwop"
            try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)

            // Another volume's device: refused before anything touches it, and nothing is formatted.
            var wrong = otherContext
            wrong["serial"] = nil
            await expectCode(.failedPrecondition) { try await driver.stage(volume.volumeID, context: wrong, path: staging, capability: single) }
            let probe = try await run("/usr/sbin/blkid", ["-p", try #require(otherContext["devicePath"])])
            #expect(probe.status == 2, "the other volume was not formatted")
            var mislabelled = context
            mislabelled["serial"] = other.volumeID
            await expectCode(.failedPrecondition) { try await driver.stage(volume.volumeID, context: mislabelled, path: staging, capability: single) }

            try await driver.stage(volume.volumeID, context: context, path: staging, capability: single)
            let first = driver.kubeletRoot + "/pods/a/volumes/v"
            let second = driver.kubeletRoot + "/pods/b/volumes/v"
            try await driver.nodePublish(volume.volumeID, staging: staging, target: first, readOnly: true, capability: single)
            await expectCode(.failedPrecondition) { try await driver.nodePublish(volume.volumeID, staging: staging, target: second, capability: single) }
            #expect(!FileManager.default.createFile(atPath: first + "/nope", contents: Data("x".utf8)), "a read-only publish refuses writes")
            #expect(Mounts.current().last { $0.mountPoint == first }.map { $0.options.split(separator: ",").contains("ro") } == true)
            try await driver.nodeUnpublish(volume.volumeID, target: first)
            try await driver.unstage(volume.volumeID, staging: staging)
            try await driver.controllerUnpublish(volume.volumeID)
            try await driver.controllerUnpublish(other.volumeID)
        }
    }

    @Test func stateSurvivesAPluginRestart() async throws {
        try await withDriver(realDevices: true) { driver in
            let volume = try await driver.createVolume("durable", bytes: 32 << 20)
            let context = try await driver.publish(volume.volumeID)
            let staging = driver.kubeletRoot + "/staging/durable"
            let target = driver.kubeletRoot + "/pods/p/volumes/durable"
            try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
            try await driver.stage(volume.volumeID, context: context, path: staging)
            try await driver.nodePublish(volume.volumeID, staging: staging, target: target)

            try await driver.restartDriver()
            // The restarted plugin knows what it published: the same calls are still idempotent.
            try await driver.nodePublish(volume.volumeID, staging: staging, target: target)
            #expect(Mounts.current().filter { $0.mountPoint == target }.count == 1)
            let stats = try await driver.nodeService.nodeGetVolumeStats(.with { $0.volumeID = volume.volumeID; $0.volumePath = target })
            #expect(!stats.volumeCondition.abnormal)
            try await driver.nodeUnpublish(volume.volumeID, target: target)
            try await driver.unstage(volume.volumeID, staging: staging)
            try await driver.controllerUnpublish(volume.volumeID)
        }
    }
}

/// Issue 12 findings 7 and 19 on real devices and mounts.
@Suite(.serialized, .enabled(if: loopDevicesAvailable, "needs root, /dev/loop-control, losetup, blkid, mkfs.ext4, mkfs.xfs"))
struct NodeSafetyTests {
    /// A volume a pod partitioned (as a block volume) and that is then staged as a file system:
    /// blkid printed no TYPE for it, the driver read that as blank, and formatted it. Now it is
    /// FAILED_PRECONDITION and the partition table and the data are intact.
    @Test func aPartitionedVolumeIsNeverFormatted() async throws {
        let sfdisk = SystemCommand.resolve("sfdisk")
        guard FileManager.default.isExecutableFile(atPath: sfdisk) else {
            FileHandle.standardError.write(Data("SKIPPING aPartitionedVolumeIsNeverFormatted: sfdisk (Debian package fdisk) is not installed\n".utf8))
            return
        }
        try await withDriver(realDevices: true) { driver in
            let block = H.capability(block: true)
            let volume = try await driver.createVolume("partitioned", bytes: 64 << 20, capability: block)
            let context = try await driver.publish(volume.volumeID, capability: block)
            let device = try #require(context["devicePath"])
            try await SystemCommand.check(["sfdisk", "-q", "--no-reread", device], input: Array("label: dos\n,,L\n".utf8))
            // Data inside the partition, 2 MiB in.
            let handle = try #require(FileHandle(forUpdatingAtPath: device))
            try handle.seek(toOffset: 2 << 20)
            try handle.write(contentsOf: Data("precious partition data".utf8))
            try handle.synchronize()
            let before = try readHead(device, bytes: 4 << 20)
            try handle.close()

            let staging = driver.kubeletRoot + "/staging/partitioned"
            try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
            for fsType in ["ext4", "xfs"] {
                let message = await expectCode(.failedPrecondition) {
                    try await driver.stage(volume.volumeID, context: context, path: staging, capability: H.capability(fsType: fsType))
                }
                #expect(message.contains("dos partition table"), "\(message)")
            }
            #expect(Mounts.current().first { $0.mountPoint == staging } == nil)
            #expect(try readHead(device, bytes: 4 << 20) == before, "the partition table and the data are intact")
            let probe = try await SystemCommand.run(["blkid", "-p", "-o", "export", device])
            #expect(probe.stdout.contains("PTTYPE=dos"))
            try await driver.controllerUnpublish(volume.volumeID)
        }
    }

    /// NodeUnpublish and NodeUnstage unmounted whatever was mounted at the path.
    @Test func anotherMountAtTheTargetIsLeftAlone() async throws {
        try await withDriver(realDevices: true) { driver in
            let target = driver.kubeletRoot + "/pods/p/volumes/foreign"
            try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
            try await SystemCommand.check(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", target])
            await expectCode(.failedPrecondition) { try await driver.nodeUnpublish("vol-0123456789abcdef0", target: target) }
            await expectCode(.failedPrecondition) { try await driver.unstage("vol-0123456789abcdef0", staging: target) }
            #expect(Mounts.current().last { $0.mountPoint == target }?.fsType == "tmpfs", "the tmpfs is still mounted")
            // `close()` unmounts it.
        }
    }

}

@Suite struct CSISocketTests {
    /// The socket was chmodded after it listened: for a moment it was open to every local
    /// user. A watcher on another thread sees the socket's first mode.
    @Test func theSocketNeverExistsWithAWiderMode() async throws {
        let root = "/tmp/bcsi-sock-" + UUID().uuidString.prefix(6).lowercased()
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let socket = root + "/csi.sock"
        let cloud = try await CloudSimulator.inMemory()
        let firstMode = Task.detached { () -> mode_t? in
            var info = stat()
            let deadline = ContinuousClock.now + .seconds(20)
            while ContinuousClock.now < deadline {
                if lstat(socket, &info) == 0 { return info.st_mode & 0o777 }
            }
            return nil
        }
        let configuration = DriverConfiguration(driverName: "loop.csi.ballast.dev", mode: .controller, socketPath: socket,
                                                kubeletRoot: root + "/kubelet", stateDirectory: root + "/state")
        let server = try CSIServer(configuration: configuration, cloud: cloud, nodeID: nil, logger: Logger(label: "test"))
        defer { server.shutdown() }
        let serving = Task { try await server.run() }
        try await server.ready()
        #expect(await firstMode.value == 0o600)
        #expect(try FileManager.default.contentsOfDirectory(atPath: root) == ["csi.sock"], "the bind directory is gone")
        server.shutdown()
        _ = await serving.result
        #expect(!FileManager.default.fileExists(atPath: socket))
    }

    /// A plugin that stops after a newer one took its path over leaves the newer one's socket.
    @Test func aStoppingServerLeavesANewerServersSocket() async throws {
        let root = "/tmp/bcsi-sock-" + UUID().uuidString.prefix(6).lowercased()
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let socket = root + "/csi.sock"
        let cloud = try await CloudSimulator.inMemory()
        let configuration = DriverConfiguration(driverName: "loop.csi.ballast.dev", mode: .controller, socketPath: socket,
                                                kubeletRoot: root + "/kubelet", stateDirectory: root + "/state")
        let older = try CSIServer(configuration: configuration, cloud: cloud, nodeID: nil, logger: Logger(label: "test"))
        let olderServing = Task { try await older.run() }
        try await older.ready()
        let newer = try CSIServer(configuration: configuration, cloud: cloud, nodeID: nil, logger: Logger(label: "test"))
        let newerServing = Task { try await newer.run() }
        try await newer.ready()
        older.shutdown()
        _ = await olderServing.result
        #expect(FileManager.default.fileExists(atPath: socket), "the newer server's socket stays")
        try await newer.ready()
        newer.shutdown()
        _ = await newerServing.result
        #expect(!FileManager.default.fileExists(atPath: socket), "its own socket goes with it")
    }
}

private func readHead(_ device: String, bytes: Int) throws -> Data {
    let handle = try #require(FileHandle(forReadingAtPath: device))
    defer { try? handle.close() }
    return try handle.read(upToCount: bytes) ?? Data()
}
