import GRPCWire
import MVCCStore

/// The one table from store errors to gRPC statuses, with etcd's codes and
/// messages (etcd api/v3rpc/rpctypes/error.go): clients match on both.
enum ErrorMapping {
    static func code(for code: MVCCError.Code) -> GRPCStatus.Code {
        switch code {
        case .compacted, .futureRevision, .leaseTTLTooLarge: return .outOfRange
        case .emptyKey, .keyNotFound, .duplicateKey, .tooManyOps, .requestTooLarge: return .invalidArgument
        case .noSpace, .tooManyWatchers: return .resourceExhausted
        case .leaseNotFound: return .notFound
        case .leaseExists: return .failedPrecondition
        case .closed: return .unavailable
        case .storage: return .internalError
        }
    }

    static func status(_ error: any Error) -> GRPCStatus {
        if let s = error as? GRPCStatus { return s }
        if let e = error as? MVCCError { return GRPCStatus(code(for: e.code), e.message) }
        if error is CancellationError { return GRPCStatus(.cancelled, "context canceled") }
        return GRPCStatus(.internalError, "etcdserver: \(error)")
    }
}
