// Builders for the objects the tables start from.
import ClusterAPI
import ControllerManager

func quantity(_ text: String) -> Quantity { try! Quantity(text) }

func makePV(_ name: String, size: String = "1Gi", modes: [String] = ["ReadWriteOnce"], className: String = "",
            labels: [String: String]? = nil, claim: (name: String, uid: String?)? = nil, policy: String = "Retain",
            annotations: [String: String]? = nil, handle: String? = nil, volumeMode: String? = nil) -> PersistentVolume {
    var pv = PersistentVolume(metadata: ObjectMeta(name: name, labels: labels, annotations: annotations))
    pv.spec.capacity = ["storage": quantity(size)]
    pv.spec.accessModes = modes
    pv.spec.storageClassName = className
    pv.spec.persistentVolumeReclaimPolicy = policy
    pv.spec.volumeMode = volumeMode
    pv.spec.csi = CSIPersistentVolumeSource(driver: driverName, volumeHandle: handle ?? "handle-\(name)")
    if let claim {
        pv.spec.claimRef = ObjectReference(kind: "PersistentVolumeClaim", namespace: "default", name: claim.name, uid: claim.uid,
                                           apiVersion: "v1")
    }
    return pv
}

func makePVC(_ name: String, size: String = "1Gi", modes: [String] = ["ReadWriteOnce"], className: String? = "",
             selector: [String: String]? = nil, volumeName: String? = nil, annotations: [String: String]? = nil,
             namespace: String = "default", volumeMode: String? = nil) -> PersistentVolumeClaim {
    var pvc = PersistentVolumeClaim(metadata: ObjectMeta(name: name, namespace: namespace, annotations: annotations))
    pvc.spec.accessModes = modes
    pvc.spec.resources = VolumeResourceRequirements(requests: ["storage": quantity(size)])
    pvc.spec.storageClassName = className
    pvc.spec.volumeName = volumeName
    pvc.spec.volumeMode = volumeMode
    if let selector { pvc.spec.selector = LabelSelectorSpec(matchLabels: selector) }
    return pvc
}

func makeClass(_ name: String, provisioner: String = driverName, binding: String = "Immediate", reclaim: String = "Delete",
               expansion: Bool? = nil, topologies: [String: [String]]? = nil, parameters: [String: String]? = nil) -> StorageClass {
    var storageClass = StorageClass(metadata: ObjectMeta(name: name), provisioner: provisioner, parameters: parameters,
                                    reclaimPolicy: reclaim, allowVolumeExpansion: expansion, volumeBindingMode: binding)
    if let topologies {
        storageClass.allowedTopologies = [TopologySelectorTerm(matchLabelExpressions: topologies.keys.sorted().map {
            TopologySelectorLabelRequirement(key: $0, values: topologies[$0]!)
        })]
    }
    return storageClass
}

/// A node as a kubelet registers it: Ready, its attach/detach managed by the controller, in `zone`.
func makeNode(_ name: String, zone: String = "ballast-1a", ready: String = "True") -> Node {
    var node = Node(metadata: ObjectMeta(name: name, labels: ["topology.kubernetes.io/zone": zone, "kubernetes.io/hostname": name],
                                         annotations: [Annotation.controllerManagedAttachDetach: "true"]))
    node.status.conditions = [NodeCondition(type: "Ready", status: ready, lastHeartbeatTime: Time.now(), lastTransitionTime: Time.now(),
                                            reason: "KubeletReady", message: "kubelet is posting ready status")]
    return node
}

func makeCSINode(_ name: String, nodeID: String) -> CSINode {
    CSINode(metadata: ObjectMeta(name: name),
            spec: CSINodeSpec(drivers: [CSINodeDriver(name: driverName, nodeID: nodeID, topologyKeys: ["topology.kubernetes.io/zone"])]))
}

func makePod(_ name: String, claims: [String], node: String? = nil, phase: String? = "Running", namespace: String = "default",
             tolerations: [Toleration]? = nil) -> Pod {
    var pod = Pod(metadata: ObjectMeta(name: name, namespace: namespace))
    pod.spec.containers = [Container(name: "app", image: "busybox")]
    pod.spec.volumes = claims.enumerated().map { index, claim in
        Volume(name: "data\(index)", persistentVolumeClaim: PersistentVolumeClaimVolumeSource(claimName: claim))
    }
    pod.spec.nodeName = node
    pod.spec.tolerations = tolerations
    pod.status.phase = phase
    return pod
}
