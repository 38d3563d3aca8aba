import Foundation
import Testing

@testable import ClusterAPI

/// An update of a valid object and what Kubernetes says about it: nothing, an exact message,
/// or a message starting with a prefix.
struct UpdateCase: Sendable, CustomTestStringConvertible {
    enum Expectation: Sendable {
        case accepted
        case contains(String)
        case prefix(String)
    }

    let name: String
    let expectation: Expectation
    let run: @Sendable () -> [FieldError]

    var testDescription: String { name }

    static func update<T: APIObject>(
        _ name: String, _ base: @escaping @Sendable () -> T, _ expectation: Expectation,
        _ change: @escaping @Sendable (inout T) -> Void
    ) -> Self {
        UpdateCase(name: name, expectation: expectation) {
            let old = base()
            var new = old
            change(&new)
            return new.validateUpdate(old: old)
        }
    }
}

let podUpdatePrefix =
    "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n"
let claimUpdatePrefix =
    "spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims\n"

@Suite("Update validation")
struct UpdateValidationTests {
    static let cases: [UpdateCase] = [
        // Metadata
        .update("metadata unchanged", Valid.pod, .accepted) { _ in },
        .update("labels may change", Valid.pod, .accepted) { $0.metadata.labels = ["tier": "web"] },
        .update("name is immutable", Valid.pod, .contains(#"metadata.name: Invalid value: "web-1": field is immutable"#)) {
            $0.metadata.name = "web-1"
        },
        .update("resourceVersion required", Valid.storageClass,
            .contains(#"metadata.resourceVersion: Invalid value: "": must be specified for an update"#)) {
            $0.metadata.resourceVersion = nil
        },
        .update("uid is immutable", Valid.csiNode, .contains(#"metadata.uid: Invalid value: "u2": field is immutable"#)) {
            $0.metadata.uid = "u2"
        },
        // Pod
        .update("pod image may change", Valid.pod, .accepted) { $0.spec.containers[0].image = "nginx:1.28" },
        .update("pod tolerations may be added", Valid.pod, .accepted) {
            $0.spec.tolerations?.append(Toleration(key: "gpu", operator: "Exists"))
        },
        .update("pod activeDeadlineSeconds may be set", Valid.pod, .accepted) { $0.spec.activeDeadlineSeconds = 300 },
        .update("pod nodeName is immutable", Valid.pod, .prefix(podUpdatePrefix)) { $0.spec.nodeName = "worker-2" },
        .update("pod restartPolicy is immutable", Valid.pod, .prefix(podUpdatePrefix)) { $0.spec.restartPolicy = "Never" },
        .update("pod container env is immutable", Valid.pod, .prefix(podUpdatePrefix)) {
            $0.spec.containers[0].env = [EnvVar(name: "A", value: "1")]
        },
        .update("pod containers may not be added", Valid.pod,
            .contains("spec.containers: Forbidden: pod updates may not add or remove containers")) {
            $0.spec.containers.append(Container(name: "sidecar", image: "busybox"))
        },
        .update("pod tolerations may not be removed", Valid.pod,
            .contains("spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds")) {
            $0.spec.tolerations = []
        },
        .update("pod image may not be cleared", Valid.pod, .contains("spec.containers[0].image: Required value")) {
            $0.spec.containers[0].image = ""
        },
        // PersistentVolumeClaim
        .update("bound claim may grow", { Valid.claim(bound: true) }, .accepted) {
            $0.spec.resources?.requests?["storage"] = try! Quantity("20Gi")
        },
        .update("pending claim may get a volumeName once", { Valid.claim() }, .accepted) { $0.spec.volumeName = "pv-1" },
        .update("claim labels may change", { Valid.claim(bound: true) }, .accepted) { $0.metadata.labels = ["a": "b"] },
        .update("bound claim volumeName is immutable", { Valid.claim(bound: true) }, .prefix(claimUpdatePrefix)) {
            $0.spec.volumeName = "pv-2"
        },
        .update("claim storage class is immutable", { Valid.claim(bound: true) }, .prefix(claimUpdatePrefix)) {
            $0.spec.storageClassName = "slow"
        },
        .update("claim access modes are immutable", { Valid.claim(bound: true) }, .prefix(claimUpdatePrefix)) {
            $0.spec.accessModes = ["ReadWriteMany"]
        },
        .update("pending claim size is immutable", { Valid.claim() }, .prefix(claimUpdatePrefix)) {
            $0.spec.resources?.requests?["storage"] = try! Quantity("20Gi")
        },
        .update("bound claim may not shrink below capacity", { Valid.claim(bound: true) },
            .contains("spec.resources.requests.storage: Forbidden: field can not be less than status.capacity")) {
            $0.spec.resources?.requests?["storage"] = try! Quantity("5Gi")
        },
        .update("claim volumeMode is immutable", { Valid.claim(bound: true) },
            .contains(#"volumeMode: Invalid value: "Block": field is immutable"#)) {
            $0.spec.volumeMode = "Block"
        },
        // PersistentVolume
        .update("volume reclaim policy may change", Valid.persistentVolume, .accepted) {
            $0.spec.persistentVolumeReclaimPolicy = "Delete"
        },
        .update("volume claimRef may be set", Valid.persistentVolume, .accepted) {
            $0.spec.claimRef = ObjectReference(kind: "PersistentVolumeClaim", namespace: "shop", name: "data")
        },
        .update("volume expand secret may be added", Valid.persistentVolume, .accepted) {
            $0.spec.csi?.controllerExpandSecretRef = SecretReference(name: "expand", namespace: "kube-system")
        },
        .update("volume handle is immutable", Valid.persistentVolume,
            .prefix("spec.persistentvolumesource: Forbidden: spec.persistentvolumesource is immutable after creation\n")) {
            $0.spec.csi?.volumeHandle = "vol-2"
        },
        .update("volume source kind is immutable", Valid.persistentVolume,
            .prefix("spec.persistentvolumesource: Forbidden: spec.persistentvolumesource is immutable after creation\n")) {
            $0.spec.csi = nil
            $0.spec.hostPath = HostPathVolumeSource(path: "/data", type: "")
        },
        .update("volume mode is immutable", Valid.persistentVolume,
            .contains(#"volumeMode: Invalid value: "Block": field is immutable"#)) {
            $0.spec.volumeMode = "Block"
        },
        // StorageClass
        .update("storage class labels may change", Valid.storageClass, .accepted) { $0.metadata.labels = ["a": "b"] },
        .update("storage class expansion may change", Valid.storageClass, .accepted) { $0.allowVolumeExpansion = true },
        .update("storage class parameters are immutable", Valid.storageClass,
            .contains("parameters: Forbidden: updates to parameters are forbidden.")) {
            $0.parameters?["pool"] = "hdd"
        },
        .update("storage class provisioner is immutable", Valid.storageClass,
            .contains("provisioner: Forbidden: updates to provisioner are forbidden.")) {
            $0.provisioner = "other.ballast.io"
        },
        .update("storage class reclaim policy is immutable", Valid.storageClass,
            .contains("reclaimPolicy: Forbidden: updates to reclaimPolicy are forbidden.")) {
            $0.reclaimPolicy = "Retain"
        },
        .update("storage class binding mode is immutable", Valid.storageClass,
            .contains(#"volumeBindingMode: Invalid value: "WaitForFirstConsumer": field is immutable"#)) {
            $0.volumeBindingMode = "WaitForFirstConsumer"
        },
        // VolumeAttachment
        .update("attachment status may change", Valid.volumeAttachment, .accepted) {
            $0.status = VolumeAttachmentStatus(attached: true, attachmentMetadata: ["devicePath": "/dev/vdb"])
        },
        .update("attachment node is immutable", Valid.volumeAttachment,
            .contains(#"spec: Invalid value: {"attacher":"csi.ballast.io","nodeName":"worker-2","source":{"persistentVolumeName":"pv-1"}}: field is immutable"#)) {
            $0.spec.nodeName = "worker-2"
        },
        // CSIDriver, CSINode, Node, Lease
        .update("driver podInfoOnMount may change", Valid.csiDriver, .accepted) { $0.spec.podInfoOnMount = true },
        .update("driver attachRequired is immutable", Valid.csiDriver,
            .contains("spec.attachedRequired: Invalid value: false: field is immutable")) {
            $0.spec.attachRequired = false
        },
        .update("driver lifecycle modes are immutable", Valid.csiDriver,
            .contains(#"spec.volumeLifecycleModes: Invalid value: []storage.VolumeLifecycleMode{"Persistent", "Ephemeral"}: field is immutable"#)) {
            $0.spec.volumeLifecycleModes = ["Persistent", "Ephemeral"]
        },
        .update("csi node may add drivers", Valid.csiNode, .accepted) {
            $0.spec.drivers.append(CSINodeDriver(name: "other.ballast.io", nodeID: "w1"))
        },
        .update("csi node driver entry is immutable", Valid.csiNode,
            .prefix("CSINodeDriver: Invalid value: {")) {
            $0.spec.drivers[0].nodeID = "other"
        },
        .update("node may be cordoned", Valid.node, .accepted) { $0.spec.unschedulable = true },
        .update("node podCIDR is immutable", Valid.node,
            .contains(#"spec.podCIDRs: Forbidden: node updates may not change podCIDR except from "" to valid"#)) {
            $0.spec.podCIDRs = ["10.244.2.0/24"]
        },
        .update("lease renewal", Valid.lease, .accepted) {
            $0.spec.renewTime = MicroTime(Time(secondsSinceEpoch: 1_800_000_000), microseconds: 5)
            $0.spec.leaseTransitions = 1
        },
        .update("namespace labels may change", Valid.namespace, .accepted) { $0.metadata.labels?["team"] = "a" },
    ]

    @Test(arguments: cases)
    func update(_ testCase: UpdateCase) {
        let got = messages(testCase.run())
        switch testCase.expectation {
        case .accepted:
            #expect(got == [])
        case .contains(let message):
            #expect(got.contains(message), "got \(got)")
        case .prefix(let prefix):
            #expect(got.contains { $0.hasPrefix(prefix) }, "got \(got)")
        }
    }

    @Test func claimDiffNamesTheChangedField() throws {
        let old = Valid.claim(bound: true)
        var new = old
        new.spec.storageClassName = "slow"
        let error = try #require(new.validateUpdate(old: old).first { $0.field == "spec" })
        #expect(error.detail.contains(#"storageClassName: "fast""#))
        #expect(error.detail.contains(#"storageClassName: "slow""#))
    }
}
