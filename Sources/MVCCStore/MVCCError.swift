/// Errors of the MVCC store, carrying etcd's exact texts (clients match on
/// them). The gRPC layer maps each code to etcd's status code, once.
public struct MVCCError: Error, Equatable, CustomStringConvertible, Sendable {
    public enum Code: Sendable, Equatable {
        case compacted, futureRevision, emptyKey, keyNotFound, duplicateKey, tooManyOps
        case requestTooLarge, noSpace, leaseNotFound, leaseExists, leaseTTLTooLarge
        case storage, closed, tooManyWatchers
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    public static let compacted = MVCCError(.compacted, "etcdserver: mvcc: required revision has been compacted")
    public static let futureRevision = MVCCError(.futureRevision, "etcdserver: mvcc: required revision is a future revision")
    public static let emptyKey = MVCCError(.emptyKey, "etcdserver: key is not provided")
    public static let keyNotFound = MVCCError(.keyNotFound, "etcdserver: key not found")
    public static let duplicateKey = MVCCError(.duplicateKey, "etcdserver: duplicate key given in txn request")
    public static let tooManyOps = MVCCError(.tooManyOps, "etcdserver: too many operations in txn request")
    public static let requestTooLarge = MVCCError(.requestTooLarge, "etcdserver: request is too large")
    public static let noSpace = MVCCError(.noSpace, "etcdserver: mvcc: database space exceeded")
    public static let leaseNotFound = MVCCError(.leaseNotFound, "etcdserver: requested lease not found")
    public static let leaseExists = MVCCError(.leaseExists, "etcdserver: lease already exists")
    public static let leaseTTLTooLarge = MVCCError(.leaseTTLTooLarge, "etcdserver: too large lease TTL")
    static func storage(_ error: any Error) -> MVCCError { MVCCError(.storage, "etcdserver: storage error: \(error)") }
    static let closed = MVCCError(.closed, "etcdserver: server stopped")
    static func tooManyWatchers(limit: Int) -> MVCCError {
        MVCCError(.tooManyWatchers, "etcdserver: too many watchers: the store serves at most \(limit) at once; cancel unused watches or raise MVCCOptions.maxWatchers")
    }
}
