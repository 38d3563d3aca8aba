// apiextensions.k8s.io/v1 defaulting (`SetDefaults_CustomResourceDefinition`) and validation
// (apiextensions-apiserver's `ValidateCustomResourceDefinition`) for the modelled fields, with
// Kubernetes' messages; the structural schema checks are StructuralSchema's.

extension CustomResourceDefinition {
    static let scopes = ["Cluster", "Namespaced"]
    static let columnTypes = ["boolean", "date", "integer", "number", "string"]

    /// `SetDefaults_CustomResourceDefinition`: singular and list kind from the kind, the
    /// `None` conversion.
    public mutating func applyDefaults() {
        if (spec.names.singular ?? "").isEmpty { spec.names.singular = spec.names.kind.lowercased() }
        if (spec.names.listKind ?? "").isEmpty, !spec.names.kind.isEmpty { spec.names.listKind = spec.names.kind + "List" }
        if spec.conversion == nil { spec.conversion = ["strategy": "None"] }
    }

    /// The version objects are stored in.
    public var storageVersion: String? { spec.versions.first { $0.storage }?.name }

    /// Create validation.
    public func validate() -> [FieldError] {
        var errors = Validation.objectMeta(metadata, namespaced: false, name: Validation.nameIsDNSSubdomain, generic: true)
        let expected = spec.names.plural + "." + spec.group
        if let name = metadata.name, !name.isEmpty, name != expected {
            errors.append(.invalid("metadata.name", name, "must be spec.names.plural+\".\"+spec.group"))
        }
        errors += validateSpec()
        return errors.deduplicated()
    }

    func validateSpec() -> [FieldError] {
        var errors: [FieldError] = []
        if spec.group.isEmpty {
            errors.append(.required("spec.group"))
        } else {
            errors += Validation.dns1123Subdomain(spec.group, "spec.group")
            if !spec.group.contains(".") { errors.append(.invalid("spec.group", spec.group, "should be a domain with at least one dot")) }
        }
        if !Self.scopes.contains(spec.scope) { errors.append(.notSupported("spec.scope", spec.scope, Self.scopes)) }
        let names = spec.names
        func label(_ value: String, _ path: FieldPath, required: Bool = true) {
            if value.isEmpty {
                if required { errors.append(.required(path)) }
                return
            }
            for message in Validation.dns1035LabelErrors(value) { errors.append(.invalid(path, value, message)) }
        }
        label(names.plural, "spec.names.plural")
        label(names.singular ?? "", "spec.names.singular")
        label(names.kind.lowercased(), "spec.names.kind")
        label((names.listKind ?? "").lowercased(), "spec.names.listKind")
        if !names.kind.isEmpty, names.kind == names.listKind {
            errors.append(.invalid("spec.names.listKind", names.listKind ?? "", "kind and listKind may not be the same"))
        }
        for (index, short) in (names.shortNames ?? []).enumerated() { label(short, FieldPath("spec.names.shortNames").index(index)) }
        for (index, category) in (names.categories ?? []).enumerated() { label(category, FieldPath("spec.names.categories").index(index)) }

        if spec.versions.isEmpty {
            errors.append(.invalid("spec.versions", literal: "null", "must have exactly one version marked as storage version"))
        }
        var seen: Set<String> = []
        for (index, version) in spec.versions.enumerated() {
            let path = FieldPath("spec.versions").index(index)
            label(version.name, path.child("name"))
            if !seen.insert(version.name).inserted { errors.append(.duplicate(path.child("name"), version.name)) }
            if let schema = version.schema?.openAPIV3Schema {
                errors += StructuralSchema.parse(schema, path: path.child("schema", "openAPIV3Schema").description).1
            } else {
                errors.append(.required(path.child("schema", "openAPIV3Schema"), "schemas are required"))
            }
            for (c, column) in (version.additionalPrinterColumns ?? []).enumerated() {
                let columnPath = path.child("additionalPrinterColumns").index(c)
                if column.name.isEmpty { errors.append(.required(columnPath.child("name"))) }
                if !Self.columnTypes.contains(column.type) { errors.append(.notSupported(columnPath.child("type"), column.type, Self.columnTypes)) }
                if column.jsonPath.isEmpty {
                    errors.append(.required(columnPath.child("jsonPath")))
                } else if (try? SimpleJSONPath(column.jsonPath)) == nil {
                    errors.append(.invalid(columnPath.child("jsonPath"), column.jsonPath, "must be a simple json path"))
                }
            }
            if let status = version.subresources?.status, status.objectValue == nil {
                errors.append(.invalid(path.child("subresources", "status"), literal: compactJSON(status), "must be an object"))
            }
        }
        let storage = spec.versions.filter(\.storage).count
        if !spec.versions.isEmpty && storage != 1 {
            errors.append(.invalid("spec.versions", literal: "[\(spec.versions.map(\.name).joined(separator: ","))]",
                                   "must have exactly one version marked as storage version"))
        }
        if !spec.versions.isEmpty && !spec.versions.contains(where: \.served) {
            errors.append(.invalid("spec.versions", literal: "[\(spec.versions.map(\.name).joined(separator: ","))]",
                                   "must have at least one served version"))
        }
        let strategy = spec.conversion?["strategy"]?.stringValue ?? "None"
        if strategy != "None" {
            errors.append(.notSupported("spec.conversion.strategy", strategy, ["None"]))
        }
        if spec.preserveUnknownFields == true {
            errors.append(.invalid("spec.preserveUnknownFields", literal: "true",
                                   "cannot set to true, set x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead"))
        }
        return errors
    }

    /// Update validation: the group, the plural, the kind and the scope are fixed.
    public func validateUpdate(old: CustomResourceDefinition) -> [FieldError] {
        var errors = Validation.objectMetaUpdate(metadata, old.metadata, generic: true) + validateSpec()
        errors += Validation.immutableString(spec.group, old.spec.group, "spec.group")
        errors += Validation.immutableString(spec.scope, old.spec.scope, "spec.scope")
        errors += Validation.immutableString(spec.names.plural, old.spec.names.plural, "spec.names.plural")
        errors += Validation.immutableString(spec.names.kind, old.spec.names.kind, "spec.names.kind")
        return errors.deduplicated()
    }
}

/// The JSONPath subset of `additionalPrinterColumns` (`.a.b`, `.a[0]`, `.a[*].b`,
/// `.conditions[?(@.type=="Ready")].status`), evaluated to the values it finds.
public struct SimpleJSONPath: Sendable {
    enum Step: Sendable {
        case member(String)
        case index(Int)
        case all
        case filter(key: String, value: String)
    }

    let steps: [Step]

    public struct ParseError: Error {}

    public init(_ text: String) throws(ParseError) {
        var expression = Substring(text.trimmingCharacters(in: .whitespaces))
        if expression.hasPrefix("{") && expression.hasSuffix("}") { expression = expression.dropFirst().dropLast() }
        guard expression.hasPrefix(".") else { throw ParseError() }
        var steps: [Step] = []
        var rest = expression
        while !rest.isEmpty {
            if rest.hasPrefix(".") {
                rest = rest.dropFirst()
                let end = rest.firstIndex { $0 == "." || $0 == "[" } ?? rest.endIndex
                let name = String(rest[..<end])
                guard !name.isEmpty else { throw ParseError() }
                steps.append(.member(name))
                rest = rest[end...]
            } else if rest.hasPrefix("[") {
                guard let close = rest.firstIndex(of: "]") else { throw ParseError() }
                let inside = rest[rest.index(after: rest.startIndex)..<close]
                if inside == "*" {
                    steps.append(.all)
                } else if let n = Int(inside), n >= 0 {
                    steps.append(.index(n))
                } else if inside.hasPrefix("?(@.") && inside.hasSuffix(")") {
                    let body = inside.dropFirst(4).dropLast()
                    guard let eq = body.range(of: "==") else { throw ParseError() }
                    let key = String(body[..<eq.lowerBound]).trimmingCharacters(in: .whitespaces)
                    var value = String(body[eq.upperBound...]).trimmingCharacters(in: .whitespaces)
                    if value.count >= 2, let first = value.first, first == "\"" || first == "'", value.last == first {
                        value = String(value.dropFirst().dropLast())
                    }
                    guard !key.isEmpty else { throw ParseError() }
                    steps.append(.filter(key: key, value: value))
                } else {
                    throw ParseError()
                }
                rest = rest[rest.index(after: close)...]
            } else {
                throw ParseError()
            }
        }
        self.steps = steps
    }

    /// The values the path selects in `value`.
    public func evaluate(_ value: JSONValue) -> [JSONValue] {
        var current = [value]
        for step in steps {
            var next: [JSONValue] = []
            for item in current {
                switch step {
                case .member(let name): if let child = item[name] { next.append(child) }
                case .index(let n): if let child = item[n] { next.append(child) }
                case .all: next += item.arrayValue ?? []
                case .filter(let key, let wanted):
                    for element in item.arrayValue ?? [] {
                        let got = element[key]
                        let text = got?.stringValue ?? got.map { compactJSON($0) }
                        if text == wanted { next.append(element) }
                    }
                }
            }
            current = next
        }
        return current
    }
}
