// The label selector itself (apimachinery `labels.Selector`): `LabelSelector`, its
// `Requirement`s and `Operator`s, how a requirement is validated and matched and how a
// selector prints; with `LabelSelectorError` and the Go-style quoting its messages use.
// Parsing the selector syntax is in LabelSelector+Parser.swift, the API (JSON) form
// (metav1 `LabelSelector`, `matchLabels` and `matchExpressions`) in LabelSelectorSpec.swift.

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
