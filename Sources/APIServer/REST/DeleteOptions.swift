// metav1 `DeleteOptions` as the API server reads them, and what a delete's propagation policy
// does to the object's finalizers (kube-apiserver's generic registry, store.go:
// `shouldOrphanDependents`, `shouldDeleteDependents`, `deletionFinalizersForGarbageCollection`).
//
//   policy (or orphanDependents)   finalizers after the delete          then
//   Orphan (true)                  + orphan, − foregroundDeletion       held: the GC removes the
//                                                                       ownerReferences, then `orphan`
//   Foreground                     + foregroundDeletion, − orphan       held: the GC deletes the
//                                                                       dependents, then the finalizer
//   Background (false)             − orphan, − foregroundDeletion       deleted at once unless other
//                                                                       finalizers or a grace period hold it
//   none                           as they are (a finalizer already     Background for every resource
//                                  there decides)                       here, as Kubernetes' default
import ClusterAPI

/// `metav1.DeletionPropagation`.
enum DeletionPropagation: String, Sendable, CaseIterable {
    case orphan = "Orphan"
    case background = "Background"
    case foreground = "Foreground"
}

/// The finalizers the garbage collector acts on (metav1 `FinalizerOrphanDependents`,
/// `FinalizerDeleteDependents`).
enum GCFinalizer {
    static let orphan = "orphan"
    static let foregroundDeletion = "foregroundDeletion"
}

extension APIHandler {
    /// One delete's options, from the request's `DeleteOptions` body or its query.
    struct DeleteOptions: Sendable {
        var gracePeriodSeconds: Int64?
        var preconditionUID: String?
        var preconditionRV: String?
        var dryRun = false
        /// The explicit policy: `propagationPolicy`, or the deprecated `orphanDependents`
        /// (true: Orphan, false: Background). nil: the object's finalizers decide.
        var propagationPolicy: DeletionPropagation?
        /// `orphanDependents` as sent (a cascading delete that did not complete answers 202).
        var orphanDependents: Bool?
    }

    /// Reads and validates the delete options. The body (when there is one) is a
    /// `DeleteOptions`; without a body `propagationPolicy` and `orphanDependents` come from the
    /// query, as Kubernetes reads them. `gracePeriodSeconds` and `dryRun` in the query apply
    /// either way. Invalid options are refused before anything is read or changed: 400 for a
    /// value of the wrong type, 422 `DeleteOptions.meta.k8s.io "" is invalid: …` for Kubernetes'
    /// `ValidateDeleteOptions` failures.
    func deleteOptions(_ c: RequestContext) throws(APIError) -> DeleteOptions {
        var options = DeleteOptions()
        var policy: String?
        if !c.request.body.isEmpty {
            let body = try bodyObject(c)
            guard case .object = body else { throw APIError.badRequest("the body of a delete must be a DeleteOptions object") }
            options.gracePeriodSeconds = body["gracePeriodSeconds"]?.int64Value
            options.preconditionUID = body["preconditions"]?["uid"]?.stringValue
            options.preconditionRV = body["preconditions"]?["resourceVersion"]?.stringValue
            if let dry = body["dryRun"]?.arrayValue, dry.contains("All") { options.dryRun = true }
            if let value = body["propagationPolicy"], !value.isNull {
                guard let text = value.stringValue else {
                    throw APIError.badRequest("DeleteOptions.propagationPolicy must be a string: \"Foreground\", \"Background\" or \"Orphan\"")
                }
                policy = text
            }
            if let value = body["orphanDependents"], !value.isNull {
                guard let flag = value.boolValue else { throw APIError.badRequest("DeleteOptions.orphanDependents must be true or false") }
                options.orphanDependents = flag
            }
        } else {
            policy = c.query["propagationPolicy"]
            if let text = c.query["orphanDependents"] {
                guard let flag = Self.goBool(text) else {
                    throw APIError.badRequest("orphanDependents: strconv.ParseBool: parsing \"\(text)\": invalid syntax")
                }
                options.orphanDependents = flag
            }
        }
        if let g = c.query["gracePeriodSeconds"], !g.isEmpty {
            guard let n = Int64(g) else {
                throw APIError.badRequest("gracePeriodSeconds \"\(g)\" is not valid: expected a whole number of seconds (0 deletes at once)")
            }
            options.gracePeriodSeconds = n
        }
        if c.dryRun { options.dryRun = true }
        try Self.validatePropagation(policy: policy, orphanDependents: options.orphanDependents)
        if let policy {
            options.propagationPolicy = DeletionPropagation(rawValue: policy)
        } else if let orphan = options.orphanDependents {
            options.propagationPolicy = orphan ? .orphan : .background
        }
        return options
    }

    /// apimachinery's `ValidateDeleteOptions` for the propagation fields.
    static func validatePropagation(policy: String?, orphanDependents: Bool?) throws(APIError) {
        var errors: [FieldError] = []
        if let policy, orphanDependents != nil {
            errors.append(FieldError(type: .invalid, field: "propagationPolicy", badValue: policy,
                                     detail: "orphanDependents and deletionPropagation cannot be both set"))
        }
        if let policy, DeletionPropagation(rawValue: policy) == nil {
            errors.append(FieldError(type: .notSupported, field: "propagationPolicy", badValue: policy,
                                     detail: "supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""))
        }
        guard !errors.isEmpty else { return }
        let status = Status.invalid(group: "meta.k8s.io", kind: "DeleteOptions", name: "", errors: errors)
        throw APIError(.invalid, status.message ?? "DeleteOptions is invalid", details: status.details)
    }

    /// Go's `strconv.ParseBool`, which Kubernetes' query parameter decoding uses.
    static func goBool(_ text: String) -> Bool? {
        switch text {
        case "1", "t", "T", "true", "TRUE", "True": true
        case "0", "f", "F", "false", "FALSE", "False": false
        default: nil
        }
    }

    /// The finalizers an object has after a delete with `policy`, or nil when they stay as
    /// they are. The explicit policy wins; without one, a GC finalizer already on the object
    /// stands; otherwise Background (no GC finalizer). Other finalizers are kept in order.
    static func garbageCollectionFinalizers(_ current: [String], policy: DeletionPropagation?) -> [String]? {
        let orphan: Bool
        let foreground: Bool
        switch policy {
        case .orphan:
            (orphan, foreground) = (true, false)
        case .foreground:
            (orphan, foreground) = (false, true)
        case .background:
            (orphan, foreground) = (false, false)
        case nil:
            // shouldOrphanDependents: the first of the two finalizers on the object decides.
            orphan = current.first { $0 == GCFinalizer.orphan || $0 == GCFinalizer.foregroundDeletion } == GCFinalizer.orphan
            foreground = current.contains(GCFinalizer.foregroundDeletion)
        }
        var updated = current.filter { $0 != GCFinalizer.orphan && $0 != GCFinalizer.foregroundDeletion }
        if orphan { updated.append(GCFinalizer.orphan) }
        if foreground { updated.append(GCFinalizer.foregroundDeletion) }
        return Set(updated) == Set(current) ? nil : updated
    }
}
