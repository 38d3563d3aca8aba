import GRPCCore
import MVCCStore

/// The one table from store errors to gRPC statuses, with etcd's codes and
/// messages (etcd api/v3rpc/rpctypes/error.go): clients match on both.
enum ErrorMapping {
    static func status(for code: MVCCError.Code) -> RPCError.Code {
        switch code {
        case .compacted, .futureRevision, .leaseTTLTooLarge: return .outOfRange
        case .emptyKey, .keyNotFound, .duplicateKey, .tooManyOps, .requestTooLarge: return .invalidArgument
        case .noSpace: return .resourceExhausted
        case .leaseNotFound: return .notFound
        case .leaseExists: return .failedPrecondition
        case .closed: return .unavailable
        case .storage: return .internalError
        }
    }

    static func rpcError(_ error: any Error) -> RPCError {
        if let e = error as? RPCError { return e }
        if let e = error as? MVCCError { return RPCError(code: status(for: e.code), message: e.message) }
        return RPCError(code: .internalError, message: "etcdserver: \(error)")
    }

    /// Runs `body`, turning any error into the matching RPCError.
    static func mapping<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            throw rpcError(error)
        }
    }
}
