/// A label selector parse or validation failure; `message` follows apimachinery's wording.
public struct LabelSelectorError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Human-readable explanation.
    public let message: String

    /// Creates an error with the given message.
    public init(_ message: String) { self.message = message }

    /// Same as `message`.
    public var description: String { message }
}

/// Go-style `%q` quoting, enough for error messages.
func goQuoted(_ text: String) -> String {
    var result = "\""
    for character in text {
        switch character {
        case "\"": result += "\\\""
        case "\\": result += "\\\\"
        case "\n": result += "\\n"
        case "\t": result += "\\t"
        default: result.append(character)
        }
    }
    return result + "\""
}

private func goQuotedList(_ values: [String]) -> String {
    "[" + values.map(goQuoted).joined(separator: ", ") + "]"
}

/// A Kubernetes label selector (apimachinery `labels.Selector`): a conjunction of requirements
/// on an object's labels.
public struct LabelSelector: Sendable, Hashable, CustomStringConvertible {
    /// A requirement operator; raw values are apimachinery's `selection.Operator` strings.
    public enum Operator: String, Sendable, Hashable, CaseIterable {
        /// `!key`: the label is absent.
        case doesNotExist = "!"
        /// `key=value`.
        case equals = "="
        /// `key==value` (same meaning as `=`).
        case doubleEquals = "=="
        /// `key in (a,b)`.
        case `in` = "in"
        /// `key!=value`: absent or different.
        case notEquals = "!="
        /// `key notin (a,b)`: absent or not listed.
        case notIn = "notin"
        /// `key`: the label is present.
        case exists = "exists"
        /// `key>n`: present and an integer greater than `n`.
        case greaterThan = "gt"
        /// `key<n`: present and an integer less than `n`.
        case lessThan = "lt"
    }

    /// One condition of a selector.
    public struct Requirement: Sendable, Hashable, CustomStringConvertible {
        /// The label key.
        public let key: String
        /// The operator.
        public let `operator`: Operator
        /// The operand values, sorted and de-duplicated.
        public let values: [String]

        /// Validates and builds a requirement (apimachinery `NewRequirement`): the key must be a
        /// qualified name, every value a valid label value, `in`/`notin` need at least one value,
        /// `=`/`==`/`!=` exactly one, `exists`/`!` none, `gt`/`lt` exactly one integer.
        public init(key: String, operator op: Operator, values: [String] = []) throws(LabelSelectorError) {
            var errors: [String] = []
            let keyErrors = LabelValidation.qualifiedNameErrors(key)
            if !keyErrors.isEmpty {
                errors.append("key: Invalid value: \(goQuoted(key)): " + keyErrors.joined(separator: "; "))
            }
            switch op {
            case .in, .notIn:
                if values.isEmpty {
                    errors.append(
                        "values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty")
                }
            case .equals, .doubleEquals, .notEquals:
                if values.count != 1 {
                    errors.append(
                        "values: Invalid value: \(goQuotedList(values)): exact-match compatibility requires one single value"
                    )
                }
            case .exists, .doesNotExist:
                if !values.isEmpty {
                    errors.append(
                        "values: Invalid value: \(goQuotedList(values)): values set must be empty for exists and does not exist"
                    )
                }
            case .greaterThan, .lessThan:
                if values.count != 1 {
                    errors.append(
                        "values: Invalid value: \(goQuotedList(values)): for 'Gt', 'Lt' operators, exactly one value is required"
                    )
                }
                for (index, value) in values.enumerated() where Int64(value) == nil {
                    errors.append(
                        "values[\(index)]: Invalid value: \(goQuoted(value)): for 'Gt', 'Lt' operators, the value must be an integer"
                    )
                }
            }
            for (index, value) in values.enumerated() {
                let valueErrors = LabelValidation.labelValueErrors(value)
                if !valueErrors.isEmpty {
                    errors.append(
                        "values[\(index)]: Invalid value: \(goQuoted(value)): " + valueErrors.joined(separator: "; "))
                }
            }
            if errors.count == 1 { throw LabelSelectorError(errors[0]) }
            if errors.count > 1 { throw LabelSelectorError("[" + errors.joined(separator: ", ") + "]") }
            self.key = key
            self.operator = op
            self.values = Array(Set(values)).sorted()
        }

        /// Whether `labels` satisfy this requirement.
        public func matches(_ labels: [String: String]) -> Bool {
            let actual = labels[key]
            switch self.operator {
            case .in, .equals, .doubleEquals:
                guard let actual else { return false }
                return values.contains(actual)
            case .notIn, .notEquals:
                guard let actual else { return true }
                return !values.contains(actual)
            case .exists:
                return actual != nil
            case .doesNotExist:
                return actual == nil
            case .greaterThan, .lessThan:
                guard let actual, let number = Int64(actual), values.count == 1,
                    let bound = Int64(values[0])
                else { return false }
                return self.operator == .greaterThan ? number > bound : number < bound
            }
        }

        /// The requirement in selector syntax, e.g. `env in (prod,staging)` or `!canary`.
        public var description: String {
            switch self.operator {
            case .doesNotExist: return "!" + key
            case .exists: return key
            case .equals: return key + "=" + values.joined(separator: ",")
            case .doubleEquals: return key + "==" + values.joined(separator: ",")
            case .notEquals: return key + "!=" + values.joined(separator: ",")
            case .greaterThan: return key + ">" + values.joined(separator: ",")
            case .lessThan: return key + "<" + values.joined(separator: ",")
            case .in: return key + " in (" + values.joined(separator: ",") + ")"
            case .notIn: return key + " notin (" + values.joined(separator: ",") + ")"
            }
        }
    }

    /// The requirements, sorted by key (stable for equal keys).
    public let requirements: [Requirement]
    private let matchesNothing: Bool

    private init(sortedRequirements: [Requirement], matchesNothing: Bool) {
        self.requirements = sortedRequirements
        self.matchesNothing = matchesNothing
    }

    /// A selector that matches every label set (the empty selector, printed as `""`).
    public static let everything = LabelSelector(sortedRequirements: [], matchesNothing: false)

    /// A selector that matches nothing (what a `nil` API selector means). It prints as `""`.
    public static let nothing = LabelSelector(sortedRequirements: [], matchesNothing: true)

    /// A selector requiring all of `requirements`; they are sorted by key.
    public init(requirements: [Requirement]) {
        let sorted = requirements.enumerated().sorted {
            $0.element.key != $1.element.key ? $0.element.key < $1.element.key : $0.offset < $1.offset
        }.map(\.element)
        self.init(sortedRequirements: sorted, matchesNothing: false)
    }

    /// A selector requiring every `key=value` of `matchLabels` (empty means everything).
    public init(matchLabels: [String: String]) throws(LabelSelectorError) {
        var requirements: [Requirement] = []
        for (key, value) in matchLabels.sorted(by: { $0.key < $1.key }) {
            requirements.append(try Requirement(key: key, operator: .equals, values: [value]))
        }
        self.init(requirements: requirements)
    }

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

    /// Parses selector syntax: comma-separated `k=v`, `k==v`, `k!=v`, `k in (a,b)`,
    /// `k notin (a)`, `k`, `!k`, `k>n`, `k<n`. Whitespace between tokens is ignored; `""` is
    /// `everything`.
    public init(parsing text: String) throws(LabelSelectorError) {
        var parser = LabelSelectorParser(text)
        self.init(requirements: try parser.parse())
    }

    /// `true` when there are no requirements (both `everything` and `nothing`).
    public var isEmpty: Bool { requirements.isEmpty }

    /// Whether `labels` satisfy every requirement.
    public func matches(_ labels: [String: String]) -> Bool {
        if matchesNothing { return false }
        return requirements.allSatisfy { $0.matches(labels) }
    }

    /// A copy with `requirement` added.
    public func adding(_ requirement: Requirement) -> LabelSelector {
        LabelSelector(requirements: requirements + [requirement])
    }

    /// Canonical selector syntax: requirements sorted by key, joined by `,`.
    public var description: String {
        requirements.map(\.description).joined(separator: ",")
    }
}

// MARK: - Parser

private enum LabelToken: Equatable {
    case identifier
    case doesNotExist  // !
    case notEquals  // !=
    case equals  // =
    case doubleEquals  // ==
    case greaterThan  // >
    case lessThan  // <
    case openParenthesis
    case closeParenthesis
    case comma
    case inKeyword
    case notInKeyword
    case endOfString
    case error
}

private struct LabelSelectorParser {
    private enum Context { case keyAndOperator, values }

    private var items: [(token: LabelToken, literal: String)] = []
    private var position = 0

    init(_ text: String) {
        items = Self.lex(Array(text.utf8))
    }

    private static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0D || byte == 0x0A
    }

    private static func isSpecial(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "="), UInt8(ascii: "!"), UInt8(ascii: "("), UInt8(ascii: ")"),
            UInt8(ascii: ","), UInt8(ascii: ">"), UInt8(ascii: "<"):
            return true
        default:
            return false
        }
    }

    private static func symbol(_ text: String) -> LabelToken? {
        switch text {
        case "!": return .doesNotExist
        case "!=": return .notEquals
        case "=": return .equals
        case "==": return .doubleEquals
        case ">": return .greaterThan
        case "<": return .lessThan
        case "(": return .openParenthesis
        case ")": return .closeParenthesis
        case ",": return .comma
        default: return nil
        }
    }

    private static func lex(_ bytes: [UInt8]) -> [(token: LabelToken, literal: String)] {
        var result: [(token: LabelToken, literal: String)] = []
        var index = 0
        while true {
            while index < bytes.count && isWhitespace(bytes[index]) { index += 1 }
            if index >= bytes.count {
                result.append((.endOfString, ""))
                return result
            }
            if isSpecial(bytes[index]) {
                // Longest run of special characters that still forms a known symbol.
                var buffer = ""
                var best: (LabelToken, String)?
                while index < bytes.count && isSpecial(bytes[index]) {
                    let candidate = buffer + String(UnicodeScalar(bytes[index]))
                    if let token = symbol(candidate) {
                        best = (token, candidate)
                        buffer = candidate
                        index += 1
                    } else if best != nil {
                        break
                    } else {
                        buffer = candidate
                        index += 1
                    }
                }
                if let best {
                    result.append(best)
                } else {
                    result.append((.error, "error expected: keyword found '\(buffer)'"))
                }
            } else {
                let start = index
                while index < bytes.count && !isWhitespace(bytes[index]) && !isSpecial(bytes[index]) {
                    index += 1
                }
                let word = String(decoding: bytes[start..<index], as: UTF8.self)
                switch word {
                case "in": result.append((.inKeyword, word))
                case "notin": result.append((.notInKeyword, word))
                default: result.append((.identifier, word))
                }
            }
        }
    }

    private func lookahead(_ context: Context) -> (token: LabelToken, literal: String) {
        var item = items[position]
        if context == .values && (item.token == .inKeyword || item.token == .notInKeyword) {
            item.token = .identifier
        }
        return item
    }

    private mutating func consume(_ context: Context) -> (token: LabelToken, literal: String) {
        let item = lookahead(context)
        if position < items.count - 1 { position += 1 }
        return item
    }

    mutating func parse() throws(LabelSelectorError) -> [LabelSelector.Requirement] {
        var requirements: [LabelSelector.Requirement] = []
        while true {
            let (token, literal) = lookahead(.values)
            switch token {
            case .identifier, .doesNotExist:
                do {
                    requirements.append(try parseRequirement())
                } catch {
                    throw LabelSelectorError("unable to parse requirement: \(error.message)")
                }
                let (next, nextLiteral) = consume(.values)
                switch next {
                case .endOfString:
                    return requirements
                case .comma:
                    let (after, afterLiteral) = lookahead(.values)
                    if after != .identifier && after != .doesNotExist {
                        throw LabelSelectorError("found '\(afterLiteral)', expected: identifier after ','")
                    }
                default:
                    throw LabelSelectorError("found '\(nextLiteral)', expected: ',' or 'end of string'")
                }
            case .endOfString:
                return requirements
            default:
                throw LabelSelectorError("found '\(literal)', expected: !, identifier, or 'end of string'")
            }
        }
    }

    private mutating func parseRequirement() throws(LabelSelectorError) -> LabelSelector.Requirement {
        var (token, literal) = consume(.values)
        var op: LabelSelector.Operator?
        if token == .doesNotExist {
            op = .doesNotExist
            (token, literal) = consume(.values)
        }
        guard token == .identifier else {
            throw LabelSelectorError("found '\(literal)', expected: identifier")
        }
        let key = literal
        let keyErrors = LabelValidation.qualifiedNameErrors(key)
        if !keyErrors.isEmpty {
            throw LabelSelectorError("key: Invalid value: \(goQuoted(key)): " + keyErrors.joined(separator: "; "))
        }
        let next = lookahead(.values).token
        if next == .endOfString || next == .comma, op == nil {
            op = .exists
        }
        if let op, op == .exists || op == .doesNotExist {
            return try LabelSelector.Requirement(key: key, operator: op, values: [])
        }

        let (operatorToken, operatorLiteral) = consume(.keyAndOperator)
        let binary: LabelSelector.Operator
        switch operatorToken {
        case .inKeyword: binary = .in
        case .notInKeyword: binary = .notIn
        case .equals: binary = .equals
        case .doubleEquals: binary = .doubleEquals
        case .notEquals: binary = .notEquals
        case .greaterThan: binary = .greaterThan
        case .lessThan: binary = .lessThan
        default:
            throw LabelSelectorError("found '\(operatorLiteral)', expected: in, notin, =, ==, !=, gt, lt")
        }
        let values: [String]
        switch binary {
        case .in, .notIn: values = try parseValueList()
        default: values = try parseExactValue()
        }
        return try LabelSelector.Requirement(key: key, operator: binary, values: values)
    }

    private mutating func parseValueList() throws(LabelSelectorError) -> [String] {
        let (open, openLiteral) = consume(.values)
        guard open == .openParenthesis else {
            throw LabelSelectorError("found '\(openLiteral)' expected: '('")
        }
        let (first, firstLiteral) = lookahead(.values)
        switch first {
        case .identifier, .comma:
            let values = try parseIdentifierList()
            let (close, _) = consume(.values)
            if close != .closeParenthesis {
                throw LabelSelectorError("found '\(firstLiteral)', expected: ')'")
            }
            return values
        case .closeParenthesis:
            _ = consume(.values)
            return [""]
        default:
            throw LabelSelectorError("found '\(firstLiteral)', expected: ',', ')' or identifier")
        }
    }

    private mutating func parseIdentifierList() throws(LabelSelectorError) -> [String] {
        var values: Set<String> = []
        while true {
            let (token, literal) = consume(.values)
            switch token {
            case .identifier:
                values.insert(literal)
                let (next, nextLiteral) = lookahead(.values)
                switch next {
                case .comma: continue
                case .closeParenthesis: return values.sorted()
                default: throw LabelSelectorError("found '\(nextLiteral)', expected: ',' or ')'")
                }
            case .comma:
                // "(," ",," and ",)" each stand for an empty value.
                if values.isEmpty { values.insert("") }
                let next = lookahead(.values).token
                if next == .closeParenthesis {
                    values.insert("")
                    return values.sorted()
                }
                if next == .comma {
                    _ = consume(.values)
                    values.insert("")
                }
            default:
                throw LabelSelectorError("found '\(literal)', expected: ',', or identifier")
            }
        }
    }

    private mutating func parseExactValue() throws(LabelSelectorError) -> [String] {
        let next = lookahead(.values).token
        if next == .endOfString || next == .comma { return [""] }
        let (token, literal) = consume(.values)
        guard token == .identifier else {
            throw LabelSelectorError("found '\(literal)', expected: identifier")
        }
        return [literal]
    }
}

// MARK: - API form

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
        unknownFields = try container.unknownFields(excluding: Self.knownKeys)
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
        unknownFields = try container.unknownFields(excluding: Self.knownKeys)
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
