/// The storage interface of the API server: the operations Kubernetes'
/// storage layer performs on etcd, nothing more. Implemented by the embedded
/// `MVCCStore` and, in EtcdAPI, by `EtcdClient` over a real etcd cluster —
/// the control plane must not assume which one it has.
public protocol KeyValueStore: Sendable {
    /// The current version of `key` (nil when absent) and the store revision read at.
    func get(_ key: [UInt8]) async throws -> (kv: KeyValue?, revision: Int64)

    /// Keys with `prefix` in key order, after `continueAfter` (exclusive),
    /// at `revision` (0: now). `count` is the number of keys with the prefix
    /// at that revision; `more` says the limit cut the list.
    func list(prefix: [UInt8], limit: Int64, continueAfter: [UInt8]?, revision: Int64) async throws -> ListResult

    /// Creates `key` if it does not exist; returns the revision of the write.
    /// Throws `KeyValueStoreError.alreadyExists` otherwise.
    func create(_ key: [UInt8], value: [UInt8], lease: Int64) async throws -> Int64

    /// Replaces `key` if its mod revision is `expectedModRevision`.
    func update(_ key: [UInt8], value: [UInt8], expectedModRevision: Int64, lease: Int64) async throws -> ConditionalResult

    /// Deletes `key` if its mod revision is `expectedModRevision` (nil: unconditionally).
    func delete(_ key: [UInt8], expectedModRevision: Int64?) async throws -> ConditionalResult

    /// Changes under `prefix` from `fromRevision` on (0: from now), with the
    /// previous version of each changed key.
    func watch(prefix: [UInt8], fromRevision: Int64) async throws -> AsyncThrowingStream<WatchUpdate, any Error>

    /// Number of keys with `prefix` now.
    func count(prefix: [UInt8]) async throws -> Int64

    /// Discards history below `revision`.
    func compact(_ revision: Int64) async throws

    /// The store's current revision.
    func currentRevision() async throws -> Int64

    /// Whether `currentRevision()` is answered from memory, without a round trip (the embedded
    /// store): then asking it is cheaper than any read. False unless a store says so.
    var currentRevisionIsLocal: Bool { get }

    /// A lease of `ttl` seconds for keys that should expire (events).
    func grantLease(ttl: Int64) async throws -> Int64

    /// Whether the store serves reads and writes now, and if not, why: what
    /// a readiness or health endpoint reports (503 with the reason). Never
    /// throws and returns promptly (a remote store is asked with a short timeout).
    func health() async -> StoreHealth
}

/// A store's answer to "are you healthy, and if not, why".
public enum StoreHealth: Sendable, Equatable, CustomStringConvertible {
    case healthy
    /// Not serving (some) requests; `reason` says what failed and what to do.
    case unhealthy(reason: String)

    public var isHealthy: Bool { self == .healthy }

    public var reason: String? {
        if case .unhealthy(let r) = self { return r }
        return nil
    }

    public var description: String { reason.map { "unhealthy: \($0)" } ?? "healthy" }
}

extension KeyValueStore {
    public var currentRevisionIsLocal: Bool { false }

    /// A store that knows nothing better answers by reading its revision.
    public func health() async -> StoreHealth {
        do {
            _ = try await currentRevision()
            return .healthy
        } catch {
            return .unhealthy(reason: "the store does not answer reads: \(error)")
        }
    }
}

public struct ListResult: Sendable, Equatable {
    public var kvs: [KeyValue]
    public var more: Bool
    public var count: Int64
    /// The revision the list was read at (pin it for the next page).
    public var revision: Int64

    public init(kvs: [KeyValue], more: Bool, count: Int64, revision: Int64) {
        self.kvs = kvs
        self.more = more
        self.count = count
        self.revision = revision
    }
}

public enum ConditionalResult: Sendable, Equatable {
    /// Done at this revision.
    case succeeded(revision: Int64)
    /// The key's mod revision differed; here is what it holds now (nil: absent).
    case conflict(current: KeyValue?)
}

public enum KeyValueStoreError: Error, Equatable, Sendable {
    case alreadyExists(key: [UInt8])
}

/// A store that speaks etcd's Range and Txn: the KeyValueStore operations
/// are built from those two calls exactly as Kubernetes' storage layer
/// issues them, for the embedded store and for a remote etcd alike.
public protocol EtcdShapedStore: KeyValueStore {
    func range(_ request: RangeRequest) async throws -> RangeResponse
    func txn(_ request: TxnRequest) async throws -> TxnResponse
    /// The Range the operations below are built from. A store whose `range`
    /// blocks (the embedded one) runs it off the cooperative pool here.
    func read(_ request: RangeRequest) async throws -> RangeResponse
}

extension EtcdShapedStore {
    public func read(_ request: RangeRequest) async throws -> RangeResponse {
        try await range(request)
    }

    public func get(_ key: [UInt8]) async throws -> (kv: KeyValue?, revision: Int64) {
        let r = try await read(RangeRequest(key: key))
        return (r.kvs.first, r.revision)
    }

    /// A page after `continueAfter`; the total count is taken at the same revision.
    public func list(prefix: [UInt8], limit: Int64, continueAfter: [UInt8]?, revision: Int64) async throws -> ListResult {
        let end = prefixRangeEnd(prefix)
        let start = continueAfter.map { $0 + [0] } ?? prefix
        let page = try await read(RangeRequest(key: start, rangeEnd: end, limit: limit, revision: revision))
        let rev = revision > 0 ? revision : page.revision
        var total = page.count
        if continueAfter != nil {
            var r = RangeRequest(key: prefix, rangeEnd: end, revision: rev)
            r.countOnly = true
            total = try await read(r).count
        }
        return ListResult(kvs: page.kvs, more: page.more, count: total, revision: rev)
    }

    /// Txn(If mod_revision(key) == 0 Then Put): Kubernetes' create.
    public func create(_ key: [UInt8], value: [UInt8], lease: Int64) async throws -> Int64 {
        let r = try await txn(TxnRequest(compare: [Compare(key: key, .modRevision(0), .equal)],
                                         success: [.put(PutRequest(key: key, value: value, lease: lease))]))
        guard r.succeeded else { throw KeyValueStoreError.alreadyExists(key: key) }
        return r.revision
    }

    /// Txn(If mod_revision(key) == rev Then Put Else Range): Kubernetes' update.
    public func update(_ key: [UInt8], value: [UInt8], expectedModRevision: Int64, lease: Int64) async throws -> ConditionalResult {
        let r = try await txn(TxnRequest(compare: [Compare(key: key, .modRevision(expectedModRevision), .equal)],
                                         success: [.put(PutRequest(key: key, value: value, lease: lease))],
                                         failure: [.range(RangeRequest(key: key))]))
        return Self.conditional(r)
    }

    /// Txn(If mod_revision(key) == rev Then DeleteRange Else Range): Kubernetes' delete.
    public func delete(_ key: [UInt8], expectedModRevision: Int64?) async throws -> ConditionalResult {
        let compare = expectedModRevision.map { [Compare(key: key, .modRevision($0), .equal)] } ?? []
        let r = try await txn(TxnRequest(compare: compare, success: [.deleteRange(DeleteRangeRequest(key: key))],
                                         failure: [.range(RangeRequest(key: key))]))
        return Self.conditional(r)
    }

    static func conditional(_ r: TxnResponse) -> ConditionalResult {
        if r.succeeded { return .succeeded(revision: r.revision) }
        if case .range(let current)? = r.responses.first { return .conflict(current: current.kvs.first) }
        return .conflict(current: nil)
    }

    public func count(prefix: [UInt8]) async throws -> Int64 {
        var r = RangeRequest(key: prefix, rangeEnd: prefixRangeEnd(prefix))
        r.countOnly = true
        return try await read(r).count
    }
}

extension MVCCStore: EtcdShapedStore {
    public func watch(prefix: [UInt8], fromRevision: Int64) async throws -> AsyncThrowingStream<WatchUpdate, any Error> {
        var req = WatchRequest(key: prefix, rangeEnd: prefix.isEmpty ? [0] : prefixRangeEnd(prefix), startRevision: fromRevision)
        req.prevKV = true
        if prefix.isEmpty { req.key = [0] }
        let w: Watch
        do {
            w = try watch(req)
        } catch let e as MVCCError where e.code == .compacted {
            // As over the wire: the watch ends with the compaction revision.
            let compacted = compactedRevision
            return AsyncThrowingStream { c in
                c.yield(.compacted(compacted))
                c.finish()
            }
        }
        // Pulled, not pushed: each `next()` of the consumer asks the watch for the next update, so
        // nothing queues up between them. A consumer that falls behind leaves its events in the
        // store; the watch reads them back from history when asked (see `Watch`).
        return AsyncThrowingStream(unfolding: {
            w.acknowledge()  // what the previous `next()` returned has been taken
            do {
                guard let update = try await w.next() else { return nil }
                return update
            } catch is CancellationError {
                w.cancel()
                return nil  // the consumer's task was cancelled: the stream ends, as a pushed one would
            }
        })
    }

    public func compact(_ revision: Int64) async throws {
        _ = try await compact(revision, physical: false)
    }

    public func currentRevision() async throws -> Int64 { revision }

    public var currentRevisionIsLocal: Bool { true }

    public func grantLease(ttl: Int64) async throws -> Int64 {
        try await leaseGrant(ttl: ttl).id
    }
}
