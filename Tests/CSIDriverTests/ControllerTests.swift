// The identity and controller services over their unix socket, against the simulated cloud
// (in memory devices: these need no root). Mirrors csi-sanity's controller cases, plus this
// driver's own rules (topology, parameters, quotas).
import CloudProvider
import CSIDriver
import Foundation
import GRPCCore
import SwiftProtobuf
import Testing

private typealias H = DriverHarness

private func outcome<T>(_ body: () async throws -> T) async -> Result<T, any Error> {
    do { return .success(try await body()) } catch { return .failure(error) }
}

@Suite struct IdentityTests {
    @Test func pluginInfoCapabilitiesAndProbe() async throws {
        try await withDriver { driver in
            let info = try await driver.identity.getPluginInfo(Csi_V1_GetPluginInfoRequest())
            #expect(info.name == "loop.csi.ballast.dev")
            #expect(info.name.range(of: #"^[a-zA-Z][A-Za-z0-9-\.\_]{0,61}[a-zA-Z]$"#, options: .regularExpression) != nil)
            #expect(!info.vendorVersion.isEmpty)
            let capabilities = try await driver.identity.getPluginCapabilities(Csi_V1_GetPluginCapabilitiesRequest()).capabilities
            let services = capabilities.compactMap { $0.type.flatMap { if case .service(let s) = $0 { s.type } else { nil } } }
            #expect(services == [.controllerService, .volumeAccessibilityConstraints])
            #expect(capabilities.contains { if case .volumeExpansion(let e) = $0.type { e.type == .online } else { false } })
            #expect(try await driver.identity.probe(Csi_V1_ProbeRequest()).ready.value)
            let controllerCapabilities = try await driver.controller.controllerGetCapabilities(Csi_V1_ControllerGetCapabilitiesRequest())
                .capabilities.map(\.rpc.type)
            for needed: Csi_V1_ControllerServiceCapability.RPC.TypeEnum in [.createDeleteVolume, .publishUnpublishVolume, .listVolumes,
                .getCapacity, .createDeleteSnapshot, .listSnapshots, .cloneVolume, .publishReadonly, .expandVolume, .listVolumesPublishedNodes] {
                #expect(controllerCapabilities.contains(needed), "\(needed)")
            }
        }
    }

    /// ControllerModifyVolume has one mutable parameter, the PV mark the controller manager's
    /// orphan sweep reads back from ListVolumes.
    @Test func modifyVolumeMarksThePVOnly() async throws {
        try await withDriver { driver in
            let volume = try await driver.createVolume("pvc-mark")
            await expectCode(.invalidArgument) {
                _ = try await driver.controller.controllerModifyVolume(.with {
                    $0.volumeID = volume.volumeID
                    $0.mutableParameters = ["type": "ssd"]
                })
            }
            await expectCode(.notFound) {
                _ = try await driver.controller.controllerModifyVolume(.with {
                    $0.volumeID = "vol-0123456789abcdef0"
                    $0.mutableParameters = ["csi.ballast.dev/pv": "pvc-mark"]
                })
            }
            _ = try await driver.controller.controllerModifyVolume(.with {
                $0.volumeID = volume.volumeID
                $0.mutableParameters = ["csi.ballast.dev/pv": "pvc-mark"]
            })
            let listed = try await driver.controller.listVolumes(Csi_V1_ListVolumesRequest()).entries.first { $0.volume.volumeID == volume.volumeID }
            #expect(listed?.volume.volumeContext["csi.ballast.dev/pv"] == "pvc-mark")
            #expect(listed?.volume.volumeContext["csi.ballast.dev/name"] == "pvc-mark")
            #expect(listed?.volume.volumeContext["csi.ballast.dev/created-at"] != nil)
        }
    }
}

@Suite struct CreateVolumeTests {
    @Test func requiredFieldsAndBadValues() async throws {
        try await withDriver { driver in
            let cases: [(Csi_V1_CreateVolumeRequest, RPCError.Code, String)] = [
                (.with { $0.volumeCapabilities = [H.capability()] }, .invalidArgument, "name"),
                (.with { $0.name = "v" }, .invalidArgument, "volume_capabilities"),
                (.with { $0.name = "v"; $0.volumeCapabilities = [Csi_V1_VolumeCapability()] }, .invalidArgument, "access_type"),
                (.with { $0.name = "v"; $0.volumeCapabilities = [H.capability(.multiNodeMultiWriter)] }, .invalidArgument, "access_mode"),
                (.with { $0.name = "v"; $0.volumeCapabilities = [H.capability(fsType: "btrfs")] }, .invalidArgument, "fs_type"),
                (.with { $0.name = "v"; $0.volumeCapabilities = [H.capability()]; $0.parameters = ["type": "tape"] }, .invalidArgument, "parameters.type"),
                (.with { $0.name = "v"; $0.volumeCapabilities = [H.capability()]; $0.parameters = ["speed": "fast"] }, .invalidArgument, "parameters.speed"),
                (.with { $0.name = "v"; $0.volumeCapabilities = [H.capability()]; $0.capacityRange = .with { $0.requiredBytes = -1 } }, .invalidArgument, "required_bytes"),
                (.with { $0.name = "v"; $0.volumeCapabilities = [H.capability()]; $0.capacityRange = .with { $0.requiredBytes = 10; $0.limitBytes = 5 } }, .invalidArgument, "limit_bytes"),
                (.with { $0.name = "v"; $0.volumeCapabilities = [H.capability()]; $0.capacityRange = .with { $0.requiredBytes = 1000; $0.limitBytes = 2000 } }, .outOfRange, "MiB"),
                (.with { $0.name = "v"; $0.volumeCapabilities = [H.capability()]; $0.capacityRange = .with { $0.requiredBytes = 1 << 50 } }, .outOfRange, "sizeBytes"),
                (.with { $0.name = "v"; $0.volumeCapabilities = [H.capability()]; $0.accessibilityRequirements = .with { $0.requisite = [.with { $0.segments = ["topology.kubernetes.io/zone": "mars-1a"] }] } }, .resourceExhausted, "requisite"),
                (.with { $0.name = "v"; $0.volumeCapabilities = [H.capability()]; $0.accessibilityRequirements = .with { $0.requisite = [.with { $0.segments = ["rack": "7"] }] } }, .invalidArgument, "topology key"),
                (.with { $0.name = "v"; $0.volumeCapabilities = [H.capability()]; $0.volumeContentSource = .with { $0.snapshot = .with { $0.snapshotID = "snap-0123456789abcdef0" } } }, .notFound, "snap-0123456789abcdef0"),
                (.with { $0.name = "v"; $0.volumeCapabilities = [H.capability()]; $0.volumeContentSource = .with { $0.snapshot = .with { $0.snapshotID = "../../etc/passwd" } } }, .notFound, "does not exist"),
                (.with { $0.name = "v"; $0.volumeCapabilities = [H.capability()]; $0.volumeContentSource = .with { $0.volume = .with { $0.volumeID = "fake-vol-id" } } }, .notFound, "fake-vol-id"),
            ]
            for (request, code, fragment) in cases {
                let message = await expectCode(code) { _ = try await driver.controller.createVolume(request) }
                #expect(message.contains(fragment), "\(message)")
            }
            let disks = try await driver.cloud.allDisks()
            #expect(disks.isEmpty, "refused requests create nothing")
        }
    }

    @Test func createIsIdempotentByName() async throws {
        try await withDriver { driver in
            let first = try await driver.createVolume("pvc-1", bytes: 100 << 20)
            #expect(first.capacityBytes == 100 << 20)
            #expect(first.accessibleTopology.first?.segments["topology.kubernetes.io/zone"] == "ballast-1a")
            let again = try await driver.createVolume("pvc-1", bytes: 100 << 20)
            #expect(again.volumeID == first.volumeID)
            await expectCode(.alreadyExists) { _ = try await driver.createVolume("pvc-1", bytes: 200 << 20) }
            #expect(try await driver.cloud.allDisks().count == 1)

            let defaulted = try await driver.controller.createVolume(.with { $0.name = "no-range"; $0.volumeCapabilities = [H.capability()] }).volume
            #expect(defaulted.capacityBytes == 1 << 30)
            let rounded = try await driver.createVolume("odd", bytes: (1 << 20) + 1)
            #expect(rounded.capacityBytes == 2 << 20)
            let longName = String(repeating: "n", count: 128)
            let long = try await driver.createVolume(longName)
            #expect(try await driver.createVolume(longName).volumeID == long.volumeID)
            let odd = try await driver.createVolume("weird/name with spaces:and=equals")
            #expect(try await driver.createVolume("weird/name with spaces:and=equals").volumeID == odd.volumeID)
        }
    }

    @Test func concurrentCreatesOfOneNameMakeOneVolume() async throws {
        var simulator = SimulatorConfiguration()
        simulator.latency[.create] = .seconds(1)
        try await withDriver(simulator: simulator) { driver in
            // Two creates of one name at once: one makes the volume, the other is ABORTED (in
            // whichever order they arrive); a retry afterwards finds the same volume.
            async let first = outcome { try await driver.createVolume("race") }
            async let second = outcome { try await driver.createVolume("race") }
            let results = await [first, second]
            let created = results.compactMap { try? $0.get() }
            let aborted = results.filter { if case .failure(let error as RPCError) = $0 { error.code == .aborted } else { false } }
            #expect(created.count == 1 && aborted.count == 1, "\(results)")
            let retried = try await driver.createVolume("race")
            #expect(retried.volumeID == created.first?.volumeID)
            #expect(try await driver.cloud.allDisks().count == 1)
        }
    }

    @Test func topologyAndParametersChooseTheDisk() async throws {
        try await withDriver { driver in
            let volume = try await driver.controller.createVolume(.with {
                $0.name = "zoned"
                $0.volumeCapabilities = [H.capability(block: true)]
                $0.parameters = ["type": "ssd", "csi.storage.k8s.io/pvc/name": "data"]
                $0.accessibilityRequirements = .with {
                    $0.requisite = [.with { $0.segments = ["topology.kubernetes.io/zone": "ballast-1a"] },
                                    .with { $0.segments = ["topology.kubernetes.io/zone": "ballast-1b"] }]
                    $0.preferred = [.with { $0.segments = ["topology.kubernetes.io/zone": "ballast-1b"] }]
                }
            }).volume
            #expect(volume.accessibleTopology.first?.segments["topology.kubernetes.io/zone"] == "ballast-1b", "preferred zone wins")
            let disk = try await driver.cloud.describeDisk(id: volume.volumeID)
            #expect(disk.type == "ssd")
            #expect(disk.zone == "ballast-1b")
        }
    }

    @Test func quotaIsResourceExhausted() async throws {
        try await withDriver(simulator: SimulatorConfiguration(zoneCount: 1, zoneCapacityBytes: 100 << 20)) { driver in
            _ = try await driver.createVolume("a", bytes: 80 << 20)
            await expectCode(.resourceExhausted) { _ = try await driver.createVolume("b", bytes: 80 << 20) }
        }
    }

    @Test func volumesFromSnapshotsAndClones() async throws {
        try await withDriver { driver in
            let source = try await driver.createVolume("source", bytes: 64 << 20)
            let snapshot = try await driver.controller.createSnapshot(.with { $0.name = "snap"; $0.sourceVolumeID = source.volumeID }).snapshot
            #expect(snapshot.readyToUse)
            #expect(snapshot.sizeBytes == 64 << 20)
            #expect(snapshot.sourceVolumeID == source.volumeID)
            let restored = try await driver.controller.createVolume(.with {
                $0.name = "restored"
                $0.volumeCapabilities = [H.capability()]
                $0.volumeContentSource = .with { $0.snapshot = .with { $0.snapshotID = snapshot.snapshotID } }
            }).volume
            #expect(restored.capacityBytes == 64 << 20, "no capacity given: the snapshot's size")
            #expect(restored.contentSource.snapshot.snapshotID == snapshot.snapshotID)
            let clone = try await driver.controller.createVolume(.with {
                $0.name = "clone"
                $0.volumeCapabilities = [H.capability()]
                $0.capacityRange = .with { $0.requiredBytes = 128 << 20 }
                $0.volumeContentSource = .with { $0.volume = .with { $0.volumeID = source.volumeID } }
            }).volume
            #expect(clone.capacityBytes == 128 << 20)
            #expect(clone.contentSource.volume.volumeID == source.volumeID)
            await expectCode(.outOfRange) {
                _ = try await driver.controller.createVolume(.with {
                    $0.name = "too-small"
                    $0.volumeCapabilities = [H.capability()]
                    $0.capacityRange = .with { $0.requiredBytes = 1 << 20; $0.limitBytes = 2 << 20 }
                    $0.volumeContentSource = .with { $0.volume = .with { $0.volumeID = source.volumeID } }
                })
            }
        }
    }
}

@Suite struct DeleteAndValidateTests {
    @Test func deleteVolume() async throws {
        try await withDriver { driver in
            await expectCode(.invalidArgument) { _ = try await driver.controller.deleteVolume(Csi_V1_DeleteVolumeRequest()) }
            _ = try await driver.controller.deleteVolume(.with { $0.volumeID = "fake-vol-id" })
            _ = try await driver.controller.deleteVolume(.with { $0.volumeID = "vol-0123456789abcdef0" })
            let volume = try await driver.createVolume("doomed")
            _ = try await driver.publish(volume.volumeID)
            await expectCode(.failedPrecondition) { _ = try await driver.controller.deleteVolume(.with { $0.volumeID = volume.volumeID }) }
            try await driver.controllerUnpublish(volume.volumeID)
            _ = try await driver.controller.deleteVolume(.with { $0.volumeID = volume.volumeID })
            _ = try await driver.controller.deleteVolume(.with { $0.volumeID = volume.volumeID })
            #expect(try await driver.cloud.allDisks().isEmpty)
        }
    }

    @Test func validateVolumeCapabilities() async throws {
        try await withDriver { driver in
            await expectCode(.invalidArgument) { _ = try await driver.controller.validateVolumeCapabilities(.with { $0.volumeCapabilities = [H.capability()] }) }
            await expectCode(.invalidArgument) { _ = try await driver.controller.validateVolumeCapabilities(.with { $0.volumeID = "vol-0123456789abcdef0" }) }
            await expectCode(.notFound) {
                _ = try await driver.controller.validateVolumeCapabilities(.with { $0.volumeID = "fake-vol-id"; $0.volumeCapabilities = [H.capability()] })
            }
            let volume = try await driver.createVolume("checked")
            let good = try await driver.controller.validateVolumeCapabilities(.with {
                $0.volumeID = volume.volumeID
                $0.volumeCapabilities = [H.capability(), H.capability(.singleNodeReaderOnly, block: true)]
            })
            #expect(good.confirmed.volumeCapabilities.count == 2)
            let bad = try await driver.controller.validateVolumeCapabilities(.with {
                $0.volumeID = volume.volumeID
                $0.volumeCapabilities = [H.capability(.multiNodeMultiWriter)]
            })
            #expect(!bad.hasConfirmed)
            #expect(bad.message.contains("access_mode"))
        }
    }
}

@Suite struct PublishTests {
    @Test func argumentsAreCheckedBeforeLookups() async throws {
        try await withDriver { driver in
            await expectCode(.invalidArgument) { _ = try await driver.controller.controllerPublishVolume(.with { $0.nodeID = "fake-node-id"; $0.volumeCapability = H.capability() }) }
            await expectCode(.invalidArgument) { _ = try await driver.controller.controllerPublishVolume(.with { $0.volumeID = "fake-vol-id"; $0.volumeCapability = H.capability() }) }
            await expectCode(.invalidArgument) { _ = try await driver.controller.controllerPublishVolume(.with { $0.volumeID = "fake-vol-id"; $0.nodeID = "fake-node-id" }) }
            await expectCode(.notFound) { _ = try await driver.controller.controllerPublishVolume(.with { $0.volumeID = "fake-vol-id"; $0.nodeID = driver.node.id; $0.volumeCapability = H.capability() }) }
            let volume = try await driver.createVolume("v")
            await expectCode(.notFound) { _ = try await driver.controller.controllerPublishVolume(.with { $0.volumeID = volume.volumeID; $0.nodeID = "fake-node-id"; $0.volumeCapability = H.capability() }) }
            await expectCode(.notFound) { _ = try await driver.controller.controllerPublishVolume(.with { $0.volumeID = volume.volumeID; $0.nodeID = "i-0123456789abcdef0"; $0.volumeCapability = H.capability() }) }
            await expectCode(.invalidArgument) { _ = try await driver.controller.controllerUnpublishVolume(.with { $0.nodeID = driver.node.id }) }
        }
    }

    @Test func publishUnpublishRules() async throws {
        try await withDriver(attachLimit: 2) { driver in
            let volume = try await driver.createVolume("v")
            let context = try await driver.publish(volume.volumeID)
            #expect(context["devicePath"]?.hasPrefix("/dev/") == true)
            #expect(context["serial"] == volume.volumeID)
            #expect(try await driver.publish(volume.volumeID) == context, "publishing again answers the same context")
            await expectCode(.alreadyExists) { _ = try await driver.publish(volume.volumeID, readOnly: true) }
            let message = await expectCode(.failedPrecondition) {
                _ = try await driver.controller.controllerPublishVolume(.with {
                    $0.volumeID = volume.volumeID; $0.nodeID = driver.otherNode.id; $0.volumeCapability = H.capability()
                })
            }
            #expect(message.contains(driver.node.id), "names the node that has it")

            _ = try await driver.publish(try await driver.createVolume("w").volumeID)
            let third = try await driver.createVolume("x")
            await expectCode(.resourceExhausted) { _ = try await driver.publish(third.volumeID) }

            let listed = try await driver.controller.listVolumes(Csi_V1_ListVolumesRequest())
            let entry = try #require(listed.entries.first { $0.volume.volumeID == volume.volumeID })
            #expect(entry.status.publishedNodeIds == [driver.node.id])

            try await driver.controllerUnpublish(volume.volumeID)
            try await driver.controllerUnpublish(volume.volumeID)
            _ = try await driver.controller.controllerUnpublishVolume(.with { $0.volumeID = "fake-vol-id"; $0.nodeID = "fake-node-id" })
            #expect(try await driver.cloud.describeDisk(id: volume.volumeID).attachments.isEmpty)
            // Empty node id: from every node.
            _ = try await driver.publish(volume.volumeID)
            _ = try await driver.controller.controllerUnpublishVolume(.with { $0.volumeID = volume.volumeID })
            #expect(try await driver.cloud.describeDisk(id: volume.volumeID).attachments.isEmpty)
        }
    }
}

@Suite struct ListAndCapacityTests {
    @Test func listVolumesPagesAndRejectsBadTokens() async throws {
        try await withDriver { driver in
            var ids: Set<String> = []
            for index in 0..<5 { ids.insert(try await driver.createVolume("list-\(index)", bytes: 1 << 20).volumeID) }
            var seen: [String] = []
            var token = ""
            repeat {
                let page = try await driver.controller.listVolumes(.with { $0.maxEntries = 2; $0.startingToken = token })
                #expect(page.entries.count <= 2)
                seen += page.entries.map(\.volume.volumeID)
                token = page.nextToken
            } while !token.isEmpty
            #expect(Set(seen) == ids)
            await expectCode(.aborted) { _ = try await driver.controller.listVolumes(.with { $0.startingToken = "invalid-token" }) }
            _ = try await driver.controller.deleteVolume(.with { $0.volumeID = seen[0] })
            #expect(!(try await driver.controller.listVolumes(Csi_V1_ListVolumesRequest()).entries.map(\.volume.volumeID).contains(seen[0])))
        }
    }

    @Test func capacityPerZone() async throws {
        try await withDriver(simulator: SimulatorConfiguration(zoneCount: 2, zoneCapacityBytes: 1 << 30)) { driver in
            _ = try await driver.createVolume("a", bytes: 256 << 20)
            let zoneA = try await driver.controller.getCapacity(.with { $0.accessibleTopology = .with { $0.segments = ["topology.kubernetes.io/zone": "ballast-1a"] } })
            #expect(zoneA.availableCapacity == (1 << 30) - (256 << 20))
            let all = try await driver.controller.getCapacity(Csi_V1_GetCapacityRequest())
            #expect(all.availableCapacity == 2 * (1 << 30) - (256 << 20))
        }
    }
}

@Suite struct SnapshotAndExpandTests {
    @Test func snapshots() async throws {
        try await withDriver { driver in
            let volume = try await driver.createVolume("snapped")
            let other = try await driver.createVolume("other")
            await expectCode(.invalidArgument) { _ = try await driver.controller.createSnapshot(.with { $0.sourceVolumeID = volume.volumeID }) }
            await expectCode(.invalidArgument) { _ = try await driver.controller.createSnapshot(.with { $0.name = "s" }) }
            let first = try await driver.controller.createSnapshot(.with { $0.name = "s"; $0.sourceVolumeID = volume.volumeID }).snapshot
            let again = try await driver.controller.createSnapshot(.with { $0.name = "s"; $0.sourceVolumeID = volume.volumeID }).snapshot
            #expect(again.snapshotID == first.snapshotID)
            await expectCode(.alreadyExists) { _ = try await driver.controller.createSnapshot(.with { $0.name = "s"; $0.sourceVolumeID = other.volumeID }) }
            _ = try await driver.controller.createSnapshot(.with { $0.name = String(repeating: "s", count: 128); $0.sourceVolumeID = volume.volumeID })

            #expect(try await driver.controller.listSnapshots(.with { $0.snapshotID = first.snapshotID }).entries.map(\.snapshot.snapshotID) == [first.snapshotID])
            #expect(try await driver.controller.listSnapshots(.with { $0.snapshotID = "snap-0123456789abcdef0" }).entries.isEmpty)
            #expect(try await driver.controller.listSnapshots(.with { $0.sourceVolumeID = volume.volumeID }).entries.count == 2)
            #expect(try await driver.controller.listSnapshots(.with { $0.sourceVolumeID = "fake-vol-id" }).entries.isEmpty)
            let page = try await driver.controller.listSnapshots(.with { $0.maxEntries = 1 })
            #expect(page.entries.count == 1)
            #expect(!page.nextToken.isEmpty)
            await expectCode(.aborted) { _ = try await driver.controller.listSnapshots(.with { $0.startingToken = "invalid-token" }) }
            #expect(try await driver.controller.getSnapshot(.with { $0.snapshotID = first.snapshotID }).snapshot.snapshotID == first.snapshotID)
            await expectCode(.notFound) { _ = try await driver.controller.getSnapshot(.with { $0.snapshotID = "fake-snapshot-id" }) }

            await expectCode(.invalidArgument) { _ = try await driver.controller.deleteSnapshot(Csi_V1_DeleteSnapshotRequest()) }
            _ = try await driver.controller.deleteSnapshot(.with { $0.snapshotID = "fake-snapshot-id" })
            _ = try await driver.controller.deleteSnapshot(.with { $0.snapshotID = first.snapshotID })
            _ = try await driver.controller.deleteSnapshot(.with { $0.snapshotID = first.snapshotID })
            #expect(try await driver.controller.listSnapshots(.with { $0.snapshotID = first.snapshotID }).entries.isEmpty)
        }
    }

    @Test func controllerExpand() async throws {
        try await withDriver { driver in
            await expectCode(.invalidArgument) { _ = try await driver.controller.controllerExpandVolume(.with { $0.capacityRange = .with { $0.requiredBytes = 1 } }) }
            await expectCode(.invalidArgument) { _ = try await driver.controller.controllerExpandVolume(.with { $0.volumeID = "vol-0123456789abcdef0" }) }
            await expectCode(.notFound) { _ = try await driver.controller.controllerExpandVolume(.with { $0.volumeID = "fake-vol-id"; $0.capacityRange = .with { $0.requiredBytes = 1 } }) }
            let volume = try await driver.createVolume("grow", bytes: 64 << 20)
            let grown = try await driver.controller.controllerExpandVolume(.with {
                $0.volumeID = volume.volumeID
                $0.capacityRange = .with { $0.requiredBytes = 128 << 20 }
                $0.volumeCapability = H.capability()
            })
            #expect(grown.capacityBytes == 128 << 20)
            #expect(grown.nodeExpansionRequired)
            let block = try await driver.controller.controllerExpandVolume(.with {
                $0.volumeID = volume.volumeID
                $0.capacityRange = .with { $0.requiredBytes = 100 << 20 }
                $0.volumeCapability = H.capability(block: true)
            })
            #expect(block.capacityBytes == 128 << 20, "already big enough: unchanged")
            #expect(!block.nodeExpansionRequired)
            let status = try await driver.controller.controllerGetVolume(.with { $0.volumeID = volume.volumeID })
            #expect(status.volume.capacityBytes == 128 << 20)
            #expect(!status.status.volumeCondition.abnormal)
        }
    }
}

/// Issue 12 finding 5: sizes near Int64.max overflowed the MiB rounding and trapped the
/// controller (a crash loop from one PVC). They are OUT_OF_RANGE, and the driver keeps serving.
@Suite struct ControllerSizeTests {
    @Test(arguments: [Int64.max, Int64.max - 1, Int64.max - (1 << 20) + 2])
    func hugeCapacitiesAreOutOfRange(bytes: Int64) async throws {
        try await withDriver { driver in
            let message = await expectCode(.outOfRange) {
                _ = try await driver.controller.createVolume(.with {
                    $0.name = "huge"
                    $0.capacityRange = .with { $0.requiredBytes = bytes }
                    $0.volumeCapabilities = [DriverHarness.capability()]
                })
            }
            #expect(message.contains("capacity_range"), "\(message)")
            let volume = try await driver.createVolume("small", bytes: 1 << 20)
            await expectCode(.outOfRange) {
                _ = try await driver.controller.controllerExpandVolume(.with {
                    $0.volumeID = volume.volumeID
                    $0.capacityRange = .with { $0.requiredBytes = bytes; $0.limitBytes = bytes }
                })
            }
            // A huge limit alone is fine: the default size, within it.
            let limited = try await driver.controller.createVolume(.with {
                $0.name = "limited"
                $0.capacityRange = .with { $0.limitBytes = .max }
                $0.volumeCapabilities = [DriverHarness.capability()]
            })
            #expect(limited.volume.capacityBytes == driver.configuration.defaultVolumeBytes)
            _ = try await driver.identity.probe(Csi_V1_ProbeRequest())
        }
    }
}
