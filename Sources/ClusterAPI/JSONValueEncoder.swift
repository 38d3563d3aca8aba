// `Encodable` values straight into a `JSONValue` tree: what `JSONValue(encoding:)` does for the
// API server's defaulting and validation, and the clients' request bodies, without writing
// JSON text through Foundation and reading it back. It encodes as Foundation's JSONEncoder does
// with its default strategies: `Data` as base64, `Date` as seconds since 2001, a non-finite
// number refused.
import Foundation

public struct JSONValueEncoder: Sendable {
    public init() {}

    public func encode<T: Encodable>(_ value: T) throws -> JSONValue {
        let root = EncodingNode()
        try root.encode(value, path: [])
        return root.value
    }
}

/// One value being encoded: a scalar, or an object or array of nodes filled by containers.
private final class EncodingNode {
    enum Content {
        case empty
        case scalar(JSONValue)
        case object([String: EncodingNode])
        case array([EncodingNode])
    }
    var content = Content.empty

    init() {}
    init(_ scalar: JSONValue) { content = .scalar(scalar) }

    var value: JSONValue {
        switch content {
        case .empty: return .object([:])   // as Foundation: a value that encoded nothing is {}
        case .scalar(let value): return value
        case .object(let members): return .object(members.mapValues(\.value))
        case .array(let elements): return .array(elements.map(\.value))
        }
    }

    /// `value` into this node: the common leaves directly, anything else through its `encode(to:)`.
    func encode<T: Encodable>(_ value: T, path: [any CodingKey]) throws {
        if let leaf = try Self.leaf(value, path: path) {
            content = .scalar(leaf)
        } else {
            try value.encode(to: TreeEncoder(node: self, codingPath: path))
        }
    }

    static func leaf<T: Encodable>(_ value: T, path: [any CodingKey]) throws -> JSONValue? {
        switch value {
        case let json as JSONValue: return json
        case let text as String: return .string(text)
        case let flag as Bool: return .bool(flag)
        case let number as Int: return .integer(Int64(number))
        case let number as Int64: return .integer(number)
        case let number as Int32: return .integer(Int64(number))
        case let number as Double: return try double(number, path: path)
        case let data as Data: return .string(data.base64EncodedString())
        case let date as Date: return try double(date.timeIntervalSinceReferenceDate, path: path)
        default: return nil
        }
    }

    static func double(_ number: Double, path: [any CodingKey]) throws -> JSONValue {
        guard number.isFinite else {
            throw EncodingError.invalidValue(number, .init(codingPath: path, debugDescription: "Unable to encode Double.\(number) directly in JSON."))
        }
        return .number(number)
    }

    static func integer<T: BinaryInteger>(_ number: T, path: [any CodingKey]) throws -> JSONValue {
        if let exact = Int64(exactly: number) { return .integer(exact) }
        // A UInt64 beyond Int64: a Double, as JSON numbers are read.
        return .number(Double(number))
    }

    /// This node as an object (made one if it is still empty).
    func members() -> [String: EncodingNode] {
        if case .object(let members) = content { return members }
        content = .object([:])
        return [:]
    }

    func set(_ key: String, _ node: EncodingNode) {
        var members = members()
        content = .empty          // one reference to the dictionary while it changes
        members[key] = node
        content = .object(members)
    }

    func append(_ node: EncodingNode) {
        var elements: [EncodingNode]
        if case .array(let existing) = content { elements = existing } else { elements = [] }
        content = .empty
        elements.append(node)
        content = .array(elements)
    }

    /// The existing child under `key`, or a new one there.
    func child(_ key: String) -> EncodingNode {
        if case .object(let members) = content, let existing = members[key] { return existing }
        let node = EncodingNode()
        set(key, node)
        return node
    }
}

private struct TreeEncoder: Encoder {
    let node: EncodingNode
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        _ = node.members()
        return KeyedEncodingContainer(KeyedContainer<Key>(node: node, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        if case .array = node.content {} else { node.content = .array([]) }
        return UnkeyedContainer(node: node, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer { SingleValue(node: node, codingPath: codingPath) }
}

private struct SingleValue: SingleValueEncodingContainer {
    let node: EncodingNode
    let codingPath: [any CodingKey]

    func encodeNil() throws { node.content = .scalar(.null) }
    func encode(_ value: Bool) throws { node.content = .scalar(.bool(value)) }
    func encode(_ value: String) throws { node.content = .scalar(.string(value)) }
    func encode(_ value: Double) throws { node.content = .scalar(try EncodingNode.double(value, path: codingPath)) }
    func encode(_ value: Float) throws { node.content = .scalar(try EncodingNode.double(Double(value), path: codingPath)) }
    func encode(_ value: Int) throws { node.content = .scalar(.integer(Int64(value))) }
    func encode(_ value: Int8) throws { node.content = .scalar(.integer(Int64(value))) }
    func encode(_ value: Int16) throws { node.content = .scalar(.integer(Int64(value))) }
    func encode(_ value: Int32) throws { node.content = .scalar(.integer(Int64(value))) }
    func encode(_ value: Int64) throws { node.content = .scalar(.integer(value)) }
    func encode(_ value: UInt) throws { node.content = .scalar(try EncodingNode.integer(value, path: codingPath)) }
    func encode(_ value: UInt8) throws { node.content = .scalar(.integer(Int64(value))) }
    func encode(_ value: UInt16) throws { node.content = .scalar(.integer(Int64(value))) }
    func encode(_ value: UInt32) throws { node.content = .scalar(.integer(Int64(value))) }
    func encode(_ value: UInt64) throws { node.content = .scalar(try EncodingNode.integer(value, path: codingPath)) }
    func encode<T: Encodable>(_ value: T) throws { try node.encode(value, path: codingPath) }
}

private struct KeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let node: EncodingNode
    let codingPath: [any CodingKey]

    private func put(_ key: Key, _ value: JSONValue) { node.set(key.stringValue, EncodingNode(value)) }

    mutating func encodeNil(forKey key: Key) throws { put(key, .null) }
    mutating func encode(_ value: Bool, forKey key: Key) throws { put(key, .bool(value)) }
    mutating func encode(_ value: String, forKey key: Key) throws { put(key, .string(value)) }
    mutating func encode(_ value: Double, forKey key: Key) throws { put(key, try EncodingNode.double(value, path: codingPath + [key])) }
    mutating func encode(_ value: Float, forKey key: Key) throws { put(key, try EncodingNode.double(Double(value), path: codingPath + [key])) }
    mutating func encode(_ value: Int, forKey key: Key) throws { put(key, .integer(Int64(value))) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { put(key, .integer(Int64(value))) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { put(key, .integer(Int64(value))) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { put(key, .integer(Int64(value))) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { put(key, .integer(value)) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { put(key, try EncodingNode.integer(value, path: codingPath + [key])) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { put(key, .integer(Int64(value))) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { put(key, .integer(Int64(value))) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { put(key, .integer(Int64(value))) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { put(key, try EncodingNode.integer(value, path: codingPath + [key])) }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        let child = EncodingNode()
        try child.encode(value, path: codingPath + [key])
        node.set(key.stringValue, child)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        let child = node.child(key.stringValue)
        _ = child.members()
        return KeyedEncodingContainer(KeyedContainer<NestedKey>(node: child, codingPath: codingPath + [key]))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let child = node.child(key.stringValue)
        if case .array = child.content {} else { child.content = .array([]) }
        return UnkeyedContainer(node: child, codingPath: codingPath + [key])
    }

    mutating func superEncoder() -> any Encoder { TreeEncoder(node: node.child("super"), codingPath: codingPath) }

    mutating func superEncoder(forKey key: Key) -> any Encoder { TreeEncoder(node: node.child(key.stringValue), codingPath: codingPath + [key]) }
}

private struct UnkeyedContainer: UnkeyedEncodingContainer {
    let node: EncodingNode
    let codingPath: [any CodingKey]

    var count: Int {
        if case .array(let elements) = node.content { return elements.count }
        return 0
    }

    private func add(_ value: JSONValue) { node.append(EncodingNode(value)) }

    mutating func encodeNil() throws { add(.null) }
    mutating func encode(_ value: Bool) throws { add(.bool(value)) }
    mutating func encode(_ value: String) throws { add(.string(value)) }
    mutating func encode(_ value: Double) throws { add(try EncodingNode.double(value, path: codingPath)) }
    mutating func encode(_ value: Float) throws { add(try EncodingNode.double(Double(value), path: codingPath)) }
    mutating func encode(_ value: Int) throws { add(.integer(Int64(value))) }
    mutating func encode(_ value: Int8) throws { add(.integer(Int64(value))) }
    mutating func encode(_ value: Int16) throws { add(.integer(Int64(value))) }
    mutating func encode(_ value: Int32) throws { add(.integer(Int64(value))) }
    mutating func encode(_ value: Int64) throws { add(.integer(value)) }
    mutating func encode(_ value: UInt) throws { add(try EncodingNode.integer(value, path: codingPath)) }
    mutating func encode(_ value: UInt8) throws { add(.integer(Int64(value))) }
    mutating func encode(_ value: UInt16) throws { add(.integer(Int64(value))) }
    mutating func encode(_ value: UInt32) throws { add(.integer(Int64(value))) }
    mutating func encode(_ value: UInt64) throws { add(try EncodingNode.integer(value, path: codingPath)) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        let child = EncodingNode()
        try child.encode(value, path: codingPath)
        node.append(child)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let child = EncodingNode()
        _ = child.members()
        node.append(child)
        return KeyedEncodingContainer(KeyedContainer<NestedKey>(node: child, codingPath: codingPath))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let child = EncodingNode()
        child.content = .array([])
        node.append(child)
        return UnkeyedContainer(node: child, codingPath: codingPath)
    }

    mutating func superEncoder() -> any Encoder {
        let child = EncodingNode()
        node.append(child)
        return TreeEncoder(node: child, codingPath: codingPath)
    }
}
