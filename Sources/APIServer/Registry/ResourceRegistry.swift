import ClusterAPI

/// The resources this API server serves, keyed for routing.
public struct ResourceRegistry: Sendable {
    public let resources: [ResourceInfo]

    /// group → version → resource → info.
    private let index: [String: [String: [String: ResourceInfo]]]

    public init(resources: [ResourceInfo]) {
        self.resources = resources
        var index: [String: [String: [String: ResourceInfo]]] = [:]
        for r in resources { index[r.group, default: [:]][r.version, default: [:]][r.resource] = r }
        self.index = index
    }

    public func lookup(group: String, version: String, resource: String) -> ResourceInfo? {
        index[group]?[version]?[resource]
    }

    /// Whether `group/version` is served.
    public func serves(group: String, version: String) -> Bool { index[group]?[version] != nil }

    /// The API groups other than core, sorted by name, with their versions.
    public var groups: [(name: String, versions: [String])] {
        index.keys.filter { !$0.isEmpty }.sorted().map { ($0, index[$0]!.keys.sorted()) }
    }

    /// The resources of one group/version, in the order they were registered.
    public func resources(group: String, version: String) -> [ResourceInfo] {
        resources.filter { $0.group == group && $0.version == version }
    }

    /// The resource of a `kind` in `group` (for apply and protobuf bodies).
    public func resource(forKind kind: String, group: String) -> ResourceInfo? {
        resources.first { $0.kind == kind && $0.group == group }
    }

    static let allVerbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]

    /// Ballast's built-in resources: core/v1, storage.k8s.io/v1, coordination.k8s.io/v1, apps/v1,
    /// batch/v1, discovery.k8s.io/v1 and apiextensions.k8s.io/v1 (custom resources are added as their definitions come).
    public static let standard = ResourceRegistry(resources: [
        ResourceInfo(group: "", version: "v1", resource: "namespaces", singularName: "namespace", kind: "Namespace",
                     namespaced: false, shortNames: ["ns"],
                     verbs: ["create", "delete", "get", "list", "patch", "update", "watch"], categories: [],
                     subresources: ["status"], selectableFields: ["status.phase"], strategy: .typed(Namespace.self)),
        ResourceInfo(group: "", version: "v1", resource: "nodes", singularName: "node", kind: "Node",
                     namespaced: false, shortNames: ["no"], verbs: allVerbs, categories: [],
                     subresources: ["status"], selectableFields: ["spec.unschedulable"], strategy: .typed(Node.self)),
        ResourceInfo(group: "", version: "v1", resource: "pods", singularName: "pod", kind: "Pod",
                     namespaced: true, shortNames: ["po"], verbs: allVerbs, categories: ["all"],
                     subresources: ["status", "binding", "log", "exec"],
                     selectableFields: ["spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
                                        "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName"],
                     strategy: .typed(Pod.self)),
        ResourceInfo(group: "", version: "v1", resource: "persistentvolumes", singularName: "persistentvolume",
                     kind: "PersistentVolume", namespaced: false, shortNames: ["pv"], verbs: allVerbs, categories: [],
                     subresources: ["status"], selectableFields: [], strategy: .typed(PersistentVolume.self)),
        ResourceInfo(group: "", version: "v1", resource: "persistentvolumeclaims", singularName: "persistentvolumeclaim",
                     kind: "PersistentVolumeClaim", namespaced: true, shortNames: ["pvc"], verbs: allVerbs, categories: [],
                     subresources: ["status"], selectableFields: [], strategy: .typed(PersistentVolumeClaim.self)),
        ResourceInfo(group: "", version: "v1", resource: "events", singularName: "event", kind: "Event",
                     namespaced: true, shortNames: ["ev"], verbs: allVerbs, categories: [], subresources: [],
                     selectableFields: ["involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                                        "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
                                        "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"],
                     strategy: .typed(Event.self)),
        ResourceInfo(group: "", version: "v1", resource: "services", singularName: "service", kind: "Service",
                     namespaced: true, shortNames: ["svc"], verbs: allVerbs, categories: ["all"],
                     subresources: ["status"], selectableFields: ["spec.clusterIP", "spec.type"], strategy: .typed(Service.self)),
        ResourceInfo(group: "", version: "v1", resource: "endpoints", singularName: "endpoints", kind: "Endpoints",
                     namespaced: true, shortNames: ["ep"], verbs: allVerbs, categories: [], subresources: [],
                     selectableFields: [], strategy: .typed(Endpoints.self)),
        ResourceInfo(group: "", version: "v1", resource: "configmaps", singularName: "configmap", kind: "ConfigMap",
                     namespaced: true, shortNames: ["cm"], verbs: allVerbs, categories: [], subresources: [],
                     selectableFields: [], strategy: .typed(ConfigMap.self)),
        ResourceInfo(group: "", version: "v1", resource: "secrets", singularName: "secret", kind: "Secret",
                     namespaced: true, shortNames: [], verbs: allVerbs, categories: [], subresources: [],
                     selectableFields: ["type"], strategy: .typed(Secret.self)),
        ResourceInfo(group: "storage.k8s.io", version: "v1", resource: "storageclasses", singularName: "storageclass",
                     kind: "StorageClass", namespaced: false, shortNames: ["sc"], verbs: allVerbs, categories: [],
                     subresources: [], selectableFields: [], strategy: .typed(StorageClass.self)),
        ResourceInfo(group: "storage.k8s.io", version: "v1", resource: "volumeattachments", singularName: "volumeattachment",
                     kind: "VolumeAttachment", namespaced: false, shortNames: [], verbs: allVerbs, categories: [],
                     subresources: ["status"], selectableFields: [], strategy: .typed(VolumeAttachment.self)),
        ResourceInfo(group: "storage.k8s.io", version: "v1", resource: "csidrivers", singularName: "csidriver",
                     kind: "CSIDriver", namespaced: false, shortNames: [], verbs: allVerbs, categories: [],
                     subresources: [], selectableFields: [], strategy: .typed(CSIDriver.self)),
        ResourceInfo(group: "storage.k8s.io", version: "v1", resource: "csinodes", singularName: "csinode",
                     kind: "CSINode", namespaced: false, shortNames: [], verbs: allVerbs, categories: [],
                     subresources: [], selectableFields: [], strategy: .typed(CSINode.self)),
        ResourceInfo(group: "coordination.k8s.io", version: "v1", resource: "leases", singularName: "lease",
                     kind: "Lease", namespaced: true, shortNames: [], verbs: allVerbs, categories: [],
                     subresources: [], selectableFields: [], strategy: .typed(Lease.self)),
        ResourceInfo(group: "apiextensions.k8s.io", version: "v1", resource: "customresourcedefinitions",
                     singularName: "customresourcedefinition", kind: "CustomResourceDefinition", namespaced: false,
                     shortNames: ["crd", "crds"], verbs: allVerbs, categories: ["api-extensions"], subresources: ["status"],
                     selectableFields: [], strategy: .typed(CustomResourceDefinition.self)),
        ResourceInfo(group: "apps", version: "v1", resource: "statefulsets", singularName: "statefulset",
                     kind: "StatefulSet", namespaced: true, shortNames: ["sts"], verbs: allVerbs, categories: ["all"],
                     subresources: ["status", "scale"], selectableFields: [], strategy: .typed(StatefulSet.self)),
        ResourceInfo(group: "apps", version: "v1", resource: "deployments", singularName: "deployment",
                     kind: "Deployment", namespaced: true, shortNames: ["deploy"], verbs: allVerbs, categories: ["all"],
                     subresources: ["status", "scale"], selectableFields: [], strategy: .typed(Deployment.self)),
        ResourceInfo(group: "apps", version: "v1", resource: "replicasets", singularName: "replicaset",
                     kind: "ReplicaSet", namespaced: true, shortNames: ["rs"], verbs: allVerbs, categories: ["all"],
                     subresources: ["status", "scale"], selectableFields: [], strategy: .typed(ReplicaSet.self)),
        ResourceInfo(group: "apps", version: "v1", resource: "controllerrevisions", singularName: "controllerrevision",
                     kind: "ControllerRevision", namespaced: true, shortNames: [], verbs: allVerbs, categories: [],
                     subresources: [], selectableFields: [], strategy: .typed(ControllerRevision.self)),
        ResourceInfo(group: "discovery.k8s.io", version: "v1", resource: "endpointslices", singularName: "endpointslice",
                     kind: "EndpointSlice", namespaced: true, shortNames: [], verbs: allVerbs, categories: [],
                     subresources: [], selectableFields: [], strategy: .typed(EndpointSlice.self)),
        ResourceInfo(group: "batch", version: "v1", resource: "jobs", singularName: "job",
                     kind: "Job", namespaced: true, shortNames: [], verbs: allVerbs, categories: ["all"],
                     subresources: ["status"], selectableFields: ["status.successful"], strategy: .typed(Job.self)),
    ])
}
