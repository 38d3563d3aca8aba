import ClusterAPI
import Foundation
import HTTPKit
import NIOHTTP1

extension APIHandler {
    static let protectedNamespaces: Set<String> = ["default", "kube-system", "kube-public"]

    // MARK: Create

    func create(_ c: RequestContext, _ info: ResourceInfo) async throws -> HTTPResponse {
        let created = try await createWritten(try bodyObject(c), info: info, c: c)
        return Self.response(created, info, status: .created)
    }

    /// The response carrying a written object: its JSON as stored, the resource version in it
    /// (nothing encoded again), unless a custom resource's version must be set.
    static func response(_ written: ObjectStore.Written, _ info: ResourceInfo, status: HTTPResponseStatus = .ok) -> HTTPResponse {
        guard info.schema == nil, var body = written.json else { return json(served(written.object, info), status: status) }
        body.append(0x0A)
        return HTTPResponse(status: status, headers: ["Content-Type": "application/json"], body: Data(body))
    }

    func createObject(_ body: JSONValue, info: ResourceInfo, c: RequestContext) async throws(APIError) -> JSONValue {
        try await createWritten(body, info: info, c: c).object
    }

    func createWritten(_ body: JSONValue, info: ResourceInfo, c: RequestContext) async throws(APIError) -> ObjectStore.Written {
        if body["metadata"]?["resourceVersion"]?.stringValue.map({ !$0.isEmpty }) == true {
            throw APIError.badRequest("resourceVersion should not be set on objects to be created: remove metadata.resourceVersion")
        }
        try Self.refuseUnknownFields(body, info: info, c: c)
        var object = try Mutation.prepareCreate(body, info: info, namespace: c.attributes.namespace)
        let name = object["metadata"]?["name"]?.stringValue ?? ""
        let namespace = object["metadata"]?["namespace"]?.stringValue
        if info.namespaced, let namespace { try await requireNamespace(namespace) }
        try NodeRestriction.admit(user: c.user, attributes: c.attributes, resource: info, old: nil, new: object)
        object = try await admitCreate(object, info: info)
        let allocated = Self.isService(info) ? try await services.allocate(&object, info: info, dryRun: c.dryRun) : ServiceAllocator.Items()
        if c.dryRun { return ObjectStore.Written(unwritten: object) }
        let lease = info.resource == "events" ? try await leases.lease() : 0
        do {
            return try await store.createWritten(info.key(namespace: namespace, name: name), object, lease: lease,
                                                 alreadyExists: APIError.alreadyExists(info, name))
        } catch {
            await services.release(allocated, logger: logger)
            throw error
        }
    }

    /// `fieldValidation=Strict` (kubectl's default) on a custom resource: fields its schema does
    /// not declare are refused with apiextensions-apiserver's words instead of pruned. `Warn`
    /// (the default when the request says nothing) and `Ignore` prune them silently: Ballast
    /// sends no warnings.
    static func refuseUnknownFields(_ object: JSONValue, info: ResourceInfo, c: RequestContext) throws(APIError) {
        guard let schema = info.schema else { return }
        switch c.query["fieldValidation"] ?? "" {
        case "Strict":
            var copy = object
            let unknown = schema.prune(&copy)
            guard !unknown.isEmpty else { return }
            let fields = unknown.map { "unknown field \"\($0)\"" }.joined(separator: ", ")
            throw APIError.badRequest("\(info.kind) in version \"\(info.version)\" cannot be handled as a \(info.kind): strict decoding error: \(fields)")
        case "", "Warn", "Ignore":
            return
        case let other:
            throw APIError.badRequest("fieldValidation \"\(other)\" is not one of Ignore, Warn, Strict")
        }
    }

    /// core/v1 Services, whose writes allocate and release ClusterIPs and NodePorts.
    static func isService(_ info: ResourceInfo) -> Bool { info.group.isEmpty && info.resource == "services" }

    /// Frees what a Service removed from storage held.
    func removedFromStorage(_ info: ResourceInfo, _ object: JSONValue) async {
        if Self.isService(info) { await services.release(services.held(by: object), logger: logger) }
    }

    /// New content needs an existing namespace that is not being deleted. On a store whose
    /// current revision is known without a round trip (the embedded one), the namespace is read
    /// from the watch cache when the cache has applied every write the store has made (so it
    /// answers what a read of the store would); else, and on etcd (where asking the revision
    /// costs as much as the read), from the store.
    func requireNamespace(_ namespace: String) async throws(APIError) {
        let namespaces = registry.lookup(group: "", version: "v1", resource: "namespaces")!
        let key = namespaces.key(namespace: nil, name: namespace)
        let object: JSONValue
        if store.kv.currentRevisionIsLocal,
           let cached = try await watchCache.current(keyPrefix: namespaces.keyPrefix, key: key, asNewAs: store.currentRevision()) {
            guard let found = cached else { throw APIError.notFound(namespaces, namespace) }
            object = found.object
        } else {
            guard let ns = try await store.get(key) else { throw APIError.notFound(namespaces, namespace) }
            object = ns.object
        }
        if object["metadata"]?["deletionTimestamp"] != nil {
            throw APIError(.forbidden, "unable to create new content in namespace \(namespace) because it is being terminated",
                           details: StatusDetails(name: namespace, kind: "namespaces"))
        }
    }

    // MARK: Update

    /// Reads, transforms and compare-and-swaps one object until it sticks. `precondition`
    /// is the resource version the client demands (a mismatch is a 409); without one,
    /// conflicts with concurrent writers are retried. A result equal to the stored object
    /// is not written (no new resource version). Returns the result and whether it changed.
    func guaranteedUpdate(_ info: ResourceInfo, namespace: String?, name: String, c: RequestContext, precondition: String?,
                          transform: (JSONValue) throws(APIError) -> JSONValue) async throws(APIError) -> JSONValue {
        try await guaranteedUpdateWritten(info, namespace: namespace, name: name, c: c, precondition: precondition, transform: transform).object
    }

    /// `guaranteedUpdate`, with the written object's JSON when it was written.
    func guaranteedUpdateWritten(_ info: ResourceInfo, namespace: String?, name: String, c: RequestContext, precondition: String?,
                                 transform: (JSONValue) throws(APIError) -> JSONValue) async throws(APIError) -> ObjectStore.Written {
        let key = info.key(namespace: namespace, name: name)
        var mayUseCache = !c.dryRun
        for _ in 0..<16 {
            // The cache's version first (no store read), as Kubernetes' GuaranteedUpdate takes the
            // cacher's: it may be behind, which the write's compare-and-swap finds out; anything
            // decided from it other than a write (a conflict, an error, nothing to change) is
            // decided again from the store's version.
            let (stored, current) = try await versionForWrite(info, key: key, name: name, mayUseCache: mayUseCache)
            mayUseCache = false
            let prepared: JSONValue
            let allocates = Self.isService(info) && c.attributes.subresource.isEmpty
            do throws(APIError) {
                let currentRV = String(stored.modRevision)
                if let precondition, !precondition.isEmpty, precondition != currentRV { throw APIError.conflict(info, name) }
                // A custom resource is changed as its request's version shows it.
                var candidate = try transform(Self.served(stored.object, info))
                try Self.refuseUnknownFields(candidate, info: info, c: c)
                if allocates { candidate = ServiceAllocator.prepareForUpdate(candidate, old: stored.object) }
                prepared = try Mutation.prepareUpdate(candidate, old: stored.object, info: info, subresource: c.attributes.subresource)
                try NodeRestriction.admit(user: c.user, attributes: c.attributes, resource: info, old: stored.object, new: prepared)
                try await admitUpdate(old: stored.object, new: prepared, info: info, subresource: c.attributes.subresource)
            } catch where !current {
                continue
            }
            if Mutation.sameObject(prepared, stored.object) {
                if !current { continue }
                return ObjectStore.Written(unwritten: stored.object)
            }
            var updated = prepared
            if Self.readyToRemove(updated) {
                if c.dryRun { return ObjectStore.Written(unwritten: updated) }
                // The last finalizer of an object being deleted went: the delete completes.
                guard try await store.delete(key, expected: stored.modRevision) != nil else { continue }
                await removedFromStorage(info, stored.object)
                await objectRemoved(info, namespace: namespace)
                return ObjectStore.Written(unwritten: updated)
            }
            var change = (allocated: ServiceAllocator.Items(), released: ServiceAllocator.Items())
            if allocates { change = try await services.reallocate(&updated, old: stored.object, info: info, dryRun: c.dryRun) }
            if c.dryRun { return ObjectStore.Written(unwritten: updated) }
            let result: ObjectStore.Written?
            do {
                result = try await store.updateWritten(key, updated, expected: stored.modRevision)
            } catch {
                await services.release(change.allocated, logger: logger)
                throw error
            }
            if let result {
                await services.release(change.released, logger: logger)
                return result
            }
            await services.release(change.allocated, logger: logger)
            if let precondition, !precondition.isEmpty { throw APIError.conflict(info, name) }
        }
        throw APIError(.conflict, "Operation cannot be fulfilled on \(info.qualifiedResource) \"\(name)\": too many concurrent writers; retry")
    }

    /// The version of `key` a write starts from, and whether it is the store's (`current`): the
    /// watch cache's when `mayUseCache` and the cache holds the key (no store read, no decoding;
    /// possibly behind the store), else the store's. 404 only from the store.
    func versionForWrite(_ info: ResourceInfo, key: String, name: String,
                         mayUseCache: Bool) async throws(APIError) -> (stored: ObjectStore.Stored, current: Bool) {
        if mayUseCache, let cached = watchCache.cached(keyPrefix: info.keyPrefix, key: key) {
            return (ObjectStore.Stored(object: cached.object, modRevision: cached.revision), false)
        }
        guard let stored = try await store.get(key) else { throw APIError.notFound(info, name) }
        return (stored, true)
    }

    /// An object with a deletion timestamp, no finalizers and no grace period left.
    static func readyToRemove(_ object: JSONValue) -> Bool {
        guard object["metadata"]?["deletionTimestamp"] != nil else { return false }
        if !(object["metadata"]?["finalizers"]?.arrayValue ?? []).isEmpty { return false }
        return (object["metadata"]?["deletionGracePeriodSeconds"]?.int64Value ?? 0) == 0
    }

    func update(_ c: RequestContext, _ info: ResourceInfo) async throws -> HTTPResponse {
        let body = try bodyObject(c)
        let precondition = body["metadata"]?["resourceVersion"]?.stringValue
        let result = try await guaranteedUpdateWritten(info, namespace: c.attributes.namespace, name: c.attributes.name, c: c,
                                                       precondition: precondition) { current throws(APIError) in
            var new = body
            if case .object = new {} else { throw APIError.badRequest("the body must be a JSON object describing one \(info.kind)") }
            new["metadata"]?["resourceVersion"] = current["metadata"]?["resourceVersion"]
            return new
        }
        return Self.response(result, info)
    }

    // MARK: Patch

    func patch(_ c: RequestContext, _ info: ResourceInfo) async throws -> HTTPResponse {
        let contentType = (c.request.headers.first(name: "Content-Type") ?? "").lowercased()
        let patchBody: JSONValue
        do {
            patchBody = try JSONValue(parsing: c.request.body)
        } catch {
            if contentType.hasPrefix("application/apply-patch+yaml") {
                throw APIError(.unsupportedMediaType,
                               "this server reads apply patches as JSON (a subset of YAML), and the body is not JSON: \(describeDecodingError(error)); send the manifest as JSON")
            }
            throw APIError.badRequest("the patch is not valid JSON: \(describeDecodingError(error))")
        }
        let kind = info.kind
        let transform: (JSONValue) throws(APIError) -> JSONValue
        if contentType.hasPrefix("application/merge-patch+json") {
            transform = { current in JSONMergePatch.apply(patchBody, to: current) }
        } else if contentType.hasPrefix("application/json-patch+json") {
            transform = { current throws(APIError) in
                do throws(JSONPatch.Failure) { return try JSONPatch.apply(patchBody, to: current) } catch {
                    if error.kind == .tooManyOperations { throw APIError(.requestEntityTooLarge, error.description) }
                    throw APIError(.invalid, "the JSON patch could not be applied: \(error)")
                }
            }
        } else if contentType.hasPrefix("application/strategic-merge-patch+json") {
            transform = { current throws(APIError) in
                do { return try StrategicMergePatch.apply(patchBody, to: current, kind: kind) } catch {
                    throw APIError.badRequest("the strategic merge patch could not be applied: \(error)")
                }
            }
        } else if contentType.hasPrefix("application/apply-patch+yaml") {
            return try await serverSideApply(c, info, patchBody)
        } else {
            throw APIError(.unsupportedMediaType,
                           "the patch content type \"\(contentType)\" is not supported: use application/merge-patch+json, application/json-patch+json, application/strategic-merge-patch+json or application/apply-patch+yaml")
        }
        // A resourceVersion inside the patch is a precondition, as in Kubernetes.
        let precondition = patchBody["metadata"]?["resourceVersion"]?.stringValue
        let result = try await guaranteedUpdateWritten(info, namespace: c.attributes.namespace, name: c.attributes.name, c: c,
                                                       precondition: precondition, transform: transform)
        return Self.response(result, info)
    }

    /// Server-side apply: create the object if it is absent (201), otherwise merge the
    /// applied configuration into it (keyed lists by their merge keys). Fields dropped from
    /// the configuration are not pruned: Ballast keeps no managedFields.
    func serverSideApply(_ c: RequestContext, _ info: ResourceInfo, _ applied: JSONValue) async throws -> HTTPResponse {
        guard case .object = applied else { throw APIError.badRequest("an apply patch must be one object (apiVersion, kind, metadata, …)") }
        if c.query["fieldManager"].map({ $0.isEmpty }) ?? true {
            throw APIError.badRequest("PATCH requests of type application/apply-patch+yaml need a fieldManager query parameter")
        }
        let name = applied["metadata"]?["name"]?.stringValue ?? ""
        if !name.isEmpty && name != c.attributes.name {
            throw APIError.badRequest("the name of the object (\(name)) does not match the name on the URL (\(c.attributes.name))")
        }
        var config = applied
        if config["metadata"]?["name"] == nil { config["metadata"]?["name"] = .string(c.attributes.name) }
        if try await store.get(key(info, c)) == nil {
            do {
                let created = try await createObject(config, info: info, c: c)
                return Self.json(Self.served(created, info), status: .created)
            } catch {
                // Created concurrently: merge into it below.
                guard error.code == .alreadyExists else { throw error }
            }
        }
        let precondition = applied["metadata"]?["resourceVersion"]?.stringValue
        let kind = info.kind
        let result = try await guaranteedUpdate(info, namespace: c.attributes.namespace, name: c.attributes.name, c: c,
                                                precondition: precondition) { current throws(APIError) in
            var typeChecked = config
            try Mutation.checkType(&typeChecked, info)
            do { return try StrategicMergePatch.apply(typeChecked, to: current, kind: kind) } catch {
                throw APIError.badRequest("the applied configuration could not be merged: \(error)")
            }
        }
        return Self.json(Self.served(result, info))
    }

    // MARK: Binding

    /// `pods/{name}/binding`: assigns the pod to a node, once.
    func bind(_ c: RequestContext, _ info: ResourceInfo) async throws -> HTTPResponse {
        let binding = try bodyObject(c)
        guard let target = binding["target"]?["name"]?.stringValue, !target.isEmpty else {
            throw APIError.invalid(info, c.attributes.name, [FieldError(type: .required, field: "target.name")])
        }
        if let kind = binding["target"]?["kind"]?.stringValue, !kind.isEmpty, kind != "Node" {
            throw APIError.invalid(info, c.attributes.name,
                                   [FieldError(type: .notSupported, field: "target.kind", badValue: kind, detail: "supported values: \"Node\"")])
        }
        let name = c.attributes.name
        let key = info.key(namespace: c.attributes.namespace, name: name)
        for _ in 0..<16 {
            guard let stored = try await store.get(key) else { throw APIError.notFound(info, name) }
            var pod = stored.object
            if pod["metadata"]?["deletionTimestamp"] != nil {
                throw APIError(.conflict, "Operation cannot be fulfilled on pods/binding \"\(name)\": pod \(name) is being deleted, cannot be assigned to a host")
            }
            if let current = pod["spec"]?["nodeName"]?.stringValue, !current.isEmpty {
                throw APIError(.conflict, "Operation cannot be fulfilled on pods/binding \"\(name)\": pod \(name) is already assigned to node \"\(current)\"")
            }
            if let uid = binding["metadata"]?["uid"]?.stringValue, !uid.isEmpty, uid != pod["metadata"]?["uid"]?.stringValue {
                throw APIError(.conflict, "Operation cannot be fulfilled on pods/binding \"\(name)\": the UID in the binding does not match the pod's")
            }
            pod["spec"]?["nodeName"] = .string(target)
            var conditions = pod["status"]?["conditions"]?.arrayValue ?? []
            conditions.removeAll { $0["type"]?.stringValue == "PodScheduled" }
            conditions.append(["type": "PodScheduled", "status": "True", "lastTransitionTime": .string(Time.now().rfc3339)])
            pod["status"]?["conditions"] = .array(conditions)
            if c.dryRun { break }
            if try await store.update(key, pod, expected: stored.modRevision) != nil { break }
        }
        return Self.json(Self.successStatus(code: 201), status: .created)
    }

    // MARK: Delete

    func delete(_ c: RequestContext, _ info: ResourceInfo) async throws -> HTTPResponse {
        let options = try deleteOptions(c)
        let outcome = try await deleteObject(info, namespace: c.attributes.namespace, name: c.attributes.name, options: options, c: c)
        // Kubernetes answers 202 when a delete asked to cascade with the deprecated
        // `orphanDependents: false` and the object is still there.
        let accepted = !outcome.deleted && options.orphanDependents == false
        return Self.json(Self.served(outcome.object, info), status: accepted ? .accepted : .ok)
    }

    /// What a delete did: the object's last state, and whether it is gone from storage.
    struct DeleteOutcome {
        var object: JSONValue
        var deleted: Bool
    }

    /// Deletes one object, as kube-apiserver's generic registry does (`Store.Delete`): at once,
    /// or gracefully — a deletion timestamp — while finalizers remain or a bound pod's grace
    /// period runs. The propagation policy adds or removes the `orphan` and
    /// `foregroundDeletion` finalizers first (`garbageCollectionFinalizers`); a second delete
    /// of an object already being deleted may change them (and removing the last one deletes
    /// it), except while a pod's grace period is pending, when only a shorter grace period
    /// changes anything.
    func deleteObject(_ info: ResourceInfo, namespace: String?, name: String, options: DeleteOptions,
                      c: RequestContext) async throws(APIError) -> DeleteOutcome {
        if info.resource == "namespaces" {
            if Self.protectedNamespaces.contains(name) {
                throw APIError(.forbidden, "namespaces \"\(name)\" is forbidden: this namespace may not be deleted",
                               details: StatusDetails(name: name, kind: "namespaces"))
            }
            return DeleteOutcome(object: try await deleteNamespace(name, options: options, c: c), deleted: false)
        }
        let key = info.key(namespace: namespace, name: name)
        var mayUseCache = !options.dryRun
        for _ in 0..<16 {
            // The cache's version first, as in `guaranteedUpdateWritten`: the delete's
            // compare-and-swap finds out if it is behind; any other outcome decided from it is
            // decided again from the store's version.
            let (stored, current) = try await versionForWrite(info, key: key, name: name, mayUseCache: mayUseCache)
            mayUseCache = false
            var object = stored.object
            let meta = object["metadata"]
            if let uid = options.preconditionUID, uid != meta?["uid"]?.stringValue {
                if !current { continue }
                throw APIError(.conflict, "Precondition failed: UID in precondition: \(uid), UID in object meta: \(meta?["uid"]?.stringValue ?? "")")
            }
            if let rv = options.preconditionRV, rv != String(stored.modRevision) {
                if !current { continue }
                throw APIError(.conflict, "Precondition failed: ResourceVersion in precondition: \(rv), ResourceVersion in object meta: \(stored.modRevision)")
            }
            do throws(APIError) {
                try NodeRestriction.admit(user: c.user, attributes: c.attributes, resource: info, old: object, new: nil)
            } catch where !current {
                continue
            }
            let finalizers = (meta?["finalizers"]?.arrayValue ?? []).compactMap(\.stringValue)
            let deleting = meta?["deletionTimestamp"] != nil
            let existingGrace = meta?["deletionGracePeriodSeconds"]?.int64Value ?? 0
            // The grace period this delete asks for: only pods bound to a node and still
            // running have one (the pod strategy's CheckGracefulDelete).
            var grace: Int64 = 0
            if info.resource == "pods", !(object["spec"]?["nodeName"]?.stringValue ?? "").isEmpty,
               object["status"]?["phase"]?.stringValue != "Succeeded", object["status"]?["phase"]?.stringValue != "Failed" {
                grace = options.gracePeriodSeconds ?? object["spec"]?["terminationGracePeriodSeconds"]?.int64Value ?? 30
                if grace < 0 { grace = 1 }
            }
            if deleting {
                // A graceful deletion pending: only a shorter grace period changes it (and
                // the finalizers stay as they are). One held by finalizers alone keeps grace 0.
                if existingGrace > 0 && grace >= existingGrace {
                    if !current { continue }
                    return DeleteOutcome(object: object, deleted: false)
                }
                if existingGrace == 0 { grace = 0 }
            }
            let newFinalizers = Self.garbageCollectionFinalizers(finalizers, policy: options.propagationPolicy)
            let remaining = newFinalizers ?? finalizers
            if !remaining.isEmpty || grace > 0 {
                if deleting && grace == 0 && existingGrace == 0 && newFinalizers == nil {
                    if !current { continue }
                    return DeleteOutcome(object: object, deleted: false)  // nothing to change
                }
                if let newFinalizers { object["metadata"]?["finalizers"] = .array(newFinalizers.map { .string($0) }) }
                if grace > 0 {
                    // Graceful: the kubelet (or the finalizers' owners) finish the job.
                    object["metadata"]?["deletionTimestamp"] = .string(Time.now().adding(seconds: grace).rfc3339)
                } else if !deleting || Self.deletionTimestamp(of: object).map({ $0 > Time.now() }) ?? true {
                    // markAsDeleting: now, unless an earlier deletion timestamp stands.
                    object["metadata"]?["deletionTimestamp"] = .string(Time.now().rfc3339)
                }
                object["metadata"]?["deletionGracePeriodSeconds"] = .integer(grace)
                if options.dryRun { return DeleteOutcome(object: object, deleted: false) }
                guard let updated = try await store.update(key, object, expected: stored.modRevision) else { continue }
                return DeleteOutcome(object: updated, deleted: false)
            }
            if options.dryRun { return DeleteOutcome(object: object, deleted: true) }
            guard let rev = try await store.delete(key, expected: stored.modRevision) else { continue }
            object["metadata"]?["resourceVersion"] = .string(String(rev))
            if newFinalizers != nil { object["metadata"]?["finalizers"] = nil }
            await removedFromStorage(info, stored.object)
            await objectRemoved(info, namespace: namespace)
            return DeleteOutcome(object: object, deleted: true)
        }
        throw APIError(.conflict, "Operation cannot be fulfilled on \(info.qualifiedResource) \"\(name)\": too many concurrent writers; retry")
    }

    static func deletionTimestamp(of object: JSONValue) -> Time? {
        guard let text = object["metadata"]?["deletionTimestamp"]?.stringValue else { return nil }
        return try? Time(rfc3339: text)
    }

    func deleteCollection(_ c: RequestContext, _ info: ResourceInfo) async throws -> HTTPResponse {
        let options = try deleteOptions(c)
        let selection = try Selection(resource: info, labelSelector: c.query["labelSelector"], fieldSelector: c.query["fieldSelector"])
        let page = try await store.list(prefix: info.listPrefix(namespace: c.attributes.namespace), limit: 0, continueAfter: nil,
                                        revision: 0) { selection.matches($0) }
        var deleted: [JSONValue] = []
        for object in page.items {
            let meta = object["metadata"]
            do {
                deleted.append(try await deleteObject(info, namespace: meta?["namespace"]?.stringValue, name: meta?["name"]?.stringValue ?? "",
                                                       options: options, c: c).object)
            } catch {
                if error.code == .notFound { continue }
                throw error
            }
        }
        return Self.json(["kind": .string(info.kind + "List"), "apiVersion": .string(info.groupVersion),
                          "metadata": ["resourceVersion": .string(String(page.revision))], "items": .array(deleted.map { Self.served($0, info) })])
    }

    // MARK: Namespaces

    /// Marks the namespace Terminating, deletes its content, and removes it once empty
    /// (objects held by finalizers keep it Terminating until they go).
    func deleteNamespace(_ name: String, options: DeleteOptions, c: RequestContext) async throws(APIError) -> JSONValue {
        let info = registry.lookup(group: "", version: "v1", resource: "namespaces")!
        let key = info.key(namespace: nil, name: name)
        var marked: JSONValue?
        for _ in 0..<16 {
            guard let stored = try await store.get(key) else { throw APIError.notFound(info, name) }
            if let uid = options.preconditionUID, uid != stored.object["metadata"]?["uid"]?.stringValue {
                throw APIError(.conflict, "Precondition failed: UID in precondition: \(uid), UID in object meta: \(stored.object["metadata"]?["uid"]?.stringValue ?? "")")
            }
            if stored.object["metadata"]?["deletionTimestamp"] != nil {
                marked = stored.object
                break
            }
            var object = stored.object
            object["metadata"]?["deletionTimestamp"] = .string(Time.now().rfc3339)
            object["metadata"]?["deletionGracePeriodSeconds"] = .integer(0)
            object["status"]?["phase"] = "Terminating"
            if options.dryRun { return object }
            if let updated = try await store.update(key, object, expected: stored.modRevision) {
                marked = updated
                break
            }
        }
        guard let marked else { throw APIError.conflict(info, name) }
        let contentOptions = DeleteOptions(gracePeriodSeconds: nil)
        for resource in registry.resources where resource.namespaced {
            let page = try await store.list(prefix: resource.listPrefix(namespace: name), limit: 0, continueAfter: nil, revision: 0) { _ in true }
            for object in page.items {
                _ = try? await deleteObject(resource, namespace: name, name: object["metadata"]?["name"]?.stringValue ?? "",
                                            options: contentOptions, c: c)
            }
        }
        await finalizeNamespace(name)
        return marked
    }

    /// Called after an object is removed from storage: finishes a Terminating namespace
    /// that has become empty.
    func objectRemoved(_ info: ResourceInfo, namespace: String?) async {
        guard info.namespaced, let namespace else { return }
        let namespaces = registry.lookup(group: "", version: "v1", resource: "namespaces")!
        guard let ns = try? await store.get(namespaces.key(namespace: nil, name: namespace)),
              ns.object["metadata"]?["deletionTimestamp"] != nil else { return }
        await finalizeNamespace(namespace)
    }

    func finalizeNamespace(_ name: String) async {
        for resource in registry.resources where resource.namespaced {
            let count = (try? await store.kv.count(prefix: Array(resource.listPrefix(namespace: name).utf8))) ?? 1
            if count > 0 { return }
        }
        let namespaces = registry.lookup(group: "", version: "v1", resource: "namespaces")!
        let key = namespaces.key(namespace: nil, name: name)
        if let ns = try? await store.get(key), ns.object["metadata"]?["deletionTimestamp"] != nil,
           (ns.object["metadata"]?["finalizers"]?.arrayValue ?? []).isEmpty {
            _ = try? await store.delete(key, expected: ns.modRevision)
        }
    }
}
