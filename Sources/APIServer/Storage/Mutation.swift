import ClusterAPI
import Foundation

/// The system fields the server owns, applied to objects before they are stored
/// (Kubernetes' `rest.BeforeCreate` / `BeforeUpdate` and the resources' strategies).
package enum Mutation {
    /// Resources whose create resets `status` (their strategies' `PrepareForCreate`).
    static let statusResetOnCreate: Set<String> = ["pods", "persistentvolumeclaims", "persistentvolumes", "volumeattachments",
                                                   "namespaces", "services", "statefulsets", "deployments",
                                                   "replicasets", "jobs"]

    /// Fills in type, namespace, name (from generateName), uid, creation time and
    /// generation of a new object, then defaults and validates it.
    package static func prepareCreate(_ body: JSONValue, info: ResourceInfo, namespace: String?, now: Date = Date()) throws(APIError) -> JSONValue {
        guard case .object = body else { throw APIError.badRequest("the body must be a JSON object describing one \(info.kind)") }
        var object = body
        try checkType(&object, info)
        var meta = object["metadata"]?.objectValue ?? [:]
        if info.namespaced {
            let bodyNamespace = meta["namespace"]?.stringValue ?? ""
            if let namespace, !bodyNamespace.isEmpty, bodyNamespace != namespace {
                throw APIError.badRequest("the namespace of the provided object (\(bodyNamespace)) does not match the namespace sent on the request (\(namespace))")
            }
            if let namespace { meta["namespace"] = .string(namespace) }
        } else {
            meta["namespace"] = nil
        }
        if (meta["name"]?.stringValue ?? "").isEmpty, let prefix = meta["generateName"]?.stringValue, !prefix.isEmpty {
            meta["name"] = .string(String(prefix.prefix(58)) + randomSuffix())
        }
        meta["uid"] = .string(UUID().uuidString.lowercased())
        meta["creationTimestamp"] = .string(Time(now).rfc3339)
        meta["resourceVersion"] = nil
        meta["deletionTimestamp"] = nil
        meta["deletionGracePeriodSeconds"] = nil
        meta["generation"] = .integer(1)
        meta["selfLink"] = nil
        object["metadata"] = .object(meta)
        if statusResetOnCreate.contains(info.resource) { object["status"] = nil }
        if info.resource == "persistentvolumeclaims" { normalizeDataSources(&object) }
        return try info.strategy.prepareCreate(object, info)
    }

    /// Kubernetes' `NormalizeDataSources` (AnyVolumeDataSource, on by default), on create: a
    /// claim that sets only `dataSource` gets the same reference in `dataSourceRef`, one that
    /// sets only `dataSourceRef` (without a namespace) gets it in `dataSource`. Validation then
    /// holds the two equal.
    static func normalizeDataSources(_ object: inout JSONValue) {
        guard case .object(var spec)? = object["spec"] else { return }
        let source = spec["dataSource"].flatMap { $0 == .null ? nil : $0 }
        let ref = spec["dataSourceRef"].flatMap { $0 == .null ? nil : $0 }
        func copy(_ value: JSONValue, keys: [String]) -> JSONValue {
            var result: [String: JSONValue] = [:]
            for key in keys { if let member = value[key], member != .null { result[key] = member } }
            return .object(result)
        }
        if let source, ref == nil {
            spec["dataSourceRef"] = copy(source, keys: ["apiGroup", "kind", "name"])
        } else if let ref, source == nil, (ref["namespace"]?.stringValue ?? "").isEmpty {
            spec["dataSource"] = copy(ref, keys: ["apiGroup", "kind", "name"])
        } else {
            return
        }
        object["spec"] = .object(spec)
    }

    /// Builds the object an update stores: `new` with the system fields of `old`, the old
    /// status (main resource) or the old everything-but-status (status subresource), the
    /// generation bumped when anything outside metadata and status changed; then validated.
    package static func prepareUpdate(_ new: JSONValue, old: JSONValue, info: ResourceInfo, subresource: String) throws(APIError) -> JSONValue {
        guard case .object = new else { throw APIError.badRequest("the body must be a JSON object describing one \(info.kind)") }
        var object = new
        try checkType(&object, info)
        var meta = object["metadata"]?.objectValue ?? [:]
        let oldMeta = old["metadata"]?.objectValue ?? [:]
        let name = oldMeta["name"]?.stringValue ?? ""
        if let newName = meta["name"]?.stringValue, !newName.isEmpty, newName != name {
            throw APIError.badRequest("the name of the object (\(newName)) does not match the name on the URL (\(name))")
        }
        meta["name"] = oldMeta["name"]
        if info.namespaced {
            let ns = meta["namespace"]?.stringValue ?? ""
            if !ns.isEmpty, ns != oldMeta["namespace"]?.stringValue {
                throw APIError.badRequest("the namespace of the provided object (\(ns)) does not match the namespace sent on the request (\(oldMeta["namespace"]?.stringValue ?? ""))")
            }
            meta["namespace"] = oldMeta["namespace"]
        }
        if (meta["uid"]?.stringValue ?? "").isEmpty { meta["uid"] = oldMeta["uid"] }
        meta["creationTimestamp"] = oldMeta["creationTimestamp"]
        meta["deletionTimestamp"] = oldMeta["deletionTimestamp"]
        meta["deletionGracePeriodSeconds"] = oldMeta["deletionGracePeriodSeconds"]
        meta["generation"] = oldMeta["generation"]
        meta["resourceVersion"] = oldMeta["resourceVersion"]
        meta["selfLink"] = nil
        object["metadata"] = .object(meta)
        if subresource == "status" {
            // Only status (and metadata) change through /status.
            var merged = old
            merged["metadata"] = object["metadata"]
            merged["status"] = object["status"]
            if info.resource == "pods" {
                // Kubernetes' pod status strategy: owner references are not the status writer's
                // (old kubelets corrupted them, breaking garbage collection).
                merged["metadata"]?["ownerReferences"] = old["metadata"]?["ownerReferences"]
            }
            object = merged
        } else if info.hasStatus {
            object["status"] = old["status"]
        }
        if specChanged(object, old) {
            object["metadata"]?["generation"] = .integer((oldMeta["generation"]?.int64Value ?? 0) + 1)
        }
        return try info.strategy.prepareUpdate(object, old, info)
    }

    /// Whether anything outside `metadata` and `status` differs.
    static func specChanged(_ a: JSONValue, _ b: JSONValue) -> Bool {
        var x = a.objectValue ?? [:], y = b.objectValue ?? [:]
        for k in ["metadata", "status", "apiVersion", "kind"] {
            x[k] = nil
            y[k] = nil
        }
        return x != y
    }

    /// Equality that ignores `metadata.resourceVersion` (a no-op write keeps the old one).
    static func sameObject(_ a: JSONValue, _ b: JSONValue) -> Bool {
        var x = a, y = b
        x["metadata"]?["resourceVersion"] = nil
        y["metadata"]?["resourceVersion"] = nil
        return x == y
    }

    /// Defaults `apiVersion`/`kind` from the URL and rejects a body of another type.
    static func checkType(_ object: inout JSONValue, _ info: ResourceInfo) throws(APIError) {
        let apiVersion = object["apiVersion"]?.stringValue ?? ""
        let kind = object["kind"]?.stringValue ?? ""
        if !apiVersion.isEmpty && apiVersion != info.groupVersion {
            throw APIError.badRequest("the API version in the data (\(apiVersion)) does not match the expected API version (\(info.groupVersion))")
        }
        if !kind.isEmpty && kind != info.kind {
            throw APIError.badRequest("the kind in the data (\(kind)) does not match the expected kind (\(info.kind)) of \(info.qualifiedResource)")
        }
        object["apiVersion"] = .string(info.groupVersion)
        object["kind"] = .string(info.kind)
    }

    /// Kubernetes' generated-name suffix: 5 characters without vowels or look-alikes.
    static func randomSuffix() -> String {
        let alphabet = Array("bcdfghjklmnpqrstvwxz2456789")
        return String((0..<5).map { _ in alphabet.randomElement()! })
    }
}
