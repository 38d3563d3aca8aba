import Foundation

/// A top-level Kubernetes object as the API server stores and serves it: type header,
/// metadata, server-side defaulting and validation.
///
/// The API server runs `applyDefaults()` on every decoded object, then `validate()` on create
/// or `validateUpdate(old:)` on update; validation expects a defaulted object.
public protocol APIObject: Sendable, Hashable, Codable, PreservesUnknownFields {
    /// The `apiVersion` the type is served as, e.g. `v1` or `storage.k8s.io/v1`.
    static var defaultAPIVersion: String { get }
    /// The `kind`, e.g. `Pod`.
    static var defaultKind: String { get }
    /// Whether objects of this type live in a namespace.
    static var isNamespaced: Bool { get }

    /// `apiVersion`.
    var apiVersion: String? { get set }
    /// `kind`.
    var kind: String? { get set }
    /// `metadata`.
    var metadata: ObjectMeta { get set }

    /// Fills in the fields the API server defaults.
    mutating func applyDefaults()
    /// The problems Kubernetes reports when creating this object (empty when valid).
    func validate() -> [FieldError]
    /// The problems Kubernetes reports when replacing `old` with this object.
    func validateUpdate(old: Self) -> [FieldError]
}

extension APIObject {
    /// The API group: the part of `defaultAPIVersion` before `/`, empty for the core group.
    public static var apiGroup: String {
        guard let slash = defaultAPIVersion.firstIndex(of: "/") else { return "" }
        return String(defaultAPIVersion[..<slash])
    }

    /// The `422 Invalid` status Kubernetes returns for these validation errors.
    public func invalidStatus(_ errors: [FieldError]) -> Status {
        Status.invalid(group: Self.apiGroup, kind: Self.defaultKind, name: metadata.name ?? "", errors: errors)
    }
}

/// A list of objects (`<Kind>List`), as returned by a list request.
public struct List<Item: APIObject>: Sendable, Hashable, Codable, PreservesUnknownFields {
    /// `apiVersion`, normally the item type's.
    public var apiVersion: String?
    /// `kind`, normally `<Kind>List`.
    public var kind: String?
    /// `metadata`: resource version and paging token.
    public var metadata: ListMeta
    /// `items`.
    public var items: [Item]
    /// Members not modelled above, written back verbatim.
    public var unknownFields: [String: JSONValue]

    /// Creates a list with the item type's `apiVersion` and `kind: <Kind>List`.
    public init(items: [Item] = [], metadata: ListMeta = ListMeta()) {
        self.apiVersion = Item.defaultAPIVersion
        self.kind = Item.defaultKind + "List"
        self.metadata = metadata
        self.items = items
        self.unknownFields = [:]
    }

    private static var knownKeys: Set<String> { ["apiVersion", "kind", "metadata", "items"] }

    /// Decodes, keeping unknown members; missing `items` decode as empty.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: JSONKey.self)
        apiVersion = try container.decodeIfPresent(String.self, forKey: "apiVersion")
        kind = try container.decodeIfPresent(String.self, forKey: "kind")
        metadata = try container.decodeIfPresent(ListMeta.self, forKey: "metadata") ?? ListMeta()
        items = try container.decodeIfPresent([Item].self, forKey: "items") ?? []
        unknownFields = try decoder.unknownFields(of: container, excluding: Self.knownKeys)
    }

    /// Encodes `metadata` and `items` always, as Kubernetes does.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: JSONKey.self)
        try container.encodeUnknownFields(unknownFields, excluding: Self.knownKeys)
        try container.encodeIfPresent(apiVersion, forKey: "apiVersion")
        try container.encodeIfPresent(kind, forKey: "kind")
        try container.encode(metadata, forKey: "metadata")
        try container.encode(items, forKey: "items")
    }
}

/// A Kubernetes `metav1.MicroTime`: an instant with microsecond precision, written as
/// `"2026-11-29T13:00:00.123456Z"`.
public struct MicroTime: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    /// The whole seconds.
    public var time: Time
    /// Microseconds past `time`, `0..<1_000_000`.
    public var microseconds: Int32

    /// An instant at `time` plus `microseconds`.
    public init(_ time: Time, microseconds: Int32 = 0) {
        self.time = time
        self.microseconds = microseconds
    }

    /// The given date, truncated to the microsecond.
    public init(_ date: Date) {
        let micros = (date.timeIntervalSince1970 * 1_000_000).rounded(.down)
        let seconds = (micros / 1_000_000).rounded(.down)
        self.time = Time(secondsSinceEpoch: Int64(seconds))
        self.microseconds = Int32(micros - seconds * 1_000_000)
    }

    /// The current time.
    public static func now() -> MicroTime { MicroTime(Date()) }

    /// Parses RFC 3339 text with an optional fraction (digits past the sixth are dropped).
    public init(rfc3339 text: String) throws(TimeParseError) {
        time = try Time(rfc3339: text)
        var micros: Int32 = 0
        if let dot = text.firstIndex(of: ".") {
            var digits = 0
            for character in text[text.index(after: dot)...] {
                guard let digit = character.wholeNumberValue, character.isASCII else { break }
                if digits < 6 { micros = micros * 10 + Int32(digit) }
                digits += 1
            }
            for _ in min(digits, 6)..<6 { micros *= 10 }
        }
        microseconds = micros
    }

    /// The RFC 3339 UTC form with six fractional digits.
    public var rfc3339: String {
        let seconds = time.rfc3339.dropLast()
        let fraction = String(microseconds)
        return seconds + "." + String(repeating: "0", count: max(0, 6 - fraction.count)) + fraction + "Z"
    }

    /// Same as `rfc3339`.
    public var description: String { rfc3339 }

    /// Chronological order.
    public static func < (lhs: MicroTime, rhs: MicroTime) -> Bool {
        (lhs.time, lhs.microseconds) < (rhs.time, rhs.microseconds)
    }

    /// Decodes an RFC 3339 string.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        do {
            self = try MicroTime(rfc3339: text)
        } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: error.description)
        }
    }

    /// Encodes as an RFC 3339 UTC string with microseconds.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rfc3339)
    }
}
