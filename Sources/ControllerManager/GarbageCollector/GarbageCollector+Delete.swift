// attemptToDelete (upstream's attemptToDeleteItem, classifyReferences, isDangling,
// processDeletingDependentsItem): one object, read live, its owners each read live.
//
// | the object                                     | its owners (each GET in the object's namespace, or cluster-wide) | action |
// |------------------------------------------------|-------------------------------------------|--------|
// | never observed, dependents name it             | —                                         | verify it: gone → every dependent is looked at; there → those naming it otherwise are |
// | gone, or another uid under its name            | —                                         | its dependents are looked at |
// | being deleted with `foregroundDeletion`        | —                                         | no dependent with `blockOwnerDeletion` left: finalizer removed; else those dependents are looked at |
// | being deleted otherwise, or no ownerReferences | —                                         | nothing |
// | some owner solid                               | others gone or waiting in the foreground  | those references removed (strategic merge patch with the object's uid) |
// | no owner solid                                 | some waiting in the foreground, and it has dependents itself | deleted Foreground (its references made non-blocking first if one of its dependents also waits) |
// | no owner solid                                 | otherwise                                 | deleted: Orphan or Foreground when it already carries that finalizer, else Background |
//
// A namespaced object's owners are looked for in its namespace only (a cluster-scoped kind
// cluster-wide): an owner of the same uid elsewhere does not count, and is reported as
// `OwnerRefInvalidNamespace`. A cluster-scoped object naming a namespaced kind is reported and
// left alone.
import APIClient
import ClusterAPI
import Logging

/// Why the garbage collector could not finish with an object (it is retried with back-off,
/// except `namespacedOwnerOfClusterScopedObject`, which no retry can fix).
enum GarbageCollectorError: Error, CustomStringConvertible {
    case unknownKind(apiVersion: String, kind: String)
    case namespacedOwnerOfClusterScopedObject
    case ownersChanged
    case tooManyConflicts

    var description: String {
        switch self {
        case .unknownKind(let apiVersion, let kind): "the server does not serve kind \(kind) of \(apiVersion) (yet)"
        case .namespacedOwnerOfClusterScopedObject: "a cluster-scoped object names a namespaced owner"
        case .ownersChanged: "its ownerReferences changed since they were read; looking again"
        case .tooManyConflicts: "too many conflicting writes; looking again later"
        }
    }
}

extension GarbageCollector {
    /// The worker of the attemptToDelete queue.
    func attemptToDeleteItem(_ uid: String) async -> SyncResult {
        guard let node = graph.node(uid) else { return await verifyUnobservedOwner(uid) }
        do {
            return try await attemptToDelete(node)
        } catch GarbageCollectorError.namespacedOwnerOfClusterScopedObject {
            return .done
        } catch {
            if Task.isCancelled { return .done }
            logger.warning("garbage collector: cannot process object; retrying", metadata: [
                "object": "\(node.identity.kind) \(node.identity.key)", "uid": "\(uid)", "error": "\(error)"])
            return .retry
        }
    }

    private func attemptToDelete(_ node: GraphNode) async throws -> SyncResult {
        let item = node.identity
        if node.beingDeleted && !node.deletingDependents { return .done }
        let resource = try resource(item.apiVersion, item.kind)
        guard let latest = try await live(item, resource) else {
            // Gone, or a namesake: the monitor will report the deletion; its dependents are
            // looked at now.
            enqueueForDeletion(graph.dependents(of: item.uid).map(\.identity.uid))
            return .done
        }
        let finalizers = latest.metadata.finalizers ?? []
        if latest.metadata.deletionTimestamp != nil {
            if finalizers.contains(Self.foregroundDeletion) { return try await processDeletingDependents(item, resource) }
            return .done
        }
        let references = latest.metadata.ownerReferences ?? []
        if references.isEmpty { return .done }
        let owners = try await classify(item, references)
        if !owners.solid.isEmpty {
            let remove = owners.dangling + owners.waiting
            if remove.isEmpty { return .done }
            logger.info("garbage collector: removing references to owners that are gone or being deleted", metadata: [
                "object": "\(item.kind) \(item.key)", "owners": "\(remove.map { "\($0.kind)/\($0.name)" })",
                "kept": "\(owners.solid.map { "\($0.kind)/\($0.name)" })"])
            try await removeOwnerReferences(remove.map(\.uid), from: item, resource)
            return .done
        }
        let dependents = graph.dependents(of: item.uid)
        if !owners.waiting.isEmpty && !dependents.isEmpty {
            if dependents.contains(where: \.deletingDependents) {
                // An owner and one of its dependents both wait for their dependents: make this
                // object's references non-blocking so that the two do not wait for each other.
                try await unblockOwnerReferences(of: item, references, resource)
            }
            logger.info("garbage collector: deleting in the foreground: an owner waits for its dependents, and this object has dependents",
                        metadata: ["object": "\(item.kind) \(item.key)", "dependents": "\(dependents.count)"])
            try await deleteObject(item, resource, resourceVersion: latest.metadata.resourceVersion, owners: references, policy: .foreground)
            return .done
        }
        let policy: PropagationPolicy = finalizers.contains(Self.orphan) ? .orphan
            : finalizers.contains(Self.foregroundDeletion) ? .foreground : .background
        logger.info(owners.waiting.isEmpty ? "garbage collector: deleting an object whose owners are gone"
                        : "garbage collector: deleting an object whose owners are being deleted in the foreground", metadata: [
            "object": "\(item.kind) \(item.key)", "uid": "\(item.uid)",
            "owners": "\(references.map { "\($0.kind)/\($0.name)" })", "propagationPolicy": "\(policy.rawValue)"])
        try await deleteObject(item, resource, resourceVersion: latest.metadata.resourceVersion, owners: references, policy: policy)
        return .done
    }

    /// An owner being deleted in the foreground: it goes once no dependent blocks it.
    private func processDeletingDependents(_ item: ObjectIdentity, _ resource: APIResource) async throws -> SyncResult {
        let blocking = graph.blockingDependents(of: item.uid)
        if blocking.isEmpty {
            if try await removeFinalizer(Self.foregroundDeletion, from: item, resource) {
                logger.info("garbage collector: no blocking dependents left; foregroundDeletion removed", metadata: [
                    "object": "\(item.kind) \(item.key)"])
            }
            return .done
        }
        enqueueForDeletion(blocking.filter { !$0.deletingDependents }.map(\.identity.uid))
        return .done
    }

    /// A uid that dependents name but no monitor has shown (upstream's virtual node): read the
    /// owner once, by the first dependent's reference.
    private func verifyUnobservedOwner(_ uid: String) async -> SyncResult {
        let dependents = graph.dependents(of: uid)
        guard let first = dependents.first, let reference = first.owners.first(where: { $0.uid == uid }) else { return .done }
        do {
            switch try await ownerState(reference, of: first.identity) {
            case .absent:
                // Every dependent decides by its own references (the absent cache spares those
                // that name it the same way a GET).
                enqueueForDeletion(dependents.map(\.identity.uid))
                return .done
            case .present:
                // Dependents that name it by other coordinates, or from another namespace,
                // check their own references.
                let others = dependents.filter { dependent in
                    guard let theirs = dependent.owners.first(where: { $0.uid == uid }) else { return false }
                    return dependent.identity.namespace != first.identity.namespace || theirs.name != reference.name
                        || theirs.kind != reference.kind || ObjectIdentity.group(of: theirs.apiVersion) != ObjectIdentity.group(of: reference.apiVersion)
                }
                enqueueForDeletion(others.map(\.identity.uid))
                // Watched, but not shown yet: look again until the monitor shows it (an owner
                // made and deleted between two lists would otherwise never be seen to go).
                if let resource = mapper.resource(apiVersion: reference.apiVersion, kind: reference.kind), isMonitored(resource) {
                    return .retry
                }
                return .done
            }
        } catch GarbageCollectorError.namespacedOwnerOfClusterScopedObject {
            enqueueForDeletion(dependents.dropFirst().map(\.identity.uid))
            return .done
        } catch {
            if Task.isCancelled { return .done }
            logger.warning("garbage collector: cannot verify an owner; retrying", metadata: [
                "owner": "\(ObjectIdentity(reference, namespace: first.identity.namespace))", "error": "\(error)"])
            return .retry
        }
    }

    // MARK: Owners

    struct ClassifiedOwners {
        /// Present and not being deleted in the foreground.
        var solid: [OwnerReference] = []
        /// Gone (404, or another uid under that name).
        var dangling: [OwnerReference] = []
        /// Present, being deleted with `foregroundDeletion`.
        var waiting: [OwnerReference] = []
    }

    func classify(_ item: ObjectIdentity, _ references: [OwnerReference]) async throws -> ClassifiedOwners {
        var owners = ClassifiedOwners()
        for reference in references {
            switch try await ownerState(reference, of: item) {
            case .absent:
                owners.dangling.append(reference)
            case .present(let owner):
                if owner.metadata.deletionTimestamp != nil && (owner.metadata.finalizers ?? []).contains(Self.foregroundDeletion) {
                    owners.waiting.append(reference)
                } else {
                    owners.solid.append(reference)
                }
            }
        }
        return owners
    }

    enum OwnerState {
        case absent
        case present(PartialObjectMetadata)
    }

    /// Upstream's isDangling: the owner `reference` names, read from the API server in the
    /// object's namespace (or cluster-wide for a cluster-scoped kind); absent when not found
    /// or found with another uid. Owners known to be gone are not read again.
    func ownerState(_ reference: OwnerReference, of item: ObjectIdentity) async throws -> OwnerState {
        let clusterKey = ObjectIdentity(reference, namespace: "")
        let namespacedKey = ObjectIdentity(reference, namespace: item.namespace)
        if absentOwners.contains(clusterKey) || absentOwners.contains(namespacedKey) { return .absent }
        let resource = try resource(reference.apiVersion, reference.kind)
        if item.namespace.isEmpty && resource.namespaced {
            reportInvalidNamespace(item, owner: reference)
            throw GarbageCollectorError.namespacedOwnerOfClusterScopedObject
        }
        do {
            let owner = try await client.get(PartialObjectMetadata.self, resource: resource, name: reference.name,
                                             namespace: resource.namespaced ? item.namespace : nil)
            if owner.metadata.uid == reference.uid { return .present(owner) }
        } catch let error as APIError where error.isNotFound {}
        absentOwners.add(resource.namespaced ? namespacedKey : clusterKey)
        return .absent
    }

    // MARK: Reads and writes

    func resource(_ apiVersion: String, _ kind: String) throws -> APIResource {
        guard let resource = mapper.resource(apiVersion: apiVersion, kind: kind) else {
            throw GarbageCollectorError.unknownKind(apiVersion: apiVersion, kind: kind)
        }
        return resource
    }

    /// The object as the API server has it now; nil when it is gone or its name now belongs to
    /// another object.
    func live(_ item: ObjectIdentity, _ resource: APIResource) async throws -> PartialObjectMetadata? {
        do {
            let object = try await client.get(PartialObjectMetadata.self, resource: resource, name: item.name,
                                              namespace: resource.namespaced ? item.namespace : nil)
            return object.metadata.uid == item.uid ? object : nil
        } catch let error as APIError where error.isNotFound {
            return nil
        }
    }

    /// Deletes `item` with `policy`, only if it is still the object read (uid) at the version
    /// read; when it changed meanwhile, only if its owners are still `owners`.
    func deleteObject(_ item: ObjectIdentity, _ resource: APIResource, resourceVersion: String?, owners: [OwnerReference],
                      policy: PropagationPolicy) async throws {
        let namespace = resource.namespaced ? item.namespace : nil
        var options = DeleteOptions(preconditionUID: item.uid, preconditionResourceVersion: resourceVersion, propagationPolicy: policy)
        do {
            try await client.delete(resource: resource, name: item.name, namespace: namespace, options: options)
            return
        } catch let error as APIError where error.isNotFound {
            return
        } catch let error as APIError where error.isConflict && resourceVersion != nil {
            guard let latest = try await live(item, resource) else { return }
            guard (latest.metadata.ownerReferences ?? []) == owners else { throw GarbageCollectorError.ownersChanged }
        }
        options.preconditionResourceVersion = nil
        do {
            try await client.delete(resource: resource, name: item.name, namespace: namespace, options: options)
        } catch let error as APIError where error.isNotFound {
            return
        }
    }

    /// Removes the references to `owners` from `item`: a strategic merge patch deleting them by
    /// uid, carrying the object's uid (a namesake is not touched). A resource without strategic
    /// merge patches gets a merge patch of the remaining references at the resourceVersion read.
    func removeOwnerReferences(_ owners: [String], from item: ObjectIdentity, _ resource: APIResource) async throws {
        let deletions: [JSONValue] = owners.map { ["$patch": "delete", "uid": .string($0)] }
        try await patchOwnerReferences(of: item, resource, strategic: .array(deletions)) { current in
            current.filter { !owners.contains($0.uid) }
        }
    }

    /// Sets `blockOwnerDeletion: false` on every blocking reference of `item`.
    private func unblockOwnerReferences(of item: ObjectIdentity, _ references: [OwnerReference], _ resource: APIResource) async throws {
        let unblocked: [JSONValue] = references.filter { $0.blockOwnerDeletion == true }.map {
            ["apiVersion": .string($0.apiVersion), "kind": .string($0.kind), "name": .string($0.name), "uid": .string($0.uid),
             "blockOwnerDeletion": false]
        }
        guard !unblocked.isEmpty else { return }
        try await patchOwnerReferences(of: item, resource, strategic: .array(unblocked)) { current in
            current.map { reference in
                var reference = reference
                if reference.blockOwnerDeletion == true { reference.blockOwnerDeletion = false }
                return reference
            }
        }
    }

    private func patchOwnerReferences(of item: ObjectIdentity, _ resource: APIResource, strategic: JSONValue,
                                      merged: ([OwnerReference]) -> [OwnerReference]) async throws {
        let namespace = resource.namespaced ? item.namespace : nil
        do {
            let patch: JSONValue = ["metadata": ["ownerReferences": strategic, "uid": .string(item.uid)]]
            _ = try await client.patch(PartialObjectMetadata.self, resource: resource, name: item.name, namespace: namespace,
                                       patch: patch, as: .strategicMerge)
            return
        } catch let error as APIError where error.isNotFound {
            return
        } catch let error as APIError where error.code == 415 {
            // Strategic merge patch not supported for this resource: merge patch below.
        } catch let error as APIError where error.code == 422 || error.isConflict {
            // The uid no longer matches: the object was replaced, nothing to do for it.
            if try await live(item, resource) == nil { return }
            throw error
        }
        guard let latest = try await live(item, resource) else { return }
        let remaining = merged(latest.metadata.ownerReferences ?? [])
        let references = remaining.isEmpty ? JSONValue.null : try JSONValueEncoder().encode(remaining)
        let patch: JSONValue = ["metadata": ["ownerReferences": references, "uid": .string(item.uid),
                                             "resourceVersion": .string(latest.metadata.resourceVersion ?? "")]]
        do {
            _ = try await client.patch(PartialObjectMetadata.self, resource: resource, name: item.name, namespace: namespace,
                                       patch: patch, as: .merge)
        } catch let error as APIError where error.isNotFound {
            return
        }
    }

    /// Removes `finalizer` from `item` by merge patches carrying the resourceVersion read,
    /// again on a conflict. Returns whether it removed it (false: gone, or not there).
    @discardableResult
    func removeFinalizer(_ finalizer: String, from item: ObjectIdentity, _ resource: APIResource) async throws -> Bool {
        for _ in 0..<5 {
            guard let latest = try await live(item, resource) else { return false }
            let finalizers = latest.metadata.finalizers ?? []
            guard finalizers.contains(finalizer) else { return false }
            let patch: JSONValue = ["metadata": [
                "resourceVersion": .string(latest.metadata.resourceVersion ?? ""),
                "finalizers": .array(finalizers.filter { $0 != finalizer }.map { .string($0) }),
            ]]
            do {
                _ = try await client.patch(PartialObjectMetadata.self, resource: resource, name: item.name,
                                           namespace: resource.namespaced ? item.namespace : nil, patch: patch, as: .merge)
                return true
            } catch let error as APIError where error.isConflict {
                continue
            } catch let error as APIError where error.isNotFound {
                return false
            }
        }
        throw GarbageCollectorError.tooManyConflicts
    }
}
