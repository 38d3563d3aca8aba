// Calls with the options controllers need beyond the plain verbs: deletes with preconditions
// and a grace period (as client-go's `metav1.DeleteOptions`), and merge patches that carry a
// resourceVersion precondition (how a controller removes its own finalizer without racing
// another writer).
import ClusterAPI
import Foundation
import HTTPKit

/// `metav1.DeletionPropagation`: what happens to an object's dependents (the objects whose
/// `ownerReferences` name it) when it is deleted.
public enum PropagationPolicy: String, Sendable, Hashable, CaseIterable {
    /// The dependents stay; the garbage collector removes their reference to the owner first.
    case orphan = "Orphan"
    /// The owner goes at once; the garbage collector deletes the dependents afterwards.
    case background = "Background"
    /// The owner stays (`foregroundDeletion`) until its blocking dependents are deleted.
    case foreground = "Foreground"
}

/// `metav1.DeleteOptions` as controllers use them.
public struct DeleteOptions: Sendable, Hashable {
    /// Delete only the object with this uid (409 Conflict otherwise): never a re-created namesake.
    public var preconditionUID: String?
    /// Delete only at this resourceVersion (409 Conflict otherwise).
    public var preconditionResourceVersion: String?
    /// Seconds before a graceful deletion completes; 0 deletes at once.
    public var gracePeriodSeconds: Int64?
    /// What becomes of the dependents; nil: the server's default (Background), or the
    /// policy a finalizer already on the object stands for.
    public var propagationPolicy: PropagationPolicy?

    public init(preconditionUID: String? = nil, preconditionResourceVersion: String? = nil, gracePeriodSeconds: Int64? = nil,
                propagationPolicy: PropagationPolicy? = nil) {
        self.preconditionUID = preconditionUID
        self.preconditionResourceVersion = preconditionResourceVersion
        self.gracePeriodSeconds = gracePeriodSeconds
        self.propagationPolicy = propagationPolicy
    }

    var body: JSONValue {
        var object: [String: JSONValue] = ["kind": "DeleteOptions", "apiVersion": "v1"]
        var preconditions: [String: JSONValue] = [:]
        if let preconditionUID { preconditions["uid"] = .string(preconditionUID) }
        if let preconditionResourceVersion { preconditions["resourceVersion"] = .string(preconditionResourceVersion) }
        if !preconditions.isEmpty { object["preconditions"] = .object(preconditions) }
        if let gracePeriodSeconds { object["gracePeriodSeconds"] = .integer(gracePeriodSeconds) }
        if let propagationPolicy { object["propagationPolicy"] = .string(propagationPolicy.rawValue) }
        return .object(object)
    }
}

extension KubeClient {
    /// Deletes with `options`; returns the object's last state (with a deletion timestamp when
    /// finalizers or a grace period hold it), or nil when the server answered with a Status.
    @discardableResult
    public func delete<T: APIObject>(_ type: T.Type, name: String, namespace: String? = nil, options: DeleteOptions) async throws -> T? {
        let body = try JSONEncoder().encode(options.body)
        let response = try await send(.DELETE, ResourcePath.object(type, name: name, namespace: namespace), json: body)
        guard (200..<300).contains(response.status.code) else { throw Self.apiError(Int(response.status.code), response.body) }
        return try? JSONDecoder().decode(T.self, from: response.body)
    }

    /// Sets `metadata.finalizers` to `finalizers` by a merge patch that carries the object's
    /// resourceVersion, so that it fails with 409 when the object changed since it was read.
    public func setFinalizers<T: APIObject>(of object: T, to finalizers: [String]) async throws -> T {
        var metadata: [String: JSONValue] = ["finalizers": .array(finalizers.map { .string($0) })]
        if let version = object.metadata.resourceVersion { metadata["resourceVersion"] = .string(version) }
        return try await mergePatch(T.self, name: object.metadata.name ?? "", namespace: object.metadata.namespace,
                                    patch: .object(["metadata": .object(metadata)]))
    }

    /// Adds `finalizer` (no-op when present), with the resourceVersion precondition.
    public func addFinalizer<T: APIObject>(_ finalizer: String, to object: T) async throws -> T {
        let current = object.metadata.finalizers ?? []
        if current.contains(finalizer) { return object }
        return try await setFinalizers(of: object, to: current + [finalizer])
    }

    /// Removes `finalizer` (no-op when absent), with the resourceVersion precondition.
    public func removeFinalizer<T: APIObject>(_ finalizer: String, from object: T) async throws -> T {
        let current = object.metadata.finalizers ?? []
        if !current.contains(finalizer) { return object }
        return try await setFinalizers(of: object, to: current.filter { $0 != finalizer })
    }

    /// The error an answer with status `code` and `body` stands for: the Status it carries, or
    /// one made of the code and the body's first bytes.
    public static func apiError(_ code: Int, _ body: Data) -> APIError {
        if let status = try? JSONDecoder().decode(Status.self, from: body), status.kind == "Status" || status.reason != nil {
            return .status(code: code, status: status)
        }
        var status = Status()
        status.code = Int32(code)
        status.message = String(decoding: body.prefix(512), as: UTF8.self)
        return .status(code: code, status: status)
    }
}
