/// Kubernetes' syntax rules for label keys, label values and DNS subdomains.
///
/// Each function returns the list of problems (empty when valid), worded as apimachinery's
/// `validation` package words them.
public enum LabelValidation {
    static let qualifiedNameFormat = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
    static let qualifiedNameMessage =
        "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
    static let labelValueFormat = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?"
    static let labelValueMessage =
        "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
    static let subdomainFormat = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
    static let subdomainMessage =
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"

    /// Maximum length of a label value and of the name part of a qualified name.
    public static let maxNameLength = 63
    /// Maximum length of a DNS-1123 subdomain.
    public static let maxSubdomainLength = 253

    static func regexError(_ message: String, _ format: String, _ examples: [String]) -> String {
        var result = message + " (e.g. "
        for (index, example) in examples.enumerated() {
            if index > 0 { result += " or " }
            result += "'" + example + "', "
        }
        return result + "regex used for validation is '" + format + "')"
    }

    static func maxLengthError(_ length: Int) -> String { "must be no more than \(length) characters" }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (byte >= 48 && byte <= 57) || (byte >= 65 && byte <= 90) || (byte >= 97 && byte <= 122)
    }

    private static func isLowerAlphanumeric(_ byte: UInt8) -> Bool {
        (byte >= 48 && byte <= 57) || (byte >= 97 && byte <= 122)
    }

    /// Matches `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`.
    static func matchesQualifiedNamePart(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard let first = bytes.first, let last = bytes.last,
            isAlphanumeric(first), isAlphanumeric(last)
        else { return false }
        return bytes.allSatisfy {
            isAlphanumeric($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".")
        }
    }

    /// Matches the DNS-1123 subdomain pattern (lowercase labels joined by dots).
    static func matchesSubdomain(_ text: String) -> Bool {
        let labels = text.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        return labels.allSatisfy { label in
            guard let first = label.first, let last = label.last,
                isLowerAlphanumeric(first), isLowerAlphanumeric(last)
            else { return false }
            return label.allSatisfy { isLowerAlphanumeric($0) || $0 == UInt8(ascii: "-") }
        }
    }

    /// Problems with `value` as a DNS-1123 subdomain (at most 253 characters).
    public static func dns1123SubdomainErrors(_ value: String) -> [String] {
        var errors: [String] = []
        if value.utf8.count > maxSubdomainLength { errors.append(maxLengthError(maxSubdomainLength)) }
        if !matchesSubdomain(value) {
            errors.append(regexError(subdomainMessage, subdomainFormat, ["example.com"]))
        }
        return errors
    }

    /// Problems with `value` as a qualified name (a label or annotation key): an optional
    /// DNS-subdomain prefix and `/`, then a name of at most 63 characters.
    public static func qualifiedNameErrors(_ value: String) -> [String] {
        var errors: [String] = []
        let parts = value.split(separator: "/", omittingEmptySubsequences: false)
        let name: String
        switch parts.count {
        case 1:
            name = String(parts[0])
        case 2:
            let prefix = String(parts[0])
            name = String(parts[1])
            if prefix.isEmpty {
                errors.append("prefix part must be non-empty")
            } else {
                errors.append(contentsOf: dns1123SubdomainErrors(prefix).map { "prefix part " + $0 })
            }
        default:
            return [
                "a qualified name "
                    + regexError(qualifiedNameMessage, qualifiedNameFormat, ["MyName", "my.name", "123-abc"])
                    + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            ]
        }
        if name.isEmpty {
            errors.append("name part must be non-empty")
        } else if name.utf8.count > maxNameLength {
            errors.append("name part " + maxLengthError(maxNameLength))
        }
        if !matchesQualifiedNamePart(name) {
            errors.append(
                "name part " + regexError(qualifiedNameMessage, qualifiedNameFormat, ["MyName", "my.name", "123-abc"]))
        }
        return errors
    }

    /// Problems with `value` as a label value: empty, or at most 63 characters of
    /// `[-_.A-Za-z0-9]` starting and ending with an alphanumeric.
    public static func labelValueErrors(_ value: String) -> [String] {
        var errors: [String] = []
        if value.utf8.count > maxNameLength { errors.append(maxLengthError(maxNameLength)) }
        if !value.isEmpty && !matchesQualifiedNamePart(value) {
            errors.append(regexError(labelValueMessage, labelValueFormat, ["MyValue", "my_value", "12345"]))
        }
        return errors
    }
}
