import ClusterAPI
import Foundation

/// A failed API call: the server's Status, or why no answer came.
public enum APIError: Error, CustomStringConvertible, Sendable {
    /// The server answered with an error status; `status` is its Status object (or one made up
    /// from the HTTP code when the body was not a Status).
    case status(code: Int, status: Status)
    /// No usable answer: connection refused, TLS failure, timeout, a body that is not JSON.
    case transport(String)
    /// The client itself is misconfigured.
    case configuration(String)

    public var code: Int? { if case .status(let code, _) = self { code } else { nil } }
    public var reason: String? { if case .status(_, let status) = self { status.reason } else { nil } }

    public var isNotFound: Bool { code == 404 }
    public var isConflict: Bool { code == 409 && reason == Status.Reason.conflict }
    public var isAlreadyExists: Bool { code == 409 && reason == Status.Reason.alreadyExists }
    /// The resource version asked for has been compacted: list again.
    public var isGone: Bool { code == 410 }
    /// The resource version asked for is past the store's (restored from an older state): list
    /// again, from the current one.
    public var isResourceVersionTooLarge: Bool {
        if case .status(_, let status) = self { status.details?.causes?.contains { $0.reason == "ResourceVersionTooLarge" } == true } else { false }
    }

    public var description: String {
        switch self {
        case .status(let code, let status): "API server answered \(code) \(status.reason ?? ""): \(status.message ?? "")"
        case .transport(let message): "cannot reach the API server: \(message)"
        case .configuration(let message): "API client configuration: \(message)"
        }
    }
}
