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
        try root.encode(value)
        return root.value
    }
}

/// One value being encoded: a scalar, or an object or array filled by containers. A member
/// encoded whole is kept as its value; only a member that a container may still write to (a
/// nested container's, a super encoder's) stays a node until the end. The coding path is the
/// chain of parents, built only when asked (an error, or a type that reads its own path); a
/// child holds its parent weakly, as the parent holds the children containers still write to.
/// (A node per member and a path array per nested value were most of encoding a pod.)
private final class EncodingNode {
    enum Member {
        case value(JSONValue)
        case node(EncodingNode)

        var value: JSONValue {
            switch self {
            case .value(let value): value
            case .node(let node): node.value
            }
        }
    }

    enum Content {
        case empty
        case scalar(JSONValue)
        case object([String: Member])
        case array([Member])
    }

    var content = Content.empty
    private(set) weak var parent: EncodingNode?
    let key: (any CodingKey)?

    init(parent: EncodingNode? = nil, key: (any CodingKey)? = nil) {
        self.parent = parent
        self.key = key
    }

    var codingPath: [any CodingKey] {
        var path: [any CodingKey] = []
        var node: EncodingNode? = self
        while let current = node {
            if let key = current.key { path.append(key) }
            node = current.parent
        }
        return path.reversed()
    }

    var value: JSONValue {
        switch content {
        case .empty: return .object([:])   // as Foundation: a value that encoded nothing is {}
        case .scalar(let value): return value
        case .object(let members): return .object(members.mapValues(\.value))
        case .array(let elements): return .array(elements.map(\.value))
        }
    }

    /// `value` encoded as a member of this node under `key` (an array's element: its index): a leaf
    /// directly, anything else through its `encode(to:)` into a node of its own.
    func member<T: Encodable>(_ value: T, key: any CodingKey) throws -> JSONValue {
        if let leaf = try Self.leaf(value, path: { self.codingPath + [key] }) { return leaf }
        let child = EncodingNode(parent: self, key: key)
        try value.encode(to: TreeEncoder(node: child))
        return child.value
    }

    /// `value` into this node.
    func encode<T: Encodable>(_ value: T) throws {
        if let leaf = try Self.leaf(value, path: { self.codingPath }) {
            content = .scalar(leaf)
        } else {
            try value.encode(to: TreeEncoder(node: self))
        }
    }

    /// The common leaves directly (metatypes compared by identity, not a dynamic cast per
    /// case); nil for any other type.
    static func leaf<T: Encodable>(_ value: T, path: () -> [any CodingKey]) throws -> JSONValue? {
        if T.self == String.self { return .string(unsafeBitCast(value, to: String.self)) }
        if T.self == JSONValue.self { return unsafeBitCast(value, to: JSONValue.self) }
        if T.self == Bool.self { return .bool(unsafeBitCast(value, to: Bool.self)) }
        if T.self == Int.self { return .integer(Int64(unsafeBitCast(value, to: Int.self))) }
        if T.self == Int64.self { return .integer(unsafeBitCast(value, to: Int64.self)) }
        if T.self == Int32.self { return .integer(Int64(unsafeBitCast(value, to: Int32.self))) }
        if T.self == Double.self { return try double(unsafeBitCast(value, to: Double.self), path: path) }
        if T.self == Data.self { return .string((value as! Data).base64EncodedString()) }
        if T.self == Date.self { return try double((value as! Date).timeIntervalSinceReferenceDate, path: path) }
        return nil
    }

    static func double(_ number: Double, path: () -> [any CodingKey]) throws -> JSONValue {
        guard number.isFinite else {
            throw EncodingError.invalidValue(number, .init(codingPath: path(), debugDescription: "Unable to encode Double.\(number) directly in JSON."))
        }
        return .number(number)
    }

    static func integer<T: BinaryInteger>(_ number: T) -> JSONValue {
        if let exact = Int64(exactly: number) { return .integer(exact) }
        // A UInt64 beyond Int64: a Double, as JSON numbers are read.
        return .number(Double(number))
    }

    /// This node as an object (made one if it is still empty).
    func makeObject() {
        if case .object = content { return }
        content = .object([:])
    }

    /// This node as an array (made one if it is not one).
    func makeArray() {
        if case .array = content { return }
        content = .array([])
    }

    func set(_ key: String, _ member: Member) {
        var members: [String: Member]
        if case .object(let existing) = content { members = existing } else { members = [:] }
        content = .empty          // one reference to the dictionary while it changes
        members[key] = member
        content = .object(members)
    }

    func append(_ member: Member) {
        var elements: [Member]
        if case .array(let existing) = content { elements = existing } else { elements = [] }
        content = .empty
        elements.append(member)
        content = .array(elements)
    }

    var count: Int {
        if case .array(let elements) = content { return elements.count }
        return 0
    }

    /// The node under `key` that a container writes to: the one there, or a new one — holding
    /// the object or array encoded there whole, if one was (as Foundation's encoder keeps
    /// writing into it).
    func child(_ key: any CodingKey) -> EncodingNode {
        var existing: Member?
        if case .object(let members) = content { existing = members[key.stringValue] }
        if case .node(let node)? = existing { return node }
        let node = EncodingNode(parent: self, key: key)
        switch existing {
        case .value(.object(let members))?: node.content = .object(members.mapValues { .value($0) })
        case .value(.array(let elements))?: node.content = .array(elements.map { .value($0) })
        default: break
        }
        set(key.stringValue, .node(node))
        return node
    }
}

private struct TreeEncoder: Encoder {
    let node: EncodingNode
    var codingPath: [any CodingKey] { node.codingPath }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        node.makeObject()
        return KeyedEncodingContainer(KeyedContainer<Key>(node: node))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        node.makeArray()
        return UnkeyedContainer(node: node)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer { SingleValue(node: node) }
}

private struct SingleValue: SingleValueEncodingContainer {
    let node: EncodingNode
    var codingPath: [any CodingKey] { node.codingPath }

    private func set(_ value: JSONValue) { node.content = .scalar(value) }

    func encodeNil() throws { set(.null) }
    func encode(_ value: Bool) throws { set(.bool(value)) }
    func encode(_ value: String) throws { set(.string(value)) }
    func encode(_ value: Double) throws { set(try EncodingNode.double(value) { node.codingPath }) }
    func encode(_ value: Float) throws { set(try EncodingNode.double(Double(value)) { node.codingPath }) }
    func encode(_ value: Int) throws { set(.integer(Int64(value))) }
    func encode(_ value: Int8) throws { set(.integer(Int64(value))) }
    func encode(_ value: Int16) throws { set(.integer(Int64(value))) }
    func encode(_ value: Int32) throws { set(.integer(Int64(value))) }
    func encode(_ value: Int64) throws { set(.integer(value)) }
    func encode(_ value: UInt) throws { set(EncodingNode.integer(value)) }
    func encode(_ value: UInt8) throws { set(.integer(Int64(value))) }
    func encode(_ value: UInt16) throws { set(.integer(Int64(value))) }
    func encode(_ value: UInt32) throws { set(.integer(Int64(value))) }
    func encode(_ value: UInt64) throws { set(EncodingNode.integer(value)) }
    func encode<T: Encodable>(_ value: T) throws { try node.encode(value) }
}

private struct KeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let node: EncodingNode
    var codingPath: [any CodingKey] { node.codingPath }

    private func put(_ key: Key, _ value: JSONValue) { node.set(key.stringValue, .value(value)) }

    mutating func encodeNil(forKey key: Key) throws { put(key, .null) }
    mutating func encode(_ value: Bool, forKey key: Key) throws { put(key, .bool(value)) }
    mutating func encode(_ value: String, forKey key: Key) throws { put(key, .string(value)) }
    mutating func encode(_ value: Double, forKey key: Key) throws { put(key, try EncodingNode.double(value) { node.codingPath + [key] }) }
    mutating func encode(_ value: Float, forKey key: Key) throws { put(key, try EncodingNode.double(Double(value)) { node.codingPath + [key] }) }
    mutating func encode(_ value: Int, forKey key: Key) throws { put(key, .integer(Int64(value))) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { put(key, .integer(Int64(value))) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { put(key, .integer(Int64(value))) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { put(key, .integer(Int64(value))) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { put(key, .integer(value)) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { put(key, EncodingNode.integer(value)) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { put(key, .integer(Int64(value))) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { put(key, .integer(Int64(value))) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { put(key, .integer(Int64(value))) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { put(key, EncodingNode.integer(value)) }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        put(key, try node.member(value, key: key))
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        let child = node.child(key)
        child.makeObject()
        return KeyedEncodingContainer(KeyedContainer<NestedKey>(node: child))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let child = node.child(key)
        child.makeArray()
        return UnkeyedContainer(node: child)
    }

    mutating func superEncoder() -> any Encoder { TreeEncoder(node: node.child(SuperKey())) }

    mutating func superEncoder(forKey key: Key) -> any Encoder { TreeEncoder(node: node.child(key)) }
}

/// An array element's key in a coding path ("Index 2"), as Foundation's.
private struct IndexKey: CodingKey {
    let index: Int
    var stringValue: String { "Index \(index)" }
    var intValue: Int? { index }
    init(_ index: Int) { self.index = index }
    init?(stringValue: String) { nil }
    init?(intValue: Int) { index = intValue }
}

/// The key of a superclass's members: "super".
private struct SuperKey: CodingKey {
    var stringValue: String { "super" }
    var intValue: Int? { nil }
    init() {}
    init?(stringValue: String) { guard stringValue == "super" else { return nil } }
    init?(intValue: Int) { nil }
}

private struct UnkeyedContainer: UnkeyedEncodingContainer {
    let node: EncodingNode
    var codingPath: [any CodingKey] { node.codingPath }
    var count: Int { node.count }

    private func add(_ value: JSONValue) { node.append(.value(value)) }

    mutating func encodeNil() throws { add(.null) }
    mutating func encode(_ value: Bool) throws { add(.bool(value)) }
    mutating func encode(_ value: String) throws { add(.string(value)) }
    mutating func encode(_ value: Double) throws { add(try EncodingNode.double(value) { node.codingPath }) }
    mutating func encode(_ value: Float) throws { add(try EncodingNode.double(Double(value)) { node.codingPath }) }
    mutating func encode(_ value: Int) throws { add(.integer(Int64(value))) }
    mutating func encode(_ value: Int8) throws { add(.integer(Int64(value))) }
    mutating func encode(_ value: Int16) throws { add(.integer(Int64(value))) }
    mutating func encode(_ value: Int32) throws { add(.integer(Int64(value))) }
    mutating func encode(_ value: Int64) throws { add(.integer(value)) }
    mutating func encode(_ value: UInt) throws { add(EncodingNode.integer(value)) }
    mutating func encode(_ value: UInt8) throws { add(.integer(Int64(value))) }
    mutating func encode(_ value: UInt16) throws { add(.integer(Int64(value))) }
    mutating func encode(_ value: UInt32) throws { add(.integer(Int64(value))) }
    mutating func encode(_ value: UInt64) throws { add(EncodingNode.integer(value)) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        add(try node.member(value, key: IndexKey(count)))
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let child = EncodingNode(parent: node, key: IndexKey(count))
        child.makeObject()
        node.append(.node(child))
        return KeyedEncodingContainer(KeyedContainer<NestedKey>(node: child))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let child = EncodingNode(parent: node, key: IndexKey(count))
        child.makeArray()
        node.append(.node(child))
        return UnkeyedContainer(node: child)
    }

    mutating func superEncoder() -> any Encoder {
        let child = EncodingNode(parent: node, key: IndexKey(count))
        node.append(.node(child))
        return TreeEncoder(node: child)
    }
}
