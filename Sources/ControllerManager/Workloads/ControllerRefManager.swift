// Kubernetes' ControllerRefManager (pkg/controller/controller_ref_manager.go): which objects a
// workload controller owns. An object belongs to the controller its `controller: true` owner
// reference names; an orphan whose labels match the controller's selector is adopted; an object
// the controller owns whose labels no longer match is released. Both writes are strategic merge
// patches of `metadata.ownerReferences` (merged by uid) that also carry the object's uid, so a
// re-created namesake is never adopted or released by mistake (the API server refuses a patch
// that would change the uid). Before the first adoption of a pass, the controller itself is read
// again from the API server (not the cache): a controller being deleted must not adopt.
//
// | object                                  | selector matches | action             |
// |-----------------------------------------|------------------|--------------------|
// | controlled by another                   | —                | ignored            |
// | controlled by this one                  | yes              | claimed            |
// | controlled by this one                  | no               | released (unless this one is being deleted) |
// | orphan, not being deleted, same namespace | yes            | adopted, claimed (unless this one is being deleted) |
import APIClient
import ClusterAPI
import Foundation

struct ControllerRefManager<Owner: APIObject>: Sendable {
    let client: KubeClient
    let owner: Owner
    let selector: LabelSelector
    /// Reads the owner again from the API server; throws when it is gone, replaced or being deleted.
    let recheck: @Sendable () async throws -> Void

    /// The owner reference this controller writes: `controller: true, blockOwnerDeletion: true`.
    var controllerRef: OwnerReference {
        OwnerReference(apiVersion: Owner.defaultAPIVersion, kind: Owner.defaultKind, name: owner.metadata.name ?? "",
                       uid: owner.metadata.uid ?? "", controller: true, blockOwnerDeletion: true)
    }

    /// The objects of `candidates` this controller owns after adopting and releasing; the
    /// first error (the pass is retried) after trying every object.
    func claim<Object: APIObject>(_ candidates: [Object]) async throws -> [Object] {
        var claimed: [Object] = []
        var firstError: (any Error)?
        var rechecked = false
        let ownerUID = owner.metadata.uid ?? ""
        let ownerDeleting = owner.metadata.deletionTimestamp != nil
        for object in candidates {
            let matches = selector.matches(object.metadata.labels ?? [:])
            if let ref = object.controllerRef {
                guard ref.uid == ownerUID else { continue }
                if matches {
                    claimed.append(object)
                    continue
                }
                if ownerDeleting { continue }
                do {
                    try await release(object)
                } catch let error as APIError where error.isNotFound || error.code == 422 {
                    // Gone, or being deleted / replaced: nothing to release.
                } catch {
                    firstError = firstError ?? error
                }
                continue
            }
            guard !ownerDeleting, matches, object.metadata.deletionTimestamp == nil,
                  object.metadata.namespace == owner.metadata.namespace else { continue }
            do {
                if !rechecked {
                    try await recheck()
                    rechecked = true
                }
                claimed.append(try await adopt(object))
            } catch let error as APIError where error.isNotFound {
                continue
            } catch {
                firstError = firstError ?? error
            }
        }
        if let firstError { throw firstError }
        return claimed
    }

    /// Makes this controller the object's controller.
    func adopt<Object: APIObject>(_ object: Object) async throws -> Object {
        let ref = controllerRef
        let patch: JSONValue = .object(["metadata": .object([
            "ownerReferences": .array([.object([
                "apiVersion": .string(ref.apiVersion), "kind": .string(ref.kind), "name": .string(ref.name),
                "uid": .string(ref.uid), "controller": .bool(true), "blockOwnerDeletion": .bool(true),
            ])]),
            "uid": .string(object.metadata.uid ?? ""),
        ])])
        return try await client.strategicPatch(Object.self, name: object.metadata.name ?? "", namespace: object.metadata.namespace,
                                               patch: patch)
    }

    /// Removes this controller's owner reference from the object.
    func release<Object: APIObject>(_ object: Object) async throws {
        let patch: JSONValue = .object(["metadata": .object([
            "ownerReferences": .array([.object(["$patch": .string("delete"), "uid": .string(owner.metadata.uid ?? "")])]),
            "uid": .string(object.metadata.uid ?? ""),
        ])])
        let _: Object = try await client.strategicPatch(Object.self, name: object.metadata.name ?? "",
                                                        namespace: object.metadata.namespace, patch: patch)
    }
}

extension ControllerRefManager {
    /// A manager whose recheck is upstream's `RecheckDeletionTimestamp`: a fresh read of the
    /// owner that must have the same uid and no deletion timestamp.
    static func rechecking(client: KubeClient, owner: Owner, selector: LabelSelector) -> ControllerRefManager {
        let name = owner.metadata.name ?? "", namespace = owner.metadata.namespace, uid = owner.metadata.uid ?? ""
        return ControllerRefManager(client: client, owner: owner, selector: selector) {
            let fresh = try await client.get(Owner.self, name: name, namespace: namespace)
            if fresh.metadata.uid != uid {
                throw WorkloadError("original \(Owner.defaultKind) \(namespace ?? "")/\(name) is gone: got uid \(fresh.metadata.uid ?? ""), wanted \(uid)")
            }
            if let deleted = fresh.metadata.deletionTimestamp {
                throw WorkloadError("\(namespace ?? "")/\(name) has just been deleted at \(deleted.rfc3339)")
            }
        }
    }
}

extension APIObject {
    /// The owner reference with `controller: true`, if any (`metav1.GetControllerOf`).
    var controllerRef: OwnerReference? { metadata.ownerReferences?.first { $0.controller == true } }

    /// "namespace/name".
    var namespacedName: String { "\(metadata.namespace ?? "")/\(metadata.name ?? "")" }
}

/// A workload controller's own failure (not the API server's answer).
struct WorkloadError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension KubeClient {
    /// A strategic merge patch (`application/strategic-merge-patch+json`).
    func strategicPatch<T: APIObject>(_ type: T.Type, name: String, namespace: String?, patch: JSONValue) async throws -> T {
        let response = try await send(.PATCH, ResourcePath.object(type, name: name, namespace: namespace), json: patch.jsonData,
                                      contentType: "application/strategic-merge-patch+json")
        guard (200..<300).contains(response.status.code) else {
            throw KubeClient.apiError(Int(response.status.code), response.body)
        }
        return try JSONValueDecoder().decode(T.self, from: JSONValue(parsing: response.body))
    }
}


/// What an error says in an event or a condition: the API server's own message (as Kubernetes'
/// `err.Error()` of a StatusError reads), else the error's description.
func apiMessage(_ error: any Error) -> String {
    if case .status(_, let status)? = error as? APIError, let message = status.message, !message.isEmpty { return message }
    return "\(error)"
}
