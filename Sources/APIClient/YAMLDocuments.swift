// Manifests as kubectl reads them: YAML (JSON is YAML too), several documents separated by
// `---`, each turned into JSON with YAML's own types (`true` a bool, `0` an integer, `""` a
// string), then decoded as the caller asks.
import ClusterAPI
import Foundation
import Yams

public enum YAMLDocuments {
    /// A manifest that is not YAML, or a document that is not an object.
    public struct ParseError: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// The non-empty documents of `text`, as JSON values.
    public static func values(_ text: String) throws -> [JSONValue] {
        var documents: [JSONValue] = []
        do {
            for document in try Yams.load_all(yaml: text) {
                documents.append(try json(document, path: ""))
            }
        } catch let error as ParseError {
            throw error
        } catch {
            throw ParseError(description: "error converting YAML to JSON: \(error)")
        }
        return documents
    }

    /// The documents of `text`, each decoded as `T`.
    public static func decode<T: Decodable>(_ type: T.Type, from text: String) throws -> [T] {
        try values(text).map { try JSONDecoder().decode(T.self, from: $0.jsonData) }
    }

    private static func json(_ value: Any, path: String) throws -> JSONValue {
        switch value {
        case is NSNull: return .null
        case let value as Bool: return .bool(value)
        case let value as Int: return .integer(Int64(value))
        case let value as Double: return .number(value)
        case let value as String: return .string(value)
        case let value as Date: return .string(Time(value).rfc3339)
        case let value as [Any]:
            return .array(try value.enumerated().map { try json($0.element, path: "\(path)[\($0.offset)]") })
        case let value as [AnyHashable: Any]:
            var object: [String: JSONValue] = [:]
            for (key, member) in value {
                guard let key = key.base as? String else {
                    throw ParseError(description: "error converting YAML to JSON: \(path.isEmpty ? "the document" : path) has a key that is not a string: \(key)")
                }
                object[key] = try json(member, path: path.isEmpty ? key : "\(path).\(key)")
            }
            return .object(object)
        default:
            return .string("\(value)")
        }
    }
}
