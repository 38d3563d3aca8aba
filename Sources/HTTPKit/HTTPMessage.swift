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

    public init(method: HTTPMethod, path: String, query: [String: String] = [:], headers: HTTPHeaders = [:], body: Data = Data()) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
    }

    /// Splits a request target ("/v1/disks?limit=2") into path and decoded query.
    public init(method: HTTPMethod, uri: String, headers: HTTPHeaders, body: Data) {
        let components = URLComponents(string: uri)
        var query: [String: String] = [:]
        for item in components?.queryItems ?? [] { query[item.name] = item.value ?? "" }
        let rawPath = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? uri
        self.init(method: method, path: rawPath, query: query, headers: headers, body: body)
    }

    /// The path's segments, each percent-decoded ("/v1/disks/a%2Fb" → ["v1", "disks", "a/b"]).
    public var pathSegments: [String] {
        path.split(separator: "/", omittingEmptySubsequences: true).map { $0.removingPercentEncoding ?? String($0) }
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
        return String(parts[1]).trimmingCharacters(in: .whitespaces)
    }
}

/// An HTTP response.
public struct HTTPResponse: Sendable {
    public var status: HTTPResponseStatus
    public var headers: HTTPHeaders
    public var body: Data

    public init(status: HTTPResponseStatus, headers: HTTPHeaders = [:], body: Data = Data()) {
        self.status = status
        self.headers = headers
        self.body = body
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
