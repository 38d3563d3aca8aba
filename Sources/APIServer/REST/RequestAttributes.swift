import Foundation
import HTTPKit

/// What a request asks for, parsed from its method and path as Kubernetes'
/// `RequestInfoFactory` does; the input of authorization and routing.
public struct RequestAttributes: Sendable, Equatable {
    /// get, list, watch, create, update, patch, delete, deletecollection (resource requests);
    /// the lowercase HTTP method otherwise.
    public var verb: String
    public var isResourceRequest: Bool
    /// The request path (for non-resource requests).
    public var path: String
    public var group: String = ""
    public var version: String = ""
    public var resource: String = ""
    public var subresource: String = ""
    /// nil for cluster-scoped requests and for lists across namespaces.
    public var namespace: String?
    public var name: String = ""

    public var qualifiedResource: String { group.isEmpty ? resource : resource + "." + group }

    public init(verb: String, isResourceRequest: Bool, path: String) {
        self.verb = verb
        self.isResourceRequest = isResourceRequest
        self.path = path
    }

    /// Parses `method` + `path` (already split into decoded segments) and the query.
    public static func parse(method: String, segments: [String], path: String, query: [String: String]) -> RequestAttributes {
        var nonResource = RequestAttributes(verb: method.lowercased(), isResourceRequest: false, path: path)
        var parts = segments[...]
        guard let prefix = parts.first else { return nonResource }
        parts = parts.dropFirst()
        var attributes = RequestAttributes(verb: "", isResourceRequest: true, path: path)
        switch prefix {
        case "api":
            guard parts.count >= 2 else { return nonResource }
            attributes.version = parts.removeFirst()
        case "apis":
            guard parts.count >= 3 else { return nonResource }
            attributes.group = parts.removeFirst()
            attributes.version = parts.removeFirst()
        default:
            return nonResource
        }
        var rest = Array(parts)
        if rest.first == "namespaces", rest.count > 1 {
            attributes.namespace = rest[1]
            if rest.count > 2 && !["status", "finalize"].contains(rest[2]) {
                rest = Array(rest.dropFirst(2))
            } else {
                // The namespace object itself: /namespaces/{name}[/status].
                attributes.namespace = nil
                rest = ["namespaces", rest[1]] + rest.dropFirst(2)
            }
        }
        guard let resource = rest.first else {
            nonResource.verb = method.lowercased()
            return nonResource
        }
        attributes.resource = resource
        if rest.count > 1 { attributes.name = rest[1] }
        if rest.count > 2 { attributes.subresource = rest[2] }
        if rest.count > 3 { attributes.subresource = rest[2...].joined(separator: "/") }
        let watch = ["true", "1"].contains(query["watch"] ?? "")
        switch method.uppercased() {
        case "GET", "HEAD":
            if watch { attributes.verb = "watch" } else { attributes.verb = attributes.name.isEmpty ? "list" : "get" }
        case "POST": attributes.verb = "create"
        case "PUT": attributes.verb = "update"
        case "PATCH": attributes.verb = "patch"
        case "DELETE": attributes.verb = attributes.name.isEmpty ? "deletecollection" : "delete"
        default: attributes.verb = method.lowercased()
        }
        return attributes
    }
}

/// Decodes an `application/x-www-form-urlencoded` query as Go's `url.ParseQuery` does:
/// `+` is a space, `%XX` a byte; the first value of a repeated name wins (as `Query().Get`).
public func parseFormQuery(_ raw: String) -> [String: String] {
    var result: [String: String] = [:]
    for pair in raw.split(separator: "&", omittingEmptySubsequences: true) {
        let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        func decode(_ s: Substring) -> String {
            let spaced = s.replacingOccurrences(of: "+", with: " ")
            return spaced.removingPercentEncoding ?? spaced
        }
        let name = decode(kv[0])
        let value = kv.count > 1 ? decode(kv[1]) : ""
        if result[name] == nil { result[name] = value }
    }
    return result
}
