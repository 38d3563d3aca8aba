// IPv4 ranges as the pod network uses them: the cluster's pod range (`--cluster-cidr`), a node's
// slice of it (`spec.podCIDR`, a /24 by default), the Service range, and their gateway and
// host addresses. Parsed strictly: "198.18.0.0/16" (the network address, no host bits set).

/// An IPv4 network `address/prefix`.
public struct IPv4CIDR: Sendable, Hashable, CustomStringConvertible, Codable {
    /// The network address, host bits zero.
    public let network: UInt32
    public let prefix: Int

    /// Parses `a.b.c.d/n`; nil unless it is a network address with a prefix of 0–32.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let prefix = Int(parts[1]), (0...32).contains(prefix), !parts[1].hasPrefix("+"),
              let address = IPv4CIDR.parseAddress(String(parts[0])) else { return nil }
        guard address & ~IPv4CIDR.mask(prefix) == 0 else { return nil }
        self.network = address
        self.prefix = prefix
    }

    public init(network: UInt32, prefix: Int) {
        self.prefix = prefix
        self.network = network & IPv4CIDR.mask(prefix)
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let value = IPv4CIDR(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "\(text) is not an IPv4 CIDR"))
        }
        self = value
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    public var description: String { IPv4CIDR.format(network) + "/\(prefix)" }

    /// The number of addresses in the range.
    public var size: UInt64 { UInt64(1) << UInt64(32 - prefix) }

    /// Whether `address` (dotted quad) is inside.
    public func contains(_ address: String) -> Bool {
        guard let value = IPv4CIDR.parseAddress(address) else { return false }
        return value & IPv4CIDR.mask(prefix) == network
    }

    /// Whether `other` lies wholly inside this range.
    public func contains(_ other: IPv4CIDR) -> Bool {
        other.prefix >= prefix && other.network & IPv4CIDR.mask(prefix) == network
    }

    public func overlaps(_ other: IPv4CIDR) -> Bool { contains(other) || other.contains(self) }

    /// How many /`prefix` subnets this range holds (0 when `prefix` is shorter than its own).
    public func subnetCount(prefix newPrefix: Int) -> Int {
        guard newPrefix >= prefix, newPrefix <= 32 else { return 0 }
        return Int(min(UInt64(Int.max), UInt64(1) << UInt64(newPrefix - prefix)))
    }

    /// The `index`th /`prefix` subnet (0-based), nil past the end.
    public func subnet(_ index: Int, prefix newPrefix: Int) -> IPv4CIDR? {
        guard index >= 0, index < subnetCount(prefix: newPrefix) else { return nil }
        return IPv4CIDR(network: network + UInt32(index) << UInt32(32 - newPrefix), prefix: newPrefix)
    }

    /// The `n`th address of the range (1: the first host, the gateway by convention).
    public func address(_ n: UInt32) -> String { IPv4CIDR.format(network &+ n) }

    static func mask(_ prefix: Int) -> UInt32 { prefix == 0 ? 0 : UInt32.max << UInt32(32 - prefix) }

    /// A dotted quad, strictly: four decimal numbers 0–255, no leading zeros.
    public static func parseAddress(_ text: String) -> UInt32? {
        let octets = text.split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 4 else { return nil }
        var value: UInt32 = 0
        for octet in octets {
            guard !octet.isEmpty, octet.count <= 3, octet.allSatisfy({ $0.isASCII && $0.isNumber }),
                  octet == "0" || !octet.hasPrefix("0"), let number = UInt32(octet), number <= 255 else { return nil }
            value = value << 8 | number
        }
        return value
    }

    public static func format(_ value: UInt32) -> String {
        "\(value >> 24).\(value >> 16 & 0xff).\(value >> 8 & 0xff).\(value & 0xff)"
    }
}
