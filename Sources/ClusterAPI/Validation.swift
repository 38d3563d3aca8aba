import Foundation

/// Shared validation rules (apimachinery `validation` and the common parts of
/// `pkg/apis/core/validation`), producing `FieldError`s worded as Kubernetes words them.
enum Validation {
    // MARK: Names

    static let dns1123LabelFormat = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
    static let dns1123LabelMessage =
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
    static let dns1035LabelFormat = "[a-z]([-a-z0-9]*[a-z0-9])?"
    static let dns1035LabelMessage =
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character"

    private static func isLowerAlphanumeric(_ byte: UInt8) -> Bool {
        (byte >= 48 && byte <= 57) || (byte >= 97 && byte <= 122)
    }

    static func matchesDNS1123Label(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard let first = bytes.first, let last = bytes.last, isLowerAlphanumeric(first), isLowerAlphanumeric(last)
        else { return false }
        return bytes.allSatisfy { isLowerAlphanumeric($0) || $0 == UInt8(ascii: "-") }
    }

    /// Problems with `value` as an RFC 1123 label (at most 63 characters, no dots).
    static func dns1123LabelErrors(_ value: String) -> [String] {
        var errors: [String] = []
        if value.utf8.count > 63 { errors.append(LabelValidation.maxLengthError(63)) }
        if !matchesDNS1123Label(value) {
            if LabelValidation.matchesSubdomain(value) {
                errors.append("must not contain dots")
            } else {
                errors.append(LabelValidation.regexError(dns1123LabelMessage, dns1123LabelFormat, ["my-name", "123-abc"]))
            }
        }
        return errors
    }

    /// Problems with `value` as an RFC 1035 label (starts with a letter).
    static func dns1035LabelErrors(_ value: String) -> [String] {
        var errors: [String] = []
        if value.utf8.count > 63 { errors.append(LabelValidation.maxLengthError(63)) }
        let bytes = Array(value.utf8)
        let valid =
            bytes.first.map { $0 >= 97 && $0 <= 122 } == true && bytes.last.map(isLowerAlphanumeric) == true
            && bytes.allSatisfy { isLowerAlphanumeric($0) || $0 == UInt8(ascii: "-") }
        if !valid {
            errors.append(LabelValidation.regexError(dns1035LabelMessage, dns1035LabelFormat, ["my-name", "abc-123"]))
        }
        return errors
    }

    /// A name rule (apimachinery `ValidateNameFunc`); `prefix` is true for `generateName`.
    typealias NameRule = @Sendable (_ name: String, _ prefix: Bool) -> [String]

    /// A generated name gets a random suffix, so a trailing dash is fine in the prefix.
    private static func maskTrailingDash(_ name: String) -> String {
        if name.count > 1 && name.hasSuffix("-") { return String(name.dropLast()) + "a" }
        return name
    }

    static let nameIsDNSSubdomain: NameRule = { name, prefix in
        LabelValidation.dns1123SubdomainErrors(prefix ? maskTrailingDash(name) : name)
    }
    static let nameIsDNSLabel: NameRule = { name, prefix in
        dns1123LabelErrors(prefix ? maskTrailingDash(name) : name)
    }
    static let nameIsDNS1035Label: NameRule = { name, prefix in
        dns1035LabelErrors(prefix ? maskTrailingDash(name) : name)
    }

    static func dns1123Label(_ value: String, _ path: FieldPath) -> [FieldError] {
        dns1123LabelErrors(value).map { .invalid(path, value, $0) }
    }

    static func dns1123Subdomain(_ value: String, _ path: FieldPath) -> [FieldError] {
        LabelValidation.dns1123SubdomainErrors(value).map { .invalid(path, value, $0) }
    }

    static func qualifiedName(_ value: String, _ path: FieldPath) -> [FieldError] {
        LabelValidation.qualifiedNameErrors(value).map { .invalid(path, value, $0) }
    }

    /// A CSI driver name: required, at most 63 characters, a DNS subdomain once lowercased.
    static func csiDriverName(_ name: String, _ path: FieldPath) -> [FieldError] {
        var errors: [FieldError] = []
        if name.isEmpty { errors.append(.required(path)) }
        if name.utf8.count > 63 { errors.append(.tooLong(path, max: 63)) }
        errors += LabelValidation.dns1123SubdomainErrors(name.lowercased()).map { .invalid(path, name, $0) }
        return errors
    }

    // MARK: Labels, annotations, finalizers

    static func labels(_ labels: [String: String]?, _ path: FieldPath) -> [FieldError] {
        var errors: [FieldError] = []
        for key in (labels ?? [:]).keys.sorted() {
            errors += qualifiedName(key, path)
            let value = labels![key]!
            errors += LabelValidation.labelValueErrors(value).map { .invalid(path, value, $0) }
        }
        return errors
    }

    static let totalAnnotationSizeLimit = 256 * 1024

    static func annotations(_ annotations: [String: String]?, _ path: FieldPath) -> [FieldError] {
        guard let annotations else { return [] }
        var errors: [FieldError] = []
        var size = 0
        for key in annotations.keys.sorted() {
            errors += LabelValidation.qualifiedNameErrors(key.lowercased()).map { .invalid(path, key, $0) }
            size += key.utf8.count + annotations[key]!.utf8.count
        }
        if size > totalAnnotationSizeLimit { errors.append(.tooLong(path, max: totalAnnotationSizeLimit)) }
        return errors
    }

    static let standardFinalizers: Set<String> = ["kubernetes", "orphan", "foregroundDeletion"]

    /// Finalizers: qualified names; unqualified ones must be standard Kubernetes finalizers,
    /// except for `generic` objects (CustomResourceDefinitions and custom resources, which
    /// apiextensions-apiserver validates with apimachinery's ValidateObjectMeta: a qualified name
    /// such as `customresourcecleanup.apiextensions.k8s.io` is enough).
    static func finalizers(_ finalizers: [String]?, _ path: FieldPath, generic: Bool = false) -> [FieldError] {
        guard let finalizers else { return [] }
        var errors: [FieldError] = []
        for finalizer in finalizers { errors += qualifiedName(finalizer, path) }
        if finalizers.contains("orphan") && finalizers.contains("foregroundDeletion") {
            errors.append(
                .invalid(path, literal: goStringSlice(finalizers),
                    "finalizer orphan and foregroundDeletion cannot be both set"))
        }
        for (index, finalizer) in finalizers.enumerated() where !generic {
            errors += kubeFinalizerName(finalizer, path.index(index))
        }
        return errors
    }

    static func kubeFinalizerName(_ name: String, _ path: FieldPath) -> [FieldError] {
        if !name.contains("/") && !standardFinalizers.contains(name) {
            return [.invalid(path, name, "name is neither a standard finalizer name nor is it fully qualified")]
        }
        return []
    }

    // MARK: Object metadata

    /// Metadata on create (core `ValidateObjectMeta`). A missing name is fine when
    /// `generateName` is set, since the server generates the name.
    static func objectMeta(
        _ meta: ObjectMeta, namespaced: Bool, name rule: NameRule, path: FieldPath = "metadata",
        namePath: FieldPath? = nil, generic: Bool = false
    ) -> [FieldError] {
        var errors: [FieldError] = []
        let generateName = meta.generateName ?? ""
        let name = meta.name ?? ""
        let namePath = namePath ?? path.child("name")
        if !generateName.isEmpty {
            errors += rule(generateName, true).map { .invalid(path.child("generateName"), generateName, $0) }
        }
        if name.isEmpty {
            if generateName.isEmpty { errors.append(.required(namePath, "name or generateName is required")) }
        } else {
            errors += rule(name, false).map { .invalid(namePath, name, $0) }
        }
        errors += objectMetaCommon(meta, namespaced: namespaced, path: path, generic: generic)
        return errors
    }

    static func objectMetaCommon(_ meta: ObjectMeta, namespaced: Bool, path: FieldPath = "metadata", generic: Bool = false) -> [FieldError] {
        var errors: [FieldError] = []
        let namespace = meta.namespace ?? ""
        if namespaced {
            if namespace.isEmpty {
                errors.append(.required(path.child("namespace")))
            } else {
                errors += nameIsDNSLabel(namespace, false).map { .invalid(path.child("namespace"), namespace, $0) }
            }
        } else if !namespace.isEmpty {
            errors.append(.forbidden(path.child("namespace"), "not allowed on this type"))
        }
        if let generation = meta.generation, generation < 0 {
            errors.append(.invalid(path.child("generation"), number: generation, "must be greater than or equal to 0"))
        }
        errors += labels(meta.labels, path.child("labels"))
        errors += annotations(meta.annotations, path.child("annotations"))
        errors += ownerReferences(meta.ownerReferences, path.child("ownerReferences"))
        errors += finalizers(meta.finalizers, path.child("finalizers"), generic: generic)
        return errors
    }

    static func ownerReferences(_ references: [OwnerReference]?, _ path: FieldPath) -> [FieldError] {
        guard let references else { return [] }
        var errors: [FieldError] = []
        var firstController: String?
        for reference in references {
            let version = reference.apiVersion.split(separator: "/", omittingEmptySubsequences: false).last ?? ""
            if version.isEmpty {
                errors.append(.invalid(path.child("apiVersion"), reference.apiVersion, "version must not be empty"))
            }
            if reference.kind.isEmpty { errors.append(.invalid(path.child("kind"), reference.kind, "must not be empty")) }
            if reference.name.isEmpty { errors.append(.invalid(path.child("name"), reference.name, "must not be empty")) }
            if reference.uid.isEmpty { errors.append(.invalid(path.child("uid"), reference.uid, "must not be empty")) }
            if reference.controller == true {
                let current = reference.kind + "/" + reference.name
                if let firstController {
                    errors.append(
                        .invalid(path, literal: compactJSON(references),
                            "Only one reference can have Controller set to true. Found \"true\" in references for \(firstController) and \(current)"))
                } else {
                    firstController = current
                }
            }
        }
        return errors
    }

    /// Metadata on update (apimachinery `ValidateObjectMetaAccessorUpdate`). The API server
    /// copies `uid` and `creationTimestamp` from the stored object before validating, and fills
    /// in the stored `resourceVersion` for unconditional updates.
    static func objectMetaUpdate(_ new: ObjectMeta, _ old: ObjectMeta, path: FieldPath = "metadata", generic: Bool = false) -> [FieldError] {
        var errors: [FieldError] = []
        if old.deletionTimestamp != nil {
            let extra = Set(new.finalizers ?? []).subtracting(old.finalizers ?? []).sorted()
            if !extra.isEmpty {
                errors.append(
                    .forbidden(path.child("finalizers"),
                        "no new finalizers can be added if the object is being deleted, found new finalizers \(goStringSlice(extra))"))
            }
        }
        if (new.resourceVersion ?? "").isEmpty {
            errors.append(.invalid(path.child("resourceVersion"), "", "must be specified for an update"))
        }
        if (new.generation ?? 0) < (old.generation ?? 0) {
            errors.append(.invalid(path.child("generation"), number: new.generation ?? 0, "must not be decremented"))
        }
        func immutable(_ newValue: String?, _ oldValue: String?, _ name: String) {
            if (newValue ?? "") != (oldValue ?? "") {
                errors.append(.invalid(path.child(name), newValue ?? "", "field is immutable"))
            }
        }
        immutable(new.name, old.name, "name")
        immutable(new.namespace, old.namespace, "namespace")
        immutable(new.uid, old.uid, "uid")
        if new.creationTimestamp != old.creationTimestamp {
            errors.append(
                .invalid(path.child("creationTimestamp"), literal: goTime(new.creationTimestamp), "field is immutable"))
        }
        if new.deletionTimestamp != old.deletionTimestamp {
            errors.append(
                .invalid(path.child("deletionTimestamp"), literal: new.deletionTimestamp.map { goTime($0) } ?? "null",
                    "field is immutable"))
        }
        if new.deletionGracePeriodSeconds != old.deletionGracePeriodSeconds {
            errors.append(
                .invalid(path.child("deletionGracePeriodSeconds"),
                    literal: new.deletionGracePeriodSeconds.map { String($0) } ?? "null", "field is immutable"))
        }
        errors += labels(new.labels, path.child("labels"))
        errors += annotations(new.annotations, path.child("annotations"))
        errors += ownerReferences(new.ownerReferences, path.child("ownerReferences"))
        errors += finalizers(new.finalizers, path.child("finalizers"), generic: generic)
        return errors
    }

    /// `Invalid … field is immutable` for an optional string, printing `null` when unset.
    static func immutableString(_ new: String?, _ old: String?, _ path: FieldPath) -> [FieldError] {
        guard new != old else { return [] }
        if let new { return [.invalid(path, new, "field is immutable")] }
        return [.invalid(path, literal: "null", "field is immutable")]
    }

    // MARK: Quantities and resources

    static func nonNegativeQuantity(_ value: Quantity, _ path: FieldPath) -> [FieldError] {
        value.sign < 0 ? [.invalid(path, literal: value.description, "must be greater than or equal to 0")] : []
    }

    static func positiveQuantity(_ value: Quantity, _ path: FieldPath) -> [FieldError] {
        value.sign <= 0 ? [.invalid(path, value.description, "must be greater than zero")] : []
    }

    static let standardContainerResources: Set<String> = ["cpu", "memory", "ephemeral-storage"]

    /// Container `resources` (simplified `ValidateContainerResourceRequirements`).
    static func resourceRequirements(_ resources: ResourceRequirements?, _ path: FieldPath) -> [FieldError] {
        guard let resources else { return [] }
        var errors: [FieldError] = []
        func resourceName(_ name: String, _ path: FieldPath) {
            errors += qualifiedName(name, path)
            if !name.contains("/") && !standardContainerResources.contains(name) && !name.hasPrefix("hugepages-") {
                errors.append(.invalid(path, name, "must be a standard resource type or fully qualified"))
            }
        }
        let limits = resources.limits ?? [:]
        let requests = resources.requests ?? [:]
        for name in limits.keys.sorted() {
            let limitPath = path.child("limits").key(name)
            resourceName(name, limitPath)
            errors += nonNegativeQuantity(limits[name]!, limitPath)
        }
        for name in requests.keys.sorted() {
            let requestPath = path.child("requests").key(name)
            resourceName(name, requestPath)
            errors += nonNegativeQuantity(requests[name]!, requestPath)
            if let limit = limits[name], requests[name]! > limit {
                errors.append(
                    .invalid(requestPath, requests[name]!.description,
                        "must be less than or equal to \(name) limit of \(limit.description)"))
            }
        }
        return errors
    }

    // MARK: Ports and paths

    static func portNumberErrors(_ port: Int64) -> [String] {
        (1...65535).contains(port) ? [] : ["must be between 1 and 65535, inclusive"]
    }

    static func portNameErrors(_ name: String) -> [String] {
        var errors: [String] = []
        let bytes = Array(name.utf8)
        if bytes.count > 15 { errors.append("must be no more than 15 characters") }
        if !bytes.allSatisfy({ isLowerAlphanumeric($0) || $0 == UInt8(ascii: "-") }) {
            errors.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
        }
        if !bytes.contains(where: { $0 >= 97 && $0 <= 122 }) { errors.append("must contain at least one letter (a-z)") }
        if name.contains("--") { errors.append("must not contain consecutive hyphens") }
        if name.hasPrefix("-") || name.hasSuffix("-") { errors.append("must not begin or end with a hyphen") }
        return errors
    }

    static func noBacksteps(_ path: String, _ field: FieldPath) -> [FieldError] {
        path.split(separator: "/", omittingEmptySubsequences: false).contains("..")
            ? [.invalid(field, path, "must not contain '..'")] : []
    }

    static func localDescendingPath(_ path: String, _ field: FieldPath) -> [FieldError] {
        var errors: [FieldError] = []
        if path.hasPrefix("/") { errors.append(.invalid(field, path, "must be a relative path")) }
        return errors + noBacksteps(path, field)
    }

    static let hostPathTypes = [
        "", "BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate", "File", "FileOrCreate", "Socket",
    ]

    static func hostPath(_ source: HostPathVolumeSource, _ path: FieldPath) -> [FieldError] {
        if source.path.isEmpty { return [.required(path.child("path"))] }
        var errors = noBacksteps(source.path, path.child("path"))
        if let type = source.type, !hostPathTypes.contains(type) {
            errors.append(.notSupported(path.child("type"), type, hostPathTypes))
        }
        return errors
    }

    // MARK: Networking

    static func isValidIPv4(_ text: Substring) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4
            && parts.allSatisfy { part in
                !part.isEmpty && part.count <= 3 && part.allSatisfy(\.isASCII) && UInt8(part) != nil
            }
    }

    static func isValidIPv6(_ text: Substring) -> Bool {
        var text = text
        var groupsNeeded = 8
        if let lastColon = text.lastIndex(of: ":"), text[text.index(after: lastColon)...].contains(".") {
            guard isValidIPv4(text[text.index(after: lastColon)...]) else { return false }
            text = text[...lastColon]
            if text.hasSuffix(":") && !text.hasSuffix("::") { text = text.dropLast() }
            groupsNeeded = 6
        }
        func groups(_ part: Substring) -> Int? {
            if part.isEmpty { return 0 }
            var count = 0
            for group in part.split(separator: ":", omittingEmptySubsequences: false) {
                guard (1...4).contains(group.count), group.allSatisfy(\.isHexDigit) else { return nil }
                count += 1
            }
            return count
        }
        let halves = text.components(separatedBy: "::")
        switch halves.count {
        case 1: return groups(Substring(halves[0])) == groupsNeeded
        case 2:
            guard let left = groups(Substring(halves[0])), let right = groups(Substring(halves[1])) else { return false }
            return left + right < groupsNeeded
        default: return false
        }
    }

    /// Whether `text` is an IPv4 or IPv6 CIDR such as `10.244.0.0/24`.
    static func isValidCIDR(_ text: String) -> Bool {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let bits = Int(parts[1]), parts[1].allSatisfy(\.isASCII) else { return false }
        if parts[0].contains(":") { return isValidIPv6(parts[0]) && (0...128).contains(bits) }
        return isValidIPv4(parts[0]) && (0...32).contains(bits)
    }
}

// MARK: - Go-style rendering of bad values

/// `[]string{"a", "b"}`, as Go's `%#v` prints a string slice.
func goStringSlice(_ values: [String], type: String = "string") -> String {
    "[]\(type){" + values.map(goQuoted).joined(separator: ", ") + "}"
}

/// Go's `time.Time.String()` for a UTC instant: `2026-11-29 13:00:00 +0000 UTC`
/// (`0001-01-01 00:00:00 +0000 UTC` for an unset time).
func goTime(_ time: Time?) -> String {
    guard let time else { return "0001-01-01 00:00:00 +0000 UTC" }
    return time.rfc3339.dropLast().replacingOccurrences(of: "T", with: " ") + " +0000 UTC"
}

/// Compact JSON with sorted keys, used where Kubernetes would print a structure.
func compactJSON<T: Encodable>(_ value: T) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    guard let data = try? encoder.encode(value) else { return "null" }
    return String(decoding: data, as: UTF8.self)
}

/// A short line-per-change diff of two values' JSON, standing in for the `cmp.Diff` output
/// Kubernetes appends to immutability errors.
func jsonDiff<T: Encodable>(_ old: T, _ new: T) -> String {
    let oldTree = (try? JSONValue(encoding: old)) ?? .null
    let newTree = (try? JSONValue(encoding: new)) ?? .null
    var lines: [String] = []
    func walk(_ a: JSONValue?, _ b: JSONValue?, _ path: String) {
        if a == b { return }
        if case .object(let left)? = a, case .object(let right)? = b {
            for key in Set(left.keys).union(right.keys).sorted() {
                walk(left[key], right[key], path.isEmpty ? key : path + "." + key)
            }
            return
        }
        if case .array(let left)? = a, case .array(let right)? = b, left.count == right.count {
            for index in left.indices { walk(left[index], right[index], path + "[\(index)]") }
            return
        }
        let name = path.isEmpty ? "." : path
        lines.append("  - \(name): " + (a.map { compactJSON($0) } ?? "<absent>"))
        lines.append("  + \(name): " + (b.map { compactJSON($0) } ?? "<absent>"))
    }
    walk(oldTree, newTree, "")
    return lines.joined(separator: "\n")
}

extension Array where Element == FieldError {
    /// Drops repeated messages, keeping the first (as apimachinery's `ToAggregate` does).
    func deduplicated() -> [FieldError] {
        var seen = Set<String>()
        return filter { seen.insert($0.description).inserted }
    }
}
