import ClusterAPI

/// The API server's one error type: what went wrong, worded as Kubernetes words it.
/// Everything inside the module throws this; `status` turns it into the metav1 `Status`
/// body and HTTP code exactly once, at the edge (`APIHandler`).
public struct APIError: Error, Sendable, CustomStringConvertible {
    /// The kind of failure; each maps to one HTTP code and Status reason (see `table`).
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        enum Value: Sendable, Hashable {
            case badRequest, unauthorized, forbidden, notFound, methodNotAllowed, notAcceptable
            case alreadyExists, conflict, gone, expired, invalid, requestEntityTooLarge
            case unsupportedMediaType, tooManyRequests, internalError, serviceUnavailable, timeout
        }

        let value: Value

        public static let badRequest = Code(value: .badRequest)
        public static let unauthorized = Code(value: .unauthorized)
        public static let forbidden = Code(value: .forbidden)
        public static let notFound = Code(value: .notFound)
        public static let methodNotAllowed = Code(value: .methodNotAllowed)
        public static let notAcceptable = Code(value: .notAcceptable)
        public static let alreadyExists = Code(value: .alreadyExists)
        public static let conflict = Code(value: .conflict)
        /// 410 Gone (a resource version that is no longer available).
        public static let gone = Code(value: .gone)
        /// 410 Expired (watch or continue token older than the compacted history).
        public static let expired = Code(value: .expired)
        public static let invalid = Code(value: .invalid)
        public static let requestEntityTooLarge = Code(value: .requestEntityTooLarge)
        public static let unsupportedMediaType = Code(value: .unsupportedMediaType)
        public static let tooManyRequests = Code(value: .tooManyRequests)
        public static let internalError = Code(value: .internalError)
        public static let serviceUnavailable = Code(value: .serviceUnavailable)
        public static let timeout = Code(value: .timeout)

        public var description: String { Self.table[value]!.reason }

        /// The single table from error code to HTTP code and Status reason.
        static let table: [Value: (http: Int32, reason: String)] = [
            .badRequest: (400, Status.Reason.badRequest),
            .unauthorized: (401, Status.Reason.unauthorized),
            .forbidden: (403, Status.Reason.forbidden),
            .notFound: (404, Status.Reason.notFound),
            .methodNotAllowed: (405, Status.Reason.methodNotAllowed),
            .notAcceptable: (406, Status.Reason.notAcceptable),
            .alreadyExists: (409, Status.Reason.alreadyExists),
            .conflict: (409, Status.Reason.conflict),
            .gone: (410, Status.Reason.gone),
            .expired: (410, Status.Reason.expired),
            .invalid: (422, Status.Reason.invalid),
            .requestEntityTooLarge: (413, Status.Reason.requestEntityTooLarge),
            .unsupportedMediaType: (415, Status.Reason.unsupportedMediaType),
            .tooManyRequests: (429, Status.Reason.tooManyRequests),
            .internalError: (500, Status.Reason.internalError),
            .serviceUnavailable: (503, Status.Reason.serviceUnavailable),
            .timeout: (504, Status.Reason.timeout),
        ]

        /// The HTTP status code.
        public var httpCode: Int32 { Self.table[value]!.http }
        /// The Status `reason`.
        public var reason: String { Self.table[value]!.reason }
    }

    public var code: Code
    public var message: String
    public var details: StatusDetails?
    /// The Status's `metadata.continue`: where an expired paged list can go on, inconsistently.
    public var listContinue: String?
    /// The cause Kubernetes gives a request for a resourceVersion the store has not reached:
    /// clients list again, from the current state.
    public static let resourceVersionTooLarge = "ResourceVersionTooLarge"

    public init(_ code: Code, _ message: String, details: StatusDetails? = nil) {
        self.code = code
        self.message = message
        self.details = details
    }

    public var description: String { "\(code): \(message)" }

    /// The metav1 Status body for this error.
    public var status: Status {
        var status = Status.makeFailure(code: code.httpCode, reason: code.reason, message: message, details: details)
        status.metadata.continueToken = listContinue
        return status
    }
}

// MARK: - Kubernetes' messages

extension APIError {
    /// `pods "web" not found`
    static func notFound(_ resource: ResourceInfo, _ name: String) -> APIError {
        APIError(.notFound, "\(resource.qualifiedResource) \"\(name)\" not found",
                 details: StatusDetails(name: name, group: resource.group.isEmpty ? nil : resource.group, kind: resource.resource))
    }

    /// `storageclasses.storage.k8s.io "fast" already exists`
    static func alreadyExists(_ resource: ResourceInfo, _ name: String) -> APIError {
        APIError(.alreadyExists, "\(resource.qualifiedResource) \"\(name)\" already exists",
                 details: StatusDetails(name: name, group: resource.group.isEmpty ? nil : resource.group, kind: resource.resource))
    }

    /// The optimistic-concurrency conflict, word for word.
    static func conflict(_ resource: ResourceInfo, _ name: String) -> APIError {
        APIError(.conflict,
                 "Operation cannot be fulfilled on \(resource.qualifiedResource) \"\(name)\": the object has been modified; please apply your changes to the latest version and try again",
                 details: StatusDetails(name: name, group: resource.group.isEmpty ? nil : resource.group, kind: resource.resource))
    }

    /// 422 with one cause per field error; the message is Kubernetes' aggregate.
    static func invalid(_ resource: ResourceInfo, _ name: String, _ errors: [FieldError]) -> APIError {
        let status = Status.invalid(group: resource.group, kind: resource.kind, name: name, errors: errors)
        return APIError(.invalid, status.message ?? "\(resource.kind) \"\(name)\" is invalid", details: status.details)
    }

    /// `the server could not find the requested resource`
    static let unknownPath = APIError(.notFound, "the server could not find the requested resource")

    /// The watch/list history is gone: `too old resource version: 5 (12)`.
    static func tooOld(requested: Int64, compacted: Int64) -> APIError {
        APIError(.expired, "too old resource version: \(requested) (\(compacted))")
    }

    /// `pods "web" is forbidden: User "u" cannot delete resource "pods" in API group "" in the namespace "default"`
    static func forbidden(_ attributes: RequestAttributes, user: UserInfo, reason: String? = nil) -> APIError {
        var scope: String
        if let ns = attributes.namespace, !ns.isEmpty { scope = "in the namespace \"\(ns)\"" } else { scope = "at the cluster scope" }
        let resourcePart = attributes.subresource.isEmpty ? attributes.resource : attributes.resource + "/" + attributes.subresource
        var message: String
        if attributes.isResourceRequest {
            let subject = attributes.name.isEmpty ? attributes.resource : "\(attributes.qualifiedResource) \"\(attributes.name)\""
            message = "\(subject) is forbidden: User \"\(user.name)\" cannot \(attributes.verb) resource \"\(resourcePart)\" in API group \"\(attributes.group)\" \(scope)"
        } else {
            message = "forbidden: User \"\(user.name)\" cannot \(attributes.verb) path \"\(attributes.path)\""
        }
        if let reason { message += ": " + reason }
        return APIError(.forbidden, message,
                        details: attributes.isResourceRequest
                            ? StatusDetails(name: attributes.name.isEmpty ? nil : attributes.name,
                                            group: attributes.group.isEmpty ? nil : attributes.group, kind: attributes.resource)
                            : nil)
    }

    static func badRequest(_ message: String) -> APIError { APIError(.badRequest, message) }
    static func internalError(_ message: String) -> APIError { APIError(.internalError, "Internal error occurred: " + message) }
}
