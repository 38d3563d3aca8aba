// Typed errors of the driver, and their single mapping to gRPC status at the edge (`edge`).
// Cloud errors are mapped here too, once, in the way the CSI spec asks.
import CloudProvider
import GRPCCore
import HostSystem

struct CSIError: Error, CustomStringConvertible {
    let code: RPCError.Code
    let message: String

    init(_ code: RPCError.Code, _ message: String) {
        self.code = code
        self.message = message
    }

    var description: String { "\(code): \(message)" }

    /// A required field is missing or a field is wrong: names the field.
    static func invalid(_ field: String, _ problem: String) -> CSIError {
        CSIError(.invalidArgument, "\(field): \(problem)")
    }

    static func required(_ field: String) -> CSIError {
        invalid(field, "is required")
    }

    /// `text` cut to 80 characters with control characters escaped, safe to echo in a message.
    static func printable(_ text: String) -> String {
        let cut = text.count > 80 ? String(text.prefix(80)) + "…" : text
        return cut.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7f ? $0.escaped(asASCII: true) : String($0) }.joined()
    }

    /// The cloud's error, as the CSI spec wants it seen. `sizeIsRange`: an invalid size is
    /// OUT_OF_RANGE (a capacity the cloud cannot serve), not a malformed request.
    init(cloud error: CloudError, sizeIsRange: Bool = true) {
        switch error.code {
        case .notFound: self.init(.notFound, error.message)
        case .alreadyExists: self.init(.alreadyExists, error.message)
        case .quotaExceeded, .attachLimitExceeded: self.init(.resourceExhausted, error.message)
        case .invalidParameter where sizeIsRange && error.body.parameter == "sizeBytes": self.init(.outOfRange, error.message)
        case .invalidParameter: self.init(.invalidArgument, error.message)
        case .inUse, .incorrectState: self.init(.failedPrecondition, error.message)
        case .throttled: self.init(.unavailable, "the cloud is throttling requests; retry: \(error.message)")
        case .unauthorized, .forbidden: self.init(.failedPrecondition, "the cloud refused the driver's API key: \(error.message); check --cloud-key-file")
        case .requestTooLarge, .internal: self.init(.internalError, "cloud: \(error.message)")
        }
    }

    /// A failure of the node's system work: a refused argument is INVALID_ARGUMENT, a busy
    /// device or a missing privilege FAILED_PRECONDITION (the user can act), the rest INTERNAL.
    init(host error: HostSystemError) {
        switch error.code {
        case .invalidArgument: self.init(.invalidArgument, error.message)
        case .busy, .permissionDenied: self.init(.failedPrecondition, error.message)
        case .cancelled: self.init(.cancelled, error.message)
        default: self.init(.internalError, error.message)
        }
    }
}

/// Runs an RPC body and turns every error into an RPCError with a human-readable message and no
/// details, as the spec asks.
func edge<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as CSIError {
        throw RPCError(code: error.code, message: error.message)
    } catch let error as CloudError {
        let mapped = CSIError(cloud: error)
        throw RPCError(code: mapped.code, message: mapped.message)
    } catch let error as HostSystemError {
        let mapped = CSIError(host: error)
        throw RPCError(code: mapped.code, message: mapped.message)
    } catch let error as CommandError {
        throw RPCError(code: .internalError, message: error.description)
    } catch let error as RPCError {
        throw error
    } catch is CancellationError {
        throw RPCError(code: .cancelled, message: "the call was cancelled")
    } catch {
        throw RPCError(code: .internalError, message: "\(error)")
    }
}
