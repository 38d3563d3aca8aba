// The API (JSON) form of a label selector, metav1 `LabelSelector`: `LabelSelectorSpec`
// (`matchLabels`, `matchExpressions`), its `LabelSelectorRequirement`s and their
// `LabelSelectorOperator`, Codable with unknown members kept; and the conversion to a
// `LabelSelector` (metav1 `LabelSelectorAsSelector`).

/// A label selector operator in the API form (`In`, `NotIn`, `Exists`, `DoesNotExist`).
/// Unknown strings decode successfully and are rejected when converted to a `LabelSelector`.
public struct LabelSelectorOperator: RawRepresentable, Sendable, Hashable, Codable, ExpressibleByStringLiteral {
    /// The operator string.
    public var rawValue: String
    /// Wraps an operator string.
    public init(rawValue: String) { self.rawValue = rawValue }
    /// Wraps an operator string literal.
    public init(stringLiteral value: String) { rawValue = value }

    /// `In`.
    public static let `in`: LabelSelectorOperator = "In"
    /// `NotIn`.
    public static let notIn: LabelSelectorOperator = "NotIn"
    /// `Exists`.
    public static let exists: LabelSelectorOperator = "Exists"
    /// `DoesNotExist`.
    public static let doesNotExist: LabelSelectorOperator = "DoesNotExist"

    /// Decodes from a JSON string.
    public init(from decoder: any Decoder) throws {
        rawValue = try decoder.singleValueContainer().decode(String.self)
    }

    /// Encodes as a JSON string.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

/// One `matchExpressions` entry of a metav1 `LabelSelector`.
public struct LabelSelectorRequirement: Sendable, Hashable, Codable, PreservesUnknownFields {
    /// The label key (`key`).
    public var key: String
    /// The operator (`operator`).
    public var `operator`: LabelSelectorOperator
    /// The values (`values`); required for In/NotIn, absent for Exists/DoesNotExist.
    public var values: [String]?
    /// Members not modelled above.
    public var unknownFields: [String: JSONValue]

    /// Creates a requirement.
    public init(key: String, operator op: LabelSelectorOperator, values: [String]? = nil) {
        self.key = key
        self.operator = op
        self.values = values
        self.unknownFields = [:]
    }

    private static let knownKeys: Set<String> = ["key", "operator", "values"]

    /// Decodes, keeping unknown members.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: JSONKey.self)
        key = try container.decodeIfPresent(String.self, forKey: "key") ?? ""
        self.operator = try container.decodeIfPresent(LabelSelectorOperator.self, forKey: "operator") ?? ""
        values = try container.decodeIfPresent([String].self, forKey: "values")
        unknownFields = try decoder.unknownFields(of: container, excluding: Self.knownKeys)
    }

    /// Encodes `key` and `operator` always and `values` when set, plus unknown members.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: JSONKey.self)
        try container.encodeUnknownFields(unknownFields, excluding: Self.knownKeys)
        try container.encode(key, forKey: "key")
        try container.encode(self.operator, forKey: "operator")
        try container.encodeIfPresent(values, forKey: "values")
    }
}

/// The API (JSON) form of a label selector, metav1 `LabelSelector`.
public struct LabelSelectorSpec: Sendable, Hashable, Codable, PreservesUnknownFields {
    /// Exact `key: value` matches (`matchLabels`).
    public var matchLabels: [String: String]?
    /// Expression requirements (`matchExpressions`).
    public var matchExpressions: [LabelSelectorRequirement]?
    /// Members not modelled above.
    public var unknownFields: [String: JSONValue]

    /// Creates a selector spec.
    public init(matchLabels: [String: String]? = nil, matchExpressions: [LabelSelectorRequirement]? = nil) {
        self.matchLabels = matchLabels
        self.matchExpressions = matchExpressions
        self.unknownFields = [:]
    }

    private static let knownKeys: Set<String> = ["matchLabels", "matchExpressions"]

    /// Decodes, keeping unknown members.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: JSONKey.self)
        matchLabels = try container.decodeIfPresent([String: String].self, forKey: "matchLabels")
        matchExpressions = try container.decodeIfPresent([LabelSelectorRequirement].self, forKey: "matchExpressions")
        unknownFields = try decoder.unknownFields(of: container, excluding: Self.knownKeys)
    }

    /// Encodes the non-nil fields plus unknown members.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: JSONKey.self)
        try container.encodeUnknownFields(unknownFields, excluding: Self.knownKeys)
        try container.encodeIfPresent(matchLabels, forKey: "matchLabels")
        try container.encodeIfPresent(matchExpressions, forKey: "matchExpressions")
    }

    /// Converts to a `LabelSelector` (same as `LabelSelector(spec)`).
    public func selector() throws(LabelSelectorError) -> LabelSelector {
        try LabelSelector(self)
    }
}

extension LabelSelector {
    /// Converts the API form (metav1 `LabelSelectorAsSelector`): `nil` matches nothing, an empty
    /// spec matches everything; operators must be In, NotIn, Exists or DoesNotExist.
    public init(_ spec: LabelSelectorSpec?) throws(LabelSelectorError) {
        guard let spec else {
            self = .nothing
            return
        }
        var requirements: [Requirement] = []
        for (key, value) in (spec.matchLabels ?? [:]).sorted(by: { $0.key < $1.key }) {
            requirements.append(try Requirement(key: key, operator: .equals, values: [value]))
        }
        for expression in spec.matchExpressions ?? [] {
            let op: Operator
            switch expression.operator {
            case .in: op = .in
            case .notIn: op = .notIn
            case .exists: op = .exists
            case .doesNotExist: op = .doesNotExist
            default:
                throw LabelSelectorError("\(goQuoted(expression.operator.rawValue)) is not a valid label selector operator")
            }
            requirements.append(try Requirement(key: expression.key, operator: op, values: expression.values ?? []))
        }
        self.init(requirements: requirements)
    }
}
