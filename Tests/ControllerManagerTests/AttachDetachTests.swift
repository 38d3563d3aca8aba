// Attach/detach and the attacher, against the real CSI driver and the in-memory cloud. Nodes,
// their CSINodes and `volumesInUse` are written by the test, as a kubelet would.
import APIClient
import ClusterAPI
import CloudProvider
import ControllerManager
import Synchronization
import Testing

let attaching: Set<ControllerName> = [.persistentVolumeBinder, .provisioner, .attachDetach, .attacher, .pvcProtection, .pvProtection]

extension Harness {
    /// A node registered as a kubelet and the cloud would: instance, Node, CSINode.
    @discardableResult
    func addNode(_ name: String, zone: String = "ballast-1a") async throws -> String {
        let instance = try await cloud!.registerInstance(RegisterInstanceRequest(name: name, zone: zone))
        _ = try await client.create(makeNode(name, zone: zone))
        _ = try await client.create(makeCSINode(name, nodeID: instance.id))
        return instance.id
    }

    /// A bound claim of a new Immediate class; returns its volume's name.
    func boundClaim(_ name: String, modes: [String] = ["ReadWriteOnce"]) async throws -> String {
        if !(await exists(StorageClass.self, "fast")) { _ = try await client.create(makeClass("fast")) }
        _ = try await client.create(makePVC(name, size: "16Mi", modes: modes, className: "fast"))
        await eventually("\(name) bound") { try await pvc(name).status.phase == "Bound" }
        return try await pvc(name).spec.volumeName ?? ""
    }

    func attachments(of volume: String) async throws -> [VolumeAttachment] {
        try await client.list(VolumeAttachment.self).items.filter { $0.spec.source.persistentVolumeName == volume }
    }

    func setVolumesInUse(_ node: String, _ names: [String]) async throws {
        _ = try await client.mergePatch(Node.self, name: node, patch: ["status": ["volumesInUse": .array(names.map { .string($0) })]],
                                        subresource: "status")
    }

    func attachedTo(_ volume: String) async throws -> [String] {
        guard let handle = try await pv(volume).spec.csi?.volumeHandle, let cloud else { return [] }
        return try await cloud.describeDisk(id: handle).attachments.filter { $0.state == .attached }.map(\.instanceId)
    }
}

@Suite("Attach/detach", .timeLimit(.minutes(2)))
struct AttachDetachTests {
    @Test("A pod on a node: VolumeAttachment csi-<sha256>, finalizers, ControllerPublish, attached, volumesAttached")
    func attach() async throws {
        try await withHarness(attaching) { h in
            let instance = try await h.addNode("node-a")
            let volume = try await h.boundClaim("data")
            _ = try await h.client.create(makePod("app", claims: ["data"], node: "node-a"))
            let pv = try await h.pv(volume)
            let name = volumeAttachmentName(handle: pv.spec.csi!.volumeHandle, driver: driverName, node: "node-a")
            await h.eventually("attached") { try await h.client.get(VolumeAttachment.self, name: name).status?.attached == true }
            let attachment = try await h.client.get(VolumeAttachment.self, name: name)
            #expect(attachment.spec.attacher == driverName && attachment.spec.nodeName == "node-a")
            #expect(attachment.metadata.finalizers == [Finalizer.attacher(driverName)])
            #expect(Finalizer.attacher(driverName) == "external-attacher/loop-csi-ballast-dev")
            #expect(attachment.metadata.annotations?[Annotation.csiNodeID] == instance)
            #expect(attachment.status?.attachmentMetadata?["devicePath"] != nil)
            #expect(try await h.pv(volume).metadata.finalizers?.contains(Finalizer.attacher(driverName)) == true)
            #expect(try await h.attachedTo(volume) == [instance])
            await h.eventually("node lists it in volumesAttached") {
                try await h.client.get(Node.self, name: "node-a").status.volumesAttached?.map(\.name) == [pv.uniqueName]
            }
            await h.eventually("SuccessfulAttachVolume on the pod") {
                await h.hasEvent("Pod", "app", reason: "SuccessfulAttachVolume", containing: "AttachVolume.Attach succeeded for volume \"\(volume)\"")
            }
        }
    }

    /// With seed 3 the cloud's fault dice fail the first attach with an internal error (then
    /// throttling, as the retries roll again) before one goes through: the retries attach
    /// within milliseconds, and what failed before must still be told. (The attacher records the
    /// error with a merge patch: an update from a sync whose copy was a write behind got a 409
    /// and lost it, and `ballast up --cloud-faults` showed faults without any event.)
    @Test("An attach that fails, then succeeds: FailedAttachVolume on the pod with the cloud's error, then attached")
    func attachFailsThenSucceeds() async throws {
        try await withHarness(attaching, simulator: SimulatorConfiguration(faults: [.attach: 0.5], faultSeed: 3)) { h in
            try await h.addNode("node-a")
            let volume = try await h.boundClaim("data")
            _ = try await h.client.create(makePod("app", claims: ["data"], node: "node-a"))
            await h.eventually("attached") { try await h.attachments(of: volume).first?.status?.attached == true }
            let attachment = try #require(try await h.attachments(of: volume).first)
            #expect(attachment.status?.attachError == nil, "a successful attach clears the error")
            // Which of the failures it names depends on which the attach/detach controller saw
            // (its informer's last, when the retries come faster than its syncs).
            await h.eventually("FailedAttachVolume on the pod, naming the cloud's error") {
                try await h.events("Pod", "app").contains { event in
                    let message = event.message ?? ""
                    return event.reason == "FailedAttachVolume" && message.contains("injected fault")
                        && message.hasPrefix("AttachVolume.Attach failed for volume \"\(volume)\" : rpc error: code = ")
                }
            }
            await h.eventually("SuccessfulAttachVolume on the pod") { await h.hasEvent("Pod", "app", reason: "SuccessfulAttachVolume") }
        }
    }

    @Test("Detach waits while the node lists the volume in volumesInUse, then removes everything")
    func detachWaitsForUnmount() async throws {
        try await withHarness(attaching) { h in
            try await h.addNode("node-a")
            let volume = try await h.boundClaim("data")
            _ = try await h.client.create(makePod("app", claims: ["data"], node: "node-a"))
            await h.eventually("attached") { try await h.attachments(of: volume).first?.status?.attached == true }
            let unique = try await h.pv(volume).uniqueName
            try await h.setVolumesInUse("node-a", [unique])
            try await h.client.delete(Pod.self, name: "app", namespace: "default", options: DeleteOptions(gracePeriodSeconds: 0))
            await h.stays("still attached while in use") { try await h.attachments(of: volume).count == 1 }
            try await h.setVolumesInUse("node-a", [])
            await h.eventually("VolumeAttachment gone") { try await h.attachments(of: volume).isEmpty }
            await h.eventually("disk detached") { try await h.attachedTo(volume).isEmpty }
            await h.eventually("node no longer lists it") { (try await h.client.get(Node.self, name: "node-a").status.volumesAttached ?? []).isEmpty }
        }
    }

    @Test("Multi-Attach: a ReadWriteOnce volume attached to one node is refused on a second")
    func multiAttach() async throws {
        try await withHarness(attaching) { h in
            try await h.addNode("node-a")
            try await h.addNode("node-b")
            let volume = try await h.boundClaim("data")
            _ = try await h.client.create(makePod("first", claims: ["data"], node: "node-a"))
            await h.eventually("attached to node-a") { try await h.attachments(of: volume).first?.status?.attached == true }
            _ = try await h.client.create(makePod("second", claims: ["data"], node: "node-b"))
            await h.eventually("Multi-Attach error on the second pod") {
                await h.hasEvent("Pod", "second", reason: "FailedAttachVolume",
                                 containing: "Multi-Attach error for volume \"\(volume)\" Volume is already used by pod(s) first")
            }
            await h.stays("one attachment only") { try await h.attachments(of: volume).map(\.spec.nodeName) == ["node-a"] }
            // The first pod goes: the volume moves.
            try await h.client.delete(Pod.self, name: "first", namespace: "default", options: DeleteOptions(gracePeriodSeconds: 0))
            await h.eventually("attached to node-b") {
                let attachments = try await h.attachments(of: volume)
                return attachments.map(\.spec.nodeName) == ["node-b"] && attachments.first?.status?.attached == true
            }
        }
    }

    @Test("Two pods on two nodes want one unattached ReadWriteOnce volume at once: one VolumeAttachment ever")
    func oneAttachmentForTwoNodes() async throws {
        try await withHarness(attaching) { h in
            try await h.addNode("node-a")
            try await h.addNode("node-b")
            _ = try await h.client.create(makeClass("fast"))
            let watch = try await AttachmentWatch.start(h.client)
            defer { watch.stop() }
            // Round 1: both pods exist before their claim is bound, so the pass that follows the
            // bind sees both nodes wanting the volume.
            _ = try await h.client.create(makePod("first", claims: ["data"], node: "node-a"))
            _ = try await h.client.create(makePod("second", claims: ["data"], node: "node-b"))
            _ = try await h.client.create(makePVC("data", size: "16Mi", className: "fast"))
            await h.eventually("bound") { try await h.pvc("data").status.phase == "Bound" }
            let volume = try await h.pvc("data").spec.volumeName ?? ""
            await h.eventually("attached to one node") { try await h.attachments(of: volume).first?.status?.attached == true }
            await h.eventually("Multi-Attach error on the pod of the other node") {
                let first = await h.hasEvent("Pod", "first", reason: "FailedAttachVolume", containing: "Multi-Attach error for volume \"\(volume)\"")
                let second = await h.hasEvent("Pod", "second", reason: "FailedAttachVolume", containing: "Multi-Attach error for volume \"\(volume)\"")
                return first || second
            }
            await h.stays("one attachment") { try await h.attachments(of: volume).count == 1 }
            #expect(try await h.attachedTo(volume).count == 1)
            #expect(watch.distinct(volume) == 1, "VolumeAttachments seen: \(watch.seen(volume))")

            // Round 2: both pods go, then come back at the same moment (passes may now run
            // before the informer shows the attachment the previous pass made).
            for name in ["first", "second"] {
                try await h.client.delete(Pod.self, name: name, namespace: "default", options: DeleteOptions(gracePeriodSeconds: 0))
            }
            await h.eventually("detached") { try await h.attachments(of: volume).isEmpty }
            async let first = h.client.create(makePod("first-again", claims: ["data"], node: "node-a"))
            async let second = h.client.create(makePod("second-again", claims: ["data"], node: "node-b"))
            _ = try await (first, second)
            await h.eventually("attached again") { try await h.attachments(of: volume).first?.status?.attached == true }
            await h.stays("one attachment") { try await h.attachments(of: volume).count == 1 }
            #expect(try await h.attachedTo(volume).count == 1)
            #expect(watch.mostAtOnce(volume) == 1, "VolumeAttachments seen: \(watch.seen(volume))")
        }
    }

    @Test("An unhealthy node still using a volume: detached after --max-wait-for-unmount")
    func forcedDetachAfterTimeout() async throws {
        try await withHarness(attaching, configure: { $0.maxWaitForUnmount = .seconds(1) }) { h in
            try await h.addNode("node-a")
            let volume = try await h.boundClaim("data")
            _ = try await h.client.create(makePod("app", claims: ["data"], node: "node-a"))
            await h.eventually("attached") { try await h.attachments(of: volume).first?.status?.attached == true }
            try await h.setVolumesInUse("node-a", [try await h.pv(volume).uniqueName])
            try await h.modifyNode("node-a", status: true) { $0.status.conditions?[0].status = "Unknown" }
            let started = ContinuousClock.now
            try await h.client.delete(Pod.self, name: "app", namespace: "default", options: DeleteOptions(gracePeriodSeconds: 0))
            await h.eventually("detached anyway") { try await h.attachments(of: volume).isEmpty }
            #expect(ContinuousClock.now - started >= .milliseconds(900))
        }
    }

    @Test("A node tainted out-of-service: detached at once although in use")
    func outOfService() async throws {
        try await withHarness(attaching) { h in
            try await h.addNode("node-a")
            let volume = try await h.boundClaim("data")
            _ = try await h.client.create(makePod("app", claims: ["data"], node: "node-a"))
            await h.eventually("attached") { try await h.attachments(of: volume).first?.status?.attached == true }
            try await h.setVolumesInUse("node-a", [try await h.pv(volume).uniqueName])
            try await h.modifyNode("node-a") {
                $0.spec.taints = [ClusterAPI.Taint(key: Taint.outOfService, value: "nodeshutdown", effect: "NoExecute")]
            }
            try await h.client.delete(Pod.self, name: "app", namespace: "default", options: DeleteOptions(gracePeriodSeconds: 0))
            await h.eventually("detached", timeout: .seconds(5)) { try await h.attachments(of: volume).isEmpty }
        }
    }
}

extension PersistentVolume {
    var uniqueName: String { "kubernetes.io/csi/\(spec.csi?.driver ?? "")^\(spec.csi?.volumeHandle ?? "")" }
}

/// Every VolumeAttachment that ever existed, per volume, and the most that existed at once,
/// from a watch running for the whole test (a list at the end would miss one that came and went).
final class AttachmentWatch: Sendable {
    private struct State {
        var ever: [String: Set<String>] = [:]
        var live: [String: Set<String>] = [:]
        var mostAtOnce: [String: Int] = [:]
    }

    private let state = Mutex(State())
    private let task = Mutex<Task<Void, Never>?>(nil)

    static func start(_ client: KubeClient) async throws -> AttachmentWatch {
        let watch = AttachmentWatch()
        let events = try await client.watch(VolumeAttachment.self)
        let reader = Task {
            do {
                for try await event in events { watch.record(event) }
            } catch {}
        }
        watch.task.withLock { $0 = reader }
        return watch
    }

    private func record(_ event: WatchEvent<VolumeAttachment>) {
        guard let attachment = event.object, let volume = attachment.spec.source.persistentVolumeName else { return }
        let id = "\(attachment.metadata.name ?? "")@\(attachment.spec.nodeName)#\(attachment.metadata.uid ?? "")"
        state.withLock { state in
            switch event.kind {
            case .added, .modified:
                state.ever[volume, default: []].insert(id)
                state.live[volume, default: []].insert(id)
            case .deleted:
                state.live[volume]?.remove(id)
            case .bookmark, .error:
                return
            }
            state.mostAtOnce[volume] = max(state.mostAtOnce[volume] ?? 0, state.live[volume]?.count ?? 0)
        }
    }

    func seen(_ volume: String) -> [String] { state.withLock { ($0.ever[volume] ?? []).sorted() } }
    func distinct(_ volume: String) -> Int { state.withLock { $0.ever[volume]?.count ?? 0 } }
    func mostAtOnce(_ volume: String) -> Int { state.withLock { $0.mostAtOnce[volume] ?? 0 } }
    func stop() { task.withLock { $0?.cancel() } }
}

@Suite("Access modes")
struct AccessModeTests {
    /// Kubernetes' IsMultiAttachAllowed: a PV's access modes list every way it can be used, so
    /// ReadWriteMany or ReadOnlyMany anywhere in them allows several nodes, ReadWriteOnce beside
    /// them or not (kubernetes/kubernetes#85166 proposed refusing then, and was closed for that).
    @Test("Multi-attach is allowed exactly when the PV lists ReadWriteMany or ReadOnlyMany", arguments: [
        (["ReadWriteOnce"], false),
        (["ReadWriteOncePod"], false),
        (["ReadWriteMany"], true),
        (["ReadOnlyMany"], true),
        (["ReadWriteOnce", "ReadWriteMany"], true),
        (["ReadWriteOnce", "ReadOnlyMany"], true),
        (["ReadOnlyMany", "ReadWriteMany"], true),
        ([], false),
    ])
    func multiAttach(_ modes: [String], _ allowed: Bool) {
        #expect(AccessModes.allowsMultiAttach(modes) == allowed, "\(modes)")
    }
}
