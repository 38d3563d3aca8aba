// Requests and responses of the MVCC store, shaped like etcd's
// etcdserverpb messages so that the gRPC layer maps them field by field.

public enum SortOrder: Sendable { case none, ascend, descend }
public enum SortTarget: Sendable { case key, version, create, mod, value }

public struct RangeRequest: Sendable {
    public var key: [UInt8]
    /// Empty: the single key; [0]: every key >= key; else [key, rangeEnd).
    public var rangeEnd: [UInt8] = []
    /// 0: no limit.
    public var limit: Int64 = 0
    /// 0 or negative: the current revision.
    public var revision: Int64 = 0
    public var sortOrder: SortOrder = .none
    public var sortTarget: SortTarget = .key
    public var keysOnly = false
    public var countOnly = false
    public var minModRevision: Int64 = 0
    public var maxModRevision: Int64 = 0
    public var minCreateRevision: Int64 = 0
    public var maxCreateRevision: Int64 = 0

    public init(key: [UInt8], rangeEnd: [UInt8] = [], limit: Int64 = 0, revision: Int64 = 0) {
        self.key = key
        self.rangeEnd = rangeEnd
        self.limit = limit
        self.revision = revision
    }

    /// The limit as a count of keys, nil when there is none (0 or negative, as
    /// etcd reads it). Clients send any Int64: one above `Int.max` is no limit
    /// either, since no range can hold more keys than that.
    var positiveLimit: Int? { limit > 0 ? Int(clamping: limit) : nil }
}

public struct RangeResponse: Sendable, Equatable {
    /// The store's current revision (also for reads at an older revision).
    public var revision: Int64
    public var kvs: [KeyValue]
    /// Whether `limit` cut the result.
    public var more: Bool
    /// Number of keys in the range at that revision, before limit and filters.
    public var count: Int64

    public init(revision: Int64, kvs: [KeyValue], more: Bool, count: Int64) {
        self.revision = revision
        self.kvs = kvs
        self.more = more
        self.count = count
    }
}

public struct PutRequest: Sendable {
    public var key: [UInt8]
    public var value: [UInt8]
    public var lease: Int64 = 0
    public var prevKV = false
    public var ignoreValue = false
    public var ignoreLease = false

    public init(key: [UInt8], value: [UInt8], lease: Int64 = 0) {
        self.key = key
        self.value = value
        self.lease = lease
    }
}

public struct PutResponse: Sendable, Equatable {
    public var revision: Int64
    public var prevKV: KeyValue?

    public init(revision: Int64, prevKV: KeyValue?) {
        self.revision = revision
        self.prevKV = prevKV
    }
}

public struct DeleteRangeRequest: Sendable {
    public var key: [UInt8]
    public var rangeEnd: [UInt8] = []
    public var prevKV = false

    public init(key: [UInt8], rangeEnd: [UInt8] = [], prevKV: Bool = false) {
        self.key = key
        self.rangeEnd = rangeEnd
        self.prevKV = prevKV
    }
}

public struct DeleteRangeResponse: Sendable, Equatable {
    public var revision: Int64
    public var deleted: Int64
    public var prevKVs: [KeyValue]

    public init(revision: Int64, deleted: Int64, prevKVs: [KeyValue]) {
        self.revision = revision
        self.deleted = deleted
        self.prevKVs = prevKVs
    }
}

public struct Compare: Sendable {
    public enum Result: Sendable { case equal, greater, less, notEqual }
    public enum Target: Sendable {
        case version(Int64), createRevision(Int64), modRevision(Int64), value([UInt8]), lease(Int64)
    }

    public var result: Result
    public var target: Target
    public var key: [UInt8]
    public var rangeEnd: [UInt8] = []

    public init(key: [UInt8], rangeEnd: [UInt8] = [], _ target: Target, _ result: Result) {
        self.key = key
        self.rangeEnd = rangeEnd
        self.target = target
        self.result = result
    }
}

public indirect enum RequestOp: Sendable {
    case range(RangeRequest)
    case put(PutRequest)
    case deleteRange(DeleteRangeRequest)
    case txn(TxnRequest)
}

public indirect enum ResponseOp: Sendable, Equatable {
    case range(RangeResponse)
    case put(PutResponse)
    case deleteRange(DeleteRangeResponse)
    case txn(TxnResponse)
}

public struct TxnRequest: Sendable {
    public var compare: [Compare]
    public var success: [RequestOp]
    public var failure: [RequestOp]

    public init(compare: [Compare] = [], success: [RequestOp] = [], failure: [RequestOp] = []) {
        self.compare = compare
        self.success = success
        self.failure = failure
    }
}

public struct TxnResponse: Sendable, Equatable {
    public var revision: Int64
    public var succeeded: Bool
    public var responses: [ResponseOp]

    public init(revision: Int64, succeeded: Bool, responses: [ResponseOp]) {
        self.revision = revision
        self.succeeded = succeeded
        self.responses = responses
    }
}
