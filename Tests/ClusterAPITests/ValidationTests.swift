import Foundation
import Testing

@testable import ClusterAPI

/// Valid, defaulted objects that the cases below break one field at a time.
enum Valid {
    static func pod() -> Pod {
        var pod = Pod(
            metadata: ObjectMeta(name: "web-0", namespace: "shop", resourceVersion: "1"),
            spec: PodSpec(
                volumes: [Volume(name: "data", emptyDir: EmptyDirVolumeSource())],
                containers: [
                    Container(
                        name: "app", image: "nginx:1.27", ports: [ContainerPort(name: "http", containerPort: 8080)],
                        volumeMounts: [VolumeMount(name: "data", mountPath: "/data")])
                ],
                tolerations: [Toleration(key: "dedicated", operator: "Equal", value: "web", effect: "NoSchedule")]))
        pod.applyDefaults()
        return pod
    }

    static func persistentVolume() -> PersistentVolume {
        var pv = PersistentVolume(
            metadata: ObjectMeta(name: "pv-1", resourceVersion: "1"),
            spec: PersistentVolumeSpec(
                capacity: ["storage": try! Quantity("10Gi")],
                csi: CSIPersistentVolumeSource(driver: "csi.ballast.io", volumeHandle: "vol-1"),
                accessModes: ["ReadWriteOnce"], storageClassName: "fast"))
        pv.applyDefaults()
        return pv
    }

    static func claim(bound: Bool = false) -> PersistentVolumeClaim {
        var pvc = PersistentVolumeClaim(
            metadata: ObjectMeta(name: "data", namespace: "shop", resourceVersion: "1"),
            spec: PersistentVolumeClaimSpec(
                accessModes: ["ReadWriteOnce"],
                resources: VolumeResourceRequirements(requests: ["storage": try! Quantity("10Gi")]),
                storageClassName: "fast"))
        if bound {
            pvc.spec.volumeName = "pv-1"
            pvc.status = PersistentVolumeClaimStatus(phase: "Bound", capacity: ["storage": try! Quantity("10Gi")])
        }
        pvc.applyDefaults()
        return pvc
    }

    static func storageClass() -> StorageClass {
        var storageClass = StorageClass(
            metadata: ObjectMeta(name: "fast", resourceVersion: "1"), provisioner: "csi.ballast.io",
            parameters: ["pool": "ssd"])
        storageClass.applyDefaults()
        return storageClass
    }

    static func volumeAttachment() -> VolumeAttachment {
        VolumeAttachment(
            metadata: ObjectMeta(name: "csi-abc", resourceVersion: "1"),
            spec: VolumeAttachmentSpec(
                attacher: "csi.ballast.io", source: VolumeAttachmentSource(persistentVolumeName: "pv-1"), nodeName: "worker-1"))
    }

    static func csiDriver() -> CSIDriver {
        var driver = CSIDriver(metadata: ObjectMeta(name: "csi.ballast.io", resourceVersion: "1"))
        driver.applyDefaults()
        return driver
    }

    static func csiNode() -> CSINode {
        CSINode(
            metadata: ObjectMeta(name: "worker-1", resourceVersion: "1"),
            spec: CSINodeSpec(drivers: [CSINodeDriver(name: "csi.ballast.io", nodeID: "worker-1", topologyKeys: ["zone"])]))
    }

    static func node() -> Node {
        var node = Node(
            metadata: ObjectMeta(name: "worker-1", resourceVersion: "1"),
            spec: NodeSpec(podCIDR: "10.244.1.0/24", providerID: "ballast://worker-1"),
            status: NodeStatus(capacity: ["cpu": Quantity(4)]))
        node.applyDefaults()
        return node
    }

    static func namespace() -> Namespace {
        var namespace = Namespace(metadata: ObjectMeta(name: "shop", resourceVersion: "1"))
        namespace.applyDefaults()
        return namespace
    }

    static func lease() -> Lease {
        Lease(
            metadata: ObjectMeta(name: "worker-1", namespace: "kube-node-lease", resourceVersion: "1"),
            spec: LeaseSpec(holderIdentity: "worker-1", leaseDurationSeconds: 40))
    }

    static func event() -> Event {
        var event = try! decode(Event.self, Manifests.event)
        event.applyDefaults()
        return event
    }
}

let subdomainMessage =
    #"a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"#
let labelMessage =
    #"a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"#

/// One broken object and a message Kubernetes reports for it.
struct ValidationCase: Sendable, CustomTestStringConvertible {
    let expected: String
    let prefixOnly: Bool
    let run: @Sendable () -> [FieldError]

    init(_ expected: String, prefix: Bool = false, _ run: @escaping @Sendable () -> [FieldError]) {
        self.expected = expected
        self.prefixOnly = prefix
        self.run = run
    }

    var testDescription: String { expected }

    static func pod(_ expected: String, prefix: Bool = false, _ change: @escaping @Sendable (inout Pod) -> Void) -> Self {
        Self(expected, prefix: prefix) {
            var pod = Valid.pod()
            change(&pod)
            return pod.validate()
        }
    }

    static func pv(
        _ expected: String, prefix: Bool = false, _ change: @escaping @Sendable (inout PersistentVolume) -> Void
    ) -> Self {
        Self(expected, prefix: prefix) {
            var pv = Valid.persistentVolume()
            change(&pv)
            return pv.validate()
        }
    }

    static func pvc(
        _ expected: String, prefix: Bool = false, _ change: @escaping @Sendable (inout PersistentVolumeClaim) -> Void
    ) -> Self {
        Self(expected, prefix: prefix) {
            var pvc = Valid.claim()
            change(&pvc)
            return pvc.validate()
        }
    }

    static func object<T: APIObject>(
        _ base: @escaping @Sendable () -> T, _ expected: String, prefix: Bool = false,
        _ change: @escaping @Sendable (inout T) -> Void
    ) -> Self {
        Self(expected, prefix: prefix) {
            var object = base()
            change(&object)
            return object.validate()
        }
    }
}

@Suite("Validation")
struct ValidationTests {
    @Test func validBaselines() {
        #expect(messages(Valid.pod().validate()) == [])
        #expect(messages(Valid.persistentVolume().validate()) == [])
        #expect(messages(Valid.claim().validate()) == [])
        #expect(messages(Valid.claim(bound: true).validate()) == [])
        #expect(messages(Valid.storageClass().validate()) == [])
        #expect(messages(Valid.volumeAttachment().validate()) == [])
        #expect(messages(Valid.csiDriver().validate()) == [])
        #expect(messages(Valid.csiNode().validate()) == [])
        #expect(messages(Valid.node().validate()) == [])
        #expect(messages(Valid.namespace().validate()) == [])
        #expect(messages(Valid.lease().validate()) == [])
        #expect(messages(Valid.event().validate()) == [])
    }

    static let metadataCases: [ValidationCase] = [
        .pod(#"metadata.name: Invalid value: "Foo": "# + subdomainMessage) { $0.metadata.name = "Foo" },
        .pod("metadata.name: Required value: name or generateName is required") { $0.metadata.name = nil },
        .pod("metadata.namespace: Required value") { $0.metadata.namespace = nil },
        .pod(#"metadata.namespace: Invalid value: "Shop": "# + labelMessage) { $0.metadata.namespace = "Shop" },
        .pod(#"metadata.generateName: Invalid value: "Web-": "# + subdomainMessage) {
            $0.metadata.name = nil
            $0.metadata.generateName = "Web-"
        },
        .pod(#"metadata.labels: Invalid value: "bad key": name part must consist of alphanumeric characters"#, prefix: true) {
            $0.metadata.labels = ["bad key": "v"]
        },
        .pod(#"metadata.labels: Invalid value: "-v": a valid label must be an empty string or consist of"#, prefix: true) {
            $0.metadata.labels = ["app": "-v"]
        },
        .pod(#"metadata.annotations: Invalid value: "a/b/c": a qualified name must consist of"#, prefix: true) {
            $0.metadata.annotations = ["a/b/c": "v"]
        },
        .pod("metadata.annotations: Too long: must have at most 262144 bytes") {
            $0.metadata.annotations = ["big": String(repeating: "x", count: 262_142)]
        },
        .pod(#"metadata.finalizers[0]: Invalid value: "custom": name is neither a standard finalizer name nor is it fully qualified"#) {
            $0.metadata.finalizers = ["custom"]
        },
        .pv("metadata.namespace: Forbidden: not allowed on this type") { $0.metadata.namespace = "shop" },
        .object(Valid.namespace, #"metadata.name: Invalid value: "a.b": must not contain dots"#) { $0.metadata.name = "a.b" },
        .object(Valid.namespace, #"metadata.name: Invalid value: "Shop": "# + labelMessage) { $0.metadata.name = "Shop" },
        .object(Valid.namespace, #"spec.finalizers: Invalid value: "foo": name is neither a standard finalizer name nor is it fully qualified"#) {
            $0.spec.finalizers = ["foo"]
        },
    ]

    static let podCases: [ValidationCase] = [
        .pod("spec.containers: Required value") { $0.spec.containers = [] },
        .pod("spec.containers[0].name: Required value") { $0.spec.containers[0].name = "" },
        .pod(#"spec.containers[0].name: Invalid value: "App": "# + labelMessage) { $0.spec.containers[0].name = "App" },
        .pod(#"spec.containers[1].name: Duplicate value: "app""#) {
            let first = $0.spec.containers[0]
            $0.spec.containers.append(first)
        },
        .pod("spec.containers[0].image: Required value") { $0.spec.containers[0].image = nil },
        .pod(#"spec.containers[0].image: Invalid value: " nginx": must not have leading or trailing whitespace"#) {
            $0.spec.containers[0].image = " nginx"
        },
        .pod(#"spec.initContainers[0].name: Duplicate value: "app""#) {
            var initContainer = $0.spec.containers[0]
            initContainer.volumeMounts = nil
            initContainer.ports = nil
            $0.spec.initContainers = [initContainer]
        },
        .pod(#"spec.volumes[1].name: Duplicate value: "data""#) {
            let first = $0.spec.volumes![0]
            $0.spec.volumes?.append(first)
        },
        .pod(#"spec.volumes[0].name: Invalid value: "Data": "# + labelMessage) { $0.spec.volumes?[0].name = "Data" },
        .pod(#"spec.containers[0].volumeMounts[0].name: Not found: "missing""#) {
            $0.spec.containers[0].volumeMounts?[0].name = "missing"
        },
        .pod(#"spec.containers[0].volumeMounts[1].mountPath: Invalid value: "/data": must be unique"#) {
            $0.spec.containers[0].volumeMounts?.append(VolumeMount(name: "data", mountPath: "/data"))
        },
        .pod("spec.volumes[0]: Required value: must specify a volume type") { $0.spec.volumes?[0].emptyDir = nil },
        .pod("spec.volumes[0].hostPath: Forbidden: may not specify more than 1 volume type") {
            $0.spec.volumes?[0].hostPath = HostPathVolumeSource(path: "/srv")
        },
        .pod("spec.volumes[0].nfs: Forbidden: may not specify more than 1 volume type") {
            $0.spec.volumes?[0].unknownFields["nfs"] = ["server": "nfs", "path": "/"]
        },
        .pod("spec.volumes[0].persistentVolumeClaim.claimName: Required value") {
            $0.spec.volumes?[0] = Volume(name: "data", persistentVolumeClaim: PersistentVolumeClaimVolumeSource(claimName: ""))
        },
        .pod(#"spec.volumes[0].hostPath.path: Invalid value: "/srv/../etc": must not contain '..'"#) {
            $0.spec.volumes?[0] = Volume(name: "data", hostPath: HostPathVolumeSource(path: "/srv/../etc", type: ""))
        },
        .pod(#"spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never""#) {
            $0.spec.restartPolicy = "Sometimes"
        },
        .pod("spec.restartPolicy: Required value") { $0.spec.restartPolicy = nil },
        .pod("spec.terminationGracePeriodSeconds: Required value") { $0.spec.terminationGracePeriodSeconds = nil },
        .pod(#"spec.dnsPolicy: Unsupported value: "Google": supported values: "ClusterFirstWithHostNet", "ClusterFirst", "Default", "None""#) {
            $0.spec.dnsPolicy = "Google"
        },
        .pod("spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive") {
            $0.spec.containers[0].ports?[0].containerPort = 70000
        },
        .pod("spec.containers[0].ports[0].containerPort: Required value") { $0.spec.containers[0].ports?[0].containerPort = 0 },
        .pod("spec.containers[0].ports[0].hostPort: Invalid value: -1: must be between 1 and 65535, inclusive") {
            $0.spec.containers[0].ports?[0].hostPort = -1
        },
        .pod(#"spec.containers[0].ports[0].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP""#) {
            $0.spec.containers[0].ports?[0].protocol = "HTTP"
        },
        .pod(#"spec.containers[0].ports[0].name: Invalid value: "HTTP": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"#) {
            $0.spec.containers[0].ports?[0].name = "HTTP"
        },
        .pod(#"spec.containers[0].imagePullPolicy: Unsupported value: "Sometimes": supported values: "Always", "IfNotPresent", "Never""#) {
            $0.spec.containers[0].imagePullPolicy = "Sometimes"
        },
        .pod(#"spec.containers[0].resources.requests[cpu]: Invalid value: "2": must be less than or equal to cpu limit of 1"#) {
            $0.spec.containers[0].resources = ResourceRequirements(limits: ["cpu": Quantity(1)], requests: ["cpu": Quantity(2)])
        },
        .pod(#"spec.tolerations[1].operator: Unsupported value: "Like": supported values: "Equal", "Exists""#) {
            $0.spec.tolerations?.append(Toleration(key: "k", operator: "Like"))
        },
        .pod(#"spec.nodeName: Invalid value: "Worker_1": "# + subdomainMessage) { $0.spec.nodeName = "Worker_1" },
        .pod(#"spec.nodeSelector: Invalid value: "bad value!": a valid label must be an empty string"#, prefix: true) {
            $0.spec.nodeSelector = ["zone": "bad value!"]
        },
        .pod("spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers") {
            $0.spec.containers[0].restartPolicy = "Always"
        },
    ]

    static let storageCases: [ValidationCase] = [
        .pv("spec.capacity: Required value") { $0.spec.capacity = nil },
        .pv(#"spec.capacity: Unsupported value: core.ResourceList{}: supported values: "storage""#) { $0.spec.capacity = nil },
        .pv(#"spec.capacity[storage]: Invalid value: "0": must be greater than zero"#) { $0.spec.capacity = ["storage": .zero] },
        .pv("spec.accessModes: Required value") { $0.spec.accessModes = [] },
        .pv(#"spec.accessModes: Unsupported value: "Bogus": supported values: "ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod""#) {
            $0.spec.accessModes = ["Bogus"]
        },
        .pv("spec.accessModes: Forbidden: may not use ReadWriteOncePod with other access modes") {
            $0.spec.accessModes = ["ReadWriteOncePod", "ReadWriteOnce"]
        },
        .pv("spec: Required value: must specify a volume type") { $0.spec.csi = nil },
        .pv("spec.csi: Forbidden: may not specify more than 1 volume type") {
            $0.spec.hostPath = HostPathVolumeSource(path: "/data", type: "")
        },
        .pv("spec.csi: Forbidden: may not specify more than 1 volume type") { $0.spec.unknownFields["nfs"] = ["server": "s", "path": "/"] },
        .pv("spec.csi.driver: Required value") { $0.spec.csi?.driver = "" },
        .pv(#"spec.csi.driver: Invalid value: "csi_driver": "# + subdomainMessage) { $0.spec.csi?.driver = "csi_driver" },
        .pv("spec.csi.driver: Too long: must have at most 63 bytes") { $0.spec.csi?.driver = String(repeating: "a", count: 64) },
        .pv("spec.csi.volumeHandle: Required value") { $0.spec.csi?.volumeHandle = "" },
        .pv("spec.csi.nodePublishSecretRef.namespace: Required value") { $0.spec.csi?.nodePublishSecretRef = SecretReference(name: "s") },
        .pv(#"spec.persistentVolumeReclaimPolicy: Unsupported value: "Keep": supported values: "Delete", "Recycle", "Retain""#) {
            $0.spec.persistentVolumeReclaimPolicy = "Keep"
        },
        .pv(#"spec.volumeMode: Unsupported value: "Raw": supported values: "Block", "Filesystem""#) { $0.spec.volumeMode = "Raw" },
        .pv(#"spec.storageClassName: Invalid value: "Fast": "# + subdomainMessage) { $0.spec.storageClassName = "Fast" },
        .pv("spec.nodeAffinity: Required value: Local volume requires node affinity") {
            $0.spec.csi = nil
            $0.spec.unknownFields["local"] = ["path": "/mnt/disk"]
        },
        .pvc("spec.accessModes: Required value: at least 1 access mode is required") { $0.spec.accessModes = nil },
        .pvc(#"spec.accessModes: Unsupported value: "Bogus": supported values: "ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod""#) {
            $0.spec.accessModes = ["Bogus"]
        },
        .pvc("spec.resources[storage]: Required value") { $0.spec.resources = nil },
        .pvc(#"spec.resources[storage]: Invalid value: "0": must be greater than zero"#) {
            $0.spec.resources?.requests?["storage"] = .zero
        },
        .pvc(#"spec.resources[storage]: Invalid value: "-1Gi": must be greater than zero"#) {
            $0.spec.resources?.requests?["storage"] = try! Quantity("-1Gi")
        },
        .pvc(#"spec.volumeMode: Unsupported value: "Raw": supported values: "Block", "Filesystem""#) { $0.spec.volumeMode = "Raw" },
        .pvc(#"spec.dataSource: Invalid value: "Snapshot": must be 'PersistentVolumeClaim' when referencing the default apiGroup"#) {
            $0.spec.dataSource = TypedLocalObjectReference(kind: "Snapshot", name: "s")
        },
        .object(Valid.storageClass, "provisioner: Required value") { $0.provisioner = "" },
        .object(Valid.storageClass, #"provisioner: Invalid value: "bad provisioner!": name part must consist of"#, prefix: true) {
            $0.provisioner = "bad provisioner!"
        },
        .object(Valid.storageClass, #"reclaimPolicy: Unsupported value: "Recycle": supported values: "Delete", "Retain""#) {
            $0.reclaimPolicy = "Recycle"
        },
        .object(Valid.storageClass, #"volumeBindingMode: Unsupported value: "Later": supported values: "Immediate", "WaitForFirstConsumer""#) {
            $0.volumeBindingMode = "Later"
        },
        .object(Valid.storageClass, "volumeBindingMode: Required value") { $0.volumeBindingMode = nil },
        .object(Valid.storageClass, #"parameters: Invalid value: "": field can not be empty."#) { $0.parameters = ["": "x"] },
        .object(Valid.volumeAttachment, "spec.attacher: Required value") { $0.spec.attacher = "" },
        .object(Valid.volumeAttachment, #"spec.nodeName: Invalid value: "": "# + subdomainMessage) { $0.spec.nodeName = "" },
        .object(Valid.volumeAttachment, "spec.source: Required value: must specify exactly one of inlineVolumeSpec and persistentVolumeName") {
            $0.spec.source = VolumeAttachmentSource()
        },
        .object(Valid.volumeAttachment, "spec.source: Forbidden: must specify exactly one of inlineVolumeSpec and persistentVolumeName") {
            $0.spec.source.inlineVolumeSpec = PersistentVolumeSpec()
        },
        .object(Valid.volumeAttachment, "spec.source.persistentVolumeName: Required value: must specify non empty persistentVolumeName") {
            $0.spec.source.persistentVolumeName = ""
        },
        .object(Valid.volumeAttachment, "spec.source.inlineVolumeSpec.csi: Required value: has to be specified in the context of inline volumes") {
            $0.spec.source = VolumeAttachmentSource(inlineVolumeSpec: PersistentVolumeSpec(accessModes: ["ReadWriteOnce"]))
        },
        .object(Valid.csiDriver, "spec.attachedRequired: Required value") { $0.spec.attachRequired = nil },
        .object(Valid.csiDriver, "spec.podInfoOnMount: Required value") { $0.spec.podInfoOnMount = nil },
        .object(Valid.csiDriver, #"spec.volumeLifecycleModes: Unsupported value: "Forever": supported values: "Persistent", "Ephemeral""#) {
            $0.spec.volumeLifecycleModes = ["Forever"]
        },
        .object(Valid.csiDriver, #"spec.fsGroupPolicy: Unsupported value: "Some": supported values: "File", "None", "ReadWriteOnceWithFSType""#) {
            $0.spec.fsGroupPolicy = "Some"
        },
        .object(Valid.csiDriver, #"name: Invalid value: "csi_driver": "# + subdomainMessage) { $0.metadata.name = "csi_driver" },
        .object(Valid.csiNode, "spec.drivers[0].nodeID: Required value") { $0.spec.drivers[0].nodeID = "" },
        .object(Valid.csiNode, #"spec.drivers[1].name: Duplicate value: "csi.ballast.io""#) {
            let first = $0.spec.drivers[0]
            $0.spec.drivers.append(first)
        },
        .object(Valid.csiNode, "spec.drivers[0].allocatable.count: Invalid value: -1: must be greater than or equal to 0") {
            $0.spec.drivers[0].allocatable = VolumeNodeResources(count: -1)
        },
    ]

    static let clusterCases: [ValidationCase] = [
        .object(Valid.node, #"metadata.taints[0].effect: Unsupported value: "Sometimes": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute""#) {
            $0.spec.taints = [Taint(key: "k", effect: "Sometimes")]
        },
        .object(Valid.node, "metadata.taints[0].effect: Required value") { $0.spec.taints = [Taint(key: "k", effect: "")] },
        .object(Valid.node, #"metadata.taints[1]: Duplicate value: {"effect":"NoSchedule","key":"k","value":"v"}: taints must be unique by key and effect pair"#) {
            $0.spec.taints = [Taint(key: "k", effect: "NoSchedule"), Taint(key: "k", value: "v", effect: "NoSchedule")]
        },
        .object(Valid.node, "status.capacity[cpu]: Invalid value: -1: must be greater than or equal to 0") {
            $0.status.capacity = ["cpu": Quantity(-1)]
        },
        .object(Valid.node, #"spec.podCIDRs[0]: Invalid value: []string{"10.0.0.0/99"}: must be valid CIDR"#) {
            $0.spec.podCIDRs = ["10.0.0.0/99"]
        },
        .object(Valid.event, #"involvedObject.namespace: Invalid value: "other": does not match event.namespace"#) {
            $0.involvedObject.namespace = "other"
        },
        .object(Valid.event, #"involvedObject.namespace: Invalid value: "": does not match event.namespace"#) {
            $0.involvedObject.namespace = nil
        },
        .object(Valid.event, "reportingComponent: Required value") {
            $0.eventTime = MicroTime(Time(secondsSinceEpoch: 0))
            $0.reportingComponent = nil
        },
        .object(Valid.lease, "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0") { $0.spec.leaseDurationSeconds = 0 },
        .object(Valid.lease, "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0") { $0.spec.leaseTransitions = -1 },
        .object(Valid.lease, "spec.preferredHolder: Forbidden: may only be specified if `strategy` is defined") {
            $0.spec.preferredHolder = "other"
        },
        .object(Valid.lease, "metadata.namespace: Required value") { $0.metadata.namespace = nil },
    ]

    static func check(_ testCase: ValidationCase) {
        let got = messages(testCase.run())
        if testCase.prefixOnly {
            #expect(got.contains { $0.hasPrefix(testCase.expected) }, "got \(got)")
        } else {
            #expect(got.contains(testCase.expected), "got \(got)")
        }
    }

    @Test(arguments: metadataCases) func metadata(_ testCase: ValidationCase) { Self.check(testCase) }
    @Test(arguments: podCases) func pod(_ testCase: ValidationCase) { Self.check(testCase) }
    @Test(arguments: storageCases) func storage(_ testCase: ValidationCase) { Self.check(testCase) }
    @Test(arguments: clusterCases) func cluster(_ testCase: ValidationCase) { Self.check(testCase) }

    @Test func generateNameStandsInForName() {
        var pod = Valid.pod()
        pod.metadata.name = nil
        pod.metadata.generateName = "web-"
        #expect(messages(pod.validate()) == [])
    }

    @Test func fieldErrorRendering() {
        let error = FieldError(type: .invalid, field: "spec.replicas", badValue: "-1", badValueStyle: .literal, detail: "must be >= 0")
        #expect(error.description == "spec.replicas: Invalid value: -1: must be >= 0")
        #expect(error.cause == StatusCause(reason: "FieldValueInvalid", message: "Invalid value: -1: must be >= 0", field: "spec.replicas"))
        #expect(FieldError(type: .required, field: "a", badValue: "x").description == "a: Required value")
        #expect(FieldError(type: .tooMany, field: "a", badValue: "5", badValueStyle: .literal, detail: "must have at most 3 items").description
            == "a: Too many: 5: must have at most 3 items")
    }

    @Test func invalidStatus() throws {
        var pvc = Valid.claim()
        pvc.spec.accessModes = nil
        let status = pvc.invalidStatus(pvc.validate())
        #expect(status.code == 422)
        #expect(status.reason == "Invalid")
        #expect(status.message == #"PersistentVolumeClaim "data" is invalid: spec.accessModes: Required value: at least 1 access mode is required"#)
        #expect(status.details?.causes?.first?.field == "spec.accessModes")
        var storageClass = Valid.storageClass()
        storageClass.provisioner = ""
        storageClass.reclaimPolicy = "Recycle"
        #expect(storageClass.invalidStatus(storageClass.validate()).message
            == #"StorageClass.storage.k8s.io "fast" is invalid: [provisioner: Required value, reclaimPolicy: Unsupported value: "Recycle": supported values: "Delete", "Retain"]"#)
    }
}
