// Issue 12's findings in the cloud: sizes whose rounding overflowed, an idempotency key that
// could not tell two creates apart, temporary files and loop devices left behind by a failure,
// and a long poll that queried the database every 2 ms.
@testable import CloudProvider
import Foundation
import HostSystem
import Testing
import TestSupport

@Suite struct CloudHardeningTests {
    /// Finding 5, cloud side: sizes near Int64.max are InvalidParameter, not a trap.
    @Test(arguments: [Int64.max, Int64.max - 1, Int64.max - (1 << 20) + 2])
    func hugeSizesAreRefused(size: Int64) async throws {
        let cloud = try await CloudSimulator.inMemory(SimulatorConfiguration(zoneCapacityBytes: .max, maxDiskBytes: .max))
        do {
            _ = try await cloud.createDisk(CreateDiskRequest(name: "huge", zone: "ballast-1a", sizeBytes: size))
            Issue.record("a disk of \(size) bytes was accepted")
        } catch let error as CloudError {
            #expect(error.code == .invalidParameter && error.body.parameter == "sizeBytes", "\(error)")
        }
        #expect(CloudValidation.roundUpToMebibyte(size) == nil)
        let small = try await cloud.createDisk(CreateDiskRequest(name: "small", zone: "ballast-1a", sizeBytes: 1 << 20))
        try await cloud.wait(for: small)
        do {
            _ = try await cloud.resizeDisk(id: small.targetId, sizeBytes: size)
            Issue.record("a resize to \(size) bytes was accepted")
        } catch let error as CloudError {
            #expect(error.code == .invalidParameter, "\(error)")
        }
        // Quotas near the top of the range: no overflow either way.
        let big = try await cloud.createDisk(CreateDiskRequest(name: "big", zone: "ballast-1a", sizeBytes: Int64.max / 2))
        try await cloud.wait(for: big)
        do {
            _ = try await cloud.createDisk(CreateDiskRequest(name: "bigger", zone: "ballast-1a", sizeBytes: Int64.max / 2 + (4 << 20)))
            Issue.record("the zone's quota was exceeded")
        } catch let error as CloudError {
            #expect(error.code == .quotaExceeded, "\(error)")
        }
    }

    /// Finding 20: the token's key was the request's JSON with `"clientToken":"…"` cut out by a
    /// regular expression, which also cut a tag of that name: two different creates compared
    /// equal and the second got the first's disk.
    @Test func aTagNamedClientTokenStillTellsRequestsApart() async throws {
        let cloud = try await CloudSimulator.inMemory()
        func request(_ tag: String) -> CreateDiskRequest {
            CreateDiskRequest(name: "d", zone: "ballast-1a", sizeBytes: 1 << 20, tags: ["a": "1", "clientToken": tag], clientToken: "token-1")
        }
        let first = try await cloud.createDisk(request("x"))
        try await cloud.wait(for: first)
        #expect(try await cloud.createDisk(request("x")).targetId == first.targetId, "the same request is replayed")
        do {
            _ = try await cloud.createDisk(request("y"))
            Issue.record("a different request with the same token was answered with the first disk")
        } catch let error as CloudError {
            #expect(error.code == .alreadyExists, "\(error)")
        }
        #expect(try await cloud.describeDisk(id: first.targetId).tags["clientToken"] == "x")
    }

    /// Finding 16: the long poll answers when the operation ends (woken, not polling), and
    /// as it is when the time is up.
    @Test func theLongPollWakesWhenTheOperationEnds() async throws {
        let cloud = try await CloudSimulator.inMemory(SimulatorConfiguration(latency: [.create: .milliseconds(300)]))
        let operation = try await cloud.createDisk(CreateDiskRequest(name: "d", zone: "ballast-1a", sizeBytes: 1 << 20))
        let start = ContinuousClock.now
        let early = try await cloud.waitForOperation(id: operation.id, timeout: .milliseconds(50))
        #expect(!early.isDone)
        #expect(ContinuousClock.now - start >= .milliseconds(50))
        let lookups = await cloud.operationLookups
        let done = try await cloud.waitForOperation(id: operation.id, timeout: .seconds(20))
        let elapsed = ContinuousClock.now - start
        // The old poll read the operation every 2 ms: ~125 reads in these 250 ms.
        let reads = await cloud.operationLookups - lookups
        #expect(reads <= 4, "the wait read the operation \(reads) times")
        #expect(done.isDone && done.state == .succeeded)
        #expect(elapsed >= .milliseconds(250) && elapsed < .seconds(3), "woken at the end: \(elapsed)")
        #expect(await cloud.completionWaiters.isEmpty, "no waiter is left behind")
        // Many concurrent polls, cancelled half-way: all return, none stays registered.
        let slow = try await cloud.createDisk(CreateDiskRequest(name: "e", zone: "ballast-1a", sizeBytes: 1 << 20))
        let polls = (0..<8).map { _ in Task { try await cloud.waitForOperation(id: slow.id, timeout: .seconds(20)) } }
        try await Task.sleep(for: .milliseconds(50))
        polls.prefix(4).forEach { $0.cancel() }
        for poll in polls.suffix(4) { #expect(try await poll.value.isDone) }
        for poll in polls.prefix(4) { _ = try? await poll.value }
        try await Task.sleep(for: .milliseconds(50))
        #expect(await cloud.completionWaiters.isEmpty)
    }

    @Test func theSimulatorRunsOffTheCooperativePool() async throws {
        let cloud = try await CloudSimulator.inMemory()
        let thread = await cloud.currentThreadName()
        #expect(thread == "ballast-cloud", "the actor runs on its own thread, not on the cooperative pool")
    }

    @Test func requestValidationNamesTheField() throws {
        let zones = ["ballast-1a"]
        #expect(throws: CloudError.self) {
            try RegisterInstanceRequest(name: "n", addresses: Array(repeating: InstanceAddress(type: "Hostname", address: "n"), count: 17))
                .validate(zones: zones, region: "ballast-1")
        }
        #expect(throws: CloudError.self) {
            try RegisterInstanceRequest(name: "n", addresses: [InstanceAddress(type: "Hostname", address: String(repeating: "a", count: 300))])
                .validate(zones: zones, region: "ballast-1")
        }
        #expect(throws: CloudError.self) {
            _ = try CreateDiskRequest(name: "d", zone: "ballast-1a", sizeBytes: 1, sourceDiskId: "../../etc").validate(zones: zones, region: "ballast-1", maxDiskBytes: 1 << 30)
        }
    }
}

@Suite(.serialized, .enabled(if: loopDevicesAvailable, "needs root, /dev/loop-control and losetup"))
struct CloudDeviceHardeningTests {
    /// Finding 20: a copy or rename that failed left `<id>.img.tmp` behind.
    @Test func aFailedCreateLeavesNoTemporaryFile() async throws {
        let root = FileManager.default.temporaryDirectory.path + "/ballast-tmp-" + UUID().uuidString.prefix(8)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let backend = try LoopDeviceBackend(root: URL(fileURLWithPath: root))
        let id = "vol-0123456789abcdef0"
        // Something that is not a file sits where the disk goes: the rename into place fails.
        try FileManager.default.createDirectory(atPath: backend.diskPath(zone: "z", diskId: id) + "/occupied", withIntermediateDirectories: true)
        await #expect(throws: (any Error).self) { try await backend.createDisk(zone: "z", diskId: id, sizeBytes: 1 << 20, copying: nil) }
        #expect(!FileManager.default.fileExists(atPath: backend.diskPath(zone: "z", diskId: id) + ".tmp"))
        // A snapshot copy from a disk whose copy fails the same way.
        try FileSystem.createSparseFile(backend.diskPath(zone: "z", diskId: "vol-1123456789abcdef0"), size: 1 << 20)
        try FileManager.default.createDirectory(atPath: backend.snapshotPath("snap-0123456789abcdef0") + "/occupied", withIntermediateDirectories: true)
        await #expect(throws: (any Error).self) {
            try await backend.createSnapshot(snapshotId: "snap-0123456789abcdef0", zone: "z", diskId: "vol-1123456789abcdef0", devicePath: nil)
        }
        #expect(!FileManager.default.fileExists(atPath: backend.snapshotPath("snap-0123456789abcdef0") + ".tmp"))
    }

    /// A forced detach of a device some program holds open leaves it attached until that
    /// program closes it (the kernel's autoclear); an attach meanwhile must not hand it out again.
    @Test func anAttachDuringAPendingDetachGetsAFreshDevice() async throws {
        let root = FileManager.default.temporaryDirectory.path + "/ballast-det-" + UUID().uuidString.prefix(8)
        let backend = try LoopDeviceBackend(root: URL(fileURLWithPath: root))
        let id = "vol-2123456789abcdef0"
        let file = backend.diskPath(zone: "z", diskId: id)
        var held: Int32 = -1
        try await withCleanup {
            try await backend.createDisk(zone: "z", diskId: id, sizeBytes: 1 << 20, copying: nil)
            let first = try await backend.attach(zone: "z", diskId: id, readOnly: false)
            held = open(first, O_RDONLY | O_CLOEXEC)
            try #require(held >= 0, "cannot open \(first)")
            try await backend.detach(devicePath: first, zone: "z", diskId: id, force: true)
            #expect(LoopDevices.isDetaching(first), "held open, it is detached at its last close")
            #expect(!backend.deviceBacks(devicePath: first, zone: "z", diskId: id), "a device being detached backs no attachment")
            let second = try await backend.attach(zone: "z", diskId: id, readOnly: false)
            close(held)
            held = -1
            #expect(second != first)
            #expect(backend.deviceBacks(devicePath: second, zone: "z", diskId: id))
            try await backend.detach(devicePath: second, zone: "z", diskId: id, force: false)
            for _ in 0..<500 where !LoopDevices.devices(backing: file).isEmpty { try await Task.sleep(for: .milliseconds(20)) }
            #expect(LoopDevices.devices(backing: file).isEmpty)
        } cleanup: {
            if held >= 0 { close(held) }
            for device in LoopDevices.devices(backing: file) { _ = try? await LoopDevices.detach(device) }
            try? FileManager.default.removeItem(atPath: root)
        }
    }

    /// Finding 20: an attach whose result could not be recorded left its loop device attached
    /// with nothing recording it.
    @Test func anAttachThatCannotBeRecordedLeavesNoLoopDevice() async throws {
        let root = FileManager.default.temporaryDirectory.path + "/ballast-rec-" + UUID().uuidString.prefix(8)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let backend = try LoopDeviceBackend(root: URL(fileURLWithPath: root + "/volumes"))
        let cloud = try CloudSimulator(configuration: SimulatorConfiguration(), statePath: root + "/cloud.db", devices: backend,
                                       logger: .init(label: "test"))
        try await cloud.start()
        let node = try await cloud.registerInstance(RegisterInstanceRequest(name: "node-a", zone: "ballast-1a"))
        let created = try await cloud.createDisk(CreateDiskRequest(name: "d", zone: "ballast-1a", sizeBytes: 1 << 20))
        try await cloud.wait(for: created)
        let file = backend.diskPath(zone: "ballast-1a", diskId: created.targetId)
        var failure: (any Error)?
        do { try await attachUnrecorded(cloud, disk: created.targetId, node: node.id, file: file) } catch { failure = error }
        await cloud.drain()
        for device in LoopDevices.devices(backing: file) { _ = try? await SystemCommand.run(["losetup", "--detach", device]) }
        if let failure { throw failure }
    }

    private func attachUnrecorded(_ cloud: CloudSimulator, disk: String, node: String, file: String) async throws {
        await cloud.injectRecordFailure(.diskAttach)
        let attach = try await cloud.attachDisk(id: disk, instanceId: node, readOnly: false)
        await #expect(throws: CloudError.self) { try await cloud.wait(for: attach) }
        #expect(await detached(file), "the loop device was detached again")
        #expect(try await cloud.describeDisk(id: disk).attachments.isEmpty)
        // And the next attach works.
        let again = try await cloud.attachDisk(id: disk, instanceId: node, readOnly: false)
        try await cloud.wait(for: again)
        #expect(LoopDevices.devices(backing: file).count == 1)
        try await cloud.wait(for: try await cloud.detachDisk(id: disk, instanceId: node, force: true))
        #expect(await detached(file), "the loop device of \(file) stays attached: \(LoopDevices.devices(backing: file))")
    }

    /// The kernel lets a loop device go once its last opener closes it (`losetup --detach` of an
    /// open device only sets autoclear): udev probing a device just attached, or a container being
    /// set up by another suite, may hold it for a moment, so this waits a little.
    private func detached(_ file: String) async -> Bool {
        await waitUntil(timeout: .seconds(10), interval: .milliseconds(50)) { LoopDevices.devices(backing: file).isEmpty }
    }
}
