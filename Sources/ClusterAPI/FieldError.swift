/// A field-level validation error (apimachinery `field.Error`), rendered the way Kubernetes
/// renders it, e.g. `spec.containers[0].image: Required value`.
public struct FieldError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Why the field is invalid (apimachinery `field.ErrorType`); the raw value is the
    /// `reason` Kubernetes puts in a `StatusCause`.
    public enum ErrorType: String, Sendable, Hashable, CaseIterable {
        /// A referenced value does not exist.
        case notFound = "FieldValueNotFound"
        /// A required value is missing.
        case required = "FieldValueRequired"
        /// A value that must be unique is repeated.
        case duplicate = "FieldValueDuplicate"
        /// A value is malformed or out of range.
        case invalid = "FieldValueInvalid"
        /// A value is not one of an enumeration.
        case notSupported = "FieldValueNotSupported"
        /// A value is not allowed in this context.
        case forbidden = "FieldValueForbidden"
        /// A value is too long.
        case tooLong = "FieldValueTooLong"
        /// A list has too many items.
        case tooMany = "FieldValueTooMany"
        /// Something went wrong that is not the client's fault.
        case `internal` = "InternalError"

        /// The canonical phrase, e.g. `Required value`.
        public var phrase: String {
            switch self {
            case .notFound: return "Not found"
            case .required: return "Required value"
            case .duplicate: return "Duplicate value"
            case .invalid: return "Invalid value"
            case .notSupported: return "Unsupported value"
            case .forbidden: return "Forbidden"
            case .tooLong: return "Too long"
            case .tooMany: return "Too many"
            case .internal: return "Internal error"
            }
        }
    }

    /// How `badValue` is printed.
    public enum ValueStyle: Sendable, Hashable {
        /// A string, printed in Go `%q` quotes.
        case quoted
        /// Printed as is (numbers, booleans, `null`, structures).
        case literal
    }

    /// The kind of problem.
    public var type: ErrorType
    /// The path of the offending field, e.g. `spec.containers[0].name`.
    public var field: String
    /// The offending value, or `nil` when the message omits it.
    public var badValue: String?
    /// How `badValue` is printed.
    public var badValueStyle: ValueStyle
    /// Extra explanation appended after the value.
    public var detail: String

    /// Creates an error.
    public init(
        type: ErrorType, field: String, badValue: String? = nil, badValueStyle: ValueStyle = .quoted,
        detail: String = ""
    ) {
        self.type = type
        self.field = field
        self.badValue = badValue
        self.badValueStyle = badValueStyle
        self.detail = detail
    }

    /// The message without the field name (apimachinery `ErrorBody`), e.g.
    /// `Invalid value: "Foo": a lowercase RFC 1123 subdomain must …`.
    public var body: String {
        var text = type.phrase
        switch type {
        case .required, .forbidden, .tooLong, .internal:
            break
        default:
            if let badValue {
                text += ": " + (badValueStyle == .quoted ? goQuoted(badValue) : badValue)
            }
        }
        if !detail.isEmpty { text += ": " + detail }
        return text
    }

    /// `field: body`, as Kubernetes prints it.
    public var description: String { "\(field): \(body)" }

    /// The `StatusCause` Kubernetes reports for this error.
    public var cause: StatusCause { StatusCause(reason: type.rawValue, message: body, field: field) }

    // MARK: Constructors mirroring apimachinery's

    static func required(_ field: FieldPath, _ detail: String = "") -> FieldError {
        FieldError(type: .required, field: field.description, detail: detail)
    }

    static func forbidden(_ field: FieldPath, _ detail: String) -> FieldError {
        FieldError(type: .forbidden, field: field.description, detail: detail)
    }

    static func invalid(_ field: FieldPath, _ value: String, _ detail: String) -> FieldError {
        FieldError(type: .invalid, field: field.description, badValue: value, detail: detail)
    }

    static func invalid(_ field: FieldPath, literal value: String, _ detail: String) -> FieldError {
        FieldError(type: .invalid, field: field.description, badValue: value, badValueStyle: .literal, detail: detail)
    }

    static func invalid<N: BinaryInteger>(_ field: FieldPath, number value: N, _ detail: String) -> FieldError {
        invalid(field, literal: String(value), detail)
    }

    static func notSupported(_ field: FieldPath, _ value: String, _ supported: [String]) -> FieldError {
        notSupported(field, value, style: .quoted, supported)
    }

    static func notSupported(
        _ field: FieldPath, _ value: String, style: ValueStyle, _ supported: [String]
    ) -> FieldError {
        let detail = supported.isEmpty ? "" : "supported values: " + supported.map(goQuoted).joined(separator: ", ")
        return FieldError(type: .notSupported, field: field.description, badValue: value, badValueStyle: style, detail: detail)
    }

    static func duplicate(_ field: FieldPath, _ value: String, style: ValueStyle = .quoted) -> FieldError {
        FieldError(type: .duplicate, field: field.description, badValue: value, badValueStyle: style)
    }

    static func notFound(_ field: FieldPath, _ value: String) -> FieldError {
        FieldError(type: .notFound, field: field.description, badValue: value)
    }

    static func tooLong(_ field: FieldPath, max: Int) -> FieldError {
        FieldError(type: .tooLong, field: field.description, detail: "must have at most \(max) bytes")
    }

    static func tooMany(_ field: FieldPath, actual: Int, max: Int) -> FieldError {
        FieldError(
            type: .tooMany, field: field.description, badValue: String(actual), badValueStyle: .literal,
            detail: "must have at most \(max) items")
    }
}

/// A field path (apimachinery `field.Path`): `spec.containers[0].ports[1]`, `metadata.labels[app]`.
struct FieldPath: Sendable, Hashable, CustomStringConvertible, ExpressibleByStringLiteral {
    let description: String

    init(_ root: String) { description = root }
    init(stringLiteral value: String) { description = value }

    /// `path.name` (or just `name` at the root).
    func child(_ names: String...) -> FieldPath {
        var text = description
        for name in names { text = text.isEmpty ? name : text + "." + name }
        return FieldPath(text)
    }

    /// `path[index]`.
    func index(_ index: Int) -> FieldPath { FieldPath(description + "[\(index)]") }

    /// `path[key]`.
    func key(_ key: String) -> FieldPath { FieldPath(description + "[" + key + "]") }
}

extension Status {
    /// The `422 Invalid` status Kubernetes returns when validation fails (apierrors
    /// `NewInvalid`): message `<Kind>[.<group>] "<name>" is invalid: <errors>`, one cause per error.
    public static func invalid(group: String, kind: String, name: String, errors: [FieldError]) -> Status {
        let qualifiedKind = group.isEmpty ? kind : kind + "." + group
        var seen = Set<String>()
        let messages = errors.map(\.description).filter { seen.insert($0).inserted }
        let aggregate: String
        switch messages.count {
        case 0: aggregate = "<nil>"
        case 1: aggregate = messages[0]
        default: aggregate = "[" + messages.joined(separator: ", ") + "]"
        }
        return Status.makeFailure(
            code: 422, reason: Status.Reason.invalid,
            message: "\(qualifiedKind) \(goQuoted(name)) is invalid: \(aggregate)",
            details: StatusDetails(name: name, group: group, kind: kind, causes: errors.map(\.cause)))
    }
}
