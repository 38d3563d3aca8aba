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

    static func encode(_ object: JSONValue) throws(APIError) -> [UInt8] {
        var stripped = object
        stripped["metadata"]?["resourceVersion"] = nil
        do {
            return Array(try storageEncoder.encode(stripped))
        } catch {
            throw APIError.internalError("cannot encode the object: \(error)")
        }
    }

    static func decode(_ kv: KeyValue) throws(APIError) -> JSONValue {
        do {
            var object = try JSONDecoder().decode(JSONValue.self, from: Data(kv.value))
            object["metadata"]?["resourceVersion"] = .string(String(kv.modRevision))
            return object
        } catch {
            throw APIError.internalError("stored object \(String(decoding: kv.key, as: UTF8.self)) is not JSON: \(error)")
        }
    }

    private static var storageEncoder: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
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
        // Pages are fetched until `limit` objects matched (selectors can reject many).
        let pageSize: Int64 = limit > 0 ? Int64(max(limit, 50)) : 0
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

    // MARK: Writes

    /// Creates `object` at `key`; returns it with its resource version.
    public func create(_ key: String, _ object: JSONValue, lease: Int64 = 0,
                       alreadyExists: @autoclosure () -> APIError) async throws(APIError) -> JSONValue {
        let bytes = try Self.encode(object)
        do {
            let rev = try await kv.create(Array(key.utf8), value: bytes, lease: lease)
            var created = object
            created["metadata"]?["resourceVersion"] = .string(String(rev))
            return created
        } catch is KeyValueStoreError {
            throw alreadyExists()
        } catch {
            throw Self.map(error)
        }
    }

    /// Replaces `key` if its mod revision is still `expected`; nil on conflict.
    public func update(_ key: String, _ object: JSONValue, expected: Int64, lease: Int64 = 0) async throws(APIError) -> JSONValue? {
        let bytes = try Self.encode(object)
        let result = try await call { try await kv.update(Array(key.utf8), value: bytes, expectedModRevision: expected, lease: lease) }
        switch result {
        case .succeeded(let rev):
            var updated = object
            updated["metadata"]?["resourceVersion"] = .string(String(rev))
            return updated
        case .conflict:
            return nil
        }
    }

    /// Deletes `key` if its mod revision is still `expected`; false on conflict.
    public func delete(_ key: String, expected: Int64?) async throws(APIError) -> Int64? {
        let result = try await call { try await kv.delete(Array(key.utf8), expectedModRevision: expected) }
        switch result {
        case .succeeded(let rev): return rev
        case .conflict: return nil
        }
    }

    public func currentRevision() async throws(APIError) -> Int64 {
        try await call { try await kv.currentRevision() }
    }

    // MARK: Errors

    /// Runs a store call, turning store errors into API errors.
    func call<T>(_ body: () async throws -> T) async throws(APIError) -> T {
        do {
            return try await body()
        } catch {
            throw Self.map(error)
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
