// A domain name as DNS carries it: labels of 1 to 63 bytes, at most 255 bytes on the wire
// (RFC 1035 §2.3.4). Names compare without regard to ASCII case (RFC 4343); the labels keep
// the case they were written in, so an answer echoes the question as asked.

/// A fully qualified domain name (the root is the name without labels).
public struct DNSName: Sendable, Hashable, CustomStringConvertible {
    /// The labels, leftmost first, as bytes (the case as written).
    public private(set) var labels: [[UInt8]]

    public static let maxLabelLength = 63
    /// The longest name on the wire, length bytes and the root's zero included.
    public static let maxWireLength = 255

    /// Labels already checked (1…63 bytes each, 255 bytes in all).
    init(checkedLabels: [[UInt8]]) { labels = checkedLabels }

    /// A name from its labels; nil when a label is empty or too long, or the name too long.
    public init?(labels: [[UInt8]]) {
        guard labels.allSatisfy({ (1...Self.maxLabelLength).contains($0.count) }),
              labels.reduce(1, { $0 + $1.count + 1 }) <= Self.maxWireLength else { return nil }
        self.labels = labels
    }

    /// A name from its dotted text (`web-0.web.default.svc.cluster.local`, the trailing dot
    /// optional); nil for an empty label or a name too long. No escapes: cluster names are
    /// letters, digits, `-` and `_`.
    public init?(_ text: String) {
        var trimmed = Substring(text)
        if trimmed.hasSuffix(".") { trimmed = trimmed.dropLast() }
        if trimmed.isEmpty {
            self.init(checkedLabels: [])
            return
        }
        self.init(labels: trimmed.split(separator: ".", omittingEmptySubsequences: false).map { Array($0.utf8) })
    }

    public static let root = DNSName(checkedLabels: [])

    /// The name in lower case: the key the cluster's records are kept under.
    public var lowercased: DNSName {
        DNSName(checkedLabels: labels.map { $0.map { (0x41...0x5a).contains($0) ? $0 | 0x20 : $0 } })
    }

    /// Whether this name is `zone` or below it (case-insensitively).
    public func isSubdomain(of zone: DNSName) -> Bool {
        guard labels.count >= zone.labels.count else { return false }
        return DNSName(checkedLabels: Array(labels.suffix(zone.labels.count))).lowercased == zone.lowercased
    }

    /// The labels left of `zone` (nil when the name is not in it), lowercased, as text.
    public func relativeLabels(to zone: DNSName) -> [String]? {
        guard isSubdomain(of: zone) else { return nil }
        return lowercased.labels.dropLast(zone.labels.count).map { String(decoding: $0, as: UTF8.self) }
    }

    /// This name with `label` prepended; nil when the result would be too long.
    public func prepending(_ label: String) -> DNSName? {
        DNSName(labels: [Array(label.utf8)] + labels)
    }

    /// Bytes on the wire, uncompressed.
    public var wireLength: Int { labels.reduce(1) { $0 + $1.count + 1 } }

    public var description: String {
        labels.isEmpty ? "." : labels.map { String(decoding: $0, as: UTF8.self) }.joined(separator: ".") + "."
    }

    public static func == (lhs: DNSName, rhs: DNSName) -> Bool { lhs.labels == rhs.labels }
}
