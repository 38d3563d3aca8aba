// A pod network of a test's own: clusters and kubelets of several tests (and of other test
// processes) run on this machine at once, so each claims one of 32 slots — a /22 of
// 198.18.128.0/17 for pods (four node ranges), a /22 of 198.19.128.0/17 for Services (`ballast
// bench e2e` uses 198.18.64.0/18 and 198.19.64.0/18), and the tag
// `t<slot>` in the names of its kernel objects. A slot is claimed by making a directory
// (atomic) holding the claimer's pid; a slot whose claimer is dead is taken over after its
// kernel objects are removed.
import ClusterAPI
import Foundation
import HostSystem
import Kubelet
import TestSupport

public final class TestNetwork: Sendable {
    public let slot: Int
    public let network: ClusterNetwork
    let claimDirectory: String

    static let claims = "/tmp/ballast-test-networks"
    public static let slots = 32

    /// Root, iproute2, nftables and the CNI plugins: what pod network tests need; says loudly what is missing.
    public static let available: Bool = {
        var missing: [String] = []
        if getuid() != 0 { missing.append("root") }
        missing += HostNetwork.toolsMissing
        for plugin in ["bridge", "host-local", "loopback"]
        where !PodNetworkSettings.defaultPluginDirectories.contains(where: { FileManager.default.isExecutableFile(atPath: $0 + "/" + plugin) }) {
            missing.append("CNI plugin \(plugin) (containernetworking-plugins)")
        }
        if !missing.isEmpty {
            FileHandle.standardError.write(Data("""
                ************************************************************************
                SKIPPING the pod network tests: missing \(missing.joined(separator: ", ")).
                Run `make deps` as root (containernetworking-plugins, nftables, iproute2).
                ************************************************************************

                """.utf8))
        }
        return missing.isEmpty
    }()

    private init(slot: Int, claimDirectory: String) throws {
        self.slot = slot
        self.claimDirectory = claimDirectory
        network = try ClusterNetwork(tag: String(format: "t%03d", slot),
                                     clusterCIDR: IPv4CIDR("198.18.\(128 + slot * 4).0/22")!, serviceCIDR: IPv4CIDR("198.19.\(128 + slot * 4).0/22")!)
    }

    /// Claims a free slot.
    public static func claim() async throws -> TestNetwork {
        try FileManager.default.createDirectory(atPath: claims, withIntermediateDirectories: true)
        let start = Int.random(in: 0..<slots)
        for offset in 0..<slots {
            let slot = (start + offset) % slots
            let directory = claims + "/\(slot)"
            if mkdir(directory, 0o755) != 0 {
                // Taken: over when its claimer is dead.
                guard let text = try? String(contentsOfFile: directory + "/pid", encoding: .utf8),
                      let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), kill(pid, 0) != 0 else { continue }
                let stale = directory + ".stale-\(getpid())"
                guard rename(directory, stale) == 0 else { continue }
                try? FileManager.default.removeItem(atPath: stale)
                guard mkdir(directory, 0o755) == 0 else { continue }
            }
            try "\(getpid())\n".write(toFile: directory + "/pid", atomically: true, encoding: .utf8)
            let claimed = try TestNetwork(slot: slot, claimDirectory: directory)
            await HostNetwork.remove(claimed.network)   // what a dead claimer left
            // A cluster outside the tests (`ballast up` on the default ranges) may use these addresses.
            if await !HostNetwork.conflicts(claimed.network).isEmpty {
                try? FileManager.default.removeItem(atPath: directory)
                continue
            }
            return claimed
        }
        throw TestFailure("no free test network slot in \(claims) (\(slots) in use)")
    }

    /// Node `index`'s pod range (1-based).
    public func podCIDR(_ index: Int) -> IPv4CIDR { network.podSubnet(index - 1)! }

    /// Removes the network's kernel objects and frees the slot; returns what could not be removed.
    @discardableResult
    public func release() async -> [String] {
        let failures = await HostNetwork.remove(network)
        await HostNetwork.removeUnusedPortmapChains(network: network.tableName)
        try? FileManager.default.removeItem(atPath: claimDirectory)
        return failures
    }

    /// What of the network is on the machine: its devices, routes and nftables table, and veths
    /// still enslaved to its bridges.
    public func leftovers() async -> [String] {
        var found = await HostNetwork.leftovers(network)
        for name in await HostNetwork.links() where name.hasPrefix("veth") {
            let master = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/sys/class/net/\(name)/master")) ?? ""
            if network.owns((master as NSString).lastPathComponent) { found.append("veth \(name) on \(master)") }
        }
        return found
    }

    /// The flags of `ballast up` for this network.
    public var upArguments: [String] {
        ["--cluster-cidr", "\(network.clusterCIDR)", "--service-cluster-ip-range", "\(network.serviceCIDR)", "--network-tag", network.tag]
    }
}
