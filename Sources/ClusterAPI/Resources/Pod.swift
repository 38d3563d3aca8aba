// What a pod's own fields say about it, apart from defaulting and validation: the tag an
// image reference names, the volume sources a volume sets (in the order Kubernetes checks
// them) and the QoS class the containers' requests and limits give. The pod types themselves
// are generated (Generated/CoreV1.swift); Pod+Defaults.swift and Pod+Validation.swift use these.

extension Container {
    /// The tag Kubernetes' image-name parser reports: `latest` when there is neither tag nor
    /// digest, empty when there is only a digest.
    static func imageTag(_ image: String) -> String {
        var name = Substring(image)
        var hasDigest = false
        if let at = name.firstIndex(of: "@") {
            name = name[..<at]
            hasDigest = true
        }
        let lastSlash = name.lastIndex(of: "/")
        if let colon = name.lastIndex(of: ":"), lastSlash.map({ colon > $0 }) ?? true {
            return String(name[name.index(after: colon)...])
        }
        return hasDigest ? "" : "latest"
    }
}

extension Volume {
    /// Names of the volume sources set on this volume, modelled or kept in `unknownFields`,
    /// in the order Kubernetes checks them. Unknown members that are not volume sources
    /// Kubernetes knows are not counted.
    var sourceNames: [String] {
        var present = Set(unknownFields.keys).intersection(Self.sourceOrder)
        if persistentVolumeClaim != nil { present.insert("persistentVolumeClaim") }
        if emptyDir != nil { present.insert("emptyDir") }
        if hostPath != nil { present.insert("hostPath") }
        if configMap != nil { present.insert("configMap") }
        if secret != nil { present.insert("secret") }
        if csi != nil { present.insert("csi") }
        if ephemeral != nil { present.insert("ephemeral") }
        if projected != nil { present.insert("projected") }
        if downwardAPI != nil { present.insert("downwardAPI") }
        return Self.sourceOrder.filter(present.contains)
    }

    static let sourceOrder = [
        "emptyDir", "hostPath", "gitRepo", "gcePersistentDisk", "awsElasticBlockStore", "secret", "nfs", "iscsi",
        "glusterfs", "flocker", "persistentVolumeClaim", "rbd", "cinder", "cephfs", "quobyte", "downwardAPI", "fc",
        "flexVolume", "configMap", "azureFile", "vsphereVolume", "photonPersistentDisk", "portworxVolume", "azureDisk",
        "storageos", "projected", "scaleIO", "csi", "ephemeral", "image",
    ]
}

extension PodSpec {
    /// The QoS class Kubernetes computes from container requests and limits.
    var qosClass: String {
        let all = containers + (initContainers ?? [])
        var anySet = false
        var guaranteed = true
        for container in all {
            let requests = container.resources?.requests ?? [:]
            let limits = container.resources?.limits ?? [:]
            for name in ["cpu", "memory"] {
                if requests[name].map({ !$0.isZero }) == true || limits[name].map({ !$0.isZero }) == true { anySet = true }
                guard let limit = limits[name], !limit.isZero else {
                    guaranteed = false
                    continue
                }
                if let request = requests[name], request != limit { guaranteed = false }
            }
        }
        if !anySet { return "BestEffort" }
        return guaranteed ? "Guaranteed" : "Burstable"
    }
}
