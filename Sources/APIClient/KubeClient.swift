// A typed client of the Kubernetes REST API: get, list, create, update (and status), patch,
// delete and watch, for every `APIObject` type, over HTTPS with a bearer token.
import ClusterAPI
import Foundation
import HTTPKit
import NIOHTTP1
import Synchronization

/// One event of a watch.
public struct WatchEvent<Object: APIObject>: Sendable {
    public enum Kind: String, Sendable { case added = "ADDED", modified = "MODIFIED", deleted = "DELETED", bookmark = "BOOKMARK", error = "ERROR" }
    public var kind: Kind
    /// The object (for a bookmark, only its resourceVersion is meaningful); nil for errors.
    public var object: Object?
    /// For ERROR events: the Status (410 Gone when the resource version was compacted).
    public var status: Status?

    public init(kind: Kind, object: Object?, status: Status? = nil) {
        self.kind = kind
        self.object = object
        self.status = status
    }
}

public struct KubeClient: Sendable {
    public let connection: Connection
    /// How requests reach the server: `HTTPClient` (keep-alive connections are pooled for
    /// plain requests; each watch opens a connection of its own for as long as it runs), or
    /// a `HandlerTransport` that calls an API handler in this process.
    private let transport: any HTTPTransport

    /// A client of the server `connection` names, over HTTP(S).
    public init(_ connection: Connection) throws {
        guard let host = connection.server.host, let scheme = connection.server.scheme, ["http", "https"].contains(scheme) else {
            throw APIError.configuration("server \(connection.server) is not http(s)://HOST:PORT")
        }
        let port = connection.server.port ?? (scheme == "https" ? 443 : 80)
        if scheme == "https" {
            self.init(connection, transport: try HTTPClient(host: host, port: port, trustRootsPEM: connection.certificateAuthorityPEM,
                                                            timeout: connection.timeout, keepAlive: true))
        } else {
            self.init(connection, transport: HTTPClient(host: host, port: port, timeout: connection.timeout, keepAlive: true))
        }
    }

    /// A client that sends its requests through `transport`; `connection` gives the token
    /// (and names the server in messages).
    public init(_ connection: Connection, transport: any HTTPTransport) {
        self.connection = connection
        self.transport = transport
    }

    // MARK: Typed calls

    public func get<T: APIObject>(_ type: T.Type, name: String, namespace: String? = nil) async throws -> T {
        try await call(.GET, ResourcePath.object(type, name: name, namespace: namespace))
    }

    public func list<T: APIObject>(_ type: T.Type, namespace: String? = nil, labelSelector: String? = nil, fieldSelector: String? = nil,
                                   limit: Int? = nil, continueToken: String? = nil, resourceVersion: String? = nil) async throws -> List<T> {
        var query: [String: String] = [:]
        query["labelSelector"] = labelSelector
        query["fieldSelector"] = fieldSelector
        query["limit"] = limit.map(String.init)
        query["continue"] = continueToken
        query["resourceVersion"] = resourceVersion
        return try await call(.GET, ResourcePath.collection(type, namespace: namespace), query: query)
    }

    public func create<T: APIObject>(_ object: T) async throws -> T {
        try await call(.POST, ResourcePath.collection(T.self, namespace: object.metadata.namespace), body: try encode(object))
    }

    /// Creates `object` without reading the server's copy back (no response decoded): for
    /// writers that need only to know it was stored, such as an event recorder.
    public func createDiscardingResult<T: APIObject>(_ object: T) async throws {
        let path = ResourcePath.collection(T.self, namespace: object.metadata.namespace)
        let response = try await send(.POST, path, json: try encode(object))
        guard (200..<300).contains(response.status.code) else { throw failure(Int(response.status.code), response.body) }
    }

    /// Replaces the object; 409 Conflict (`isConflict`) when its resourceVersion is stale.
    public func update<T: APIObject>(_ object: T) async throws -> T {
        try await call(.PUT, ResourcePath.object(T.self, name: try name(of: object), namespace: object.metadata.namespace), body: try encode(object))
    }

    /// Replaces the object's status (the `status` subresource).
    public func updateStatus<T: APIObject>(_ object: T) async throws -> T {
        try await call(.PUT, ResourcePath.object(T.self, name: try name(of: object), namespace: object.metadata.namespace) + "/status",
                       body: try encode(object))
    }

    /// A JSON merge patch (RFC 7386).
    public func mergePatch<T: APIObject>(_ type: T.Type, name: String, namespace: String? = nil, patch: JSONValue,
                                         subresource: String? = nil) async throws -> T {
        let path = ResourcePath.object(type, name: name, namespace: namespace) + (subresource.map { "/" + $0 } ?? "")
        return try await call(.PATCH, path, body: patch.jsonData, contentType: "application/merge-patch+json")
    }

    public func delete<T: APIObject>(_ type: T.Type, name: String, namespace: String? = nil) async throws {
        let _: JSONValue = try await call(.DELETE, ResourcePath.object(type, name: name, namespace: namespace))
    }

    /// Changes from `resourceVersion` on (empty: the current state first, as ADDED events).
    /// The stream ends when the server closes the watch; an expired version arrives as an ERROR
    /// event with a 410 Status, or as `APIError` 410 when the watch starts.
    public func watch<T: APIObject>(_ type: T.Type, namespace: String? = nil, labelSelector: String? = nil, fieldSelector: String? = nil,
                                    resourceVersion: String? = nil, bookmarks: Bool = true,
                                    timeoutSeconds: Int? = nil) async throws -> AsyncThrowingStream<WatchEvent<T>, any Error> {
        let lines = try await watchLines(type, namespace: namespace, labelSelector: labelSelector, fieldSelector: fieldSelector,
                                         resourceVersion: resourceVersion, bookmarks: bookmarks, timeoutSeconds: timeoutSeconds)
        return Self.events(lines, as: type)
    }

    /// A watch as its raw JSON lines (`{"type": …, "object": …}`), undecoded: for callers that
    /// only look at a few bytes of each event.
    public func watchLines<T: APIObject>(_ type: T.Type, namespace: String? = nil, labelSelector: String? = nil, fieldSelector: String? = nil,
                                         resourceVersion: String? = nil, bookmarks: Bool = true,
                                         timeoutSeconds: Int? = nil) async throws -> AsyncThrowingStream<Data, any Error> {
        try await watchLines(path: ResourcePath.collection(type, namespace: namespace), labelSelector: labelSelector,
                             fieldSelector: fieldSelector, resourceVersion: resourceVersion, bookmarks: bookmarks,
                             timeoutSeconds: timeoutSeconds)
    }

    /// A watch read in place: `consume` gets the stream's complete lines as they arrive, from
    /// the connection's event loop over `HTTPClient` (it must not block), without a task, a copy
    /// or an allocation per chunk or line: for readers that follow many watches at once and look
    /// at a few bytes of each event. The bytes are valid only during the call. Returns once the
    /// watch has started (a refusal is thrown as its API error); the returned reading's
    /// `finished()` waits for its end and `cancel()` stops it. A last line cut off without its
    /// newline (the connection closed mid-line) is not handed over.
    public func watchLinesInPlace<T: APIObject>(_ type: T.Type, namespace: String? = nil, resourceVersion: String? = nil,
                                                bookmarks: Bool = true,
                                                _ consume: @escaping @Sendable (WatchLineBytes) -> Void) async throws -> HTTPStreamReading {
        let query = Self.watchQuery(labelSelector: nil, fieldSelector: nil, resourceVersion: resourceVersion, bookmarks: bookmarks,
                                    timeoutSeconds: nil)
        let splitter = InPlaceLineSplitter()
        let start: HTTPStreamStart
        do {
            start = try await transport.readStream(request(.GET, ResourcePath.collection(type, namespace: namespace), query: query,
                                                           body: Data())) { chunk in
                try chunk.withUnsafeReadableBytes { raw in try splitter.feed(raw, consume) }
            }
        } catch let error as HTTPClientError {
            throw APIError.transport(error.description)
        }
        switch start {
        case .streaming(let reading): return reading
        case .refused(let response): throw failure(Int(response.status.code), response.body)
        }
    }

    /// The watch of the collection at `path`, as raw JSON lines.
    func watchLines(path: String, labelSelector: String?, fieldSelector: String?, resourceVersion: String?, bookmarks: Bool,
                    timeoutSeconds: Int?) async throws -> AsyncThrowingStream<Data, any Error> {
        let response = try await openWatch(path: path, labelSelector: labelSelector, fieldSelector: fieldSelector,
                                           resourceVersion: resourceVersion, bookmarks: bookmarks, timeoutSeconds: timeoutSeconds)
        return AsyncThrowingStream { continuation in
            let reader = Task {
                var lines = LineSplitter()
                do {
                    for try await chunk in response.body {
                        for line in try lines.split(chunk) { continuation.yield(line) }
                    }
                    if let last = lines.remainder { continuation.yield(last) }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in reader.cancel() }
        }
    }

    /// Opens the watch of the collection at `path`; a refusal is thrown as its API error.
    private func openWatch(path: String, labelSelector: String?, fieldSelector: String?, resourceVersion: String?, bookmarks: Bool,
                           timeoutSeconds: Int?) async throws -> HTTPStreamingResponse {
        let query = Self.watchQuery(labelSelector: labelSelector, fieldSelector: fieldSelector, resourceVersion: resourceVersion,
                                    bookmarks: bookmarks, timeoutSeconds: timeoutSeconds)
        let response: HTTPStreamingResponse
        do {
            response = try await transport.stream(request(.GET, path, query: query, body: Data()))
        } catch let error as HTTPClientError {
            throw APIError.transport(error.description)
        }
        guard (200..<300).contains(response.status.code) else {
            var body = Data()
            for try await chunk in response.body { body.append(chunk) }
            throw failure(Int(response.status.code), body)
        }
        return response
    }

    /// A watch request's query.
    private static func watchQuery(labelSelector: String?, fieldSelector: String?, resourceVersion: String?, bookmarks: Bool,
                                   timeoutSeconds: Int?) -> [String: String] {
        var query = ["watch": "true"]
        query["labelSelector"] = labelSelector
        query["fieldSelector"] = fieldSelector
        query["resourceVersion"] = resourceVersion
        query["timeoutSeconds"] = timeoutSeconds.map(String.init)
        if bookmarks { query["allowWatchBookmarks"] = "true" }
        return query
    }

    /// Decodes a stream of watch lines as events of `T`.
    static func events<T: APIObject>(_ lines: AsyncThrowingStream<Data, any Error>, as type: T.Type) -> AsyncThrowingStream<WatchEvent<T>, any Error> {
        AsyncThrowingStream { continuation in
            let reader = Task {
                do {
                    for try await line in lines { continuation.yield(try Self.event(line)) }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in reader.cancel() }
        }
    }

    /// Any call, for subresources without a typed method (a pod's binding, a log).
    public func send(_ method: HTTPMethod, _ path: String, query: [String: String] = [:], json body: Data = Data(),
                     contentType: String = "application/json") async throws -> HTTPResponse {
        do {
            return try await transport.send(request(method, path, query: query, body: body, contentType: contentType))
        } catch let error as HTTPClientError {
            throw APIError.transport(error.description)
        } catch let error as APIError {
            throw error
        } catch {
            throw APIError.transport("\(error)")
        }
    }

    // MARK: Plumbing

    private static func event<T: APIObject>(_ line: Data) throws -> WatchEvent<T> {
        try event(line) { try JSONValueDecoder().decode(T.self, from: $0) }
    }

    /// One watch line as an event, its object made by `decode` (an ERROR's Status is decoded whole).
    static func event<T: APIObject>(_ line: Data, decode: (JSONValue) throws -> T) throws -> WatchEvent<T> {
        let envelope = try JSONValue(parsing: line)
        let type = envelope["type"]?.stringValue ?? ""
        guard let kind = WatchEvent<T>.Kind(rawValue: type) else {
            throw APIError.transport("unknown watch event type \(type)")
        }
        let object = envelope["object"] ?? .null
        if kind == .error {
            return WatchEvent(kind: kind, object: nil, status: try JSONValueDecoder().decode(Status.self, from: object))
        }
        return WatchEvent(kind: kind, object: try decode(object), status: nil)
    }

    func call<R: Decodable>(_ method: HTTPMethod, _ path: String, query: [String: String] = [:], body: Data = Data(),
                                    contentType: String = "application/json") async throws -> R {
        let response = try await send(method, path, query: query, json: body, contentType: contentType)
        guard (200..<300).contains(response.status.code) else { throw failure(Int(response.status.code), response.body) }
        do {
            return try JSONValueDecoder().decode(R.self, from: JSONValue(parsing: response.body))
        } catch {
            throw APIError.transport("\(method.rawValue) \(path): the answer is not a \(R.self): \(error)")
        }
    }

    private func request(_ method: HTTPMethod, _ path: String, query: [String: String], body: Data,
                         contentType: String = "application/json") -> HTTPRequest {
        var headers: HTTPHeaders = ["Accept": "application/json", "User-Agent": "ballast/0.1"]
        if let token = connection.token { headers.add(name: "Authorization", value: "Bearer \(token)") }
        if !body.isEmpty { headers.add(name: "Content-Type", value: contentType) }
        return HTTPRequest(method: method, path: path, query: query, headers: headers, body: body)
    }

    private func failure(_ code: Int, _ body: Data) -> APIError { Self.apiError(code, body) }

    private func encode<T: Encodable>(_ value: T) throws -> Data {
        try JSONValueEncoder().encode(value).jsonData
    }

    private func name<T: APIObject>(of object: T) throws -> String {
        guard let name = object.metadata.name, !name.isEmpty else {
            throw APIError.configuration("\(T.defaultKind) has no metadata.name; set it before updating")
        }
        return name
    }
}

/// Splits a watch stream's chunks into its JSON lines (blank ones skipped), finding newlines
/// with `memchr` and copying only the bytes of a line that a chunk boundary cut.
struct LineSplitter {
    /// The longest line kept: far above the largest object (1.5 MiB stored) as JSON or a Table.
    static let maxLineBytes = 64 << 20
    private var pending: [UInt8] = []

    /// The unfinished last line, unless blank.
    var remainder: Data? { Self.isBlank(pending) ? nil : Data(pending) }

    /// The lines `chunk` completes.
    mutating func split(_ chunk: Data) throws -> [Data] {
        var lines: [Data] = []
        chunk.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> Void in
            guard let base = raw.baseAddress else { return }
            let count: Int = raw.count
            var start = 0
            while start < count {
                guard let found = memchr(base + start, Int32(0x0A), count - start) else {
                    pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[start..<count]))
                    break
                }
                let end: Int = base.distance(to: UnsafeRawPointer(found))
                let piece = UnsafeRawBufferPointer(rebasing: raw[start..<end])
                if pending.isEmpty {
                    if !Self.isBlank(piece) { lines.append(Data(piece)) }
                } else {
                    pending.append(contentsOf: piece)
                    if !Self.isBlank(pending) { lines.append(Data(pending)) }
                    pending.removeAll(keepingCapacity: true)
                }
                start = end + 1
            }
        }
        if pending.count > Self.maxLineBytes {
            throw APIError.transport("a watch line is longer than \(Self.maxLineBytes) bytes without a newline: the stream is not a Kubernetes watch")
        }
        return lines
    }

    private static func isBlank<C: Collection<UInt8>>(_ bytes: C) -> Bool {
        for byte in bytes where byte != 0x20 && byte != 0x0D { return false }
        return true
    }
}

/// Whole lines of a watch stream, each ending in a newline, as they arrived: valid only during
/// the call that hands them over (`KubeClient.watchLinesInPlace`).
public struct WatchLineBytes {
    /// One or more lines, each with its newline.
    public let bytes: UnsafeRawBufferPointer

    public init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    /// Calls `body` with each line that is not blank, without its newline (nor a `\r` before it).
    public func forEachLine(_ body: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        guard let base = bytes.baseAddress else { return }
        var start = 0
        while start < bytes.count, let found = memchr(base + start, 0x0A, bytes.count - start) {
            let end = base.distance(to: UnsafeRawPointer(found))
            var last = end
            if last > start && bytes[last - 1] == 0x0D { last -= 1 }
            let line = UnsafeRawBufferPointer(rebasing: bytes[start..<last])
            if line.contains(where: { $0 != 0x20 }) { try body(line) }
            start = end + 1
        }
    }
}

/// Finds a watch stream's lines in its chunks where they arrived: whole lines are handed over
/// in place, and only a line that a chunk boundary cut is copied (into `pending`), as
/// `LineSplitter` does for lines handed over as `Data`.
final class InPlaceLineSplitter: Sendable {
    /// The start of a line that the chunks so far have not finished. Only the reading's loop
    /// feeds it; the lock is never contended.
    private let pending = Mutex<[UInt8]>([])

    func feed(_ raw: UnsafeRawBufferPointer, _ consume: (WatchLineBytes) -> Void) throws {
        guard let base = raw.baseAddress, raw.count > 0 else { return }
        try pending.withLock { pending in
            var start = 0
            if !pending.isEmpty {
                guard let found = memchr(base, 0x0A, raw.count) else {
                    pending.append(contentsOf: raw)
                    try Self.check(pending.count)
                    return
                }
                let end = base.distance(to: UnsafeRawPointer(found))
                pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[0...end]))
                pending.withUnsafeBytes { consume(WatchLineBytes($0)) }
                pending.removeAll(keepingCapacity: pending.capacity <= 1 << 20)
                start = end + 1
            }
            var last = raw.count - 1
            while last >= start && raw[last] != 0x0A { last -= 1 }
            if last >= start {
                consume(WatchLineBytes(UnsafeRawBufferPointer(rebasing: raw[start...last])))
                start = last + 1
            }
            if start < raw.count {
                pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[start...]))
                try Self.check(pending.count)
            }
        }
    }

    private static func check(_ count: Int) throws {
        if count > LineSplitter.maxLineBytes {
            throw APIError.transport("a watch line is longer than \(LineSplitter.maxLineBytes) bytes without a newline: the stream is not a Kubernetes watch")
        }
    }
}
