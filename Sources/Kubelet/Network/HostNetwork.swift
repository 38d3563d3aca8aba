// The host side of a cluster's pod network — the safety routes that make every pod and Service
// address end on this machine, installed before any pod starts and removed with the cluster:
//
//   - one bridge per node subnet, holding the subnet's gateway (.1): the connected route of each
//     /24 goes to its bridge, so pods on different nodes reach each other through the host;
//     forwarding is switched on for these bridges alone (net.ipv4.conf.<bridge>.forwarding),
//     never globally (net.ipv4.ip_forward) nor on any other interface;
//   - `unreachable <cluster range>`: an address of the range no bridge has fails at once;
//   - the Service range routed to a dummy device (as kube-proxy's IPVS mode uses kube-ipvs0),
//     which drops what reaches it (a bridge without ports where the kernel has no dummy driver);
//   - the nftables table `inet ballast-<tag>`: forwarded packets from the pod range that would
//     leave through anything but this cluster's devices are dropped, and a packet to a Service
//     address that nothing rewrote (no Service, no endpoint) is rejected where it is sent.
//
// Every step is idempotent: installing again repairs, removing what is gone succeeds.
import ClusterAPI
import Foundation
import HostSystem

public enum HostNetwork {
    /// Whether `ip` and `nft` are installed (the host network needs both).
    public static var toolsMissing: [String] {
        ["ip", "nft"].filter { SystemCommand.resolve($0) == $0 }
    }

    /// Installs the cluster's bridges for `podSubnets`, the unreachable route of its pod range,
    /// the Service device and route, and its nftables table.
    public static func install(_ network: ClusterNetwork, podSubnets: [IPv4CIDR]) async throws {
        let missing = toolsMissing
        guard missing.isEmpty else {
            throw KubeletError(.network, "cannot install the pod network's host routes: \(missing.joined(separator: " and ")) not found; install iproute2 and nftables (make deps)")
        }
        let foreign = await conflicts(network)
        guard foreign.isEmpty else {
            throw KubeletError(.network, "the pod range \(network.clusterCIDR) or the Service range \(network.serviceCIDR) is already routed elsewhere on this machine (\(foreign.joined(separator: "; "))): give this cluster ranges of its own (--cluster-cidr, --service-cluster-ip-range)")
        }
        // The table first: nothing is forwarded out of the machine even while the rest is made.
        try await installTable(network)
        for subnet in podSubnets {
            guard let name = network.bridgeName(for: subnet) else {
                throw KubeletError(.network, "pod subnet \(subnet) is not a /\(network.nodeMaskSize) of the cluster range \(network.clusterCIDR)")
            }
            try await ensureBridge(name, subnet: subnet)
        }
        try await ip(["route", "replace", "unreachable", "\(network.clusterCIDR)"])
        let device = network.serviceDevice
        if !linkExists(device) {
            var command = ["ip", "link", "add", device, "type", "dummy"]
            var result = try await SystemCommand.run(command, timeout: .seconds(30))
            if result.status != 0 && result.stderr.contains("Unknown device type") {
                // A kernel without the dummy driver (and no modprobe in a container): a bridge
                // without ports drops what it is given just the same.
                command = ["ip", "link", "add", device, "type", "bridge"]
                result = try await SystemCommand.run(command, timeout: .seconds(30))
            }
            guard result.status == 0 || linkExists(device) else { throw commandError(command, result) }
        }
        try await ip(["link", "set", device, "up"])
        // The host's own packets to a ClusterIP leave from the first node bridge's gateway, an
        // address of the pod range that every pod has a route back to.
        let source = podSubnets.first.map { ["src", $0.address(1)] } ?? []
        try await ip(["route", "replace", "\(network.serviceCIDR)", "dev", device] + source)
    }

    /// Routes inside the cluster's ranges that are not its own: through another cluster's
    /// devices or any other interface (an `unreachable` route is not one: nothing goes there).
    public static func conflicts(_ network: ClusterNetwork) async -> [String] {
        var found: [String] = []
        for range in [network.clusterCIDR, network.serviceCIDR] {
            let listed = (try? await SystemCommand.run(["ip", "-o", "route", "show", "root", "\(range)"], timeout: .seconds(30)))?.stdout ?? ""
            for line in listed.split(separator: "\n") {
                let fields = line.split(separator: " ")
                guard let index = fields.firstIndex(of: "dev"), index + 1 < fields.count else { continue }
                if !network.owns(String(fields[index + 1])) { found.append(line.trimmingCharacters(in: .whitespaces)) }
            }
        }
        return found
    }

    /// Makes the bridge `name` with the gateway of `subnet` (its first address), up, with
    /// forwarding on it alone.
    public static func ensureBridge(_ name: String, subnet: IPv4CIDR) async throws {
        if !linkExists(name) {
            let command = ["ip", "link", "add", name, "type", "bridge"]
            let result = try await SystemCommand.run(command, timeout: .seconds(30))
            // Another kubelet of the machine may have made it at the same moment.
            guard result.status == 0 || linkExists(name) else { throw commandError(command, result) }
        }
        // A fixed address: a bridge whose address was never set takes the lowest of its ports'
        // and changes as pods come and go, and pods would keep sending to the gateway's old
        // address (their ARP entry) until it expires.
        try await ip(["link", "set", name, "address", bridgeMAC(name)])
        try await ip(["addr", "replace", "\(subnet.address(1))/\(subnet.prefixLength)", "dev", name])
        try await ip(["link", "set", name, "up"])
        try setForwarding(name)
    }

    /// A locally administered unicast MAC address derived from the bridge's name (FNV-1a).
    static func bridgeMAC(_ name: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in name.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        let bytes = [UInt8(0x02)] + (0..<5).map { UInt8(truncatingIfNeeded: hash >> UInt64($0 * 8)) }
        return bytes.map { String(format: "%02x", $0) }.joined(separator: ":")
    }

    /// `net.ipv4.conf.<name>.forwarding = 1`: packets coming in on this interface may be routed.
    static func setForwarding(_ name: String) throws {
        let path = "/proc/sys/net/ipv4/conf/\(name)/forwarding"
        do {
            try "1\n".write(toFile: path, atomically: false, encoding: .utf8)
        } catch {
            throw KubeletError(.network, "cannot switch on forwarding for bridge \(name) (\(path)): \(error)")
        }
    }

    /// The nftables rules of the cluster (replaced as a whole, atomically).
    static func tableScript(_ network: ClusterNetwork) -> String {
        let table = "inet \(network.tableName)"
        return """
            table \(table)
            delete table \(table)
            table \(table) {
              chain forward {
                type filter hook forward priority filter; policy accept;
                ip saddr \(network.clusterCIDR) oifname != "\(network.prefix)*" counter drop
                ip daddr \(network.serviceCIDR) counter reject
              }
              chain output {
                type filter hook output priority filter; policy accept;
                ip daddr \(network.serviceCIDR) counter reject
              }
            }

            """
    }

    static func installTable(_ network: ClusterNetwork) async throws {
        let command = ["nft", "-f", "-"]
        let result = try await SystemCommand.run(command, input: Array(tableScript(network).utf8), timeout: .seconds(30))
        guard result.status == 0 else { throw commandError(command + ["(table \(network.tableName))"], result) }
    }

    /// Removes the cluster's table, devices (bridges and the Service device, with their routes)
    /// and unreachable route; returns what could not be removed.
    @discardableResult
    public static func remove(_ network: ClusterNetwork) async -> [String] {
        var failures: [String] = []
        if SystemCommand.resolve("nft") != "nft", await tableExists(network) {
            let result = try? await SystemCommand.run(["nft", "delete", "table", "inet", network.tableName], timeout: .seconds(30))
            if result?.status != 0 { failures.append("nftables table inet \(network.tableName): \(result?.stderr ?? "nft did not run")") }
        }
        // The node proxies' tables (`ip ballast-<tag>-<node>`, `ballast kube-proxy`), left in
        // place by a stopped proxy so that its connections keep working across a restart.
        for table in await proxyTables(network) {
            let result = try? await SystemCommand.run(["nft", "delete", "table", "ip", table], timeout: .seconds(30))
            if result?.status != 0 { failures.append("nftables table ip \(table): \(result?.stderr ?? "nft did not run")") }
        }
        for name in await links() where network.owns(name) {
            let result = try? await SystemCommand.run(["ip", "link", "del", name], timeout: .seconds(30))
            if result?.status != 0 && linkExists(name) { failures.append("link \(name): \(result?.stderr ?? "ip did not run")") }
        }
        if await unreachableRouteExists(network) {
            let result = try? await SystemCommand.run(["ip", "route", "del", "unreachable", "\(network.clusterCIDR)"], timeout: .seconds(30))
            if result?.status != 0 { failures.append("route unreachable \(network.clusterCIDR): \(result?.stderr ?? "ip did not run")") }
        }
        return failures
    }

    /// What of the cluster is still on the machine: its devices, routes through them or its
    /// unreachable route, its nftables table (empty once `remove` ran).
    public static func leftovers(_ network: ClusterNetwork) async -> [String] {
        var found = await links().filter(network.owns).map { "link " + $0 }
        let routes = (try? await SystemCommand.run(["ip", "-o", "route", "show"], timeout: .seconds(30)))?.stdout ?? ""
        for line in routes.split(separator: "\n") where line.contains(network.prefix) {
            found.append("route " + line)
        }
        if await unreachableRouteExists(network) { found.append("route unreachable \(network.clusterCIDR)") }
        if await tableExists(network) { found.append("nftables table inet \(network.tableName)") }
        found += await proxyTables(network).map { "nftables table ip " + $0 }
        return found
    }

    // MARK: portmap's chains

    static let portmapJumps: [[String]] = [
        ["PREROUTING", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "CNI-HOSTPORT-DNAT"],
        ["OUTPUT", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "CNI-HOSTPORT-DNAT"],
        ["POSTROUTING", "-m", "comment", "--comment", "CNI portfwd requiring masquerade", "-j", "CNI-HOSTPORT-MASQ"],
    ]

    /// Removes what the portmap plugin leaves once no mapping of any pod uses it — its
    /// `CNI-HOSTPORT-*` chains and their jumps in the `nat` table (iptables and ip6tables) —
    /// and that table when nothing else is in it. Shared by every CNI user of the machine: while
    /// `CNI-HOSTPORT-DNAT` has a rule (some pod's hostPort), nothing is touched.
    /// With `network`, first the mappings portmap made for that network (its rules in
    /// `CNI-HOSTPORT-DNAT` name it: `dnat name: "<network>"`) and the chains they jump to —
    /// what pods whose DEL never ran (a crashed cluster) left.
    public static func removeUnusedPortmapChains(network: String? = nil) async {
        for (tool, family) in [("iptables", "ip"), ("ip6tables", "ip6")] where SystemCommand.resolve(tool) != tool {
            if let network {
                await removePortmapRules(tool: tool, network: network)
            }
            let dnat = try? await SystemCommand.run([tool, "-w", "-t", "nat", "-S", "CNI-HOSTPORT-DNAT"], timeout: .seconds(30))
            if let dnat, dnat.status == 0 {
                guard !dnat.stdout.split(separator: "\n").contains(where: { $0.hasPrefix("-A ") }) else { continue }
                for jump in portmapJumps {
                    _ = try? await SystemCommand.run([tool, "-w", "-t", "nat", "-D"] + jump, timeout: .seconds(30))
                }
                for chain in ["CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK"] {
                    _ = try? await SystemCommand.run([tool, "-w", "-t", "nat", "-F", chain], timeout: .seconds(30))
                    _ = try? await SystemCommand.run([tool, "-w", "-t", "nat", "-X", chain], timeout: .seconds(30))
                }
            } else {
                // No chains of portmap: only a table without chains (what ip6tables leaves) goes.
                let table = try? await SystemCommand.run(["nft", "list", "table", family, "nat"], timeout: .seconds(30))
                guard let table, table.status == 0, !table.stdout.contains("chain ") else { continue }
            }
            // The table, when only empty base chains are left in it (an iptables-nft table).
            guard let all = try? await SystemCommand.run([tool, "-w", "-t", "nat", "-S"], timeout: .seconds(30)), all.status == 0,
                  all.stdout.split(separator: "\n").allSatisfy({ $0.hasPrefix("-P ") }),
                  SystemCommand.resolve("nft") != "nft" else { continue }
            _ = try? await SystemCommand.run(["nft", "delete", "table", family, "nat"], timeout: .seconds(30))
        }
    }

    /// Deletes the rules of `CNI-HOSTPORT-DNAT` whose comment names `network` (by number, last
    /// first) and the per-pod chains they jump to.
    static func removePortmapRules(tool: String, network: String) async {
        guard let listed = try? await SystemCommand.run([tool, "-w", "-t", "nat", "-L", "CNI-HOSTPORT-DNAT", "-n", "--line-numbers"],
                                                        timeout: .seconds(30)), listed.status == 0 else { return }
        var rules: [(number: Int, target: String)] = []
        for line in listed.stdout.split(separator: "\n") where line.contains("dnat name: \"\(network)\"") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count > 1, let number = Int(fields[0]), fields[1].hasPrefix("CNI-DN-") else { continue }
            rules.append((number, String(fields[1])))
        }
        for rule in rules.sorted(by: { $0.number > $1.number }) {
            _ = try? await SystemCommand.run([tool, "-w", "-t", "nat", "-D", "CNI-HOSTPORT-DNAT", "\(rule.number)"], timeout: .seconds(30))
            _ = try? await SystemCommand.run([tool, "-w", "-t", "nat", "-F", rule.target], timeout: .seconds(30))
            _ = try? await SystemCommand.run([tool, "-w", "-t", "nat", "-X", rule.target], timeout: .seconds(30))
        }
    }

    // MARK: Reading the kernel's state

    public static func linkExists(_ name: String) -> Bool {
        !name.contains("/") && FileManager.default.fileExists(atPath: "/sys/class/net/" + name)
    }

    /// The names of the machine's network interfaces.
    public static func links() async -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/net")) ?? []).sorted()
    }

    static func unreachableRouteExists(_ network: ClusterNetwork) async -> Bool {
        let output = (try? await SystemCommand.run(["ip", "route", "show", "exact", "\(network.clusterCIDR)", "type", "unreachable"],
                                                   timeout: .seconds(30)))?.stdout ?? ""
        return !output.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
    }

    /// The kube-proxy tables of the cluster: family `ip`, named `ballast-<tag>-<node>` (the tag
    /// has a fixed length, so another cluster's tables never match).
    public static func proxyTables(_ network: ClusterNetwork) async -> [String] {
        guard SystemCommand.resolve("nft") != "nft" else { return [] }
        let output = (try? await SystemCommand.run(["nft", "list", "tables", "ip"], timeout: .seconds(30)))?.stdout ?? ""
        return output.split(separator: "\n").compactMap { line in
            let words = line.split(separator: " ")
            guard words.count == 3, words[0] == "table", words[1] == "ip", words[2].hasPrefix(network.tableName + "-") else { return nil }
            return String(words[2])
        }
    }

    static func tableExists(_ network: ClusterNetwork) async -> Bool {
        guard SystemCommand.resolve("nft") != "nft" else { return false }
        let output = (try? await SystemCommand.run(["nft", "list", "tables"], timeout: .seconds(30)))?.stdout ?? ""
        return output.split(separator: "\n").contains { $0.trimmingCharacters(in: .whitespaces) == "table inet \(network.tableName)" }
    }

    static func ip(_ arguments: [String]) async throws {
        let command = ["ip"] + arguments
        let result = try await SystemCommand.run(command, timeout: .seconds(30))
        guard result.status == 0 else { throw commandError(command, result) }
    }

    static func commandError(_ command: [String], _ result: CommandResult) -> KubeletError {
        KubeletError(.network, "`\(command.joined(separator: " "))` failed (\(result.status)): \(result.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
    }
}
