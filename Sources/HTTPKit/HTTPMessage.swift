// Plain request and response values shared by HTTPServer and HTTPClient: the whole body in memory,
// which is what JSON APIs of a few kilobytes need.
import Foundation
import NIOHTTP1

/// An HTTP request as the server received it, or as a client will send it.
public struct HTTPRequest: Sendable {
    public var method: HTTPMethod
    /// The path without the query, still percent-encoded: `pathSegments` decodes it segment by
    /// segment, so an encoded "/" never splits a segment.
    public var path: String
    /// Query parameters, decoded; the last value wins when a name repeats.
    public var query: [String: String]
    public var headers: HTTPHeaders
    public var body: Data
    /// The query exactly as received, still percent-encoded ("" when there is none), for
    /// servers that decode it by other rules (form encoding, where "+" is a space).
    public var rawQuery: String

    public init(method: HTTPMethod, path: String, query: [String: String] = [:], headers: HTTPHeaders = [:], body: Data = Data(),
                rawQuery: String = "") {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.rawQuery = rawQuery
    }

    /// Splits a request target ("/v1/disks?limit=2") into path and decoded query.
    public init(method: HTTPMethod, uri: String, headers: HTTPHeaders, body: Data) {
        guard uri.utf8.contains(UInt8(ascii: "?")) else {  // no query to decode (URLComponents is slow)
            self.init(method: method, path: uri, query: [:], headers: headers, body: body, rawQuery: "")
            return
        }
        let components = URLComponents(string: uri)
        var query: [String: String] = [:]
        for item in components?.queryItems ?? [] { query[item.name] = item.value ?? "" }
        let parts = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let rawPath = parts.first.map(String.init) ?? uri
        let rawQuery = parts.count > 1 ? String(parts[1]) : ""
        self.init(method: method, path: rawPath, query: query, headers: headers, body: body, rawQuery: rawQuery)
    }

    /// The path's segments, each percent-decoded ("/v1/disks/a%2Fb" → ["v1", "disks", "a/b"]).
    public var pathSegments: [String] {
        path.split(separator: "/", omittingEmptySubsequences: true).map { segment in
            // Foundation's decoding is slow; most segments have nothing to decode.
            segment.utf8.contains(UInt8(ascii: "%")) ? (segment.removingPercentEncoding ?? String(segment)) : String(segment)
        }
    }

    /// The request target: path plus the percent-encoded query, sorted by name for stable logs.
    public var uri: String {
        guard !query.isEmpty else { return path }
        var components = URLComponents()
        components.queryItems = query.sorted { $0.key < $1.key }.map { URLQueryItem(name: $0.key, value: $0.value) }
        return path + "?" + (components.percentEncodedQuery ?? "")
    }

    /// The bearer token of the Authorization header, if there is one.
    public var bearerToken: String? {
        guard let value = headers.first(name: "Authorization") else { return nil }
        let parts = value.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        // Blanks (`CharacterSet.whitespaces`: tab and Unicode space separators) around the token
        // dropped, without Foundation's character sets, which cost more than the rest of the
        // request's authentication.
        let blank: (Character) -> Bool = { $0.isWhitespace && !$0.isNewline }
        var token = parts[1].drop(while: blank)
        while let last = token.last, blank(last) { token = token.dropLast() }
        return String(token)
    }
}

/// Writes the chunks of a streamed response body; each write is flushed to the client at once.
public struct HTTPBodyWriter: Sendable {
    private let sink: @Sendable (Data) async throws -> Void
    /// The connection itself, for a producer that writes many streams from their event loops
    /// (a watch fan-out) instead of a task per stream; nil where the transport has none.
    public let direct: HTTPDirectBody?

    public init(_ sink: @escaping @Sendable (Data) async throws -> Void) {
        self.sink = sink
        self.direct = nil
    }

    init(direct: HTTPDirectBody, _ sink: @escaping @Sendable (Data) async throws -> Void) {
        self.sink = sink
        self.direct = direct
    }

    /// Sends `bytes` as one chunk. Throws once the client has gone.
    public func write(_ bytes: Data) async throws { try await sink(bytes) }
}

/// Produces a streamed body. It runs until it returns, throws, or is cancelled because the
/// client closed the connection or the server is shutting down.
public typealias HTTPBodyStream = @Sendable (HTTPBodyWriter) async throws -> Void

/// An HTTP response.
public struct HTTPResponse: Sendable {
    public var status: HTTPResponseStatus
    public var headers: HTTPHeaders
    public var body: Data
    /// When set, the body is streamed with chunked transfer encoding instead of `body`
    /// (a watch: one event per chunk, for as long as the stream runs).
    public var stream: HTTPBodyStream?

    public init(status: HTTPResponseStatus, headers: HTTPHeaders = [:], body: Data = Data()) {
        self.status = status
        self.headers = headers
        self.body = body
        self.stream = nil
    }

    /// A response whose body `stream` writes chunk by chunk.
    public static func streaming(status: HTTPResponseStatus = .ok, headers: HTTPHeaders, stream: @escaping HTTPBodyStream) -> HTTPResponse {
        var response = HTTPResponse(status: status, headers: headers)
        response.stream = stream
        return response
    }

    /// A JSON response of an Encodable value; the default encoder sorts keys, so output is stable.
    public static func json<T: Encodable>(_ value: T, status: HTTPResponseStatus = .ok,
                                          encoder: JSONEncoder = defaultEncoder) -> HTTPResponse {
        do {
            var body = try encoder.encode(value)
            body.append(0x0A)
            return HTTPResponse(status: status, headers: ["Content-Type": "application/json"], body: body)
        } catch {
            return .text("cannot encode the response: \(error)\n", status: .internalServerError)
        }
    }

    /// Sorted keys, pretty-printed, slashes unescaped, dates in ISO 8601.
    public static var defaultEncoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }

    public static func text(_ text: String, status: HTTPResponseStatus = .ok) -> HTTPResponse {
        HTTPResponse(status: status, headers: ["Content-Type": "text/plain; charset=utf-8"], body: Data(text.utf8))
    }
}
