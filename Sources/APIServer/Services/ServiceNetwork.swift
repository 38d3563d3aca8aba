import ClusterAPI

/// The ranges Services are allocated from (`--service-cluster-ip-range`,
/// `--service-node-port-range`). Ballast is IPv4 single-stack.
public struct ServiceNetwork: Sendable, Equatable {
    /// ClusterIPs come from here, the network and broadcast addresses excepted; the first
    /// address is the `kubernetes` Service's.
    public var clusterIPRange: IPv4CIDR
    /// NodePorts come from here.
    public var nodePortRange: ClosedRange<Int>

    /// 198.19.0.0/16 (the upper half of the benchmarking block 198.18.0.0/15) and 30000-32767.
    public static let standard = ServiceNetwork(clusterIPRange: IPv4CIDR("198.19.0.0/16")!, nodePortRange: 30000...32767)

    public init(clusterIPRange: IPv4CIDR, nodePortRange: ClosedRange<Int>) {
        self.clusterIPRange = clusterIPRange
        self.nodePortRange = nodePortRange
    }

    /// Parses the two flags with kube-apiserver's checks; the error says what to pass instead.
    public static func parse(clusterIPRange: String, nodePortRange: String) throws(ServiceNetworkError) -> ServiceNetwork {
        guard let cidr = IPv4CIDR(clusterIPRange) else {
            throw ServiceNetworkError("--service-cluster-ip-range \(clusterIPRange): expected an IPv4 CIDR such as 198.19.0.0/16 (Ballast is IPv4 single-stack)")
        }
        guard cidr.prefixLength >= 12 else {
            throw ServiceNetworkError("--service-cluster-ip-range \(clusterIPRange): specified --service-cluster-ip-range is too large; for 32-bit addresses, the mask must be >= 12")
        }
        guard cidr.prefixLength <= 29 else {
            throw ServiceNetworkError("--service-cluster-ip-range \(clusterIPRange): too small; give a range of at least 8 addresses (/29)")
        }
        let parts = nodePortRange.split(separator: "-", omittingEmptySubsequences: false)
        var ports: ClosedRange<Int>?
        if parts.count == 2, let low = Int(parts[0]), let high = Int(parts[1]), 1 <= low, low <= high, high <= 65535 {
            ports = low...high
        } else if parts.count == 1, let only = Int(parts[0]), (1...65535).contains(only) {
            ports = only...only
        }
        guard let ports else {
            throw ServiceNetworkError("--service-node-port-range \(nodePortRange): expected LOW-HIGH with 1 <= LOW <= HIGH <= 65535, e.g. 30000-32767")
        }
        return ServiceNetwork(clusterIPRange: cidr, nodePortRange: ports)
    }

    /// Number of allocatable ClusterIPs: the range without its network and broadcast address.
    var ipCount: Int { Int(clusterIPRange.size) - 2 }

    /// The offset of an address in the IP bitmap; nil outside the allocatable addresses.
    func ipOffset(_ address: String) -> Int? {
        guard let value = IPv4CIDR.parseAddress(address), clusterIPRange.contains(value) else { return nil }
        let offset = Int(value - clusterIPRange.network) - 1
        return (0..<ipCount).contains(offset) ? offset : nil
    }

    func ip(atOffset offset: Int) -> String { IPv4CIDR.format(clusterIPRange.network + UInt32(offset + 1)) }

    /// The `kubernetes` Service's address: the first of the range.
    public var kubernetesServiceIP: String { ip(atOffset: 0) }

    /// `30000-32767`, as the port allocator prints its range.
    var nodePortRangeText: String { "\(nodePortRange.lowerBound)-\(nodePortRange.upperBound)" }
}

/// A bad `--service-cluster-ip-range` or `--service-node-port-range`.
public struct ServiceNetworkError: Error, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
