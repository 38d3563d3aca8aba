import Foundation

/// A CustomResourceDefinition's structural schema (apiextensions-apiserver's
/// `pkg/apiserver/schema`): the OpenAPI v3 subset Kubernetes accepts in
/// `spec.versions[].schema.openAPIV3Schema`, parsed once and used to default, prune and
/// validate custom resources, with Kubernetes' messages.
///
/// Supported: `type` (object, array, string, integer, number, boolean), `properties`,
/// `required`, `items`, `additionalProperties` (a schema or a boolean), `enum`, `minimum`,
/// `maximum`, `exclusiveMinimum`, `exclusiveMaximum`, `multipleOf`, `minLength`, `maxLength`,
/// `pattern`, `minItems`, `maxItems`, `uniqueItems`, `minProperties`, `maxProperties`,
/// `nullable`, `default`, `format` (kept, not checked), `description`, `title`, `example`,
/// `x-kubernetes-preserve-unknown-fields`, `x-kubernetes-int-or-string`,
/// `x-kubernetes-embedded-resource`, `x-kubernetes-list-type`, `x-kubernetes-list-map-keys`,
/// `x-kubernetes-map-type`, `x-kubernetes-validations` (kept, not evaluated: CEL is not
/// implemented), `oneOf`/`anyOf`/`allOf`/`not` (kept, not evaluated).
public final class StructuralSchema: Sendable {
    public let type: String?
    public let properties: [String: StructuralSchema]
    public let required: [String]
    public let items: StructuralSchema?
    /// A schema every other member must follow (a map), or nil.
    public let additionalProperties: StructuralSchema?
    /// `additionalProperties: true` (any member kept).
    public let allowsAdditionalProperties: Bool
    public let enumValues: [JSONValue]?
    public let minimum: Double?
    public let maximum: Double?
    public let exclusiveMinimum: Bool
    public let exclusiveMaximum: Bool
    public let multipleOf: Double?
    public let minLength: Int?
    public let maxLength: Int?
    public let pattern: String?
    private let regex: NSRegularExpression?
    public let minItems: Int?
    public let maxItems: Int?
    public let uniqueItems: Bool
    public let minProperties: Int?
    public let maxProperties: Int?
    public let nullable: Bool
    public let defaultValue: JSONValue?
    public let preserveUnknownFields: Bool
    public let intOrString: Bool
    public let embeddedResource: Bool

    static let knownKeywords: Set<String> = [
        "type", "properties", "required", "items", "additionalProperties", "enum", "minimum", "maximum", "exclusiveMinimum",
        "exclusiveMaximum", "multipleOf", "minLength", "maxLength", "pattern", "minItems", "maxItems", "uniqueItems",
        "minProperties", "maxProperties", "nullable", "default", "format", "description", "title", "example", "externalDocs",
        "x-kubernetes-preserve-unknown-fields", "x-kubernetes-int-or-string", "x-kubernetes-embedded-resource",
        "x-kubernetes-list-type", "x-kubernetes-list-map-keys", "x-kubernetes-map-type", "x-kubernetes-validations",
        "oneOf", "anyOf", "allOf", "not",
    ]
    static let types: Set<String> = ["object", "array", "string", "integer", "number", "boolean"]
    /// Deepest schema accepted: a bound on recursion for hostile input.
    static let maxDepth = 64

    /// Parses `json`; returns the schema and the problems of its structure (Kubernetes'
    /// `ValidateCustomResourceDefinitionOpenAPISchema` and structural checks, for the subset).
    public static func parse(_ json: JSONValue, path: String) -> (StructuralSchema?, [FieldError]) {
        var errors: [FieldError] = []
        let schema = StructuralSchema(json, path: FieldPath(path), depth: 0, errors: &errors)
        if schema.type != "object" {
            errors.append(.invalid(FieldPath(path).child("type"), schema.type ?? "", "must be object at the root"))
        }
        return (errors.isEmpty ? schema : nil, errors)
    }

    private init(_ json: JSONValue, path: FieldPath, depth: Int, errors: inout [FieldError]) {
        let o = json.objectValue ?? [:]
        if json.objectValue == nil { errors.append(.invalid(path, literal: "\(json)", "must be an object")) }
        if depth > Self.maxDepth { errors.append(.forbidden(path, "is nested deeper than \(Self.maxDepth) levels")) }
        for key in o.keys.sorted() where !Self.knownKeywords.contains(key) {
            errors.append(.forbidden(path.child(key), "\(key) is not supported"))
        }
        type = o["type"]?.stringValue
        preserveUnknownFields = o["x-kubernetes-preserve-unknown-fields"]?.boolValue ?? false
        intOrString = o["x-kubernetes-int-or-string"]?.boolValue ?? false
        embeddedResource = o["x-kubernetes-embedded-resource"]?.boolValue ?? false
        if let type, !Self.types.contains(type) {
            errors.append(.notSupported(path.child("type"), type, Self.types.sorted()))
        }
        if type == nil && !intOrString && !preserveUnknownFields && depth > 0 {
            errors.append(.required(path.child("type"), "must not be empty for specified object fields"))
        }
        var props: [String: StructuralSchema] = [:]
        for (name, value) in o["properties"]?.objectValue ?? [:] where depth <= Self.maxDepth {
            props[name] = StructuralSchema(value, path: path.child("properties").key(name), depth: depth + 1, errors: &errors)
        }
        properties = props
        if !props.isEmpty, type != "object" {
            errors.append(.invalid(path.child("type"), type ?? "", "must be object if properties are specified"))
        }
        required = o["required"]?.arrayValue?.compactMap(\.stringValue) ?? []
        if let item = o["items"], depth <= Self.maxDepth {
            items = StructuralSchema(item, path: path.child("items"), depth: depth + 1, errors: &errors)
        } else {
            items = nil
            if type == "array" { errors.append(.required(path.child("items"), "must be specified")) }
        }
        switch o["additionalProperties"] {
        case .bool(let allowed)?:
            additionalProperties = nil
            allowsAdditionalProperties = allowed
        case .some(let schema) where depth <= Self.maxDepth:
            additionalProperties = StructuralSchema(schema, path: path.child("additionalProperties"), depth: depth + 1, errors: &errors)
            allowsAdditionalProperties = true
            if !props.isEmpty {
                errors.append(.forbidden(path.child("additionalProperties"), "additionalProperties and properties are mutual exclusive"))
            }
        default:
            additionalProperties = nil
            allowsAdditionalProperties = false
        }
        enumValues = o["enum"]?.arrayValue
        minimum = o["minimum"]?.doubleValue
        maximum = o["maximum"]?.doubleValue
        exclusiveMinimum = o["exclusiveMinimum"]?.boolValue ?? false
        exclusiveMaximum = o["exclusiveMaximum"]?.boolValue ?? false
        multipleOf = o["multipleOf"]?.doubleValue
        if let m = multipleOf, m <= 0 { errors.append(.invalid(path.child("multipleOf"), literal: "\(m)", "must be greater than 0")) }
        func count(_ key: String) -> Int? {
            guard let value = o[key]?.int64Value else { return nil }
            if value < 0 { errors.append(.invalid(path.child(key), number: value, "must be greater than or equal to 0")) }
            return Int(clamping: value)
        }
        minLength = count("minLength")
        maxLength = count("maxLength")
        minItems = count("minItems")
        maxItems = count("maxItems")
        minProperties = count("minProperties")
        maxProperties = count("maxProperties")
        uniqueItems = o["uniqueItems"]?.boolValue ?? false
        pattern = o["pattern"]?.stringValue
        if let pattern {
            regex = try? NSRegularExpression(pattern: pattern)
            if regex == nil { errors.append(.invalid(path.child("pattern"), pattern, "must be a valid regular expression")) }
        } else {
            regex = nil
        }
        nullable = o["nullable"]?.boolValue ?? false
        defaultValue = o["default"]
        if defaultValue != nil, depth == 0 { errors.append(.forbidden(path.child("default"), "must not be set at the root")) }
    }

    // MARK: Defaulting and pruning

    /// Fills absent members that have a `default`, recursively (`structuraldefaulting.Default`).
    public func applyDefaults(_ value: inout JSONValue) {
        switch value {
        case .object(var members):
            for (name, schema) in properties {
                if members[name] == nil, let fallback = schema.defaultValue { members[name] = fallback }
                if var child = members[name] {
                    schema.applyDefaults(&child)
                    members[name] = child
                }
            }
            if let additional = additionalProperties {
                for (name, var child) in members where properties[name] == nil {
                    additional.applyDefaults(&child)
                    members[name] = child
                }
            }
            value = .object(members)
        case .array(var elements):
            if let items {
                for index in elements.indices { items.applyDefaults(&elements[index]) }
            }
            value = .array(elements)
        default:
            break
        }
    }

    /// Drops members the schema does not declare (`pruning.Prune`); returns their paths. At
    /// the root, `apiVersion`, `kind` and `metadata` are always kept; an embedded resource keeps
    /// the same three.
    @discardableResult
    public func prune(_ value: inout JSONValue, path: String = "", root: Bool = true) -> [String] {
        var unknown: [String] = []
        prune(&value, path: path, root: root, unknown: &unknown)
        return unknown
    }

    private func prune(_ value: inout JSONValue, path: String, root: Bool, unknown: inout [String]) {
        switch value {
        case .object(var members):
            for name in members.keys.sorted() {
                let childPath = path.isEmpty ? name : path + "." + name
                if (root || embeddedResource) && ["apiVersion", "kind", "metadata"].contains(name) { continue }
                if let schema = properties[name] ?? additionalProperties {
                    var child = members[name]!
                    schema.prune(&child, path: childPath, root: false, unknown: &unknown)
                    members[name] = child
                } else if !preserveUnknownFields && !allowsAdditionalProperties {
                    members[name] = nil
                    unknown.append(childPath)
                }
            }
            value = .object(members)
        case .array(var elements):
            if let items {
                for index in elements.indices {
                    items.prune(&elements[index], path: path + "[\(index)]", root: false, unknown: &unknown)
                }
            }
            value = .array(elements)
        default:
            break
        }
    }

    // MARK: Validation

    /// The problems of `value` (kube-openapi's validator, with its messages); `path` names it.
    public func validate(_ value: JSONValue, path: String) -> [FieldError] {
        var errors: [FieldError] = []
        validate(value, path: path, errors: &errors)
        return errors
    }

    private func typeName(_ value: JSONValue) -> String {
        switch value {
        case .null: return "null"
        case .bool: return "boolean"
        case .integer: return "integer"
        case .number(let d): return d.rounded() == d && abs(d) < 1e15 ? "integer" : "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }

    private func render(_ value: JSONValue) -> String {
        switch value {
        case .string(let s): return s
        default: return compactJSON(value)
        }
    }

    private func validate(_ value: JSONValue, path: String, errors: inout [FieldError]) {
        let field = FieldPath(path)
        if case .null = value {
            if !nullable && type != nil && !preserveUnknownFields {
                errors.append(.invalid(field, "null", "\(path) in body must be of type \(type!): \"null\""))
            }
            return
        }
        let actual = typeName(value)
        if intOrString {
            if actual != "integer" && actual != "string" {
                errors.append(.invalid(field, actual, "\(path) in body must be of type integer or string: \"\(actual)\""))
                return
            }
        } else if let type, type != actual, !(type == "number" && actual == "integer") {
            // Kubernetes shows the value's type as the bad value.
            errors.append(.invalid(field, actual, "\(path) in body must be of type \(type): \"\(actual)\""))
            return
        }
        if let enumValues, !enumValues.contains(where: { Self.equal($0, value) }) {
            errors.append(.notSupported(field, render(value), enumValues.map { render($0) }))
        }
        switch value {
        case .integer, .number:
            let number = value.doubleValue ?? 0
            if let minimum, exclusiveMinimum ? number <= minimum : number < minimum {
                errors.append(.invalid(field, literal: render(value),
                                       "\(path) in body should be greater than \(exclusiveMinimum ? "" : "or equal to ")\(Self.number(minimum))"))
            }
            if let maximum, exclusiveMaximum ? number >= maximum : number > maximum {
                errors.append(.invalid(field, literal: render(value),
                                       "\(path) in body should be less than \(exclusiveMaximum ? "" : "or equal to ")\(Self.number(maximum))"))
            }
            if let multipleOf, (number / multipleOf).rounded() != number / multipleOf {
                errors.append(.invalid(field, literal: render(value), "\(path) in body should be a multiple of \(Self.number(multipleOf))"))
            }
        case .string(let text):
            let length = text.count
            if let minLength, length < minLength {
                errors.append(.invalid(field, text, "\(path) in body should be at least \(minLength) chars long"))
            }
            if let maxLength, length > maxLength {
                errors.append(.tooLong(field, max: maxLength))
            }
            if let regex, regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) == nil {
                errors.append(.invalid(field, text, "\(path) in body should match '\(pattern ?? "")'"))
            }
        case .array(let elements):
            if let minItems, elements.count < minItems {
                errors.append(.invalid(field, literal: String(elements.count), "\(path) in body should have at least \(minItems) items"))
            }
            if let maxItems, elements.count > maxItems {
                errors.append(.tooMany(field, actual: elements.count, max: maxItems))
            }
            if uniqueItems {
                for (index, element) in elements.enumerated() where elements[..<index].contains(where: { Self.equal($0, element) }) {
                    errors.append(.duplicate(FieldPath(path + "[\(index)]"), render(element)))
                }
            }
            if let items {
                for (index, element) in elements.enumerated() {
                    items.validate(element, path: path + "[\(index)]", errors: &errors)
                }
            }
        case .object(let members):
            for name in required where members[name] == nil {
                errors.append(.required(FieldPath(path.isEmpty ? name : path + "." + name)))
            }
            if let minProperties, members.count < minProperties {
                errors.append(.invalid(field, literal: String(members.count), "\(path) in body should have at least \(minProperties) properties"))
            }
            if let maxProperties, members.count > maxProperties {
                errors.append(.tooMany(field, actual: members.count, max: maxProperties))
            }
            for name in members.keys.sorted() {
                guard let schema = properties[name] ?? additionalProperties else { continue }
                schema.validate(members[name]!, path: path.isEmpty ? name : path + "." + name, errors: &errors)
            }
        default:
            break
        }
    }

    static func equal(_ a: JSONValue, _ b: JSONValue) -> Bool {
        if let x = a.doubleValue, let y = b.doubleValue, a.stringValue == nil, b.stringValue == nil { return x == y }
        return a == b
    }

    static func number(_ value: Double) -> String {
        value.rounded() == value && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }
}
