// Builders for the nodes, pods and storage objects the tables start from.
import ClusterAPI
import Scheduler

func quantity(_ text: String) -> Quantity { try! Quantity(text) }

/// A Ready node in `zone` with `cpu`, `memory` and `pods` allocatable.
func makeNode(_ name: String, zone: String = "zone-a", cpu: String = "4", memory: String = "8Gi", pods: String = "110",
              labels: [String: String] = [:], taints: [Taint]? = nil, unschedulable: Bool? = nil) -> Node {
    var node = Node(metadata: ObjectMeta(name: name, labels: ["topology.kubernetes.io/zone": zone, "kubernetes.io/hostname": name]
        .merging(labels) { $1 }))
    node.spec.taints = taints
    node.spec.unschedulable = unschedulable
    let resources = ["cpu": quantity(cpu), "memory": quantity(memory), "pods": quantity(pods)]
    node.status.capacity = resources
    node.status.allocatable = resources
    node.status.conditions = [NodeCondition(type: "Ready", status: "True", lastHeartbeatTime: Time.now(), lastTransitionTime: Time.now(),
                                            reason: "KubeletReady", message: "kubelet is posting ready status")]
    return node
}

func makeCSINode(_ name: String, limit: Int32?) -> CSINode {
    CSINode(metadata: ObjectMeta(name: name),
            spec: CSINodeSpec(drivers: [CSINodeDriver(name: driverName, nodeID: name, topologyKeys: ["topology.kubernetes.io/zone"],
                                                      allocatable: limit.map { VolumeNodeResources(count: $0) })]))
}

func makePod(_ name: String, cpu: String? = nil, memory: String? = nil, claims: [String] = [], namespace: String = "default",
             tolerations: [Toleration]? = nil, nodeSelector: [String: String]? = nil, affinity: JSONValue? = nil,
             hostPort: Int32? = nil, schedulerName: String? = nil) -> Pod {
    var pod = Pod(metadata: ObjectMeta(name: name, namespace: namespace))
    var container = Container(name: "app", image: "busybox")
    var requests: [String: Quantity] = [:]
    if let cpu { requests["cpu"] = quantity(cpu) }
    if let memory { requests["memory"] = quantity(memory) }
    if !requests.isEmpty { container.resources = ResourceRequirements(requests: requests) }
    if let hostPort { container.ports = [ContainerPort(hostPort: hostPort, containerPort: hostPort, protocol: "TCP")] }
    pod.spec.containers = [container]
    pod.spec.volumes = claims.enumerated().map { index, claim in
        Volume(name: "data\(index)", persistentVolumeClaim: PersistentVolumeClaimVolumeSource(claimName: claim))
    }
    pod.spec.tolerations = tolerations
    pod.spec.nodeSelector = nodeSelector
    pod.spec.affinity = affinity
    pod.spec.schedulerName = schedulerName
    return pod
}

func makePVC(_ name: String, size: String = "1Gi", modes: [String] = ["ReadWriteOnce"], className: String? = "",
             namespace: String = "default") -> PersistentVolumeClaim {
    var claim = PersistentVolumeClaim(metadata: ObjectMeta(name: name, namespace: namespace))
    claim.spec.accessModes = modes
    claim.spec.resources = VolumeResourceRequirements(requests: ["storage": quantity(size)])
    claim.spec.storageClassName = className
    return claim
}

/// A CSI volume, reachable only from `zone` when given.
func makePV(_ name: String, size: String = "1Gi", modes: [String] = ["ReadWriteOnce"], className: String = "",
            zone: String? = nil) -> PersistentVolume {
    var volume = PersistentVolume(metadata: ObjectMeta(name: name))
    volume.spec.capacity = ["storage": quantity(size)]
    volume.spec.accessModes = modes
    volume.spec.storageClassName = className
    volume.spec.persistentVolumeReclaimPolicy = "Retain"
    volume.spec.csi = CSIPersistentVolumeSource(driver: driverName, volumeHandle: "handle-\(name)")
    if let zone {
        volume.spec.nodeAffinity = VolumeNodeAffinity(required: NodeSelector(nodeSelectorTerms: [
            NodeSelectorTerm(matchExpressions: [NodeSelectorRequirement(key: "topology.kubernetes.io/zone", operator: "In", values: [zone])]),
        ]))
    }
    return volume
}

func makeClass(_ name: String, provisioner: String = driverName, binding: String = "WaitForFirstConsumer",
               zones: [String]? = nil) -> StorageClass {
    var storageClass = StorageClass(metadata: ObjectMeta(name: name), provisioner: provisioner, reclaimPolicy: "Delete",
                                    volumeBindingMode: binding)
    if let zones {
        storageClass.allowedTopologies = [TopologySelectorTerm(matchLabelExpressions: [
            TopologySelectorLabelRequirement(key: "topology.kubernetes.io/zone", values: zones),
        ])]
    }
    return storageClass
}

func taint(_ key: String, _ value: String? = nil, effect: String = "NoSchedule") -> Taint {
    Taint(key: key, value: value, effect: effect)
}

/// `affinity.nodeAffinity.required` with one term of `matchExpressions` or `matchFields`.
func requiredAffinity(key: String, operator op: String, values: [String], fields: Bool = false) -> JSONValue {
    let requirement: JSONValue = ["key": .string(key), "operator": .string(op), "values": .array(values.map { .string($0) })]
    return ["nodeAffinity": ["requiredDuringSchedulingIgnoredDuringExecution": [
        "nodeSelectorTerms": [[fields ? "matchFields" : "matchExpressions": [requirement]]],
    ]]]
}
