// `Decodable` values straight from a `JSONValue` tree: the clients' half of reading an object
// (every watch event, every response) and the API server's typed validation. Foundation's
// JSONDecoder builds its own tree from bytes and walks it; this walks ours, and a field that is
// itself a `JSONValue` (unknown fields, free-form status) is taken whole instead of being
// rebuilt by trying each JSON type in turn.
//
// It decodes what Foundation's JSONDecoder decodes with its default strategies: numbers into
// any numeric type they fit exactly, `Data` from base64, `Date` as seconds since 2001, the
// same errors with the same coding paths.
import Foundation

public struct JSONValueDecoder: Sendable {
    public init() {}

    public func decode<T: Decodable>(_ type: T.Type, from value: JSONValue) throws -> T {
        try TreeDecoder(value: value, parent: nil, key: nil).decodeValue(T.self)
    }
}

extension JSONValue {
    /// The kind of JSON value, as Foundation names it in decoding errors.
    fileprivate var kindName: String {
        switch self {
        case .null: "null"
        case .bool: "bool"
        case .integer, .number: "number"
        case .string: "string"
        case .array: "array"
        case .object: "dictionary"
        }
    }
}

/// A key of an array element in coding paths ("super" for a superclass's).
private struct IndexKey: CodingKey {
    var stringValue: String { name ?? "Index \(index)" }
    var intValue: Int? { name == nil ? index : nil }
    let index: Int
    let name: String?
    init(_ index: Int) { self.index = index; self.name = nil }
    init(stringValue: String) { self.index = 0; self.name = stringValue }
    init?(intValue: Int) { self.index = intValue; self.name = nil }
}

/// A node of the walk: its value, and its key under its parent (the coding path is built only
/// for an error).
final class TreeDecoder: Decoder {
    let value: JSONValue
    let parent: TreeDecoder?
    let key: (any CodingKey)?
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init(value: JSONValue, parent: TreeDecoder?, key: (any CodingKey)?) {
        self.value = value
        self.parent = parent
        self.key = key
    }

    var codingPath: [any CodingKey] {
        var path: [any CodingKey] = []
        var node: TreeDecoder? = self
        while let current = node, let key = current.key {
            path.append(key)
            node = current.parent
        }
        return path.reversed()
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let members) = value else {
            throw Self.mismatch([String: JSONValue].self, value, codingPath)
        }
        return KeyedDecodingContainer(KeyedContainer<Key>(members: members, node: self))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .array(let elements) = value else {
            throw Self.mismatch([JSONValue].self, value, codingPath)
        }
        return UnkeyedContainer(elements: elements, node: self)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { SingleValue(node: self) }

    static func mismatch(_ type: Any.Type, _ value: JSONValue, _ path: [any CodingKey]) -> DecodingError {
        if case .null = value {
            return DecodingError.valueNotFound(type, .init(codingPath: path, debugDescription: "Cannot get value of type \(type) -- found null value instead"))
        }
        return DecodingError.typeMismatch(type, .init(codingPath: path, debugDescription: "Expected to decode \(type) but found \(value.kindName) instead."))
    }

    /// `value`, a child of this node under `key`, decoded as `T`; leaves without a node.
    func decode<T: Decodable>(_ type: T.Type, _ value: JSONValue, key: any CodingKey) throws -> T {
        if let leaf = try Self.leaf(T.self, value, { self.codingPath + [key] }) { return leaf }
        return try TreeDecoder(value: value, parent: self, key: key).decodeValue(T.self)
    }

    /// This node's value as `T`.
    func decodeValue<T: Decodable>(_ type: T.Type) throws -> T {
        if let leaf = try Self.leaf(T.self, value, { self.codingPath }) { return leaf }
        if T.self == Data.self {
            guard let data = Data(base64Encoded: try Leaf.string(value) { self.codingPath }) else {
                throw DecodingError.dataCorrupted(.init(codingPath: codingPath, debugDescription: "Encountered Data is not valid Base64."))
            }
            return data as! T
        }
        if T.self == Date.self { return Date(timeIntervalSinceReferenceDate: try Leaf.double(value) { self.codingPath }) as! T }
        return try T(from: self)
    }

    /// `value` as `T` when `T` is one of the common leaves (a JSONValue taken whole, a string,
    /// a flag, a number); nil for any other type.
    /// (Metatypes compared by identity, and the value reinterpreted once it is known to be a
    /// `T`: a dynamic cast per case was a tenth of decoding a pod.)
    private static func leaf<T>(_ type: T.Type, _ value: JSONValue, _ path: () -> [any CodingKey]) throws -> T? {
        if T.self == JSONValue.self { return unsafeBitCast(value, to: T.self) }
        if T.self == String.self { return unsafeBitCast(try Leaf.string(value, path), to: T.self) }
        if T.self == Bool.self { return unsafeBitCast(try Leaf.bool(value, path), to: T.self) }
        if T.self == Int.self { return unsafeBitCast(try Leaf.integer(Int.self, value, path), to: T.self) }
        if T.self == Int64.self { return unsafeBitCast(try Leaf.integer(Int64.self, value, path), to: T.self) }
        if T.self == Int32.self { return unsafeBitCast(try Leaf.integer(Int32.self, value, path), to: T.self) }
        if T.self == Double.self { return unsafeBitCast(try Leaf.double(value, path), to: T.self) }
        return nil
    }
}

/// Scalars out of values; `path` is called only to describe an error.
private enum Leaf {
    static func string(_ value: JSONValue, _ path: () -> [any CodingKey]) throws -> String {
        guard case .string(let text) = value else { throw TreeDecoder.mismatch(String.self, value, path()) }
        return text
    }

    static func bool(_ value: JSONValue, _ path: () -> [any CodingKey]) throws -> Bool {
        guard case .bool(let flag) = value else { throw TreeDecoder.mismatch(Bool.self, value, path()) }
        return flag
    }

    static func integer<T: BinaryInteger>(_ type: T.Type, _ value: JSONValue, _ path: () -> [any CodingKey]) throws -> T {
        switch value {
        case .integer(let number):
            if let exact = T(exactly: number) { return exact }
        case .number(let number):
            // Beyond 2^53 a Double may be an integer text rounded (one that overflowed Int64):
            // not taken as that integer.
            if number.magnitude < 0x1p53, let exact = T(exactly: number) { return exact }
        default:
            throw TreeDecoder.mismatch(T.self, value, path())
        }
        throw DecodingError.dataCorrupted(.init(codingPath: path(), debugDescription: "Number \(value) is not representable in Swift."))
    }

    static func double(_ value: JSONValue, _ path: () -> [any CodingKey]) throws -> Double {
        switch value {
        case .integer(let number): return Double(number)
        case .number(let number): return number
        default: throw TreeDecoder.mismatch(Double.self, value, path())
        }
    }

    static func float(_ value: JSONValue, _ path: () -> [any CodingKey]) throws -> Float {
        let number = try double(value, path)
        let converted = Float(number)
        guard converted.isFinite else {
            throw DecodingError.dataCorrupted(.init(codingPath: path(), debugDescription: "Number \(number) is not representable in Swift."))
        }
        return converted
    }
}

private struct SingleValue: SingleValueDecodingContainer {
    let node: TreeDecoder
    var codingPath: [any CodingKey] { node.codingPath }
    private var value: JSONValue { node.value }

    func decodeNil() -> Bool { value.isNull }
    func decode(_ type: Bool.Type) throws -> Bool { try Leaf.bool(value) { node.codingPath } }
    func decode(_ type: String.Type) throws -> String { try Leaf.string(value) { node.codingPath } }
    func decode(_ type: Double.Type) throws -> Double { try Leaf.double(value) { node.codingPath } }
    func decode(_ type: Float.Type) throws -> Float { try Leaf.float(value) { node.codingPath } }
    func decode(_ type: Int.Type) throws -> Int { try Leaf.integer(type, value) { node.codingPath } }
    func decode(_ type: Int8.Type) throws -> Int8 { try Leaf.integer(type, value) { node.codingPath } }
    func decode(_ type: Int16.Type) throws -> Int16 { try Leaf.integer(type, value) { node.codingPath } }
    func decode(_ type: Int32.Type) throws -> Int32 { try Leaf.integer(type, value) { node.codingPath } }
    func decode(_ type: Int64.Type) throws -> Int64 { try Leaf.integer(type, value) { node.codingPath } }
    func decode(_ type: UInt.Type) throws -> UInt { try Leaf.integer(type, value) { node.codingPath } }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try Leaf.integer(type, value) { node.codingPath } }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try Leaf.integer(type, value) { node.codingPath } }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try Leaf.integer(type, value) { node.codingPath } }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try Leaf.integer(type, value) { node.codingPath } }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try node.decodeValue(T.self) }
}

private struct KeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let members: [String: JSONValue]
    let node: TreeDecoder
    var codingPath: [any CodingKey] { node.codingPath }

    var allKeys: [Key] { members.keys.compactMap { Key(stringValue: $0) } }

    func contains(_ key: Key) -> Bool { members[key.stringValue] != nil }

    private func member(_ key: Key) throws -> JSONValue {
        guard let value = members[key.stringValue] else {
            throw DecodingError.keyNotFound(key, .init(codingPath: codingPath,
                                                       debugDescription: "No value associated with key \(key) (\"\(key.stringValue)\")."))
        }
        return value
    }

    func decodeNil(forKey key: Key) throws -> Bool { try member(key).isNull }
    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try Leaf.bool(member(key), { node.codingPath + [key] }) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try Leaf.string(member(key), { node.codingPath + [key] }) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try Leaf.double(member(key), { node.codingPath + [key] }) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try Leaf.float(member(key), { node.codingPath + [key] }) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try Leaf.integer(type, member(key), { node.codingPath + [key] }) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try Leaf.integer(type, member(key), { node.codingPath + [key] }) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try Leaf.integer(type, member(key), { node.codingPath + [key] }) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try Leaf.integer(type, member(key), { node.codingPath + [key] }) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try Leaf.integer(type, member(key), { node.codingPath + [key] }) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try Leaf.integer(type, member(key), { node.codingPath + [key] }) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try Leaf.integer(type, member(key), { node.codingPath + [key] }) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try Leaf.integer(type, member(key), { node.codingPath + [key] }) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try Leaf.integer(type, member(key), { node.codingPath + [key] }) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try Leaf.integer(type, member(key), { node.codingPath + [key] }) }
    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try node.decode(T.self, member(key), key: key) }

    // The scalars' optionals, each one lookup: the protocol's own versions ask `contains`,
    // then `decodeNil`, then `decode` (three).
    func decodeIfPresent(_ type: String.Type, forKey key: Key) throws -> String? { try present(key) { try Leaf.string($0, { node.codingPath + [key] }) } }
    func decodeIfPresent(_ type: Bool.Type, forKey key: Key) throws -> Bool? { try present(key) { try Leaf.bool($0, { node.codingPath + [key] }) } }
    func decodeIfPresent(_ type: Int.Type, forKey key: Key) throws -> Int? { try present(key) { try Leaf.integer(type, $0, { node.codingPath + [key] }) } }
    func decodeIfPresent(_ type: Int32.Type, forKey key: Key) throws -> Int32? { try present(key) { try Leaf.integer(type, $0, { node.codingPath + [key] }) } }
    func decodeIfPresent(_ type: Int64.Type, forKey key: Key) throws -> Int64? { try present(key) { try Leaf.integer(type, $0, { node.codingPath + [key] }) } }
    func decodeIfPresent(_ type: Double.Type, forKey key: Key) throws -> Double? { try present(key) { try Leaf.double($0, { node.codingPath + [key] }) } }

    /// The member under `key` through `body`; nil when it is absent or null.
    private func present<R>(_ key: Key, _ body: (JSONValue) throws -> R) throws -> R? {
        guard let value = members[key.stringValue], !value.isNull else { return nil }
        return try body(value)
    }

    /// Absent or null: nil (as Foundation: a null is no value for an optional).
    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        try present(key) { try node.decode(T.self, $0, key: key) }
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try TreeDecoder(value: member(key), parent: node, key: key).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try TreeDecoder(value: member(key), parent: node, key: key).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder {
        TreeDecoder(value: members["super"] ?? .null, parent: node, key: IndexKey(stringValue: "super"))
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        TreeDecoder(value: members[key.stringValue] ?? .null, parent: node, key: key)
    }
}

private struct UnkeyedContainer: UnkeyedDecodingContainer {
    let elements: [JSONValue]
    let node: TreeDecoder
    var currentIndex = 0
    var codingPath: [any CodingKey] { node.codingPath }

    init(elements: [JSONValue], node: TreeDecoder) {
        self.elements = elements
        self.node = node
    }

    var count: Int? { elements.count }
    var isAtEnd: Bool { currentIndex >= elements.count }

    /// Decodes the current element with `body`; the index moves on only when that succeeds
    /// (as Foundation's: a caller may try another type for the same element).
    private mutating func take<R>(_ type: Any.Type, _ body: (JSONValue, IndexKey, () -> [any CodingKey]) throws -> R) throws -> R {
        let key = IndexKey(currentIndex)
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(type, .init(codingPath: codingPath + [key], debugDescription: "Unkeyed container is at end."))
        }
        let node = self.node
        let result = try body(elements[currentIndex], key, { node.codingPath + [key] })
        currentIndex += 1
        return result
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(Any?.self, .init(codingPath: codingPath + [IndexKey(currentIndex)],
                                                               debugDescription: "Unkeyed container is at end."))
        }
        guard elements[currentIndex].isNull else { return false }
        currentIndex += 1
        return true
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool { try take(type) { try Leaf.bool($0, $2) } }
    mutating func decode(_ type: String.Type) throws -> String { try take(type) { try Leaf.string($0, $2) } }
    mutating func decode(_ type: Double.Type) throws -> Double { try take(type) { try Leaf.double($0, $2) } }
    mutating func decode(_ type: Float.Type) throws -> Float { try take(type) { try Leaf.float($0, $2) } }
    mutating func decode(_ type: Int.Type) throws -> Int { try take(type) { try Leaf.integer(type, $0, $2) } }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try take(type) { try Leaf.integer(type, $0, $2) } }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try take(type) { try Leaf.integer(type, $0, $2) } }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try take(type) { try Leaf.integer(type, $0, $2) } }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try take(type) { try Leaf.integer(type, $0, $2) } }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try take(type) { try Leaf.integer(type, $0, $2) } }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try take(type) { try Leaf.integer(type, $0, $2) } }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try take(type) { try Leaf.integer(type, $0, $2) } }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try take(type) { try Leaf.integer(type, $0, $2) } }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try take(type) { try Leaf.integer(type, $0, $2) } }
    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let node = self.node
        return try take(type) { value, key, _ in try node.decode(T.self, value, key: key) }
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        let node = self.node
        return try take(KeyedDecodingContainer<NestedKey>.self) { value, key, _ in try TreeDecoder(value: value, parent: node, key: key).container(keyedBy: type) }
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let node = self.node
        return try take((any UnkeyedDecodingContainer).self) { value, key, _ in try TreeDecoder(value: value, parent: node, key: key).unkeyedContainer() }
    }

    mutating func superDecoder() throws -> any Decoder {
        let node = self.node
        return try take((any Decoder).self) { value, key, _ in TreeDecoder(value: value, parent: node, key: key) }
    }
}
