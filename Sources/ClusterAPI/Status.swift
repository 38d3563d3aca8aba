/// One reason a request failed, usually tied to a field (metav1 `StatusCause`).
public struct StatusCause: Sendable, Hashable, Codable, PreservesUnknownFields {
    /// Machine-readable cause, e.g. `FieldValueInvalid` (`reason`).
    public var reason: String?
    /// Human-readable description (`message`).
    public var message: String?
    /// The field path at fault, e.g. `spec.replicas` (`field`).
    public var field: String?
    /// Members not modelled above.
    public var unknownFields: [String: JSONValue]

    /// Creates a cause.
    public init(reason: String? = nil, message: String? = nil, field: String? = nil) {
        self.reason = reason
        self.message = message
        self.field = field
        self.unknownFields = [:]
    }

    private static let knownKeys: Set<String> = ["reason", "message", "field"]

    /// Decodes, keeping unknown members.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: JSONKey.self)
        reason = try container.decodeIfPresent(String.self, forKey: "reason")
        message = try container.decodeIfPresent(String.self, forKey: "message")
        field = try container.decodeIfPresent(String.self, forKey: "field")
        unknownFields = try container.unknownFields(excluding: Self.knownKeys)
    }

    /// Encodes non-nil fields plus unknown members.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: JSONKey.self)
        try container.encodeUnknownFields(unknownFields, excluding: Self.knownKeys)
        try container.encodeIfPresent(reason, forKey: "reason")
        try container.encodeIfPresent(message, forKey: "message")
        try container.encodeIfPresent(field, forKey: "field")
    }
}

/// Extra data about a failure (metav1 `StatusDetails`).
public struct StatusDetails: Sendable, Hashable, Codable, PreservesUnknownFields {
    /// Name of the affected object (`name`).
    public var name: String?
    /// API group of the affected object (`group`).
    public var group: String?
    /// Kind (or resource) of the affected object (`kind`).
    public var kind: String?
    /// UID of the affected object (`uid`).
    public var uid: String?
    /// Individual causes (`causes`).
    public var causes: [StatusCause]?
    /// Seconds the client should wait before retrying (`retryAfterSeconds`).
    public var retryAfterSeconds: Int32?
    /// Members not modelled above.
    public var unknownFields: [String: JSONValue]

    /// Creates details.
    public init(
        name: String? = nil, group: String? = nil, kind: String? = nil, uid: String? = nil,
        causes: [StatusCause]? = nil, retryAfterSeconds: Int32? = nil
    ) {
        self.name = name
        self.group = group
        self.kind = kind
        self.uid = uid
        self.causes = causes
        self.retryAfterSeconds = retryAfterSeconds
        self.unknownFields = [:]
    }

    private static let knownKeys: Set<String> = ["name", "group", "kind", "uid", "causes", "retryAfterSeconds"]

    /// Decodes, keeping unknown members.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: JSONKey.self)
        name = try container.decodeIfPresent(String.self, forKey: "name")
        group = try container.decodeIfPresent(String.self, forKey: "group")
        kind = try container.decodeIfPresent(String.self, forKey: "kind")
        uid = try container.decodeIfPresent(String.self, forKey: "uid")
        causes = try container.decodeIfPresent([StatusCause].self, forKey: "causes")
        retryAfterSeconds = try container.decodeIfPresent(Int32.self, forKey: "retryAfterSeconds")
        unknownFields = try container.unknownFields(excluding: Self.knownKeys)
    }

    /// Encodes non-nil fields plus unknown members.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: JSONKey.self)
        try container.encodeUnknownFields(unknownFields, excluding: Self.knownKeys)
        try container.encodeIfPresent(name, forKey: "name")
        try container.encodeIfPresent(group, forKey: "group")
        try container.encodeIfPresent(kind, forKey: "kind")
        try container.encodeIfPresent(uid, forKey: "uid")
        try container.encodeIfPresent(causes, forKey: "causes")
        try container.encodeIfPresent(retryAfterSeconds, forKey: "retryAfterSeconds")
    }
}

/// The result of an API call that does not return an object, usually an error
/// (metav1 `Status`, `kind: Status`, `apiVersion: v1`).
///
/// `metadata` is always encoded (as `{}` when empty), as Kubernetes does; other fields only
/// when non-nil.
public struct Status: Sendable, Hashable, Codable, PreservesUnknownFields {
    /// `status` value for success.
    public static let success = "Success"
    /// `status` value for failure.
    public static let failure = "Failure"

    /// Well-known `reason` values (metav1 `StatusReason`).
    public enum Reason {
        /// 401.
        public static let unauthorized = "Unauthorized"
        /// 403.
        public static let forbidden = "Forbidden"
        /// 404.
        public static let notFound = "NotFound"
        /// 409 on create of an existing object.
        public static let alreadyExists = "AlreadyExists"
        /// 409 on a write conflict.
        public static let conflict = "Conflict"
        /// 410.
        public static let gone = "Gone"
        /// 422.
        public static let invalid = "Invalid"
        /// 504 or 500: the server could not finish in time.
        public static let serverTimeout = "ServerTimeout"
        /// 504: the client's timeout elapsed.
        public static let timeout = "Timeout"
        /// 429.
        public static let tooManyRequests = "TooManyRequests"
        /// 400.
        public static let badRequest = "BadRequest"
        /// 405.
        public static let methodNotAllowed = "MethodNotAllowed"
        /// 406.
        public static let notAcceptable = "NotAcceptable"
        /// 413.
        public static let requestEntityTooLarge = "RequestEntityTooLarge"
        /// 415.
        public static let unsupportedMediaType = "UnsupportedMediaType"
        /// 500.
        public static let internalError = "InternalError"
        /// 410 for an expired continue token or watch.
        public static let expired = "Expired"
        /// 503.
        public static let serviceUnavailable = "ServiceUnavailable"
    }

    /// `apiVersion`, normally `v1`.
    public var apiVersion: String?
    /// `kind`, normally `Status`.
    public var kind: String?
    /// `metadata`.
    public var metadata: ListMeta
    /// `status`: `Success` or `Failure`.
    public var status: String?
    /// `message`: human-readable description.
    public var message: String?
    /// `reason`: machine-readable reason, see `Status.Reason`.
    public var reason: String?
    /// `details`.
    public var details: StatusDetails?
    /// `code`: the HTTP status code.
    public var code: Int32?
    /// Members not modelled above.
    public var unknownFields: [String: JSONValue]

    /// Creates a status object with `kind: Status` and `apiVersion: v1`.
    public init(
        status: String? = nil, message: String? = nil, reason: String? = nil,
        details: StatusDetails? = nil, code: Int32? = nil, metadata: ListMeta = ListMeta()
    ) {
        self.apiVersion = "v1"
        self.kind = "Status"
        self.metadata = metadata
        self.status = status
        self.message = message
        self.reason = reason
        self.details = details
        self.code = code
        self.unknownFields = [:]
    }

    /// A `Failure` status with the given HTTP code, reason and message.
    public static func makeFailure(
        code: Int32, reason: String, message: String, details: StatusDetails? = nil
    ) -> Status {
        Status(status: failure, message: message, reason: reason, details: details, code: code)
    }

    private static let knownKeys: Set<String> = [
        "apiVersion", "kind", "metadata", "status", "message", "reason", "details", "code",
    ]

    /// Decodes, keeping unknown members; a missing `metadata` decodes as empty.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: JSONKey.self)
        apiVersion = try container.decodeIfPresent(String.self, forKey: "apiVersion")
        kind = try container.decodeIfPresent(String.self, forKey: "kind")
        metadata = try container.decodeIfPresent(ListMeta.self, forKey: "metadata") ?? ListMeta()
        status = try container.decodeIfPresent(String.self, forKey: "status")
        message = try container.decodeIfPresent(String.self, forKey: "message")
        reason = try container.decodeIfPresent(String.self, forKey: "reason")
        details = try container.decodeIfPresent(StatusDetails.self, forKey: "details")
        code = try container.decodeIfPresent(Int32.self, forKey: "code")
        unknownFields = try container.unknownFields(excluding: Self.knownKeys)
    }

    /// Encodes `metadata` always, other fields when non-nil, plus unknown members.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: JSONKey.self)
        try container.encodeUnknownFields(unknownFields, excluding: Self.knownKeys)
        try container.encodeIfPresent(apiVersion, forKey: "apiVersion")
        try container.encodeIfPresent(kind, forKey: "kind")
        try container.encode(metadata, forKey: "metadata")
        try container.encodeIfPresent(status, forKey: "status")
        try container.encodeIfPresent(message, forKey: "message")
        try container.encodeIfPresent(reason, forKey: "reason")
        try container.encodeIfPresent(details, forKey: "details")
        try container.encodeIfPresent(code, forKey: "code")
    }
}
