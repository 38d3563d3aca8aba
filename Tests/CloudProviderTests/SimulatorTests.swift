// The cloud's domain rules, through the in-memory simulator (SQLite in memory, no devices).
import CloudProvider
import Foundation
import Testing

private let gib: Int64 = 1 << 30

/// A simulator with two zones and one running instance per zone.
private func cloudWithInstances(_ configuration: SimulatorConfiguration = SimulatorConfiguration(),
                                devices: MemoryDeviceBackend = MemoryDeviceBackend())
async throws -> (CloudSimulator, Instance, Instance) {
    let cloud = try await CloudSimulator.inMemory(configuration, devices: devices)
    let a = try await cloud.registerInstance(RegisterInstanceRequest(name: "node-a"))
    let b = try await cloud.registerInstance(RegisterInstanceRequest(name: "node-b"))
    return (cloud, a, b)
}

/// Creates a disk and waits until it is available.
private func makeDisk(_ cloud: some CloudProvider, name: String = "disk", zone: String = "ballast-1a", size: Int64 = gib,
                      multiAttach: Bool = false) async throws -> Disk {
    let operation = try await cloud.createDisk(CreateDiskRequest(name: name, zone: zone, sizeBytes: size, multiAttach: multiAttach))
    try await cloud.wait(for: operation)
    return try await cloud.describeDisk(id: operation.targetId)
}

private func expectCloudError(_ code: CloudErrorCode, parameter: String? = nil, _ body: () async throws -> Void,
                              sourceLocation: SourceLocation = #_sourceLocation) async {
    do {
        try await body()
        Issue.record("expected \(code.rawValue), got success", sourceLocation: sourceLocation)
    } catch let error as CloudError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        if let parameter { #expect(error.body.parameter == parameter, "\(error)", sourceLocation: sourceLocation) }
        #expect(!error.message.isEmpty, sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected CloudError \(code.rawValue), got \(error)", sourceLocation: sourceLocation)
    }
}

@Suite struct InstanceTests {
    @Test func zonesAreAssignedRoundRobin() async throws {
        let cloud = try await CloudSimulator.inMemory(SimulatorConfiguration(zoneCount: 3))
        var zones: [String] = []
        for index in 0..<4 { zones.append(try await cloud.registerInstance(RegisterInstanceRequest(name: "node-\(index)")).zone) }
        #expect(zones == ["ballast-1a", "ballast-1b", "ballast-1c", "ballast-1a"])
        let region = try await cloud.describeRegion()
        #expect(region.region == "ballast-1")
        #expect(region.zones.map(\.name) == ["ballast-1a", "ballast-1b", "ballast-1c"])
    }

    @Test func registrationIsIdempotentByName() async throws {
        let cloud = try await CloudSimulator.inMemory()
        let first = try await cloud.registerInstance(RegisterInstanceRequest(name: "node-a", attachLimit: 4))
        let again = try await cloud.registerInstance(RegisterInstanceRequest(name: "node-a", attachLimit: 4))
        #expect(again == first)
        #expect(first.attachLimit == 4)
        #expect(first.addresses.contains(InstanceAddress(type: "Hostname", address: "node-a")))
        await expectCloudError(.alreadyExists) {
            _ = try await cloud.registerInstance(RegisterInstanceRequest(name: "node-a", attachLimit: 8))
        }
        #expect(try await cloud.findInstance(name: "node-a") == first)
        #expect(try await cloud.findInstance(name: "node-z") == nil)
    }

    @Test func badInstanceRequestsNameTheParameter() async throws {
        let cloud = try await CloudSimulator.inMemory()
        await expectCloudError(.invalidParameter, parameter: "name") { _ = try await cloud.registerInstance(RegisterInstanceRequest(name: "Node_A")) }
        await expectCloudError(.invalidParameter, parameter: "zone") { _ = try await cloud.registerInstance(RegisterInstanceRequest(name: "n", zone: "mars-1a")) }
        await expectCloudError(.invalidParameter, parameter: "attachLimit") { _ = try await cloud.registerInstance(RegisterInstanceRequest(name: "n", attachLimit: 0)) }
        await expectCloudError(.invalidParameter, parameter: "id") { _ = try await cloud.describeInstance(id: "../../etc/passwd") }
        await expectCloudError(.notFound) { _ = try await cloud.describeInstance(id: "i-00000000000000000") }
        #expect(try await cloud.listInstances(PageRequest()).items.isEmpty)
    }

    @Test func terminatingAnInstanceDetachesItsDisks() async throws {
        let (cloud, a, _) = try await cloudWithInstances()
        let disk = try await makeDisk(cloud)
        try await cloud.wait(for: try await cloud.attachDisk(id: disk.id, instanceId: a.id, readOnly: false))
        let stopped = try await cloud.setInstanceState(id: a.id, to: .stopped)
        #expect(stopped.state == .stopped)
        #expect(try await cloud.describeDisk(id: disk.id).attachments.count == 1, "a stopped instance keeps its disks")
        await expectCloudError(.incorrectState) { _ = try await cloud.attachDisk(id: (try await makeDisk(cloud, name: "d2")).id, instanceId: a.id) }
        _ = try await cloud.setInstanceState(id: a.id, to: .terminated)
        await cloud.drain()
        let after = try await cloud.describeDisk(id: disk.id)
        #expect(after.attachments.isEmpty)
        #expect(after.state == .available)
        await expectCloudError(.incorrectState) { _ = try await cloud.setInstanceState(id: a.id, to: .running) }
        // The name is free again: a new instance, a new id.
        let reborn = try await cloud.registerInstance(RegisterInstanceRequest(name: "node-a"))
        #expect(reborn.id != a.id)
        #expect(try await cloud.findInstance(name: "node-a")?.id == reborn.id)
    }
}

@Suite struct DiskTests {
    @Test func createGoesThroughCreatingAndRoundsUpToMiB() async throws {
        var configuration = SimulatorConfiguration()
        configuration.latency[.create] = .seconds(1)
        let cloud = try await CloudSimulator.inMemory(configuration)
        let operation = try await cloud.createDisk(CreateDiskRequest(name: "pvc-1", zone: "ballast-1a", sizeBytes: 1, tags: ["owner": "test"]))
        #expect(operation.state == .running)
        #expect(operation.kind == .diskCreate)
        #expect(try await cloud.describeDisk(id: operation.targetId).state == .creating)
        let done = try await cloud.wait(for: operation)
        #expect(done.state == .succeeded)
        #expect(done.doneAt != nil)
        let disk = try await cloud.describeDisk(id: operation.targetId)
        #expect(disk.state == .available)
        #expect(disk.sizeBytes == 1 << 20)
        #expect(disk.tags == ["owner": "test"])
        #expect(disk.type == "standard")
        #expect(try await cloud.describeRegion().zones[0].usedBytes == 1 << 20)
    }

    @Test func tokensMakeCreateIdempotent() async throws {
        let cloud = try await CloudSimulator.inMemory()
        let request = CreateDiskRequest(name: "pvc-2", zone: "ballast-1a", sizeBytes: gib, clientToken: "token-1")
        let first = try await cloud.createDisk(request)
        let again = try await cloud.createDisk(request)
        #expect(again.id == first.id)
        #expect(again.targetId == first.targetId)
        var different = request
        different.sizeBytes = 2 * gib
        await expectCloudError(.alreadyExists) { _ = try await cloud.createDisk(different) }
        #expect(try await cloud.allDisks().count == 1)
        // Deleting the disk frees its token.
        try await cloud.wait(for: first)
        try await cloud.wait(for: try await cloud.deleteDisk(id: first.targetId))
        let recreated = try await cloud.createDisk(different)
        #expect(recreated.targetId != first.targetId)
    }

    @Test func badDiskRequestsChangeNothing() async throws {
        let cloud = try await CloudSimulator.inMemory(SimulatorConfiguration(maxDiskBytes: 4 * gib))
        let cases: [(CreateDiskRequest, String)] = [
            (CreateDiskRequest(name: "", zone: "ballast-1a", sizeBytes: gib), "name"),
            (CreateDiskRequest(name: "../../etc/passwd", zone: "ballast-1a", sizeBytes: gib), "name"),
            (CreateDiskRequest(name: "d", zone: "../x", sizeBytes: gib), "zone"),
            (CreateDiskRequest(name: "d", zone: "ballast-1a", sizeBytes: 0), "sizeBytes"),
            (CreateDiskRequest(name: "d", zone: "ballast-1a", sizeBytes: -5), "sizeBytes"),
            (CreateDiskRequest(name: "d", zone: "ballast-1a", sizeBytes: 5 * gib), "sizeBytes"),
            (CreateDiskRequest(name: "d", zone: "ballast-1a", sizeBytes: gib, type: "tape"), "type"),
            (CreateDiskRequest(name: "d", zone: "ballast-1a", sizeBytes: gib, snapshotId: "../../etc/passwd"), "snapshotId"),
            (CreateDiskRequest(name: "d", zone: "ballast-1a", sizeBytes: gib, sourceDiskId: "vol-/../../x"), "sourceDiskId"),
            (CreateDiskRequest(name: "d", zone: "ballast-1a", sizeBytes: gib, clientToken: "has space"), "clientToken"),
            (CreateDiskRequest(name: "d", zone: "ballast-1a", sizeBytes: gib, tags: ["": "x"]), "tags"),
        ]
        for (request, parameter) in cases {
            await expectCloudError(.invalidParameter, parameter: parameter) { _ = try await cloud.createDisk(request) }
        }
        for id in ["../../etc/passwd", "vol-../../../etc", "vol-0123456789abcdef", "VOL-0123456789ABCDEF0", "", "vol-0123456789abcdef0/x"] {
            await expectCloudError(.invalidParameter, parameter: "id") { _ = try await cloud.describeDisk(id: id) }
            await expectCloudError(.invalidParameter, parameter: "id") { _ = try await cloud.deleteDisk(id: id) }
        }
        #expect(try await cloud.allDisks().isEmpty)
    }

    @Test func zoneCapacityIsAQuota() async throws {
        let cloud = try await CloudSimulator.inMemory(SimulatorConfiguration(zoneCapacityBytes: 3 * gib))
        let disk = try await makeDisk(cloud, size: 2 * gib)
        await expectCloudError(.quotaExceeded) { _ = try await cloud.createDisk(CreateDiskRequest(name: "big", zone: "ballast-1a", sizeBytes: 2 * gib)) }
        // Another zone has its own capacity.
        _ = try await makeDisk(cloud, zone: "ballast-1b", size: 2 * gib)
        await expectCloudError(.quotaExceeded) { _ = try await cloud.resizeDisk(id: disk.id, sizeBytes: 4 * gib) }
        try await cloud.wait(for: try await cloud.resizeDisk(id: disk.id, sizeBytes: 3 * gib))
        #expect(try await cloud.describeDisk(id: disk.id).sizeBytes == 3 * gib)
        await expectCloudError(.invalidParameter, parameter: "sizeBytes") { _ = try await cloud.resizeDisk(id: disk.id, sizeBytes: gib) }
    }

    @Test func listsArePaged() async throws {
        let cloud = try await CloudSimulator.inMemory()
        var ids: Set<String> = []
        for index in 0..<5 { ids.insert(try await makeDisk(cloud, name: "disk-\(index)", size: 1 << 20).id) }
        var seen: [String] = []
        var token: String?
        var pages = 0
        repeat {
            let page = try await cloud.listDisks(DiskFilter(), PageRequest(limit: 2, pageToken: token))
            #expect(page.items.count <= 2)
            seen += page.items.map(\.id)
            token = page.nextPageToken
            pages += 1
        } while token != nil
        #expect(pages == 3)
        #expect(seen == seen.sorted())
        #expect(Set(seen) == ids)
        #expect(try await cloud.listDisks(DiskFilter(name: "disk-3"), PageRequest()).items.map(\.name) == ["disk-3"])
        #expect(try await cloud.listDisks(DiskFilter(zone: "ballast-1b"), PageRequest()).items.isEmpty)
        await expectCloudError(.invalidParameter, parameter: "pageToken") { _ = try await cloud.listDisks(DiskFilter(), PageRequest(pageToken: "bm90LWEtdG9rZW4=")) }
        await expectCloudError(.invalidParameter, parameter: "limit") { _ = try await cloud.listDisks(DiskFilter(), PageRequest(limit: 0)) }
    }

    @Test func tagFilterFindsDisksByTag() async throws {
        let cloud = try await CloudSimulator.inMemory()
        let op = try await cloud.createDisk(CreateDiskRequest(name: "tagged", zone: "ballast-1a", sizeBytes: gib, tags: ["CSIVolumeName": "pvc-9"]))
        _ = try await makeDisk(cloud, name: "plain")
        let found = try await cloud.listDisks(DiskFilter(tag: "CSIVolumeName=pvc-9"), PageRequest())
        #expect(found.items.map(\.id) == [op.targetId])
        await expectCloudError(.invalidParameter, parameter: "tag") { _ = try await cloud.listDisks(DiskFilter(tag: "no-equals"), PageRequest()) }
    }
}

@Suite struct AttachmentTests {
    @Test func attachGoesThroughAttachingAndIsIdempotent() async throws {
        var configuration = SimulatorConfiguration()
        configuration.latency[.attach] = .seconds(1)
        configuration.latency[.detach] = .seconds(1)
        let (cloud, a, _) = try await cloudWithInstances(configuration)
        let disk = try await makeDisk(cloud)
        let attach = try await cloud.attachDisk(id: disk.id, instanceId: a.id, readOnly: false)
        #expect(try await cloud.describeAttachment(diskId: disk.id, instanceId: a.id).state == .attaching)
        #expect(try await cloud.describeDisk(id: disk.id).state == .inUse)
        let retried = try await cloud.attachDisk(id: disk.id, instanceId: a.id, readOnly: false)
        #expect(retried.id == attach.id, "a retry while attaching returns the running operation")
        try await cloud.wait(for: attach)
        let attachment = try await cloud.describeAttachment(diskId: disk.id, instanceId: a.id)
        #expect(attachment.state == .attached)
        #expect(attachment.serial == disk.id)
        #expect(attachment.devicePath?.hasPrefix("/dev/") == true)
        let again = try await cloud.attachDisk(id: disk.id, instanceId: a.id, readOnly: false)
        #expect(again.state == .succeeded, "attaching an attached disk is a finished no-op")
        #expect(try await cloud.listDisks(DiskFilter(instanceId: a.id), PageRequest()).items.map(\.id) == [disk.id])

        let detach = try await cloud.detachDisk(id: disk.id, instanceId: a.id, force: false)
        #expect(try await cloud.describeAttachment(diskId: disk.id, instanceId: a.id).state == .detaching)
        try await cloud.wait(for: detach)
        #expect(try await cloud.describeAttachment(diskId: disk.id, instanceId: a.id).state == .detached)
        #expect(try await cloud.describeDisk(id: disk.id).state == .available)
        #expect(try await cloud.detachDisk(id: disk.id, instanceId: a.id, force: false).state == .succeeded)
    }

    @Test func attachRules() async throws {
        let (cloud, a, b) = try await cloudWithInstances()
        #expect(a.zone == "ballast-1a")
        #expect(b.zone == "ballast-1b")
        let disk = try await makeDisk(cloud)
        await expectCloudError(.invalidParameter, parameter: "instanceId") { _ = try await cloud.attachDisk(id: disk.id, instanceId: b.id, readOnly: false) }
        let a2 = try await cloud.registerInstance(RegisterInstanceRequest(name: "node-c", zone: "ballast-1a"))
        try await cloud.wait(for: try await cloud.attachDisk(id: disk.id, instanceId: a.id, readOnly: false))
        await expectCloudError(.inUse) { _ = try await cloud.attachDisk(id: disk.id, instanceId: a2.id, readOnly: false) }
        await expectCloudError(.inUse) { _ = try await cloud.deleteDisk(id: disk.id) }
        let shared = try await makeDisk(cloud, name: "shared", multiAttach: true)
        try await cloud.wait(for: try await cloud.attachDisk(id: shared.id, instanceId: a.id, readOnly: false))
        try await cloud.wait(for: try await cloud.attachDisk(id: shared.id, instanceId: a2.id, readOnly: false))
        #expect(try await cloud.describeDisk(id: shared.id).attachments.count == 2)
        await expectCloudError(.notFound) { _ = try await cloud.attachDisk(id: disk.id, instanceId: "i-0123456789abcdef0") }
        await expectCloudError(.invalidParameter, parameter: "instanceId") { _ = try await cloud.attachDisk(id: disk.id, instanceId: "node-a") }
    }

    @Test func aForcedDetachWhileAttachingUndoesTheAttach() async throws {
        var configuration = SimulatorConfiguration()
        configuration.latency[.attach] = .seconds(1)
        let devices = MemoryDeviceBackend()
        let (cloud, a, _) = try await cloudWithInstances(configuration, devices: devices)
        let disk = try await makeDisk(cloud)
        let attach = try await cloud.attachDisk(id: disk.id, instanceId: a.id, readOnly: false)
        await expectCloudError(.incorrectState) { _ = try await cloud.detachDisk(id: disk.id, instanceId: a.id, force: false) }
        let detach = try await cloud.detachDisk(id: disk.id, instanceId: a.id, force: true)
        try await cloud.wait(for: attach)
        try await cloud.wait(for: detach)
        #expect(try await cloud.describeAttachment(diskId: disk.id, instanceId: a.id).state == .detached)
        #expect(devices.attachedDevices.isEmpty, "no device is left behind")
        #expect(try await cloud.describeDisk(id: disk.id).state == .available)
    }

    @Test func readOnlyAttachmentsAreNotSilentlyMadeWritable() async throws {
        let (cloud, a, _) = try await cloudWithInstances()
        let disk = try await makeDisk(cloud)
        try await cloud.wait(for: try await cloud.attachDisk(id: disk.id, instanceId: a.id, readOnly: true))
        #expect(try await cloud.describeAttachment(diskId: disk.id, instanceId: a.id).readOnly)
        #expect(try await cloud.attachDisk(id: disk.id, instanceId: a.id, readOnly: true).state == .succeeded)
        await expectCloudError(.alreadyExists) { _ = try await cloud.attachDisk(id: disk.id, instanceId: a.id, readOnly: false) }
    }

    @Test func attachLimitIsEnforced() async throws {
        let cloud = try await CloudSimulator.inMemory()
        let node = try await cloud.registerInstance(RegisterInstanceRequest(name: "small", zone: "ballast-1a", attachLimit: 2))
        var disks: [Disk] = []
        for index in 0..<3 { disks.append(try await makeDisk(cloud, name: "d\(index)", size: 1 << 20)) }
        try await cloud.wait(for: try await cloud.attachDisk(id: disks[0].id, instanceId: node.id))
        try await cloud.wait(for: try await cloud.attachDisk(id: disks[1].id, instanceId: node.id))
        await expectCloudError(.attachLimitExceeded) { _ = try await cloud.attachDisk(id: disks[2].id, instanceId: node.id) }
        #expect(try await cloud.describeDisk(id: disks[2].id).attachments.isEmpty, "a refused attach changes nothing")
        // Re-attaching an attached disk does not count twice.
        #expect(try await cloud.attachDisk(id: disks[1].id, instanceId: node.id).state == .succeeded)
    }

    @Test func mountedDevicesNeedForceToDetach() async throws {
        let devices = MemoryDeviceBackend()
        let (cloud, a, _) = try await cloudWithInstances(devices: devices)
        let disk = try await makeDisk(cloud)
        try await cloud.wait(for: try await cloud.attachDisk(id: disk.id, instanceId: a.id, readOnly: false))
        let path = try #require(try await cloud.describeAttachment(diskId: disk.id, instanceId: a.id).devicePath)
        devices.mounted = [path]
        await expectCloudError(.inUse) { _ = try await cloud.detachDisk(id: disk.id, instanceId: a.id, force: false) }
        #expect(try await cloud.describeAttachment(diskId: disk.id, instanceId: a.id).state == .attached)
        try await cloud.wait(for: try await cloud.detachDisk(id: disk.id, instanceId: a.id, force: true))
        #expect(try await cloud.describeDisk(id: disk.id).attachments.isEmpty)
    }
}

@Suite struct SnapshotTests {
    @Test func snapshotsAndDisksMadeFromThem() async throws {
        let cloud = try await CloudSimulator.inMemory()
        let disk = try await makeDisk(cloud, size: 2 * gib)
        let operation = try await cloud.createSnapshot(CreateSnapshotRequest(diskId: disk.id, name: "snap-1", clientToken: "s1"))
        #expect(try await cloud.createSnapshot(CreateSnapshotRequest(diskId: disk.id, name: "snap-1", clientToken: "s1")).id == operation.id)
        try await cloud.wait(for: operation)
        let snapshot = try await cloud.describeSnapshot(id: operation.targetId)
        #expect(snapshot.state == .completed)
        #expect(snapshot.sizeBytes == 2 * gib)
        #expect(snapshot.sourceDiskId == disk.id)
        #expect(try await cloud.listSnapshots(sourceDiskId: disk.id, PageRequest()).items.map(\.id) == [snapshot.id])

        await expectCloudError(.invalidParameter, parameter: "sizeBytes") {
            _ = try await cloud.createDisk(CreateDiskRequest(name: "small", zone: "ballast-1b", sizeBytes: gib, snapshotId: snapshot.id))
        }
        let restore = try await cloud.createDisk(CreateDiskRequest(name: "restored", zone: "ballast-1b", sizeBytes: 3 * gib, snapshotId: snapshot.id))
        try await cloud.wait(for: restore)
        let restored = try await cloud.describeDisk(id: restore.targetId)
        #expect(restored.sourceSnapshotId == snapshot.id)
        #expect(restored.zone == "ballast-1b", "snapshots restore in any zone")

        await expectCloudError(.invalidParameter, parameter: "sourceDiskId") {
            _ = try await cloud.createDisk(CreateDiskRequest(name: "clone", zone: "ballast-1b", sizeBytes: 2 * gib, sourceDiskId: disk.id))
        }
        let clone = try await cloud.createDisk(CreateDiskRequest(name: "clone", zone: "ballast-1a", sizeBytes: 2 * gib, sourceDiskId: disk.id))
        try await cloud.wait(for: clone)
        #expect(try await cloud.describeDisk(id: clone.targetId).sourceDiskId == disk.id)

        try await cloud.wait(for: try await cloud.deleteSnapshot(id: snapshot.id))
        await expectCloudError(.notFound) { _ = try await cloud.describeSnapshot(id: snapshot.id) }
        await expectCloudError(.notFound) {
            _ = try await cloud.createDisk(CreateDiskRequest(name: "late", zone: "ballast-1a", sizeBytes: 3 * gib, snapshotId: snapshot.id))
        }
    }
}

@Suite struct FaultAndRecoveryTests {
    @Test func faultsFailTheGivenShareOfRequestsAndChangeNothing() async throws {
        var configuration = SimulatorConfiguration(faults: [.create: 0.3], faultSeed: 42)
        configuration.faults[.describe] = 0
        let cloud = try await CloudSimulator.inMemory(configuration)
        var failures: [CloudErrorCode: Int] = [:]
        var created = 0
        for index in 0..<200 {
            do {
                _ = try await cloud.createDisk(CreateDiskRequest(name: "d\(index)", zone: "ballast-1a", sizeBytes: 1 << 20))
                created += 1
            } catch let error as CloudError {
                #expect(error.isRetryable)
                failures[error.code, default: 0] += 1
            }
        }
        let failed = failures.values.reduce(0, +)
        #expect((35...85).contains(failed), "30% of 200 requests should fail, \(failed) did")
        #expect(failures[.throttled, default: 0] > 0 && failures[.internal, default: 0] > 0)
        await cloud.drain()
        #expect(try await cloud.allDisks().count == created, "a failed request creates nothing")
    }

    @Test func everyRequestFailsAtRateOne() async throws {
        let cloud = try await CloudSimulator.inMemory(SimulatorConfiguration(faults: [.register: 1]))
        for _ in 0..<10 {
            do {
                _ = try await cloud.registerInstance(RegisterInstanceRequest(name: "n"))
                Issue.record("a request got through at a fault rate of 1")
            } catch let error as CloudError {
                #expect(error.isRetryable, "\(error)")
                #expect(error.message.contains("injected"))
            }
        }
        #expect(try await cloud.listInstances(PageRequest()).items.isEmpty)
    }

    @Test func parsesFaultAndLatencyOptions() throws {
        #expect(try SimulatorConfiguration.parseFaults("attach=0.1,create=0.05") == [.attach: 0.1, .create: 0.05])
        #expect(try SimulatorConfiguration.parseLatencies("attach=200ms,detach=1.5s,create=0") ==
            [.attach: .milliseconds(200), .detach: .milliseconds(1500), .create: .zero])
        #expect(throws: CloudError.self) { try SimulatorConfiguration.parseFaults("attach=2") }
        #expect(throws: CloudError.self) { try SimulatorConfiguration.parseFaults("teleport=0.1") }
        #expect(throws: CloudError.self) { try SimulatorConfiguration.parseLatencies("attach=soon") }
    }

    @Test func restartReattachesVanishedDevicesAndFailsVanishedDisks() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ballast-cloud-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let statePath = directory.appendingPathComponent("cloud.db").path
        let devices = MemoryDeviceBackend()
        let configuration = SimulatorConfiguration()
        var cloud = try CloudSimulator(configuration: configuration, statePath: statePath, devices: devices, logger: .init(label: "test"))
        try await cloud.start()
        let node = try await cloud.registerInstance(RegisterInstanceRequest(name: "node-a", zone: "ballast-1a"))
        let attached = try await makeDisk(cloud, name: "attached")
        let doomed = try await makeDisk(cloud, name: "doomed")
        try await cloud.wait(for: try await cloud.attachDisk(id: attached.id, instanceId: node.id, readOnly: false))
        let before = try await cloud.describeAttachment(diskId: attached.id, instanceId: node.id).devicePath

        devices.simulateReboot()
        try await devices.deleteDisk(zone: "ballast-1a", diskId: doomed.id)
        cloud = try CloudSimulator(configuration: configuration, statePath: statePath, devices: devices, logger: .init(label: "test"))
        try await cloud.start()
        await cloud.drain()
        let after = try await cloud.describeAttachment(diskId: attached.id, instanceId: node.id)
        #expect(after.state == .attached)
        #expect(after.devicePath != nil && after.devicePath != before, "re-attached on a new device")
        let failed = try await cloud.describeDisk(id: doomed.id)
        #expect(failed.state == .failed)
        #expect(failed.failureReason?.contains("vanished") == true)
        // A failed disk can still be deleted.
        try await cloud.wait(for: try await cloud.deleteDisk(id: doomed.id))
    }
}
