import ClusterAPI
import Foundation
import HTTPKit

extension APIHandler {
    func key(_ info: ResourceInfo, _ c: RequestContext) -> String {
        info.key(namespace: c.attributes.namespace, name: c.attributes.name)
    }

    /// The stored object named by the request, or 404.
    func load(_ info: ResourceInfo, namespace: String?, name: String) async throws(APIError) -> ObjectStore.Stored {
        guard let stored = try await store.get(info.key(namespace: namespace, name: name)) else {
            throw APIError.notFound(info, name)
        }
        return stored
    }

    func get(_ c: RequestContext, _ info: ResourceInfo) async throws -> HTTPResponse {
        let stored = try await load(info, namespace: c.attributes.namespace, name: c.attributes.name)
        if c.wantsTable {
            let meta: JSONValue = ["resourceVersion": stored.object["metadata"]?["resourceVersion"] ?? ""]
            return Self.json(TablePrinter.table(kind: info.kind, objects: [stored.object], listMeta: meta, include: c.include, custom: info.printerColumns))
        }
        return Self.json(Self.served(stored.object, info))
    }

    /// `{"v":"meta.k8s.io/v1","rv":N,"start":"<key after the prefix>"}`, base64 — Kubernetes' token shape.
    /// `rv` -1 (the token a 410 for an expired one carries): go on at the current revision.
    static func continueToken(revision: Int64, lastKey: [UInt8], prefix: String) -> String {
        let start = String(decoding: lastKey.dropFirst(prefix.utf8.count), as: UTF8.self)
        let token: JSONValue = ["v": "meta.k8s.io/v1", "rv": .integer(revision), "start": .string(start)]
        return encode(token).base64EncodedString()
    }

    /// The revision to read at (0: the current one) and the key to read after.
    static func parseContinue(_ token: String, prefix: String) throws(APIError) -> (revision: Int64, after: [UInt8]) {
        guard let data = Data(base64Encoded: token), let value = try? JSONValue(parsing: data),
              let rev = value["rv"]?.int64Value, rev > 0 || rev == -1, let start = value["start"]?.stringValue, !start.isEmpty,
              !start.contains("..") else {
            throw APIError.badRequest("continue key is not valid: pass the continue token of the previous list response unchanged")
        }
        return (max(0, rev), Array((prefix + start).utf8))
    }

    /// `limit=`: any int64, as in Kubernetes (zero or negative: no limit). The store is read in
    /// pages of a bounded size whatever the limit (`ObjectStore.list`), so a huge limit is only
    /// "everything".
    static func listLimit(_ text: String?) throws(APIError) -> Int {
        guard let text, !text.isEmpty else { return 0 }
        guard let limit = Int64(text) else {
            throw APIError.badRequest("limit \"\(text)\" is not valid: expected an integer (the most items to return)")
        }
        return Int(max(0, limit))
    }

    /// A list. Answered from the watch cache unless it asks for an exact past revision
    /// (`resourceVersionMatch=Exact`) or continues a paged list: those read the store. With no
    /// resourceVersion the cache first catches up with the store's current revision (a
    /// consistent read, as Kubernetes 1.31+ serves it); with N it is at least as new as N; "0"
    /// is whatever it holds. A limited list from the cache continues from the store, at the
    /// revision of its first page.
    func list(_ c: RequestContext, _ info: ResourceInfo) async throws -> HTTPResponse {
        let selection = try Selection(resource: info, labelSelector: c.query["labelSelector"], fieldSelector: c.query["fieldSelector"])
        let prefix = info.listPrefix(namespace: c.attributes.namespace)
        let limit = try Self.listLimit(c.query["limit"])
        let match = c.query["resourceVersionMatch"] ?? ""
        let rv = try Self.resourceVersion(c.query["resourceVersion"])
        switch match {
        case "", "NotOlderThan", "Exact": break
        default:
            throw APIError.badRequest("resourceVersionMatch: Unsupported value: \"\(match)\": supported values: \"Exact\", \"NotOlderThan\"")
        }
        if !match.isEmpty && rv == nil {
            throw APIError.badRequest("resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided")
        }
        if match == "Exact" && rv == 0 {
            throw APIError.badRequest("resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"")
        }
        if let token = c.query["continue"], !token.isEmpty {
            // A continued list reads at its first page's revision: another is refused, as Kubernetes does.
            if !match.isEmpty {
                throw APIError.badRequest("resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden when continue is provided")
            }
            if let rv, rv != 0 { throw APIError.badRequest("specifying resource version is not allowed when using continue") }
            let (revision, after) = try Self.parseContinue(token, prefix: prefix)
            return try await listFromStore(c, info, selection: selection, limit: limit, revision: revision, after: after)
        }
        if match == "Exact", let rv {
            return try await listFromStore(c, info, selection: selection, limit: limit, revision: rv, after: nil)
        }
        try await watchCache.awaitReady()
        try await awaitFresh(rv)
        let page = watchCache.list(keyPrefix: info.keyPrefix, prefix: prefix, selection: selection, limit: limit)
        var meta: JSONValue = ["resourceVersion": .string(String(page.revision))]
        if page.more, let last = page.items.last {
            meta["continue"] = .string(Self.continueToken(revision: page.revision, lastKey: Array(last.key.utf8), prefix: prefix))
        }
        if c.wantsTable {
            return Self.json(TablePrinter.table(kind: info.kind, objects: page.items.map(\.object), listMeta: meta, include: c.include, custom: info.printerColumns))
        }
        return Self.listResponse(info, meta: meta, items: page.items)
    }

    /// A list written from the cached objects' bytes: the JSON the encoder writes for the
    /// same list (keys in order), without encoding the objects again. The body is sized first
    /// and filled with one copy of each object's bytes.
    static func listResponse(_ info: ResourceInfo, meta: JSONValue, items: ArraySlice<CachedObject>) -> HTTPResponse {
        let custom = info.schema != nil
        let head = Array(#"{"apiVersion":"#.utf8) + JSONValue.string(info.groupVersion).jsonBytes + Array(#","items":["#.utf8)
        let tail = Array(#"],"kind":"#.utf8) + JSONValue.string(info.kind + "List").jsonBytes + Array(#","metadata":"#.utf8)
            + meta.jsonBytes + Array("}\n".utf8)
        // A custom resource read through another version than it is stored at is encoded for it.
        let converted: [Int: [UInt8]] = custom ? Dictionary(uniqueKeysWithValues: items.indices.compactMap { i in
            items[i].object["apiVersion"]?.stringValue == info.groupVersion ? nil : (i, servedBytes(items[i], groupVersion: info.groupVersion, custom: true))
        }) : [:]
        var size = head.count + tail.count + max(0, items.count - 1)
        for i in items.indices { size += converted[i]?.count ?? items[i].bytes.count }
        // Filled in place, not zeroed first (Data(count:) would write every byte twice).
        let out = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 1)
        do {
            var at = 0
            func put(_ bytes: [UInt8]) {
                bytes.withUnsafeBytes { source in
                    if let from = source.baseAddress { out.baseAddress!.advanced(by: at).copyMemory(from: from, byteCount: source.count) }
                }
                at += bytes.count
            }
            put(head)
            var first = true
            for i in items.indices {
                if !first {
                    out[at] = UInt8(ascii: ",")
                    at += 1
                }
                first = false
                put(converted[i] ?? items[i].bytes)
            }
            put(tail)
            precondition(at == size, "list body sized \(size) bytes, written \(at)")
        }
        let body = Data(bytesNoCopy: out.baseAddress!, count: size, deallocator: .custom { pointer, _ in pointer.deallocate() })
        return HTTPResponse(status: .ok, headers: ["Content-Type": "application/json"], body: body)
    }

    /// A page read from the store at `revision` (the continuation of a paged list, or an
    /// exact past revision).
    private func listFromStore(_ c: RequestContext, _ info: ResourceInfo, selection: Selection, limit: Int, revision: Int64,
                               after: [UInt8]?) async throws -> HTTPResponse {
        let prefix = info.listPrefix(namespace: c.attributes.namespace)
        let page: (items: [JSONValue], revision: Int64, lastKey: [UInt8]?, remaining: Int64?)
        do {
            page = try await store.list(prefix: prefix, limit: max(0, limit), continueAfter: after, revision: revision) {
                selection.matches($0)
            }
        } catch {
            guard error.code == .expired, c.query["continue"] != nil, let after else { throw error }
            // As Kubernetes: the 410 carries a token that goes on from the same key at the
            // current revision, for a client that accepts an inconsistent list.
            var expired = APIError(.expired, "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.")
            expired.listContinue = Self.continueToken(revision: -1, lastKey: after, prefix: prefix)
            throw expired
        }
        var meta: JSONValue = ["resourceVersion": .string(String(page.revision))]
        if let last = page.lastKey { meta["continue"] = .string(Self.continueToken(revision: page.revision, lastKey: last, prefix: prefix)) }
        if c.wantsTable {
            return Self.json(TablePrinter.table(kind: info.kind, objects: page.items, listMeta: meta, include: c.include, custom: info.printerColumns))
        }
        return Self.json(["kind": .string(info.kind + "List"), "apiVersion": .string(info.groupVersion), "metadata": meta,
                          "items": .array(page.items.map { Self.served($0, info) })])
    }

    /// A custom resource as served through `info`'s version. Without conversion webhooks
    /// Kubernetes' `None` strategy converts by setting `apiVersion` alone, and objects are stored
    /// at the definition's storage version; built-in objects are returned as they are.
    static func served(_ object: JSONValue, _ info: ResourceInfo) -> JSONValue {
        info.schema == nil ? object : withAPIVersion(object, info.groupVersion)
    }

    /// `served` for a cached object (`custom`: of a custom resource): its shared bytes unless its
    /// version must be set.
    static func servedBytes(_ item: CachedObject, groupVersion: String, custom: Bool) -> [UInt8] {
        guard custom, item.object["apiVersion"]?.stringValue != groupVersion else { return item.bytes }
        return withAPIVersion(item.object, groupVersion).jsonBytes
    }

    private static func withAPIVersion(_ object: JSONValue, _ groupVersion: String) -> JSONValue {
        guard case .object = object, object["apiVersion"]?.stringValue != groupVersion else { return object }
        var converted = object
        converted["apiVersion"] = .string(groupVersion)
        return converted
    }

    // MARK: Bodies

    /// The request body as a JSON object (JSON, or kubectl's protobuf envelope).
    func bodyObject(_ c: RequestContext) throws(APIError) -> JSONValue {
        let contentType = (c.request.headers.first(name: "Content-Type") ?? "application/json").lowercased()
        let bytes = c.request.body
        if contentType.hasPrefix("application/vnd.kubernetes.protobuf") {
            do {
                return try ProtobufBody.decode(Array(bytes))
            } catch where error.unsupported {
                throw APIError(.unsupportedMediaType, error.message)
            } catch {
                throw APIError.badRequest("the protobuf body could not be decoded: \(error.message); send the object as JSON (Content-Type: application/json) or as kubectl encodes it")
            }
        }
        guard contentType.hasPrefix("application/json") || contentType.hasPrefix("*/*") || contentType.isEmpty
              || contentType.hasPrefix("application/apply-patch") || contentType.contains("patch+json") else {
            throw APIError(.unsupportedMediaType,
                           "the body of the request was in an unknown format (\(contentType)) - accepted media types include: application/json, application/vnd.kubernetes.protobuf")
        }
        let value: JSONValue
        do {
            value = try JSONValue(parsing: bytes)
        } catch {
            throw APIError.badRequest("the request body is not valid JSON: \(describeDecodingError(error))")
        }
        return value
    }
}
