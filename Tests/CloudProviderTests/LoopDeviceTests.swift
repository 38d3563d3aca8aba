// The simulator as users run it — `ballast cloud serve` — with real SQLite, real sparse files and
// real loop devices: the disk lifecycle with data written through the device, mounts that block
// a detach, SIGKILL in the middle of operations, and reconciliation after a "reboot". Needs root
// and /dev/loop-control; without them every test here is skipped, and says so.
import CloudProvider
import Foundation
import HostSystem
import Testing
import TestSupport

let loopDevicesAvailable: Bool = {
    let usable = getuid() == 0 && FileManager.default.fileExists(atPath: "/dev/loop-control")
        && FileManager.default.isExecutableFile(atPath: SystemCommand.resolve("losetup"))
    if !usable {
        FileHandle.standardError.write(Data("""
            ************************************************************************
            SKIPPING the loop-device tests of the simulated cloud: they need root,
            /dev/loop-control and losetup (util-linux). Nothing was tested there.
            ************************************************************************

            """.utf8))
    }
    return usable
}()

/// `ballast cloud serve` on a free loopback port with its own volumes and state dirs.
final class CloudServerProcess: @unchecked Sendable {
    let port: Int
    let root: String
    var volumesDir: String { root + "/volumes" }
    var stateDir: String { root + "/state" }
    // Written only by `start` and `stop`, which a test calls from one task.
    private var process: TestProcess?
    private let arguments: [String]

    private init(_ extraArguments: [String]) {
        port = freePort()
        root = FileManager.default.temporaryDirectory.path + "/ballast-cloud-\(UUID().uuidString.prefix(8))"
        arguments = extraArguments
    }

    static func start(_ extraArguments: [String] = []) async throws -> CloudServerProcess {
        let server = CloudServerProcess(extraArguments)
        try await server.start()
        return server
    }

    func start() async throws {
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let process = try TestProcess([ballastBinary(), "cloud", "serve", "--listen", "127.0.0.1:\(port)", "--volumes-dir", volumesDir,
                                       "--state-dir", stateDir, "--zones", "2"] + arguments, logPath: root + "/cloud.log")
        self.process = process
        let answered = await waitUntil(timeout: .seconds(20)) {
            guard process.isRunning else { return true }
            return (try? await run("curl", ["-s", "--max-time", "1", "http://127.0.0.1:\(port)/healthz"], timeout: 3))?.stdout.hasPrefix("ok") == true
        }
        if let ended = process.child.termination { throw TestFailure("ballast cloud serve \(ended) before serving: \(process.log.suffix(2000))") }
        guard answered else { throw TestFailure("ballast cloud serve did not answer on port \(port) within 20 s") }
    }

    /// Stops the server with `signal`, and with SIGKILL if it has not exited after 10 s.
    func stop(signal: Int32 = SIGTERM) async {
        guard let process else { return }
        self.process = nil
        process.signal(signal)
        let ended = await process.waitForExit(timeout: .seconds(10))
        #expect(ended != nil || signal == SIGKILL, "ballast cloud serve did not stop within 10 s of signal \(signal)")
        if ended == nil { await process.terminate(grace: .zero) }
    }

    func client() throws -> CloudClient {
        try CloudClient(url: "http://127.0.0.1:\(port)", keyFile: stateDir + "/admin.key")
    }

    /// Loop devices backed by a file of this server's volumes dir.
    func loopDevices() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/block")) ?? []
        return names.filter { $0.hasPrefix("loop") }.compactMap { name in
            guard let file = LoopDevices.backingFile(of: "/dev/" + name), file.hasPrefix(volumesDir + "/") else { return nil }
            return "/dev/" + name
        }
    }

    /// Stops the server, detaches its loop devices and removes its files; records an issue when
    /// a loop device cannot be removed.
    func cleanUp() async {
        await stop(signal: SIGKILL)
        // A device another suite's process holds open for a moment (a container's setup, a
        // probe) is detached by the kernel at that last close, not by losetup (one make test run).
        for device in loopDevices() { _ = try? await LoopDevices.detach(device, settle: .seconds(10)) }
        #expect(loopDevices().isEmpty, "loop devices left behind: \(loopDevices())")
        try? FileManager.default.removeItem(atPath: root)
        #expect(!FileManager.default.fileExists(atPath: root))
    }
}

private func writePattern(_ device: String, offset: UInt64, seed: UInt8, count: Int = 1 << 20) throws {
    let handle = try #require(FileHandle(forUpdatingAtPath: device), "cannot open \(device)")
    defer { try? handle.close() }
    try handle.seek(toOffset: offset)
    try handle.write(contentsOf: Data((0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) }))
    try handle.synchronize()
}

private func readPattern(_ device: String, offset: UInt64, seed: UInt8, count: Int = 1 << 20) throws -> Bool {
    let handle = try #require(FileHandle(forReadingAtPath: device), "cannot open \(device)")
    defer { try? handle.close() }
    try handle.seek(toOffset: offset)
    let data = try handle.read(upToCount: count) ?? Data()
    return data == Data((0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) })
}

/// Whether a 4 KiB direct write to `device` succeeds (opening or writing may be refused).
private func canWrite(_ device: String) -> Bool {
    let fd = open(device, O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    let block = [UInt8](repeating: 0xAB, count: 4096)
    return pwrite(fd, block, block.count, 0) == block.count && fsync(fd) == 0
}

private func deviceBytes(_ device: String) throws -> Int64 {
    let name = (device as NSString).lastPathComponent
    let sectors = try String(contentsOfFile: "/sys/block/\(name)/size", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    return (Int64(sectors) ?? 0) * 512
}

private func attach(_ client: CloudClient, _ disk: String, to instance: String, readOnly: Bool = false) async throws -> String {
    try await client.wait(for: try await client.attachDisk(id: disk, instanceId: instance, readOnly: readOnly))
    let attachment = try await client.describeAttachment(diskId: disk, instanceId: instance)
    #expect(attachment.state == .attached)
    return try #require(attachment.devicePath)
}

@Suite(.serialized, .enabled(if: loopDevicesAvailable, "needs root, /dev/loop-control and losetup"))
struct LoopDeviceTests {
    @Test func diskLifecycleWithDataThroughTheDevice() async throws {
        let server = try await CloudServerProcess.start(["--latency", "attach=50ms,detach=50ms"])
        try await withCleanup {
            let client = try server.client()
            let nodeA = try await client.registerInstance(RegisterInstanceRequest(name: "node-a", zone: "ballast-1a"))
            let nodeB = try await client.registerInstance(RegisterInstanceRequest(name: "node-b", zone: "ballast-1b"))

            let create = try await client.createDisk(CreateDiskRequest(name: "data", zone: "ballast-1a", sizeBytes: 64 << 20))
            try await client.wait(for: create)
            let diskId = create.targetId
            let file = server.volumesDir + "/ballast-1a/\(diskId).img"
            var info = stat()
            #expect(stat(file, &info) == 0)
            #expect(info.st_size == 64 << 20)
            #expect(info.st_blocks * 512 < 1 << 20, "a new disk is a sparse file")

            let device = try await attach(client, diskId, to: nodeA.id)
            #expect(LoopDevices.backingFile(of: device) == file)
            #expect(try deviceBytes(device) == 64 << 20)
            try writePattern(device, offset: 4 << 20, seed: 7)
            try await client.wait(for: try await client.detachDisk(id: diskId, instanceId: nodeA.id, force: false))
            #expect(LoopDevices.backingFile(of: device) != file, "detach removed the loop device")

            let snapshot = try await client.createSnapshot(CreateSnapshotRequest(diskId: diskId, name: "snap"))
            try await client.wait(for: snapshot)
            #expect(FileManager.default.fileExists(atPath: server.volumesDir + "/snapshots/\(snapshot.targetId).img"))
            let restore = try await client.createDisk(CreateDiskRequest(name: "restored", zone: "ballast-1b", sizeBytes: 64 << 20, snapshotId: snapshot.targetId))
            let clone = try await client.createDisk(CreateDiskRequest(name: "clone", zone: "ballast-1a", sizeBytes: 96 << 20, sourceDiskId: diskId))
            try await client.wait(for: restore)
            try await client.wait(for: clone)

            let restoredDevice = try await attach(client, restore.targetId, to: nodeB.id)
            let cloneDevice = try await attach(client, clone.targetId, to: nodeA.id)
            #expect(try readPattern(restoredDevice, offset: 4 << 20, seed: 7), "the snapshot carried the data")
            #expect(try readPattern(cloneDevice, offset: 4 << 20, seed: 7), "the clone carried the data")
            #expect(try deviceBytes(cloneDevice) == 96 << 20, "a clone may be larger than its source")

            // Read-only: the device itself refuses writes.
            try await client.wait(for: try await client.detachDisk(id: restore.targetId, instanceId: nodeB.id, force: false))
            let readOnlyDevice = try await attach(client, restore.targetId, to: nodeB.id, readOnly: true)
            #expect(LoopDevices.isReadOnly(readOnlyDevice))
            #expect(!canWrite(readOnlyDevice), "a read-only device refuses writes")
            #expect(try readPattern(readOnlyDevice, offset: 4 << 20, seed: 7))

            try await client.wait(for: try await client.resizeDisk(id: clone.targetId, sizeBytes: 128 << 20))
            #expect(try deviceBytes(cloneDevice) == 128 << 20, "the attached device sees the new size")
            #expect(try readPattern(cloneDevice, offset: 4 << 20, seed: 7), "resizing keeps the data")

            for (disk, node) in [(restore.targetId, nodeB.id), (clone.targetId, nodeA.id)] {
                try await client.wait(for: try await client.detachDisk(id: disk, instanceId: node, force: false))
            }
            for disk in [diskId, restore.targetId, clone.targetId] {
                try await client.wait(for: try await client.deleteDisk(id: disk))
            }
            try await client.wait(for: try await client.deleteSnapshot(id: snapshot.targetId))
            #expect(try await client.allDisks().isEmpty)
            #expect(server.loopDevices().isEmpty)
            let leftovers = try FileManager.default.subpathsOfDirectory(atPath: server.volumesDir).filter { $0.hasSuffix(".img") }
            #expect(leftovers.isEmpty, "backing files left: \(leftovers)")
        } cleanup: {
            await server.cleanUp()
        }
    }

    @Test func aMountedDiskIsNotDetachedUnlessForced() async throws {
        let server = try await CloudServerProcess.start(["--latency", "attach=0,detach=0"])
        let mountPoint = server.root + "/mnt"
        try await withCleanup {
            let client = try server.client()
            let node = try await client.registerInstance(RegisterInstanceRequest(name: "node-a", zone: "ballast-1a"))
            let create = try await client.createDisk(CreateDiskRequest(name: "fs", zone: "ballast-1a", sizeBytes: 32 << 20))
            try await client.wait(for: create)
            let device = try await attach(client, create.targetId, to: node.id)
            try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
            let mkfs = try await run("/usr/sbin/mkfs.ext4", ["-q", "-F", device])
            try #require(mkfs.status == 0, "mkfs.ext4: \(mkfs.stderr)")
            let mount = try await run("/usr/bin/mount", [device, mountPoint])
            try #require(mount.status == 0, "mount: \(mount.stderr)")

            do {
                _ = try await client.detachDisk(id: create.targetId, instanceId: node.id, force: false)
                Issue.record("a mounted disk was detached")
            } catch let error as CloudError {
                #expect(error.code == .inUse)
                #expect(error.message.contains("mounted at \(mountPoint)"), "\(error)")
            }
            #expect(LoopDevices.backingFile(of: device) != nil)
            #expect(try await run("/usr/bin/umount", [mountPoint]).status == 0)
            try await client.wait(for: try await client.detachDisk(id: create.targetId, instanceId: node.id, force: false))
            #expect(server.loopDevices().isEmpty)
        } cleanup: {
            _ = try? await run("/usr/bin/umount", [mountPoint])
            await server.cleanUp()
        }
    }

    @Test func sigkillDuringCreateAndAttachThenRestart() async throws {
        let server = try await CloudServerProcess.start(["--latency", "create=3s,attach=3s"])
        try await withCleanup {
            var client = try server.client()
            let node = try await client.registerInstance(RegisterInstanceRequest(name: "node-a", zone: "ballast-1a"))

            let create = try await client.createDisk(CreateDiskRequest(name: "d", zone: "ballast-1a", sizeBytes: 16 << 20))
            #expect(create.state == .running)
            await server.stop(signal: SIGKILL)
            try await server.start()
            client = try server.client()
            try await client.wait(for: create)
            let disk = try await client.describeDisk(id: create.targetId)
            #expect(disk.state == .available)
            #expect(FileManager.default.fileExists(atPath: server.volumesDir + "/ballast-1a/\(disk.id).img"))

            let attach = try await client.attachDisk(id: disk.id, instanceId: node.id, readOnly: false)
            #expect(try await client.describeAttachment(diskId: disk.id, instanceId: node.id).state == .attaching)
            await server.stop(signal: SIGKILL)
            try await server.start()
            client = try server.client()
            try await client.wait(for: attach)
            let attachment = try await client.describeAttachment(diskId: disk.id, instanceId: node.id)
            #expect(attachment.state == .attached)
            let device = try #require(attachment.devicePath)
            #expect(LoopDevices.backingFile(of: device) == server.volumesDir + "/ballast-1a/\(disk.id).img")
            #expect(server.loopDevices().count == 1, "no duplicate loop devices: \(server.loopDevices())")
        } cleanup: {
            await server.cleanUp()
        }
    }

    @Test func restartReconcilesWithTheMachine() async throws {
        let server = try await CloudServerProcess.start(["--latency", "attach=0,detach=0"])
        try await withCleanup {
            var client = try server.client()
            let node = try await client.registerInstance(RegisterInstanceRequest(name: "node-a", zone: "ballast-1a"))
            var ids: [String] = []
            for name in ["kept", "lost"] {
                let create = try await client.createDisk(CreateDiskRequest(name: name, zone: "ballast-1a", sizeBytes: 8 << 20))
                try await client.wait(for: create)
                ids.append(create.targetId)
            }
            let device = try await attach(client, ids[0], to: node.id)
            try writePattern(device, offset: 0, seed: 3)
            await server.stop()
            // A "reboot": the loop device goes away; and a backing file is lost.
            #expect(try await run("/usr/sbin/losetup", ["--detach", device]).status == 0)
            try FileManager.default.removeItem(atPath: server.volumesDir + "/ballast-1a/\(ids[1]).img")
            try await server.start()
            client = try server.client()
            var attachment = try await client.describeAttachment(diskId: ids[0], instanceId: node.id)
            let deadline = Date().addingTimeInterval(10)
            while attachment.state != .attached && Date() < deadline {
                try await Task.sleep(for: .milliseconds(50))
                attachment = try await client.describeAttachment(diskId: ids[0], instanceId: node.id)
            }
            #expect(attachment.state == .attached)
            let newDevice = try #require(attachment.devicePath)
            #expect(LoopDevices.backingFile(of: newDevice) == server.volumesDir + "/ballast-1a/\(ids[0]).img")
            #expect(try readPattern(newDevice, offset: 0, seed: 3))
            let lost = try await client.describeDisk(id: ids[1])
            #expect(lost.state == .failed)
            #expect(lost.failureReason?.contains("vanished") == true)
        } cleanup: {
            await server.cleanUp()
        }
    }
}
