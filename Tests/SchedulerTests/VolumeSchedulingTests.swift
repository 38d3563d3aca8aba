// The volume-aware decisions end to end against the real API handler: WaitForFirstConsumer
// across two zones (provisioned with allowedTopologies, static volumes, a conflict), attach
// limits from CSINode, ReadWriteOncePod.
import APIClient
import ClusterAPI
import Scheduler
import Testing

@Suite("Volume scheduling", .timeLimit(.minutes(2)))
struct VolumeSchedulingTests {
    private func twoZones(_ h: Harness) async throws {
        try await h.add(makeNode("a1", zone: "zone-a"))
        try await h.add(makeNode("b1", zone: "zone-b"))
    }

    @Test("WFFC with allowedTopologies: the pod lands in the allowed zone and selected-node names its node")
    func provisionedInAllowedZone() async throws {
        try await withHarness(stubBinder: true) { h in
            try await twoZones(h)
            try await h.add(makeClass("zonal", zones: ["zone-b"]))
            try await h.add(makePVC("data", className: "zonal"))
            try await h.add(makePod("p", claims: ["data"]))
            #expect(try await h.boundNode("p") == "b1")
            let claim = try await h.client.get(PersistentVolumeClaim.self, name: "data", namespace: "default")
            #expect(claim.metadata.annotations?[SchedulerNames.selectedNode] == "b1")
            #expect(!(claim.spec.volumeName ?? "").isEmpty)
        }
    }

    @Test("WFFC without allowedTopologies: a node in either zone, and the claim provisioned there")
    func provisionedAnywhere() async throws {
        try await withHarness(stubBinder: true) { h in
            try await twoZones(h)
            try await h.add(makeClass("any"))
            try await h.add(makePVC("data", className: "any"))
            try await h.add(makePod("p", claims: ["data"]))
            let node = try await h.boundNode("p")
            #expect(node == "a1" || node == "b1")
            let claim = try await h.client.get(PersistentVolumeClaim.self, name: "data", namespace: "default")
            #expect(claim.metadata.annotations?[SchedulerNames.selectedNode] == node)
        }
    }

    @Test("WFFC static volumes: the smallest fitting volume, in its zone, gets the claimRef")
    func staticVolume() async throws {
        try await withHarness(stubBinder: true) { h in
            try await twoZones(h)
            try await h.add(makeClass("local", provisioner: "kubernetes.io/no-provisioner"))
            try await h.add(makePV("big-a", size: "10Gi", className: "local", zone: "zone-a"))
            try await h.add(makePV("small-b", size: "2Gi", className: "local", zone: "zone-b"))
            try await h.add(makePV("tiny-a", size: "500Mi", className: "local", zone: "zone-a"))
            try await h.add(makePVC("data", size: "1Gi", className: "local"))
            try await h.add(makePod("p", claims: ["data"]))
            // Both zones have a fitting volume; whichever node won, the volume is the smallest one there.
            let node = try await h.boundNode("p")
            let claim = try await h.client.get(PersistentVolumeClaim.self, name: "data", namespace: "default")
            #expect(claim.spec.volumeName == (node == "a1" ? "big-a" : "small-b"))
            let volume = try await h.client.get(PersistentVolume.self, name: claim.spec.volumeName ?? "")
            #expect(volume.spec.claimRef?.uid == claim.metadata.uid)
            #expect(volume.metadata.annotations?[SchedulerNames.boundByController] == "yes")
        }
    }

    @Test("WFFC: a static volume in one zone only takes the pod there")
    func staticVolumeOneZone() async throws {
        try await withHarness(stubBinder: true) { h in
            try await twoZones(h)
            try await h.add(makeClass("local", provisioner: "kubernetes.io/no-provisioner"))
            try await h.add(makePV("only-b", size: "1Gi", className: "local", zone: "zone-b"))
            try await h.add(makePVC("data", className: "local"))
            try await h.add(makePod("p", claims: ["data"]))
            #expect(try await h.boundNode("p") == "b1")
        }
    }

    @Test("WFFC conflict with allowedTopologies stays Pending with the reason")
    func allowedTopologiesConflict() async throws {
        try await withHarness(stubBinder: true) { h in
            try await twoZones(h)
            try await h.add(makeClass("elsewhere", zones: ["zone-c"]))
            try await h.add(makePVC("data", className: "elsewhere"))
            try await h.add(makePod("p", claims: ["data"]))
            let condition = try await h.unschedulable("p", message: "0/2 nodes are available: 2 node(s) didn't find available persistent volumes to bind.")
            #expect(condition?.message == "0/2 nodes are available: 2 node(s) didn't find available persistent volumes to bind.")
            let claim = try await h.client.get(PersistentVolumeClaim.self, name: "data", namespace: "default")
            #expect(claim.metadata.annotations?[SchedulerNames.selectedNode] == nil)
        }
    }

    @Test("Two pods racing for one static volume: it is never double-booked")
    func staticVolumeReserved() async throws {
        try await withHarness(stubBinder: true) { h in
            try await twoZones(h)
            try await h.add(makeClass("local", provisioner: "kubernetes.io/no-provisioner"))
            try await h.add(makePV("only", size: "1Gi", className: "local", zone: "zone-a"))
            try await h.add(makePVC("data-1", className: "local"))
            try await h.add(makePVC("data-2", className: "local"))
            try await h.add(makePod("p1", claims: ["data-1"]))
            try await h.add(makePod("p2", claims: ["data-2"]))
            let bound = try await h.waitFor {
                let pods = try await [h.pod("p1"), h.pod("p2")]
                return pods.contains { !($0.spec.nodeName ?? "").isEmpty }
            }
            #expect(bound)
            try await Task.sleep(for: .milliseconds(500))
            let pods = try await [h.pod("p1"), h.pod("p2")]
            #expect(pods.filter { !($0.spec.nodeName ?? "").isEmpty }.count == 1)
            let loser = pods.first { ($0.spec.nodeName ?? "").isEmpty }
            let condition = loser?.status.conditions?.first { $0.type == "PodScheduled" }
            #expect(condition?.message == "0/2 nodes are available: 2 node(s) didn't find available persistent volumes to bind.")
        }
    }

    @Test("Provisioning gives up (selected-node removed): the pod is unreserved, reported and scheduled again")
    func provisioningFailureRequeues() async throws {
        try await withHarness { h in
            try await h.add(makeNode("n1"))
            try await h.add(makeClass("any"))
            try await h.add(makePVC("data", className: "any"))
            try await h.add(makePod("p", claims: ["data"]))
            // The provisioner's answer to a node that cannot take the volume: selected-node removed.
            let selected = try await h.waitFor {
                try await h.client.get(PersistentVolumeClaim.self, name: "data", namespace: "default")
                    .metadata.annotations?[SchedulerNames.selectedNode] == "n1"
            }
            #expect(selected)
            var claim = try await h.client.get(PersistentVolumeClaim.self, name: "data", namespace: "default")
            claim.metadata.annotations?[SchedulerNames.selectedNode] = nil
            _ = try await h.client.update(claim)
            let condition = try await h.unschedulable("p")
            #expect(condition?.reason == "SchedulerError")
            #expect(condition?.message == "selectedNode annotation reset for PVC \"data\"")
            // Retried after its backoff: selected-node is written again, and this time it is provisioned.
            let again = try await h.waitFor {
                try await h.client.get(PersistentVolumeClaim.self, name: "data", namespace: "default")
                    .metadata.annotations?[SchedulerNames.selectedNode] == "n1"
            }
            #expect(again)
            let binder = Task { await StubVolumeBinder(client: h.client).run() }
            defer { binder.cancel() }
            #expect(try await h.boundNode("p") == "n1")
        }
    }

    @Test("An attach limit of 2 leaves the third volume pod Pending with max volume count")
    func attachLimit() async throws {
        try await withHarness { h in
            try await h.add(makeNode("n1"))
            try await h.add(makeCSINode("n1", limit: 2))
            for index in 1...3 {
                try await h.addBound(claim: makePVC("data-\(index)"), volume: makePV("pv-\(index)"))
            }
            for index in 1...2 {
                try await h.add(makePod("p\(index)", claims: ["data-\(index)"]))
                #expect(try await h.boundNode("p\(index)") == "n1")
            }
            try await h.add(makePod("p3", claims: ["data-3"]))
            let condition = try await h.unschedulable("p3")
            let message = condition?.message ?? ""
            #expect(message.contains(/max.+volume.+count/))
            #expect(message == "0/1 nodes are available: 1 node(s) exceed max volume count.")
            // A pod reusing a volume already on the node does not count it twice.
            try await h.add(makePod("p1-again", claims: ["data-1"]))
            #expect(try await h.boundNode("p1-again") == "n1")
        }
    }

    @Test("ReadWriteOncePod: a second pod using the claim is unschedulable")
    func readWriteOncePod() async throws {
        try await withHarness { h in
            try await h.add(makeNode("n1"))
            try await h.addBound(claim: makePVC("solo", modes: ["ReadWriteOncePod"]), volume: makePV("pv-solo", modes: ["ReadWriteOncePod"]))
            try await h.add(makePod("first", claims: ["solo"]))
            #expect(try await h.boundNode("first") == "n1")
            try await h.add(makePod("second", claims: ["solo"]))
            let condition = try await h.unschedulable("second", message: "0/1 nodes are available: node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode.")
            #expect(condition?.message == "0/1 nodes are available: node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode.")
            // Once the first pod is gone, the second one is scheduled (pod deletion requeues it).
            try await h.client.delete(Pod.self, name: "first", namespace: "default", options: DeleteOptions(gracePeriodSeconds: 0))
            #expect(try await h.boundNode("second") == "n1")
        }
    }

    @Test("A ReadWriteOnce volume attached to a node draws its pod there")
    func preferAttachedNode() async throws {
        try await withHarness { h in
            for name in ["n1", "n2", "n3"] { try await h.add(makeNode(name)) }
            try await h.addBound(claim: makePVC("data"), volume: makePV("pv-data"))
            var attachment = VolumeAttachment(metadata: ObjectMeta(name: "csi-pv-data-n3"),
                                              spec: VolumeAttachmentSpec(attacher: driverName,
                                                                         source: VolumeAttachmentSource(persistentVolumeName: "pv-data"),
                                                                         nodeName: "n3"))
            let created = try await h.client.create(attachment)
            attachment = created
            attachment.status = VolumeAttachmentStatus(attached: true)
            _ = try await h.client.updateStatus(attachment)
            // Give the informer the attachment before the pod arrives.
            try await Task.sleep(for: .milliseconds(300))
            try await h.add(makePod("p", claims: ["data"]))
            #expect(try await h.boundNode("p") == "n3")
        }
    }
}
