/// A field selector parse failure; `message` follows apimachinery's wording.
public struct FieldSelectorError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Human-readable explanation.
    public let message: String

    /// Creates an error with the given message.
    public init(_ message: String) { self.message = message }

    /// Same as `message`.
    public var description: String { message }
}

/// A Kubernetes field selector (apimachinery `fields.Selector`): a conjunction of
/// `field=value` / `field!=value` terms.
///
/// In values, `\`, `,` and `=` are written `\\`, `\,` and `\=`. Field names are not validated
/// here: inspect `requirements` to reject fields a resource does not support.
public struct FieldSelector: Sendable, Hashable, CustomStringConvertible {
    /// A term operator.
    public enum Operator: String, Sendable, Hashable, CaseIterable {
        /// `field=value` (also written `field==value`).
        case equals = "="
        /// `field!=value`.
        case notEquals = "!="
    }

    /// One term of a field selector.
    public struct Requirement: Sendable, Hashable, CustomStringConvertible {
        /// The field path, e.g. `metadata.name`.
        public var field: String
        /// The operator.
        public var `operator`: Operator
        /// The unescaped value.
        public var value: String

        /// Creates a term.
        public init(field: String, operator op: Operator, value: String) {
            self.field = field
            self.operator = op
            self.value = value
        }

        /// Whether the field's value (a missing field counts as `""`) satisfies the term.
        public func matches(_ lookup: (String) -> String?) -> Bool {
            let actual = lookup(field) ?? ""
            switch self.operator {
            case .equals: return actual == value
            case .notEquals: return actual != value
            }
        }

        /// The term in selector syntax with the value escaped.
        public var description: String {
            field + self.operator.rawValue + FieldSelector.escapeValue(value)
        }
    }

    /// The terms, in order (parsing sorts them by their source text, as apimachinery does).
    public let requirements: [Requirement]

    /// Selects everything (no terms); prints as `""`.
    public static let everything = FieldSelector(requirements: [])

    /// A selector requiring all `requirements`.
    public init(requirements: [Requirement]) {
        self.requirements = requirements
    }

    /// A selector requiring `field=value` for every entry, sorted by field.
    public init(matchingFields fields: [String: String]) {
        self.requirements = fields.sorted { $0.key < $1.key }.map {
            Requirement(field: $0.key, operator: .equals, value: $0.value)
        }
    }

    /// Parses `a=b`, `a==b`, `a!=b` terms separated by unescaped commas; empty terms are
    /// skipped and `""` selects everything.
    public init(parsing text: String) throws(FieldSelectorError) {
        var parsed: [Requirement] = []
        for term in Self.splitTerms(text).sorted() where !term.isEmpty {
            guard let split = Self.splitTerm(term) else {
                throw FieldSelectorError("invalid selector: '\(text)'; can't understand '\(term)'")
            }
            let (field, op, rawValue) = split
            parsed.append(Requirement(field: field, operator: op, value: try Self.unescapeValue(rawValue)))
        }
        self.requirements = parsed
    }

    /// `true` when there are no terms.
    public var isEmpty: Bool { requirements.isEmpty }

    /// Whether every term matches; `lookup` returns a field's value or `nil` (treated as `""`).
    public func matches(_ lookup: (String) -> String?) -> Bool {
        requirements.allSatisfy { $0.matches(lookup) }
    }

    /// Whether every term matches the given field values (missing fields count as `""`).
    public func matches(_ fields: [String: String]) -> Bool {
        matches { fields[$0] }
    }

    /// The value an `=` term demands for `field`, if any (apimachinery `RequiresExactMatch`).
    public func requiredValue(for field: String) -> String? {
        requirements.first { $0.field == field && $0.operator == .equals }?.value
    }

    /// Terms in selector syntax joined by `,`.
    public var description: String {
        requirements.map(\.description).joined(separator: ",")
    }

    // MARK: Escaping

    /// Escapes `\`, `,` and `=` with a backslash.
    public static func escapeValue(_ value: String) -> String {
        var result = ""
        for character in value {
            if character == "\\" || character == "," || character == "=" { result.append("\\") }
            result.append(character)
        }
        return result
    }

    /// Reverses `escapeValue`; rejects unknown escapes, a trailing `\`, and bare `,` or `=`.
    public static func unescapeValue(_ value: String) throws(FieldSelectorError) -> String {
        var result = ""
        var escaping = false
        for character in value {
            if escaping {
                guard character == "\\" || character == "," || character == "=" else {
                    throw FieldSelectorError(
                        "invalid field selector: invalid escape sequence: \\\(character)")
                }
                result.append(character)
                escaping = false
                continue
            }
            switch character {
            case "\\": escaping = true
            case ",", "=":
                throw FieldSelectorError("invalid field selector: unescaped character in value: \(character)")
            default: result.append(character)
            }
        }
        if escaping { throw FieldSelectorError("invalid field selector: invalid escape sequence: \\") }
        return result
    }

    /// Splits on commas not preceded by a backslash escape; escapes are kept.
    static func splitTerms(_ text: String) -> [String] {
        if text.isEmpty { return [] }
        var terms: [String] = []
        var current = ""
        var escaping = false
        for character in text {
            if escaping {
                escaping = false
            } else if character == "\\" {
                escaping = true
            } else if character == "," {
                terms.append(current)
                current = ""
                continue
            }
            current.append(character)
        }
        terms.append(current)
        return terms
    }

    /// Splits a term at the first operator occurrence, preferring `!=`, then `==`, then `=`.
    static func splitTerm(_ term: String) -> (String, Operator, String)? {
        var index = term.startIndex
        while index < term.endIndex {
            let rest = term[index...]
            if rest.hasPrefix("!=") {
                return (String(term[..<index]), .notEquals, String(rest.dropFirst(2)))
            }
            if rest.hasPrefix("==") {
                return (String(term[..<index]), .equals, String(rest.dropFirst(2)))
            }
            if rest.hasPrefix("=") {
                return (String(term[..<index]), .equals, String(rest.dropFirst(1)))
            }
            index = term.index(after: index)
        }
        return nil
    }
}
