/// An IPv4 network in CIDR notation (`198.19.0.0/16`): what the Service range, the cluster's
/// pod range and each node's `podCIDR` are, for the API server, node IPAM and the kubelet's pod
/// network alike. Addresses are `UInt32` in host order. Encoded as its text.
public struct IPv4CIDR: Sendable, Hashable, CustomStringConvertible, Codable {
    /// The network address (host bits zero).
    public let network: UInt32
    /// The prefix length, 0 to 32.
    public let prefixLength: Int

    /// Parses `a.b.c.d/n`; nil for anything else (IPv6 included). Host bits set in the address
    /// are cleared, as Go's `net.ParseCIDR` does for the network it returns.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[1].isEmpty, parts[1].allSatisfy({ $0.isASCII && $0.isNumber }), let bits = Int(parts[1]), (0...32).contains(bits),
              let address = Self.parseAddress(parts[0]) else { return nil }
        self.init(network: address, prefixLength: bits)
    }

    public init(network: UInt32, prefixLength: Int) {
        precondition((0...32).contains(prefixLength), "prefix length \(prefixLength) out of 0...32")
        self.prefixLength = prefixLength
        self.network = network & Self.mask(prefixLength)
    }

    /// The netmask of a prefix length.
    public static func mask(_ bits: Int) -> UInt32 { bits == 0 ? 0 : ~UInt32(0) << UInt32(32 - bits) }

    /// Number of addresses, network and broadcast included (2^(32-n)).
    public var size: UInt64 { UInt64(1) << UInt64(32 - prefixLength) }

    public func contains(_ address: UInt32) -> Bool { address & Self.mask(prefixLength) == network }

    /// Whether the dotted quad `address` is inside (false when it is not one).
    public func contains(_ address: String) -> Bool { Self.parseAddress(address).map(contains) ?? false }

    /// Whether `other` lies wholly inside this network.
    public func contains(_ other: IPv4CIDR) -> Bool { other.prefixLength >= prefixLength && contains(other.network) }

    public func overlaps(_ other: IPv4CIDR) -> Bool { contains(other) || other.contains(self) }

    /// The `n`th address of the network as a dotted quad (1: the first host, by convention the
    /// gateway).
    public func address(_ n: UInt32) -> String { Self.format(network &+ n) }

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

    public var description: String { Self.format(network) + "/\(prefixLength)" }

    /// `a.b.c.d` → its value; nil when it is not a dotted quad of 0–255 without leading zeros
    /// (Go's `net.ParseIP` refuses `198.018.0.1`: octal or decimal would be a guess).
    public static func parseAddress(_ text: Substring) -> UInt32? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy({ $0.isASCII && $0.isNumber }), part == "0" || !part.hasPrefix("0"),
                  let byte = UInt8(part) else { return nil }
            value = value << 8 | UInt32(byte)
        }
        return value
    }

    public static func parseAddress(_ text: String) -> UInt32? { parseAddress(Substring(text)) }

    /// The dotted quad of an address.
    public static func format(_ address: UInt32) -> String {
        "\(address >> 24).\(address >> 16 & 0xff).\(address >> 8 & 0xff).\(address & 0xff)"
    }

    /// The `index`-th subnet of prefix length `bits` inside this network (node IPAM's
    /// `cidrset`); nil when `bits` is shorter than this network's or `index` is past the end.
    public func subnet(_ index: Int, bits: Int) -> IPv4CIDR? {
        guard bits >= prefixLength, bits <= 32, index >= 0, UInt64(index) < subnetCount(bits: bits) else { return nil }
        return IPv4CIDR(network: network + UInt32(index) << UInt32(32 - bits), prefixLength: bits)
    }

    /// How many subnets of prefix length `bits` this network holds (0 when `bits` is shorter).
    public func subnetCount(bits: Int) -> UInt64 {
        guard bits >= prefixLength, bits <= 32 else { return 0 }
        return UInt64(1) << UInt64(bits - prefixLength)
    }

    /// The index of `subnet` among this network's subnets of its prefix length; nil when it is
    /// not one of them.
    public func index(of subnet: IPv4CIDR) -> Int? {
        guard subnet.prefixLength >= prefixLength, contains(subnet.network) else { return nil }
        return Int((subnet.network - network) >> UInt32(32 - subnet.prefixLength))
    }
}
