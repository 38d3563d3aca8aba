import Foundation
import ClusterAPI

/// Where a type lives in the REST API: "/api/v1" or "/apis/<group>/<version>", and its plural.
public enum ResourcePath {
    /// The lowercase plural the API server serves a kind under.
    public static func plural<T: APIObject>(_ type: T.Type) -> String {
        let kind = T.defaultKind.lowercased()
        switch kind {
        case "endpoints": return kind
        case let name where name.hasSuffix("s"): return name + "es"
        case let name where name.hasSuffix("y"): return String(name.dropLast()) + "ies"
        default: return kind + "s"
        }
    }

    /// "/api/v1" or "/apis/storage.k8s.io/v1".
    public static func prefix<T: APIObject>(_ type: T.Type) -> String {
        T.apiGroup.isEmpty ? "/api/\(T.defaultAPIVersion)" : "/apis/\(T.defaultAPIVersion)"
    }

    /// The collection's path, in `namespace` for namespaced types (all namespaces when nil).
    public static func collection<T: APIObject>(_ type: T.Type, namespace: String?) -> String {
        if T.isNamespaced, let namespace { return "\(prefix(type))/namespaces/\(escape(namespace))/\(plural(type))" }
        return "\(prefix(type))/\(plural(type))"
    }

    public static func object<T: APIObject>(_ type: T.Type, name: String, namespace: String?) -> String {
        collection(type, namespace: namespace) + "/" + escape(name)
    }

    private static func escape(_ segment: String) -> String {
        // Names and namespaces are DNS labels and subdomains: nothing to escape, and Foundation's
        // percent-encoding (a CharacterSet built per call) cost more than the rest of the path.
        if segment.utf8.allSatisfy(isUnreserved) { return segment }
        return segment.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? segment
    }

    /// RFC 3986's unreserved characters (letters, digits, `-._~`): never percent-encoded.
    private static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"): true
        default: false
        }
    }
}
