// PersistentVolume and PersistentVolumeClaim defaulting and validation
// (core/v1 defaults.go, core validation.go).

enum StorageRules {
    static let accessModes = ["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"]
    static let reclaimPolicies = ["Delete", "Recycle", "Retain"]
    static let volumeModes = ["Block", "Filesystem"]

    /// Access-mode checks shared by volumes and claims.
    static func accessModes(_ modes: [String], _ path: FieldPath) -> [FieldError] {
        var errors: [FieldError] = []
        var readWriteOncePod = false
        var others = false
        for mode in modes {
            if !accessModes.contains(mode) { errors.append(.notSupported(path, mode, accessModes)) }
            if mode == "ReadWriteOncePod" {
                readWriteOncePod = true
            } else if accessModes.contains(mode) {
                others = true
            }
        }
        if readWriteOncePod && others {
            errors.append(.forbidden(path, "may not use ReadWriteOncePod with other access modes"))
        }
        return errors
    }

    /// How Kubernetes prints a resource list it rejects as a whole.
    static func resourceList(_ list: [String: Quantity]?) -> String {
        let entries = (list ?? [:]).keys.sorted().map { "\(goQuoted($0)):\(goQuoted(list![$0]!.description))" }
        return "core.ResourceList{" + entries.joined(separator: ", ") + "}"
    }

    static func secretReference(_ reference: SecretReference, _ path: FieldPath) -> [FieldError] {
        var errors: [FieldError] = []
        let name = reference.name ?? ""
        let namespace = reference.namespace ?? ""
        if name.isEmpty {
            errors.append(.required(path.child("name")))
        } else {
            errors += Validation.dns1123Subdomain(name, path.child("name"))
        }
        if namespace.isEmpty {
            errors.append(.required(path.child("namespace")))
        } else {
            errors += Validation.dns1123Label(namespace, path.child("namespace"))
        }
        return errors
    }
}

extension PersistentVolumeSpec {
    /// Source fields Kubernetes knows for volumes, in the order it checks them.
    static let sourceOrder = [
        "hostPath", "gcePersistentDisk", "awsElasticBlockStore", "glusterfs", "flocker", "nfs", "rbd", "quobyte",
        "cephfs", "iscsi", "cinder", "fc", "flexVolume", "azureFile", "vsphereVolume", "photonPersistentDisk",
        "portworxVolume", "azureDisk", "scaleIO", "local", "storageos", "csi",
    ]

    /// The volume sources set, modelled (`hostPath`, `csi`) or kept in `unknownFields`.
    var sourceNames: [String] {
        Self.sourceOrder.filter { name in
            switch name {
            case "hostPath": return hostPath != nil
            case "csi": return csi != nil
            default: return unknownFields[name] != nil
            }
        }
    }

    /// The `persistentVolumeSource` part of the spec, which is immutable.
    var persistentVolumeSource: JSONValue {
        var source: [String: JSONValue] = [:]
        for name in sourceNames {
            switch name {
            case "hostPath": source[name] = try? JSONValue(encoding: hostPath!)
            case "csi": source[name] = try? JSONValue(encoding: csi!)
            default: source[name] = unknownFields[name]
            }
        }
        return .object(source)
    }

    /// `ValidatePersistentVolumeSpec`; `inline` applies the rules for a VolumeAttachment's
    /// `inlineVolumeSpec`.
    func validate(path: FieldPath, inline: Bool = false) -> [FieldError] {
        var errors: [FieldError] = []
        if inline {
            if claimRef != nil { errors.append(.forbidden(path.child("claimRef"), "may not be specified in the context of inline volumes")) }
            if !(capacity ?? [:]).isEmpty {
                errors.append(.forbidden(path.child("capacity"), "may not be specified in the context of inline volumes"))
            }
            if csi == nil { errors.append(.required(path.child("csi"), "has to be specified in the context of inline volumes")) }
        }
        if (accessModes ?? []).isEmpty { errors.append(.required(path.child("accessModes"))) }
        errors += StorageRules.accessModes(accessModes ?? [], path.child("accessModes"))
        if !inline {
            let capacity = capacity ?? [:]
            if capacity.isEmpty { errors.append(.required(path.child("capacity"))) }
            if capacity["storage"] == nil || capacity.count > 1 {
                errors.append(
                    .notSupported(path.child("capacity"), StorageRules.resourceList(capacity), style: .literal, ["storage"]))
            }
            for name in capacity.keys.sorted() {
                errors += Validation.nonNegativeQuantity(capacity[name]!, path.child("capacity").key(name))
                errors += Validation.positiveQuantity(capacity[name]!, path.child("capacity").key(name))
            }
        }
        if let policy = persistentVolumeReclaimPolicy, !policy.isEmpty {
            if inline {
                if policy != "Retain" {
                    errors.append(
                        .forbidden(path.child("persistentVolumeReclaimPolicy"), "may only be Retain in the context of inline volumes"))
                }
            } else if !StorageRules.reclaimPolicies.contains(policy) {
                errors.append(.notSupported(path.child("persistentVolumeReclaimPolicy"), policy, StorageRules.reclaimPolicies))
            }
        }
        if nodeAffinity != nil && inline {
            errors.append(.forbidden(path.child("nodeAffinity"), "may not be specified in the context of inline volumes"))
        }
        let sources = sourceNames
        for (index, source) in sources.enumerated() {
            // flexVolume is counted but never reported as a second source.
            if index > 0 && source != "flexVolume" {
                errors.append(
                    .forbidden(path.child(source == "cephfs" ? "cephFS" : source), "may not specify more than 1 volume type"))
                continue
            }
            switch source {
            case "hostPath":
                errors += Validation.hostPath(hostPath!, path.child("hostPath"))
            case "csi":
                let csi = csi!
                let csiPath = path.child("csi")
                errors += Validation.csiDriverName(csi.driver, csiPath.child("driver"))
                if csi.volumeHandle.isEmpty { errors.append(.required(csiPath.child("volumeHandle"))) }
                for (reference, name) in [
                    (csi.controllerPublishSecretRef, "controllerPublishSecretRef"),
                    (csi.controllerExpandSecretRef, "controllerExpandSecretRef"),
                    (csi.nodePublishSecretRef, "nodePublishSecretRef"),
                    (csi.nodeExpandSecretRef, "nodeExpandSecretRef"),
                ] {
                    if let reference { errors += StorageRules.secretReference(reference, csiPath.child(name)) }
                }
            case "local":
                if nodeAffinity == nil && !inline {
                    errors.append(.required(path.child("nodeAffinity"), "Local volume requires node affinity"))
                }
            default:
                break
            }
        }
        if sources.isEmpty { errors.append(.required(path, "must specify a volume type")) }
        if let hostPath, persistentVolumeReclaimPolicy == "Recycle",
            hostPath.path.split(separator: "/").filter({ $0 != "." }).isEmpty, hostPath.path.hasPrefix("/")
        {
            errors.append(.forbidden(path.child("persistentVolumeReclaimPolicy"), "may not be 'recycle' for a hostPath mount of '/'"))
        }
        if let className = storageClassName, !className.isEmpty {
            if inline {
                errors.append(.forbidden(path.child("storageClassName"), "may not be specified in the context of inline volumes"))
            } else {
                errors += Validation.dns1123Subdomain(className, path.child("storageClassName"))
            }
        }
        if let mode = volumeMode {
            if inline {
                if mode != "Filesystem" {
                    errors.append(
                        .forbidden(path.child("volumeMode"),
                            "may not specify volumeMode other than Filesystem in the context of inline volumes"))
                }
            } else if !StorageRules.volumeModes.contains(mode) {
                errors.append(.notSupported(path.child("volumeMode"), mode, StorageRules.volumeModes))
            }
        }
        return errors
    }
}

extension PersistentVolume {
    /// `SetDefaults_PersistentVolume`: reclaim policy `Retain`, volume mode `Filesystem`,
    /// phase `Pending`, `hostPath.type` empty.
    public mutating func applyDefaults() {
        if (status.phase ?? "").isEmpty { status.phase = "Pending" }
        if (spec.persistentVolumeReclaimPolicy ?? "").isEmpty { spec.persistentVolumeReclaimPolicy = "Retain" }
        if spec.volumeMode == nil { spec.volumeMode = "Filesystem" }
        if spec.hostPath != nil && spec.hostPath?.type == nil { spec.hostPath?.type = "" }
    }

    /// Create validation (`ValidatePersistentVolume`).
    public func validate() -> [FieldError] {
        var errors = Validation.objectMeta(metadata, namespaced: false, name: Validation.nameIsDNSSubdomain)
        errors += spec.validate(path: "spec")
        return errors.deduplicated()
    }

    /// Update validation (`ValidatePersistentVolumeUpdate`): the volume source and
    /// `volumeMode` are immutable; node affinity can only be set when it was unset.
    public func validateUpdate(old: PersistentVolume) -> [FieldError] {
        var errors = Validation.objectMetaUpdate(metadata, old.metadata)
        errors += validate()
        var newSpec = spec
        if old.spec.csi != nil && old.spec.csi?.controllerExpandSecretRef == nil {
            newSpec.csi?.controllerExpandSecretRef = nil
        }
        if newSpec.persistentVolumeSource != old.spec.persistentVolumeSource {
            errors.append(
                .forbidden("spec.persistentvolumesource",
                    "spec.persistentvolumesource is immutable after creation\n"
                        + jsonDiff(old.spec.persistentVolumeSource, newSpec.persistentVolumeSource)))
        }
        errors += Validation.immutableString(spec.volumeMode, old.spec.volumeMode, "volumeMode")
        if let previous = old.spec.nodeAffinity, spec.nodeAffinity != previous {
            errors.append(
                .invalid("nodeAffinity", literal: spec.nodeAffinity.map { compactJSON($0) } ?? "null", "field is immutable"))
        }
        return errors.deduplicated()
    }
}

extension PersistentVolumeClaimSpec {
    /// `ValidatePersistentVolumeClaimSpec`.
    func validate(path: FieldPath) -> [FieldError] {
        var errors: [FieldError] = []
        if (accessModes ?? []).isEmpty {
            errors.append(.required(path.child("accessModes"), "at least 1 access mode is required"))
        }
        if let selector {
            do { _ = try selector.selector() } catch { errors.append(.invalid(path.child("selector"), literal: compactJSON(selector), error.message)) }
        }
        errors += StorageRules.accessModes(accessModes ?? [], path.child("accessModes"))
        let storagePath = path.child("resources").key("storage")
        if let storage = resources?.requests?["storage"] {
            errors += Validation.positiveQuantity(storage, storagePath)
        } else {
            errors.append(.required(storagePath))
        }
        if let className = storageClassName, !className.isEmpty {
            errors += Validation.dns1123Subdomain(className, path.child("storageClassName"))
        }
        if let mode = volumeMode, !StorageRules.volumeModes.contains(mode) {
            errors.append(.notSupported(path.child("volumeMode"), mode, StorageRules.volumeModes))
        }
        func reference(kind: String?, name: String?, apiGroup: String?, _ path: FieldPath) {
            if (name ?? "").isEmpty { errors.append(.required(path.child("name"))) }
            if (kind ?? "").isEmpty { errors.append(.required(path.child("kind"))) }
            let group = apiGroup ?? ""
            if group.isEmpty && kind != "PersistentVolumeClaim" {
                errors.append(.invalid(path, kind ?? "", "must be 'PersistentVolumeClaim' when referencing the default apiGroup"))
            }
            if !group.isEmpty { errors += Validation.dns1123Subdomain(group, path.child("apiGroup")) }
        }
        if let dataSource {
            reference(kind: dataSource.kind, name: dataSource.name, apiGroup: dataSource.apiGroup, path.child("dataSource"))
        }
        if let dataSourceRef {
            reference(kind: dataSourceRef.kind, name: dataSourceRef.name, apiGroup: dataSourceRef.apiGroup, path.child("dataSourceRef"))
            if let namespace = dataSourceRef.namespace, !namespace.isEmpty {
                errors += Validation.dns1123Label(namespace, path.child("dataSourceRef", "namespace"))
            }
        }
        if let ref = dataSourceRef, let namespace = ref.namespace, !namespace.isEmpty {
            if dataSource != nil {
                errors.append(
                    .invalid(path, literal: path.child("dataSource").description,
                        "may not be specified when dataSourceRef.namespace is specified"))
            }
        } else if let source = dataSource, let ref = dataSourceRef,
            source.apiGroup != ref.apiGroup || source.kind != ref.kind || source.name != ref.name
        {
            errors.append(.invalid(path, literal: path.child("dataSource").description, "must match dataSourceRef"))
        }
        return errors
    }
}

extension PersistentVolumeClaim {
    /// `SetDefaults_PersistentVolumeClaim`: volume mode `Filesystem`, phase `Pending`.
    public mutating func applyDefaults() {
        if (status.phase ?? "").isEmpty { status.phase = "Pending" }
        if spec.volumeMode == nil { spec.volumeMode = "Filesystem" }
    }

    /// Create validation (`ValidatePersistentVolumeClaim`).
    public func validate() -> [FieldError] {
        var errors = Validation.objectMeta(metadata, namespaced: true, name: Validation.nameIsDNSSubdomain)
        errors += spec.validate(path: "spec")
        return errors.deduplicated()
    }

    static let betaStorageClassAnnotation = "volume.beta.kubernetes.io/storage-class"

    /// Update validation (`ValidatePersistentVolumeClaimUpdate`). The spec is immutable except:
    /// `volumeName` may be set once; a bound claim's `resources.requests.storage` and
    /// `volumeAttributesClassName` may change; a nil `storageClassName` may be set. Shrinking
    /// below `status.capacity` is forbidden (RecoverVolumeExpansionFailure, on in 1.32).
    /// The claim's status is taken from `old`, as the API server copies it before validating.
    public func validateUpdate(old: PersistentVolumeClaim) -> [FieldError] {
        var errors = Validation.objectMetaUpdate(metadata, old.metadata)
        errors += validate()
        var newClone = spec
        var oldClone = old.spec
        if (old.spec.volumeName ?? "").isEmpty { oldClone.volumeName = newClone.volumeName }
        let oldAnnotation = old.metadata.annotations?[Self.betaStorageClassAnnotation]
        let newAnnotation = metadata.annotations?[Self.betaStorageClassAnnotation]
        if let oldAnnotation, old.spec.storageClassName == nil, spec.storageClassName == oldAnnotation,
            newAnnotation == nil || newAnnotation == oldAnnotation
        {
            newClone.storageClassName = nil
        } else {
            if (newAnnotation ?? "") != (oldAnnotation ?? "") {
                errors.append(
                    .invalid(FieldPath("metadata").child("annotations", Self.betaStorageClassAnnotation), newAnnotation ?? "",
                        "field is immutable"))
            }
            if let newClass = spec.storageClassName, old.spec.storageClassName == nil,
                oldAnnotation == nil || oldAnnotation == newClass
            {
                newClone.storageClassName = oldClone.storageClassName
            }
        }
        let bound = old.status.phase == "Bound"
        if bound, newClone.resources?.requests != nil {
            newClone.resources?.requests?["storage"] = old.spec.resources?.requests?["storage"]
        }
        if bound, newClone.volumeAttributesClassName != nil {
            newClone.volumeAttributesClassName = oldClone.volumeAttributesClassName
        }
        if newClone != oldClone {
            errors.append(
                .forbidden("spec",
                    "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims\n"
                        + jsonDiff(oldClone, newClone)))
        }
        let oldSize = old.spec.resources?.requests?["storage"] ?? .zero
        let newSize = spec.resources?.requests?["storage"] ?? .zero
        let statusSize = old.status.capacity?["storage"] ?? .zero
        if newSize < oldSize && newSize <= statusSize {
            errors.append(.forbidden("spec.resources.requests.storage", "field can not be less than status.capacity"))
        }
        errors += Validation.immutableString(spec.volumeMode, old.spec.volumeMode, "volumeMode")
        if let previous = old.spec.volumeAttributesClassName, previous != spec.volumeAttributesClassName {
            if spec.volumeAttributesClassName == nil {
                errors.append(.forbidden("spec.volumeAttributesClassName", "update from non-nil value to nil is forbidden"))
            } else if spec.volumeAttributesClassName == "" {
                errors.append(
                    .forbidden("spec.volumeAttributesClassName", "update from non-nil value to an empty string is forbidden"))
            }
        }
        return errors.deduplicated()
    }
}
