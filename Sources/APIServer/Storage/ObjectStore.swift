import ClusterAPI
import Foundation
import MVCCStore

// Storage layout (the same as Kubernetes' on etcd):
//
//   /registry/<resource>/<namespace>/<name>   namespaced objects
//   /registry/<resource>/<name>               cluster-scoped objects
//
// Values are the object's JSON with `metadata.resourceVersion` removed; the resource
// version served is the key's mod revision, as a decimal string. A list's resource
// version is the store revision it was read at.

/// Kubernetes objects as JSON trees over any `KeyValueStore` (the embedded MVCC store or
/// a remote etcd): reads stamp resource versions, writes are compare-and-swap on the
/// key's mod revision.
public struct ObjectStore: Sendable {
    public let kv: any KeyValueStore

    public init(_ kv: any KeyValueStore) { self.kv = kv }

    /// One object with its mod revision.
    public struct Stored: Sendable {
        public var object: JSONValue
        public var modRevision: Int64
    }

    // MARK: Encoding

    /// The largest object stored: etcd's default `--max-request-bytes` (1.5 MiB), so that what
    /// the embedded store accepts an etcd cluster accepts too, and so that a patch cannot
    /// grow an object without bound.
    static let maxObjectBytes = 1_572_864

    static func encode(_ object: JSONValue) throws(APIError) -> [UInt8] {
        var stripped = object
        // Only when there is one: removing a key copies the metadata and the object around it.
        if object["metadata"]?["resourceVersion"] != nil { stripped["metadata"]?["resourceVersion"] = nil }
        let bytes = stripped.jsonBytes
        if bytes.count > maxObjectBytes {
            throw APIError(.requestEntityTooLarge,
                           "Request entity too large: the object would take \(bytes.count) bytes in storage, over the limit of \(maxObjectBytes) bytes (etcd's request size limit); make it smaller")
        }
        return bytes
    }

    static func decode(_ kv: KeyValue) throws(APIError) -> JSONValue {
        do {
            var object = try JSONValue(parsing: kv.value)
            object["metadata"]?["resourceVersion"] = .string(String(kv.modRevision))
            return object
        } catch {
            throw APIError.internalError("stored object \(String(decoding: kv.key, as: UTF8.self)) is not JSON: \(error)")
        }
    }

    // MARK: Reads

    /// The object at `key`, or nil.
    public func get(_ key: String) async throws(APIError) -> Stored? {
        let result = try await call { try await kv.get(Array(key.utf8)) }
        guard let found = result.kv else { return nil }
        return Stored(object: try Self.decode(found), modRevision: found.modRevision)
    }

    /// A page of the objects under `prefix` that `include` accepts: at most `limit` of
    /// them (0: all), after `continueAfter`, read at `revision` (0: now).
    public func list(prefix: String, limit: Int, continueAfter: [UInt8]?, revision: Int64,
                     include: (JSONValue) -> Bool) async throws(APIError) -> (items: [JSONValue], revision: Int64, lastKey: [UInt8]?, remaining: Int64?) {
        var items: [JSONValue] = []
        var after = continueAfter
        var rev = revision
        let prefixBytes = Array(prefix.utf8)
        // Pages are fetched until `limit` objects matched (selectors can reject many). A page is
        // never larger than `maxPageSize`, whatever the client's limit: the store sees only
        // bounded limits.
        let pageSize: Int64 = limit > 0 ? Int64(min(max(limit, 50), Self.maxPageSize)) : 0
        while true {
            let r = try await call { try await kv.list(prefix: prefixBytes, limit: pageSize, continueAfter: after, revision: rev) }
            rev = r.revision
            for (i, entry) in r.kvs.enumerated() {
                let object = try Self.decode(entry)
                guard include(object) else { continue }
                items.append(object)
                if limit > 0 && items.count == limit {
                    let more = r.more || i < r.kvs.count - 1
                    if more {
                        return (items, rev, entry.key, nil)
                    }
                    return (items, rev, nil, nil)
                }
            }
            guard r.more, let last = r.kvs.last else { return (items, rev, nil, nil) }
            after = last.key
        }
    }

    /// The largest page asked of the store for a list with a limit.
    static let maxPageSize = 10_000

    // MARK: Writes

    /// An object as written: its tree with its resource version, and the same as JSON, made from
    /// the bytes stored (`StoredJSON`) rather than written again; nil when it could not be.
    public struct Written: Sendable {
        public var object: JSONValue
        private let stored: [UInt8]?
        private let revision: Int64

        init(_ object: JSONValue, stored: [UInt8], revision: Int64) {
            var object = object
            object["metadata"]?["resourceVersion"] = .string(String(revision))
            self.object = object
            self.stored = stored
            self.revision = revision
        }

        /// Not written (a dry run, or nothing changed): no JSON made yet.
        init(unwritten object: JSONValue) {
            self.object = object
            self.stored = nil
            self.revision = 0
        }

        /// The object's JSON, from the stored bytes; nil when it must be encoded from `object`.
        public var json: [UInt8]? { stored.flatMap { StoredJSON.withResourceVersion($0, revision) } }
    }

    /// Creates `object` at `key`; returns it with its resource version.
    public func create(_ key: String, _ object: JSONValue, lease: Int64 = 0,
                       alreadyExists: @autoclosure () -> APIError) async throws(APIError) -> JSONValue {
        try await createWritten(key, object, lease: lease, alreadyExists: alreadyExists()).object
    }

    /// `create`, with the created object's JSON.
    public func createWritten(_ key: String, _ object: JSONValue, lease: Int64 = 0,
                              alreadyExists: @autoclosure () -> APIError) async throws(APIError) -> Written {
        let bytes = try Self.encode(object)
        let keyBytes = Array(key.utf8)
        var attempt = 0
        while true {
            do {
                let rev = try await kv.create(keyBytes, value: bytes, lease: lease)
                return Written(object, stored: bytes, revision: rev)
            } catch is KeyValueStoreError {
                throw alreadyExists()
            } catch where Self.isTransient(error) && attempt < Self.transientRetries {
                attempt += 1
                // The answer was lost: the create may or may not have been applied. The key
                // holding exactly our bytes (a fresh uid is in them) means it was.
                let current = try await call { try await kv.get(keyBytes) }
                if let found = current.kv {
                    guard found.value == bytes else { throw alreadyExists() }
                    return Written(object, stored: bytes, revision: found.modRevision)
                }
            } catch {
                throw Self.map(error)
            }
        }
    }

    /// Replaces `key` if its mod revision is still `expected`; nil on conflict.
    public func update(_ key: String, _ object: JSONValue, expected: Int64, lease: Int64 = 0) async throws(APIError) -> JSONValue? {
        try await updateWritten(key, object, expected: expected, lease: lease)?.object
    }

    /// `update`, with the updated object's JSON.
    public func updateWritten(_ key: String, _ object: JSONValue, expected: Int64, lease: Int64 = 0) async throws(APIError) -> Written? {
        let bytes = try Self.encode(object)
        let keyBytes = Array(key.utf8)
        var attempt = 0
        while true {
            do {
                switch try await kv.update(keyBytes, value: bytes, expectedModRevision: expected, lease: lease) {
                case .succeeded(let rev):
                    return Written(object, stored: bytes, revision: rev)
                case .conflict:
                    return nil
                }
            } catch where Self.isTransient(error) && attempt < Self.transientRetries {
                attempt += 1
                // The answer was lost. Unchanged mod revision: not applied, try again. Our bytes
                // at a newer revision: applied. Anything else: someone else wrote, a conflict.
                let current = try await call { try await kv.get(keyBytes) }
                guard let found = current.kv else { return nil }
                if found.modRevision == expected { continue }
                guard found.value == bytes else { return nil }
                return Written(object, stored: bytes, revision: found.modRevision)
            } catch {
                throw Self.map(error)
            }
        }
    }

    /// Deletes `key` if its mod revision is still `expected`; nil on conflict.
    public func delete(_ key: String, expected: Int64?) async throws(APIError) -> Int64? {
        let keyBytes = Array(key.utf8)
        var attempt = 0
        while true {
            do {
                switch try await kv.delete(keyBytes, expectedModRevision: expected) {
                case .succeeded(let rev): return rev
                case .conflict: return nil
                }
            } catch where Self.isTransient(error) && attempt < Self.transientRetries {
                attempt += 1
                // The answer was lost. Gone: deleted (at or before the revision read at).
                // Still at the expected revision: not applied, try again.
                let current = try await call { try await kv.get(keyBytes) }
                guard let found = current.kv else { return current.revision }
                if expected == nil || found.modRevision == expected { continue }
                return nil
            } catch {
                throw Self.map(error)
            }
        }
    }

    public func currentRevision() async throws(APIError) -> Int64 {
        try await call { try await kv.currentRevision() }
    }

    // MARK: Errors

    /// How often a call that failed in transit is tried again.
    static let transientRetries = 3

    /// A failure of the transport to the store rather than an answer from it: a remote
    /// etcd's connection dropped (grpc-swift drops its connection to etcd 3.4 every ~100
    /// calls, failing the calls in flight with "Stream unexpectedly closed"; see
    /// docs/store.md). The call may or may not have been applied.
    static func isTransient(_ error: any Error) -> Bool {
        !(error is APIError || error is MVCCError || error is KeyValueStoreError || error is CancellationError)
    }

    /// Runs a store call, turning store errors into API errors. Calls that failed in
    /// transit are retried (reads, lease grants and watch starts, which are safe to repeat;
    /// writes resolve a lost answer by reading the key instead).
    func call<T>(_ body: () async throws -> T) async throws(APIError) -> T {
        var attempt = 0
        while true {
            do {
                return try await body()
            } catch where Self.isTransient(error) && attempt < Self.transientRetries {
                attempt += 1
                try? await Task.sleep(for: .milliseconds(20 << attempt))
            } catch {
                throw Self.map(error)
            }
        }
    }

    static func map(_ error: any Error) -> APIError {
        if let e = error as? APIError { return e }
        if let e = error as? MVCCError {
            switch e.code {
            case .compacted:
                return APIError(.expired, "The resourceVersion for the provided list is too old.")
            case .futureRevision:
                return APIError(.timeout, "Too large resource version: the store has not reached it yet; retry later")
            case .noSpace:
                return APIError(.internalError, "etcdserver: mvcc: database space exceeded; compact and defragment the store")
            default:
                return APIError(.internalError, e.message)
            }
        }
        return APIError(.serviceUnavailable, "the storage backend is unavailable: \(error)")
    }
}

extension ObjectStore {
    /// The embedded store's WAL syncs for `/metrics` (none for an external etcd, whose own
    /// `/metrics` has its `etcd_disk_wal_fsync_duration_seconds`).
    var engineMetrics: String { (kv as? MVCCStore)?.engineStatistics.walSyncMetrics ?? "" }
}
