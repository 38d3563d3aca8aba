// storage.k8s.io/v1 defaulting (storage/v1 defaults.go) and validation
// (pkg/apis/storage/validation).

extension StorageClass {
    static let reclaimPolicies = ["Delete", "Retain"]
    static let bindingModes = ["Immediate", "WaitForFirstConsumer"]

    /// `SetDefaults_StorageClass`: reclaim policy `Delete`, binding mode `Immediate`.
    public mutating func applyDefaults() {
        if reclaimPolicy == nil { reclaimPolicy = "Delete" }
        if volumeBindingMode == nil { volumeBindingMode = "Immediate" }
    }

    /// Create validation (`ValidateStorageClass`).
    public func validate() -> [FieldError] {
        var errors = Validation.objectMeta(metadata, namespaced: false, name: Validation.nameIsDNSSubdomain)
        if provisioner.isEmpty {
            errors.append(.required("provisioner"))
        } else {
            errors += LabelValidation.qualifiedNameErrors(provisioner.lowercased()).map {
                .invalid("provisioner", provisioner, $0)
            }
        }
        let parameters = parameters ?? [:]
        if parameters.count > 512 {
            errors.append(.tooLong("parameters", max: 512))
        } else {
            var size = 0
            for key in parameters.keys.sorted() {
                if key.isEmpty { errors.append(.invalid("parameters", key, "field can not be empty.")) }
                size += key.utf8.count + parameters[key]!.utf8.count
            }
            if size > 256 * 1024 { errors.append(.tooLong("parameters", max: 256 * 1024)) }
        }
        if let policy = reclaimPolicy, !policy.isEmpty, !Self.reclaimPolicies.contains(policy) {
            errors.append(.notSupported("reclaimPolicy", policy, Self.reclaimPolicies))
        }
        if let mode = volumeBindingMode {
            if !Self.bindingModes.contains(mode) { errors.append(.notSupported("volumeBindingMode", mode, Self.bindingModes)) }
        } else {
            errors.append(.required("volumeBindingMode"))
        }
        return errors.deduplicated()
    }

    /// Update validation (`ValidateStorageClassUpdate`): parameters, provisioner, reclaim
    /// policy and binding mode are immutable.
    public func validateUpdate(old: StorageClass) -> [FieldError] {
        var errors = Validation.objectMetaUpdate(metadata, old.metadata) + validate()
        if (parameters ?? [:]) != (old.parameters ?? [:]) {
            errors.append(.forbidden("parameters", "updates to parameters are forbidden."))
        }
        if provisioner != old.provisioner {
            errors.append(.forbidden("provisioner", "updates to provisioner are forbidden."))
        }
        if reclaimPolicy != old.reclaimPolicy {
            errors.append(.forbidden("reclaimPolicy", "updates to reclaimPolicy are forbidden."))
        }
        errors += Validation.immutableString(volumeBindingMode, old.volumeBindingMode, "volumeBindingMode")
        return errors.deduplicated()
    }
}

extension VolumeAttachment {
    /// VolumeAttachments have no defaults.
    public mutating func applyDefaults() {}

    /// Create validation (`ValidateVolumeAttachment` and `ValidateVolumeAttachmentV1`).
    public func validate() -> [FieldError] {
        var errors = Validation.objectMeta(metadata, namespaced: false, name: Validation.nameIsDNSSubdomain)
        if spec.attacher.isEmpty { errors.append(.required("spec.attacher")) }
        let source = spec.source
        let sourcePath: FieldPath = "spec.source"
        switch (source.persistentVolumeName, source.inlineVolumeSpec) {
        case (nil, nil):
            errors.append(.required(sourcePath, "must specify exactly one of inlineVolumeSpec and persistentVolumeName"))
        case (.some, .some):
            errors.append(.forbidden(sourcePath, "must specify exactly one of inlineVolumeSpec and persistentVolumeName"))
        case (let name?, nil):
            if name.isEmpty {
                errors.append(.required(sourcePath.child("persistentVolumeName"), "must specify non empty persistentVolumeName"))
            }
        case (nil, let inline?):
            errors += inline.validate(path: sourcePath.child("inlineVolumeSpec"), inline: true)
        }
        errors += LabelValidation.dns1123SubdomainErrors(spec.nodeName).map { .invalid("spec.nodeName", spec.nodeName, $0) }
        if let status {
            let size = (status.attachmentMetadata ?? [:]).reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count }
            if size > 256 * 1024 { errors.append(.tooLong("status.attachmentMetadata", max: 256 * 1024)) }
            for (error, name) in [(status.attachError, "attachError"), (status.detachError, "detachError")] {
                if let message = error?.message, message.utf8.count > 1024 {
                    errors.append(.tooLong(FieldPath("status").child(name, "message"), max: 256 * 1024))
                }
            }
        }
        errors += Validation.csiDriverName(spec.attacher, "spec.attacher")
        if let name = source.persistentVolumeName, !name.isEmpty {
            errors += Validation.dns1123Subdomain(name, "spec.source.persistentVolumeName")
        }
        return errors.deduplicated()
    }

    /// Update validation (`ValidateVolumeAttachmentUpdate`): the spec is immutable.
    public func validateUpdate(old: VolumeAttachment) -> [FieldError] {
        var errors = Validation.objectMetaUpdate(metadata, old.metadata) + validate()
        if spec != old.spec { errors.append(.invalid("spec", literal: compactJSON(spec), "field is immutable")) }
        return errors.deduplicated()
    }
}

extension CSIDriver {
    static let lifecycleModes = ["Persistent", "Ephemeral"]
    static let fsGroupPolicies = ["File", "None", "ReadWriteOnceWithFSType"]

    /// `SetDefaults_CSIDriver`.
    public mutating func applyDefaults() {
        if spec.attachRequired == nil { spec.attachRequired = true }
        if spec.podInfoOnMount == nil { spec.podInfoOnMount = false }
        if spec.storageCapacity == nil { spec.storageCapacity = false }
        if spec.fsGroupPolicy == nil { spec.fsGroupPolicy = "ReadWriteOnceWithFSType" }
        if (spec.volumeLifecycleModes ?? []).isEmpty { spec.volumeLifecycleModes = ["Persistent"] }
        if spec.requiresRepublish == nil { spec.requiresRepublish = false }
        if spec.seLinuxMount == nil { spec.seLinuxMount = false }
    }

    /// Create validation (`ValidateCSIDriver`). Name errors use the path `name`, as in
    /// Kubernetes; the required flags are reported as Kubernetes spells them
    /// (`spec.attachedRequired`).
    public func validate() -> [FieldError] {
        var errors = Validation.csiDriverName(metadata.name ?? "", "name")
        errors += Validation.objectMetaCommon(metadata, namespaced: false)
        let path: FieldPath = "spec"
        if spec.attachRequired == nil { errors.append(.required(path.child("attachedRequired"))) }
        if spec.podInfoOnMount == nil { errors.append(.required(path.child("podInfoOnMount"))) }
        if spec.storageCapacity == nil { errors.append(.required(path.child("storageCapacity"))) }
        if let policy = spec.fsGroupPolicy, !Self.fsGroupPolicies.contains(policy) {
            errors.append(.notSupported(path.child("fsGroupPolicy"), policy, Self.fsGroupPolicies))
        }
        for mode in spec.volumeLifecycleModes ?? [] where !Self.lifecycleModes.contains(mode) {
            errors.append(.notSupported(path.child("volumeLifecycleModes"), mode, Self.lifecycleModes))
        }
        if spec.seLinuxMount == nil { errors.append(.required(path.child("seLinuxMount"))) }
        if let period = spec.nodeAllocatableUpdatePeriodSeconds, period < 10 {
            errors.append(
                .invalid(path.child("nodeAllocatableUpdatePeriodSeconds"), number: period,
                    "must be greater than or equal to 10 seconds"))
        }
        return errors.deduplicated()
    }

    /// Update validation (`ValidateCSIDriverUpdate`): `attachRequired` and
    /// `volumeLifecycleModes` are immutable.
    public func validateUpdate(old: CSIDriver) -> [FieldError] {
        var errors = Validation.objectMetaUpdate(metadata, old.metadata) + validate()
        if spec.attachRequired != old.spec.attachRequired {
            errors.append(
                .invalid("spec.attachedRequired", literal: spec.attachRequired.map { String($0) } ?? "null", "field is immutable"))
        }
        if (spec.volumeLifecycleModes ?? []) != (old.spec.volumeLifecycleModes ?? []) {
            errors.append(
                .invalid("spec.volumeLifecycleModes",
                    literal: goStringSlice(spec.volumeLifecycleModes ?? [], type: "storage.VolumeLifecycleMode"),
                    "field is immutable"))
        }
        return errors.deduplicated()
    }
}

extension CSINode {
    /// CSINodes have no defaults.
    public mutating func applyDefaults() {}

    /// Create validation (`ValidateCSINode`).
    public func validate() -> [FieldError] {
        var errors = Validation.objectMeta(metadata, namespaced: false, name: Validation.nameIsDNSSubdomain)
        var names = Set<String>()
        for (index, driver) in spec.drivers.enumerated() {
            let path = FieldPath("spec.drivers").index(index)
            errors += Validation.csiDriverName(driver.name, path.child("name"))
            if driver.nodeID.isEmpty { errors.append(.required(path.child("nodeID"))) }
            if driver.nodeID.utf8.count > 128 {
                errors.append(.invalid(path.child("nodeID"), driver.nodeID, "must be 128 characters or less"))
            }
            if let count = driver.allocatable?.count, count < 0 {
                errors.append(.invalid(path.child("allocatable", "count"), number: count, "must be greater than or equal to 0"))
            }
            if names.contains(driver.name) { errors.append(.duplicate(path.child("name"), driver.name)) }
            names.insert(driver.name)
            var keys = Set<String>()
            for key in driver.topologyKeys ?? [] {
                if key.isEmpty { errors.append(.required(path)) }
                if keys.contains(key) { errors.append(.duplicate(path, key)) }
                keys.insert(key)
                errors += LabelValidation.qualifiedNameErrors(key).map {
                    .invalid(path, literal: goStringSlice(driver.topologyKeys ?? []), $0)
                }
            }
        }
        return errors.deduplicated()
    }

    /// Update validation (`ValidateCSINodeUpdate`): an existing driver entry is immutable.
    public func validateUpdate(old: CSINode) -> [FieldError] {
        var errors = Validation.objectMetaUpdate(metadata, old.metadata) + validate()
        for previous in old.spec.drivers {
            for driver in spec.drivers where driver.name == previous.name && driver != previous {
                errors.append(.invalid("CSINodeDriver", literal: compactJSON(driver), "field is immutable"))
            }
        }
        return errors.deduplicated()
    }
}
