// The cloud's typed errors. The simulator maps each to an HTTP status once (`httpStatus`), the
// client maps the JSON back (`CloudError(body:)`), and the CSI driver maps them to gRPC codes.
import Foundation

public enum CloudErrorCode: String, Codable, Sendable {
    case notFound = "NotFound"
    /// The idempotency token was used with different parameters, or the resource exists.
    case alreadyExists = "AlreadyExists"
    case quotaExceeded = "QuotaExceeded"
    case invalidParameter = "InvalidParameter"
    /// The disk is attached, mounted or otherwise busy.
    case inUse = "InUse"
    case attachLimitExceeded = "AttachLimitExceeded"
    /// The resource is not in a state that allows this (an instance that is not running).
    case incorrectState = "IncorrectState"
    case unauthorized = "Unauthorized"
    case forbidden = "Forbidden"
    case requestTooLarge = "RequestTooLarge"
    /// Too many requests: retry after a pause.
    case throttled = "Throttled"
    /// The cloud failed: retry.
    case `internal` = "Internal"
}

/// What travels on the wire: `{"error": {"code": …, "message": …, "parameter": …}}`.
public struct CloudErrorBody: Codable, Sendable, Equatable, Error {
    public var code: CloudErrorCode
    public var message: String
    /// For InvalidParameter: the parameter at fault.
    public var parameter: String?

    public init(code: CloudErrorCode, message: String, parameter: String? = nil) {
        self.code = code
        self.message = message
        self.parameter = parameter
    }
}

public struct CloudError: Error, Sendable, Equatable, CustomStringConvertible, LocalizedError {
    public var body: CloudErrorBody
    public var code: CloudErrorCode { body.code }
    public var message: String { body.message }

    public init(_ code: CloudErrorCode, _ message: String, parameter: String? = nil) {
        body = CloudErrorBody(code: code, message: message, parameter: parameter)
    }

    public init(body: CloudErrorBody) { self.body = body }

    /// Throttled and internal errors go away when retried.
    public var isRetryable: Bool { code == .throttled || code == .internal }

    public var description: String { "\(code.rawValue): \(message)" }
    public var errorDescription: String? { description }

    public static func notFound(_ kind: String, _ id: String) -> CloudError {
        CloudError(.notFound, "\(kind) \(id) does not exist: list the \(kind)s to find its id")
    }

    public static func invalid(_ parameter: String, _ problem: String) -> CloudError {
        CloudError(.invalidParameter, "\(parameter): \(problem)", parameter: parameter)
    }

    /// The HTTP status the simulator answers with.
    public var httpStatus: Int {
        switch code {
        case .notFound: 404
        case .alreadyExists, .inUse, .attachLimitExceeded, .incorrectState: 409
        case .quotaExceeded: 422
        case .invalidParameter: 400
        case .unauthorized: 401
        case .forbidden: 403
        case .requestTooLarge: 413
        case .throttled: 429
        case .internal: 500
        }
    }
}

/// The JSON envelope of an error response.
public struct CloudErrorEnvelope: Codable, Sendable {
    public var error: CloudErrorBody
    public init(error: CloudErrorBody) { self.error = error }
}
