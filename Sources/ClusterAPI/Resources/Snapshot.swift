// snapshot.storage.k8s.io/v1 objects. The API server serves them from CustomResourceDefinitions
// (fixtures/crds/), whose structural schemas validate them; these conformances are what the
// typed client needs, and the metadata rules any object has.

extension VolumeSnapshotClass {
    /// Served by a CustomResourceDefinition: its schema defaults.
    public mutating func applyDefaults() {}
    public func validate() -> [FieldError] { Validation.objectMeta(metadata, namespaced: false, name: Validation.nameIsDNSSubdomain) }
    public func validateUpdate(old: VolumeSnapshotClass) -> [FieldError] {
        (Validation.objectMetaUpdate(metadata, old.metadata) + validate()).deduplicated()
    }

    /// The annotation that makes a class its driver's default (`snapshot.storage.kubernetes.io/is-default-class: "true"`).
    public static let isDefaultAnnotation = "snapshot.storage.kubernetes.io/is-default-class"

    /// Whether the class is annotated as its driver's default.
    public var isDefault: Bool { metadata.annotations?[Self.isDefaultAnnotation] == "true" }
}

extension VolumeSnapshot {
    public mutating func applyDefaults() {}
    public func validate() -> [FieldError] { Validation.objectMeta(metadata, namespaced: true, name: Validation.nameIsDNSSubdomain) }
    public func validateUpdate(old: VolumeSnapshot) -> [FieldError] {
        (Validation.objectMetaUpdate(metadata, old.metadata) + validate()).deduplicated()
    }

    /// `namespace/name`.
    public var key: String { "\(metadata.namespace ?? "")/\(metadata.name ?? "")" }
    /// Whether the snapshot exists in the storage system and can be restored from.
    public var isReadyToUse: Bool { status?.readyToUse == true }
}

extension VolumeSnapshotContent {
    public mutating func applyDefaults() {}
    public func validate() -> [FieldError] { Validation.objectMeta(metadata, namespaced: false, name: Validation.nameIsDNSSubdomain) }
    public func validateUpdate(old: VolumeSnapshotContent) -> [FieldError] {
        (Validation.objectMetaUpdate(metadata, old.metadata) + validate()).deduplicated()
    }

    /// The CSI snapshot id: the status's once known, else a pre-provisioned content's handle.
    public var snapshotHandle: String? {
        if let handle = status?.snapshotHandle, !handle.isEmpty { return handle }
        if let handle = spec.source.snapshotHandle, !handle.isEmpty { return handle }
        return nil
    }
}
