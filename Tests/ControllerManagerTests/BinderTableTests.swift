// The PV binder, table by table as Kubernetes' pv_controller tests are written: initial objects,
// then the state and events expected once the binder has run (the real API handler in between).
import APIClient
import ClusterAPI
import ControllerManager
import Testing

/// One expectation about the world after the binder ran.
enum Expect: Sendable, CustomStringConvertible {
    case claimPhase(String, String)
    case boundTo(claim: String, volume: String)
    case volumePhase(String, String)
    case claimAnnotation(String, String, present: Bool)
    case volumeAnnotation(String, String, present: Bool)
    case event(kind: String, name: String, reason: String, containing: String)
    case volumeUnclaimed(String)
    case volumeGone(String)
    /// The volume's claimRef names the claim, without a uid (a user's reservation).
    case volumeReservedFor(String, claim: String)

    var description: String {
        switch self {
        case .claimPhase(let c, let p): "claim \(c) is \(p)"
        case .boundTo(let c, let v): "claim \(c) bound to \(v) (both pointers, uid)"
        case .volumePhase(let v, let p): "volume \(v) is \(p)"
        case .claimAnnotation(let c, let a, let present): "claim \(c) \(present ? "has" : "lacks") \(a)"
        case .volumeAnnotation(let v, let a, let present): "volume \(v) \(present ? "has" : "lacks") \(a)"
        case .event(let kind, let name, let reason, let text): "\(kind) \(name) has event \(reason) \"\(text)\""
        case .volumeUnclaimed(let v): "volume \(v) has no claimRef"
        case .volumeGone(let v): "volume \(v) is gone"
        case .volumeReservedFor(let v, let c): "volume \(v) reserved for claim \(c) (claimRef without uid)"
        }
    }

    func holds(_ h: Harness) async throws -> Bool {
        switch self {
        case .claimPhase(let claim, let phase):
            return try await h.pvc(claim).status.phase == phase
        case .boundTo(let claim, let volume):
            let c = try await h.pvc(claim), v = try await h.pv(volume)
            return c.spec.volumeName == volume && v.spec.claimRef?.uid == c.metadata.uid && c.status.phase == "Bound" && v.status.phase == "Bound"
                && c.metadata.annotations?[Annotation.bindCompleted] == "yes" && c.status.capacity?["storage"] == v.spec.capacity?["storage"]
        case .volumePhase(let volume, let phase):
            return try await h.pv(volume).status.phase == phase
        case .claimAnnotation(let claim, let annotation, let present):
            return (try await h.pvc(claim).metadata.annotations?[annotation] != nil) == present
        case .volumeAnnotation(let volume, let annotation, let present):
            return (try await h.pv(volume).metadata.annotations?[annotation] != nil) == present
        case .event(let kind, let name, let reason, let text):
            return await h.hasEvent(kind, name, reason: reason, containing: text)
        case .volumeUnclaimed(let volume):
            return try await h.pv(volume).spec.claimRef == nil
        case .volumeGone(let volume):
            return !(await h.exists(PersistentVolume.self, volume))
        case .volumeReservedFor(let volume, let claim):
            let ref = try await h.pv(volume).spec.claimRef
            return ref?.name == claim && (ref?.uid ?? "").isEmpty
        }
    }
}

/// A step of a row.
enum Step: Sendable {
    case classes([StorageClass])
    case volumes([PersistentVolume])
    case claims([PersistentVolumeClaim])
    case deleteClaim(String)
    /// An administrator deletes the volume and strips its finalizers (pv-protection would hold
    /// a Bound volume forever).
    case forceDeleteVolume(String)
    case expect([Expect])
    /// Must still hold after a while (the binder must not act).
    case keeps([Expect])
}

struct BinderRow: Sendable, CustomTestStringConvertible {
    let name: String
    let steps: [Step]
    var testDescription: String { name }
}

let binderRows: [BinderRow] = [
    BinderRow(name: "static PV and matching claim bind", steps: [
        .volumes([makePV("pv-1", size: "1Gi")]), .claims([makePVC("claim-1", size: "1Gi")]),
        .expect([.boundTo(claim: "claim-1", volume: "pv-1"), .claimAnnotation("claim-1", Annotation.boundByController, present: true),
                 .volumeAnnotation("pv-1", Annotation.boundByController, present: true)]),
    ]),
    BinderRow(name: "the smallest Available volume that fits wins", steps: [
        .volumes([makePV("pv-5g", size: "5Gi"), makePV("pv-2g", size: "2Gi"), makePV("pv-1g", size: "1Gi")]),
        // The binder chooses among the volumes its cache holds: all three, once it has made them Available.
        .expect([.volumePhase("pv-5g", "Available"), .volumePhase("pv-2g", "Available"), .volumePhase("pv-1g", "Available")]),
        .claims([makePVC("claim-1", size: "1500Mi")]),
        .expect([.boundTo(claim: "claim-1", volume: "pv-2g"), .volumePhase("pv-5g", "Available"), .volumePhase("pv-1g", "Available")]),
    ]),
    BinderRow(name: "the claim's selector picks among the volumes", steps: [
        .volumes([makePV("pv-small", size: "1Gi", labels: ["tier": "web"]), makePV("pv-db", size: "3Gi", labels: ["tier": "db"])]),
        .claims([makePVC("claim-db", size: "1Gi", selector: ["tier": "db"])]),
        .expect([.boundTo(claim: "claim-db", volume: "pv-db"), .volumePhase("pv-small", "Available")]),
    ]),
    BinderRow(name: "access modes, class and volume mode must fit", steps: [
        .volumes([makePV("pv-rwo", modes: ["ReadWriteOnce"]), makePV("pv-gold", className: "gold"),
                  makePV("pv-block", modes: ["ReadWriteMany"], volumeMode: "Block")]),
        .claims([makePVC("claim-rwx", modes: ["ReadWriteMany"])]),
        .expect([.claimPhase("claim-rwx", "Pending"),
                 .event(kind: "PersistentVolumeClaim", name: "claim-rwx", reason: "FailedBinding",
                        containing: "no persistent volumes available for this claim and no storage class is set")]),
        .keeps([.volumeUnclaimed("pv-rwo"), .volumeUnclaimed("pv-gold"), .volumeUnclaimed("pv-block")]),
    ]),
    BinderRow(name: "a volume pre-bound to a claim wins over a smaller fit", steps: [
        .volumes([makePV("pv-small", size: "1Gi"), makePV("pv-reserved", size: "10Gi", claim: ("claim-1", nil))]),
        .expect([.volumePhase("pv-small", "Available"), .volumePhase("pv-reserved", "Available")]),
        .claims([makePVC("claim-1", size: "1Gi")]),
        .expect([.boundTo(claim: "claim-1", volume: "pv-reserved"), .volumeAnnotation("pv-reserved", Annotation.boundByController, present: false),
                 .volumePhase("pv-small", "Available")]),
    ]),
    BinderRow(name: "a volume pre-bound to another claim is not taken", steps: [
        .volumes([makePV("pv-reserved", size: "1Gi", claim: ("someone-else", nil))]),
        .claims([makePVC("claim-1", size: "1Gi")]),
        .expect([.claimPhase("claim-1", "Pending"), .volumePhase("pv-reserved", "Available")]),
        .keeps([.claimPhase("claim-1", "Pending")]),
    ]),
    BinderRow(name: "a pre-bound claim waits for its volume, then binds", steps: [
        .claims([makePVC("claim-1", size: "1Gi", volumeName: "pv-later")]),
        .volumes([makePV("pv-other", size: "1Gi")]),
        .keeps([.claimPhase("claim-1", "Pending"), .volumeUnclaimed("pv-other")]),
        .volumes([makePV("pv-later", size: "1Gi")]),
        .expect([.boundTo(claim: "claim-1", volume: "pv-later"), .claimAnnotation("claim-1", Annotation.boundByController, present: false)]),
    ]),
    BinderRow(name: "a pre-bound claim to a volume too small", steps: [
        .volumes([makePV("pv-tiny", size: "100Mi")]),
        .claims([makePVC("claim-1", size: "1Gi", volumeName: "pv-tiny")]),
        .expect([.claimPhase("claim-1", "Pending"),
                 .event(kind: "PersistentVolumeClaim", name: "claim-1", reason: "VolumeMismatch",
                        containing: "Cannot bind to requested volume \"pv-tiny\": requested PV is too small")]),
    ]),
    BinderRow(name: "a half-finished bind (volume points at the claim) is completed", steps: [
        .claims([makePVC("claim-1", size: "1Gi")]),
        .expect([.claimPhase("claim-1", "Pending")]),
        .volumes([makePV("pv-1", size: "1Gi", claim: ("claim-1", "UID-OF:claim-1"), annotations: [Annotation.boundByController: "yes"])]),
        .expect([.boundTo(claim: "claim-1", volume: "pv-1")]),
    ]),
    BinderRow(name: "a bound claim whose volume vanished is Lost", steps: [
        .claims([makePVC("claim-1", size: "1Gi", volumeName: "pv-gone", annotations: [Annotation.bindCompleted: "yes"])]),
        .expect([.claimPhase("claim-1", "Lost"),
                 .event(kind: "PersistentVolumeClaim", name: "claim-1", reason: "ClaimLost",
                        containing: "Bound claim has lost its PersistentVolume. Data on the volume is lost!")]),
    ]),
    BinderRow(name: "a bound claim whose volume names another claim is misbound", steps: [
        .volumes([makePV("pv-1", size: "1Gi", claim: ("claim-other", "11111111-2222-3333-4444-555555555555"))]),
        .claims([makePVC("claim-1", size: "1Gi", volumeName: "pv-1", annotations: [Annotation.bindCompleted: "yes"])]),
        .expect([.claimPhase("claim-1", "Lost"),
                 .event(kind: "PersistentVolumeClaim", name: "claim-1", reason: "ClaimMisbound",
                        containing: "Two claims are bound to the same volume, this one is bound incorrectly")]),
    ]),
    BinderRow(name: "Retain: a released volume keeps its data and its claimRef", steps: [
        .volumes([makePV("pv-1", size: "1Gi", policy: "Retain")]), .claims([makePVC("claim-1", size: "1Gi")]),
        .expect([.boundTo(claim: "claim-1", volume: "pv-1")]),
        .deleteClaim("claim-1"),
        .expect([.volumePhase("pv-1", "Released")]),
        .keeps([.volumePhase("pv-1", "Released")]),
        .claims([makePVC("claim-1", size: "1Gi")]),
        .keeps([.volumePhase("pv-1", "Released"), .claimPhase("claim-1", "Pending")]),
    ]),
    BinderRow(name: "Delete of a volume no provisioner made fails", steps: [
        .volumes([makePV("pv-1", size: "1Gi", policy: "Delete")]), .claims([makePVC("claim-1", size: "1Gi")]),
        .expect([.boundTo(claim: "claim-1", volume: "pv-1")]),
        .deleteClaim("claim-1"),
        .expect([.volumePhase("pv-1", "Failed"),
                 .event(kind: "PersistentVolume", name: "pv-1", reason: "VolumeFailedDelete",
                        containing: "error getting deleter volume plugin for volume \"pv-1\": no deletable volume plugin matched")]),
    ]),
    BinderRow(name: "WaitForFirstConsumer: no binding and no provisioning before a node is chosen", steps: [
        .classes([makeClass("late", binding: "WaitForFirstConsumer")]),
        .volumes([makePV("pv-late", size: "1Gi", className: "late")]),
        .claims([makePVC("claim-1", size: "1Gi", className: "late")]),
        .expect([.claimPhase("claim-1", "Pending"),
                 .event(kind: "PersistentVolumeClaim", name: "claim-1", reason: "WaitForFirstConsumer",
                        containing: "waiting for first consumer to be created before binding")]),
        .keeps([.volumeUnclaimed("pv-late"), .claimAnnotation("claim-1", Annotation.storageProvisioner, present: false)]),
    ]),
    BinderRow(name: "a claim of a class with a provisioner is handed to it", steps: [
        .classes([makeClass("fast", provisioner: "example.com/other")]),
        .claims([makePVC("claim-1", size: "1Gi", className: "fast")]),
        .expect([.claimPhase("claim-1", "Pending"), .claimAnnotation("claim-1", Annotation.storageProvisioner, present: true),
                 .claimAnnotation("claim-1", Annotation.betaStorageProvisioner, present: true),
                 .event(kind: "PersistentVolumeClaim", name: "claim-1", reason: "ExternalProvisioning",
                        containing: "Waiting for a volume to be created either by the external provisioner 'example.com/other' or manually by the system administrator.")]),
    ]),
    BinderRow(name: "a volume bound by the controller to a claim bound elsewhere is unbound", steps: [
        .volumes([makePV("pv-a", size: "1Gi")]),
        .claims([makePVC("claim-1", size: "1Gi")]),
        .expect([.boundTo(claim: "claim-1", volume: "pv-a")]),
        .volumes([makePV("pv-b", size: "1Gi", claim: ("claim-1", "UID-OF:claim-1"), annotations: [Annotation.boundByController: "yes"])]),
        .expect([.volumeUnclaimed("pv-b"), .volumePhase("pv-b", "Available"), .boundTo(claim: "claim-1", volume: "pv-a")]),
    ]),
    BinderRow(name: "a volume pre-bound by the user to a claim bound elsewhere keeps its reservation, without uid", steps: [
        .volumes([makePV("pv-a", size: "1Gi")]),
        .claims([makePVC("claim-1", size: "1Gi")]),
        .expect([.boundTo(claim: "claim-1", volume: "pv-a")]),
        .volumes([makePV("pv-b", size: "1Gi", claim: ("claim-1", "UID-OF:claim-1"))]),
        .expect([.volumeReservedFor("pv-b", claim: "claim-1"), .volumePhase("pv-b", "Available"),
                 .volumeAnnotation("pv-b", Annotation.boundByController, present: false), .boundTo(claim: "claim-1", volume: "pv-a")]),
        .keeps([.volumeReservedFor("pv-b", claim: "claim-1"), .boundTo(claim: "claim-1", volume: "pv-a")]),
    ]),
    BinderRow(name: "bind-completed repair: a bound claim whose volume lost its claimRef is bound again", steps: [
        .volumes([makePV("pv-1", size: "1Gi")]),
        .expect([.volumePhase("pv-1", "Available")]),
        .claims([makePVC("claim-1", size: "1Gi", volumeName: "pv-1", annotations: [Annotation.bindCompleted: "yes"])]),
        .expect([.boundTo(claim: "claim-1", volume: "pv-1"), .volumeAnnotation("pv-1", Annotation.boundByController, present: true)]),
        .keeps([.boundTo(claim: "claim-1", volume: "pv-1")]),
    ]),
    BinderRow(name: "a really bound volume deleted: its claim is Lost", steps: [
        .volumes([makePV("pv-1", size: "1Gi")]),
        .claims([makePVC("claim-1", size: "1Gi")]),
        .expect([.boundTo(claim: "claim-1", volume: "pv-1")]),
        .forceDeleteVolume("pv-1"),
        .expect([.claimPhase("claim-1", "Lost"),
                 .event(kind: "PersistentVolumeClaim", name: "claim-1", reason: "ClaimLost",
                        containing: "Bound claim has lost its PersistentVolume. Data on the volume is lost!")]),
        .keeps([.claimPhase("claim-1", "Lost")]),
    ]),
]

@Suite("PV binder table", .timeLimit(.minutes(2)))
struct BinderTableTests {
    @Test(arguments: binderRows)
    func row(_ row: BinderRow) async throws {
        try await withHarness(.binderOnly, csi: false) { h in
            for step in row.steps {
                switch step {
                case .classes(let classes):
                    for storageClass in classes { _ = try await h.client.create(storageClass) }
                case .volumes(let volumes):
                    for var volume in volumes {
                        if let uid = volume.spec.claimRef?.uid, uid.hasPrefix("UID-OF:") {
                            volume.spec.claimRef?.uid = try await h.pvc(String(uid.dropFirst("UID-OF:".count))).metadata.uid
                        }
                        _ = try await h.client.create(volume)
                    }
                case .claims(let claims):
                    for claim in claims { _ = try await h.client.create(claim) }
                case .deleteClaim(let name):
                    try await h.client.delete(PersistentVolumeClaim.self, name: name, namespace: "default")
                    await h.eventually("claim \(name) is gone") { !(await h.exists(PersistentVolumeClaim.self, name, namespace: "default")) }
                case .forceDeleteVolume(let name):
                    try await h.client.delete(PersistentVolume.self, name: name)
                    await h.eventually("volume \(name) is gone") {
                        guard let volume = try? await h.pv(name) else { return true }
                        _ = try? await h.client.setFinalizers(of: volume, to: [])
                        return false
                    }
                case .expect(let expectations):
                    for expectation in expectations {
                        await h.eventually(expectation.description) { try await expectation.holds(h) }
                    }
                case .keeps(let expectations):
                    await h.stays(expectations.map(\.description).joined(separator: "; ")) {
                        for expectation in expectations {
                            if try await !expectation.holds(h) { return false }
                        }
                        return true
                    }
                }
            }
        }
    }
}
