// The fields and Codable conformance of `Status`, `StatusDetails` and `StatusCause` are
// generated (Generated/MetaV1.swift, by scripts/generate-cluster-models.py); this file
// keeps what is behaviour rather than shape.

extension Status {
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
}
