// A cluster's pod network on this machine: its ranges and the names of its kernel objects.
// Several clusters share one kernel, so every object carries the cluster's tag (four letters or
// digits, fixed length so that one tag is never a prefix of another) after `ballast`:
//
//     ballast<tag>n<i>    the bridge of pod subnet i (the i-th /24 of the cluster range)
//     ballast<tag>svc     the dummy device the Service range is routed to
//     inet ballast-<tag>  the nftables table that keeps pod traffic on this machine
//
// Interface names are at most 15 characters: 7 + 4 + 1 + 3 digits (a /16 has 256 subnets).
import ClusterAPI
import Foundation

public struct ClusterNetwork: Sendable, Equatable, Codable {
    /// The cluster's tag: four lowercase letters or digits.
    public var tag: String
    /// The pod range (`--cluster-cidr`), sliced into one /`nodeMaskSize` per node.
    public var clusterCIDR: IPv4CIDR
    /// The Service range (`--service-cluster-ip-range`).
    public var serviceCIDR: IPv4CIDR
    public var nodeMaskSize: Int

    /// The defaults: pods 198.18.0.0/16, Services 198.19.0.0/16, both in the block
    /// reserved for network benchmarking (RFC 2544), which no real network routes.
    public static let defaultClusterCIDR = IPv4CIDR("198.18.0.0/16")!
    public static let defaultServiceCIDR = IPv4CIDR("198.19.0.0/16")!

    public init(tag: String, clusterCIDR: IPv4CIDR = defaultClusterCIDR, serviceCIDR: IPv4CIDR = defaultServiceCIDR,
                nodeMaskSize: Int = 24) throws(KubeletError) {
        guard Self.isTag(tag) else {
            throw KubeletError(.configuration, "network tag \"\(tag)\": expected four lowercase letters or digits (it names the cluster's bridges, dummy device and nftables table)")
        }
        guard nodeMaskSize >= clusterCIDR.prefixLength, (16...30).contains(nodeMaskSize) else {
            throw KubeletError(.configuration, "--cluster-cidr \(clusterCIDR): a node's /\(nodeMaskSize) must fit in it (a prefix of /\(nodeMaskSize) or shorter)")
        }
        guard !clusterCIDR.overlaps(serviceCIDR) else {
            throw KubeletError(.configuration, "--cluster-cidr \(clusterCIDR) and --service-cluster-ip-range \(serviceCIDR) overlap: pods and Services need distinct ranges")
        }
        self.tag = tag
        self.clusterCIDR = clusterCIDR
        self.serviceCIDR = serviceCIDR
        self.nodeMaskSize = nodeMaskSize
    }

    public static func isTag(_ tag: String) -> Bool {
        tag.count == 4 && tag.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) }
    }

    /// A tag derived from `text` (a data dir): FNV-1a, four base-36 digits.
    public static func tag(for text: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        let digits = Array("0123456789abcdefghijklmnopqrstuvwxyz")
        return String((0..<4).map { digits[Int((hash >> UInt64($0 * 8)) % 36)] })
    }

    /// Every name of this cluster's kernel objects starts with this.
    public var prefix: String { "ballast" + tag }
    public var serviceDevice: String { prefix + "svc" }
    public var tableName: String { "ballast-" + tag }

    /// The i-th node subnet (0-based).
    public func podSubnet(_ index: Int) -> IPv4CIDR? { clusterCIDR.subnet(index, bits: nodeMaskSize) }
    public var podSubnetCount: Int { Int(min(clusterCIDR.subnetCount(bits: nodeMaskSize), UInt64(Int.max))) }

    /// The bridge of node subnet `podCIDR`; nil when it is not a /`nodeMaskSize` of the range.
    public func bridgeName(for podCIDR: IPv4CIDR) -> String? {
        guard podCIDR.prefixLength == nodeMaskSize, clusterCIDR.contains(podCIDR) else { return nil }
        let index = (podCIDR.network - clusterCIDR.network) >> UInt32(32 - nodeMaskSize)
        return prefix + "n\(index)"
    }

    /// Whether `name` is a kernel object of this cluster (a bridge or the dummy device).
    public func owns(_ name: String) -> Bool {
        guard name.hasPrefix(prefix) else { return false }
        let rest = name.dropFirst(prefix.count)
        return rest == "svc" || (rest.hasPrefix("n") && rest.count > 1 && rest.dropFirst().allSatisfy { $0.isASCII && $0.isNumber })
    }
}
