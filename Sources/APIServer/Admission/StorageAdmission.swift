// The storage admission plugins of kube-apiserver, run after defaulting and validation of a
// write and before it is stored:
//
// | plugin                            | on                | does                                                      |
// |-----------------------------------|-------------------|-----------------------------------------------------------|
// | DefaultStorageClass               | PVC create        | a claim that names no class gets the default class        |
// | StorageObjectInUseProtection      | PVC and PV create | adds `kubernetes.io/pvc-protection` / `pv-protection`     |
// | PersistentVolumeClaimResize       | PVC update        | growing a claim needs a class with allowVolumeExpansion   |
//
// (Shrinking a claim below its capacity is refused by validation, ClusterAPI's
// `PersistentVolumeClaim.validateUpdate`: 422 `field can not be less than status.capacity`.)
import ClusterAPI
import Foundation

public enum StorageAdmission {
    /// The plugin names, as kube-apiserver's `--disable-admission-plugins` takes them.
    public static let plugins: Set<String> = ["DefaultStorageClass", "StorageObjectInUseProtection", "PersistentVolumeClaimResize"]

    static let pvcProtectionFinalizer = "kubernetes.io/pvc-protection"
    static let pvProtectionFinalizer = "kubernetes.io/pv-protection"
    static let defaultClassAnnotation = "storageclass.kubernetes.io/is-default-class"
    static let betaDefaultClassAnnotation = "storageclass.beta.kubernetes.io/is-default-class"
    static let betaClassAnnotation = "volume.beta.kubernetes.io/storage-class"

    /// The mutating plugins on create. `classes` lists the StorageClasses (read only when needed).
    static func admitCreate(_ object: JSONValue, resource: String, disabled: Set<String> = [],
                            classes: () async throws(APIError) -> [JSONValue]) async throws(APIError) -> JSONValue {
        var object = object
        let protect = !disabled.contains("StorageObjectInUseProtection")
        switch resource {
        case "persistentvolumeclaims":
            if !disabled.contains("DefaultStorageClass"), object["spec"]?["storageClassName"] == nil, object["metadata"]?["annotations"]?[betaClassAnnotation] == nil,
               let name = defaultClass(try await classes()) {
                object["spec"]?["storageClassName"] = .string(name)
            }
            if protect { addFinalizer(pvcProtectionFinalizer, to: &object) }
        case "persistentvolumes":
            if protect { addFinalizer(pvProtectionFinalizer, to: &object) }
        default:
            break
        }
        return object
    }

    /// The validating plugins on update. `storageClass` reads a class by name (nil: none).
    static func admitUpdate(old: JSONValue, new: JSONValue, resource: String, subresource: String,
                            storageClass: (String) async throws(APIError) -> JSONValue?) async throws(APIError) {
        guard resource == "persistentvolumeclaims", subresource.isEmpty else { return }
        guard let newSize = quantity(new["spec"]?["resources"]?["requests"]?["storage"]),
              let oldSize = quantity(old["spec"]?["resources"]?["requests"]?["storage"]), newSize > oldSize else { return }
        let name = new["metadata"]?["name"]?.stringValue ?? ""
        let forbidden = APIError(.forbidden, "persistentvolumeclaims \"\(name)\" is forbidden: only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize",
                                 details: StatusDetails(name: name, kind: "persistentvolumeclaims"))
        let className = new["spec"]?["storageClassName"]?.stringValue
            ?? new["metadata"]?["annotations"]?[betaClassAnnotation]?.stringValue ?? ""
        guard !className.isEmpty, let storageClass = try await storageClass(className),
              storageClass["allowVolumeExpansion"]?.boolValue == true else { throw forbidden }
    }

    /// The default class: marked default, the newest when several are (ties: by name), as the
    /// DefaultStorageClass plugin chooses.
    static func defaultClass(_ classes: [JSONValue]) -> String? {
        let defaults = classes.filter {
            let annotations = $0["metadata"]?["annotations"]
            return annotations?[defaultClassAnnotation]?.stringValue == "true" || annotations?[betaDefaultClassAnnotation]?.stringValue == "true"
        }
        let newest = defaults.max { a, b in
            let ta = a["metadata"]?["creationTimestamp"]?.stringValue ?? "", tb = b["metadata"]?["creationTimestamp"]?.stringValue ?? ""
            if ta != tb { return ta < tb }
            return (a["metadata"]?["name"]?.stringValue ?? "") > (b["metadata"]?["name"]?.stringValue ?? "")
        }
        return newest?["metadata"]?["name"]?.stringValue
    }

    static func addFinalizer(_ finalizer: String, to object: inout JSONValue) {
        var finalizers = object["metadata"]?["finalizers"]?.arrayValue ?? []
        if finalizers.contains(.string(finalizer)) { return }
        finalizers.append(.string(finalizer))
        object["metadata"]?["finalizers"] = .array(finalizers)
    }

    static func quantity(_ value: JSONValue?) -> Quantity? {
        guard let value else { return nil }
        if let text = value.stringValue { return try? Quantity(text) }
        if let number = value.int64Value { return Quantity(number) }
        return nil
    }
}

extension APIHandler {
    /// Runs the storage admission plugins on a new object (see `StorageAdmission`).
    func admitCreate(_ object: JSONValue, info: ResourceInfo) async throws(APIError) -> JSONValue {
        if info.group == "apiextensions.k8s.io", info.resource == "customresourcedefinitions" {
            // Its objects are deleted before it goes (apiextensions-apiserver's finalizer).
            var object = object
            StorageAdmission.addFinalizer(DefinitionRegistrar.cleanupFinalizer, to: &object)
            return object
        }
        guard info.group.isEmpty, ["persistentvolumeclaims", "persistentvolumes"].contains(info.resource) else { return object }
        return try await StorageAdmission.admitCreate(object, resource: info.resource, disabled: disabledAdmissionPlugins) { () async throws(APIError) -> [JSONValue] in
            guard let classes = registry.lookup(group: "storage.k8s.io", version: "v1", resource: "storageclasses") else { return [] }
            return try await store.list(prefix: classes.listPrefix(namespace: nil), limit: 0, continueAfter: nil, revision: 0) { _ in true }.items
        }
    }

    /// Runs the storage admission plugins on an update (see `StorageAdmission`).
    func admitUpdate(old: JSONValue, new: JSONValue, info: ResourceInfo, subresource: String) async throws(APIError) {
        guard info.group.isEmpty, info.resource == "persistentvolumeclaims",
              !disabledAdmissionPlugins.contains("PersistentVolumeClaimResize") else { return }
        try await StorageAdmission.admitUpdate(old: old, new: new, resource: info.resource, subresource: subresource) {
            name throws(APIError) -> JSONValue? in
            guard let classes = registry.lookup(group: "storage.k8s.io", version: "v1", resource: "storageclasses") else { return nil }
            return try await store.get(classes.key(namespace: nil, name: name))?.object
        }
    }
}
