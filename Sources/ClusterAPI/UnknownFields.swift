/// A type that keeps JSON members it does not model, so decoding and re-encoding an object
/// written by a newer client does not drop data.
public protocol PreservesUnknownFields {
    /// Members present in the decoded JSON that the type does not model, written back on encode.
    var unknownFields: [String: JSONValue] { get set }
}

/// A string coding key used for hand-written Codable conformances.
struct JSONKey: CodingKey, Hashable, ExpressibleByStringLiteral {
    let stringValue: String
    var intValue: Int? { nil }

    init(_ string: String) { stringValue = string }
    init(stringLiteral value: String) { stringValue = value }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { stringValue = String(intValue) }
}

extension KeyedDecodingContainer where Key == JSONKey {
    /// Every member whose name is not in `known`, decoded as raw JSON.
    func unknownFields(excluding known: Set<String>) throws -> [String: JSONValue] {
        var result: [String: JSONValue] = [:]
        for key in allKeys where !known.contains(key.stringValue) {
            result[key.stringValue] = try decode(JSONValue.self, forKey: key)
        }
        return result
    }
}

extension Decoder {
    /// Every member of this decoder's object whose name is not in `known`, as raw JSON;
    /// `container` is this decoder's keyed container. Decoding from a `JSONValue` tree
    /// (`JSONValueDecoder`) reads the members straight from the tree: going through the
    /// container's `allKeys` built a key per member and decoded each unknown one through the
    /// type-erased box, the largest part of decoding a small object (an Event's create in the
    /// API server). Other decoders take the container's way; both give the same members.
    func unknownFields(of container: KeyedDecodingContainer<JSONKey>, excluding known: Set<String>) throws -> [String: JSONValue] {
        if let tree = self as? TreeDecoder, case .object(let members) = tree.value {
            var result: [String: JSONValue] = [:]
            for (name, value) in members where !known.contains(name) { result[name] = value }
            return result
        }
        return try container.unknownFields(excluding: known)
    }
}

extension KeyedEncodingContainer where Key == JSONKey {
    /// Writes back the preserved members, skipping any that collide with a modelled field.
    mutating func encodeUnknownFields(_ fields: [String: JSONValue], excluding known: Set<String>) throws {
        for (name, value) in fields where !known.contains(name) {
            try encode(value, forKey: JSONKey(name))
        }
    }
}
