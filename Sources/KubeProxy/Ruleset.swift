// The nftables rules of one node's proxy, computed from the Service ports (pure). Modelled on
// kube-proxy's nftables mode (pkg/proxy/nftables): a verdict map from ClusterIP . protocol .
// port to a chain per Service port, which picks an endpoint chain with `numgen random mod N`,
// which DNATs; Service ports without endpoints are rejected from a second map. One table per
// proxy, `ip ballast-<tag>-<node>`:
//
//     map service-ips            ip . proto . port  : goto svc-<ns>/<name>/<proto>/<port>
//     map service-nodeports      proto . port       : goto svc-…   (to this node's addresses)
//     map no-endpoint-services   ip . proto . port  : goto reject-chain
//     map no-endpoint-nodeports  proto . port       : goto reject-chain
//     set nodeport-addresses     this node's InternalIPs and its bridge's gateway
//     chain services             the two vmaps; jumped to from nat-prerouting (packets from this
//                                node's bridge) and nat-output (the host's own connections)
//     chain endpoints-check      the two reject vmaps; from filter-forward and filter-output
//     chain nat-postrouting      masquerade: a pod reaching a pod of its own bridge through a
//                                Service (hairpin included), and a loopback source DNATed out
//                                to a bridge (NodePort from the host on 127.0.1.N)
//     chain svc-…                affinity lookups, then numgen random mod N vmap { i : goto ep-… }
//     chain ext-…                the same over this node's endpoints only: a NodePort with
//                                externalTrafficPolicy Local (none on this node: the NodePort's
//                                packets are dropped, in no-endpoint-nodeports, as upstream)
//     chain ep-…__<ip>/<port>    affinity update, DNAT to the endpoint
//     set affinity-<timeout>-…__<ip>/<port>  client addresses with a timeout (sessionAffinity:
//                                ClientIP; the timeout in the name: a new one is a new set)
//
// The base (maps, sets, hooks) depends only on the node; the rest is per Service port and is
// what incremental updates touch (`Ruleset.changes`).
import ClusterAPI

/// What the proxy's table holds: the node-dependent base and the per-Service objects.
public struct Ruleset: Sendable, Equatable {
    /// The node-dependent part: a change rebuilds the whole table.
    public struct Base: Sendable, Equatable {
        /// The table's name (family `ip`).
        public var table: String
        /// The node's bridge (`ballast<tag>n<i>`); nil before the node has a pod range.
        public var bridge: String?
        /// The node's pod range (its bridge's subnet).
        public var podCIDR: String?
        /// The prefix of every bridge of the cluster (`ballast<tag>n`).
        public var bridgePrefix: String
        /// Where NodePorts answer: the node's InternalIPs and its bridge's gateway.
        public var nodeAddresses: [String]

        public init(table: String, bridge: String?, podCIDR: String? = nil, bridgePrefix: String, nodeAddresses: [String]) {
            self.table = table
            self.bridge = bridge
            self.podCIDR = podCIDR
            self.bridgePrefix = bridgePrefix
            self.nodeAddresses = nodeAddresses.sorted()
        }
    }

    public var base: Base
    /// Map name → element key → verdict.
    public var maps: [String: [String: String]]
    /// Chain name → its rules.
    public var chains: [String: [String]]
    /// Affinity set name → timeout in seconds.
    public var affinitySets: [String: Int]

    public static let mapNames = ["service-ips", "service-nodeports", "no-endpoint-services", "no-endpoint-nodeports"]

    /// The table's name for a cluster tag and node: `ballast-<tag>-<node>`.
    public static func tableName(tag: String, node: String) -> String { "ballast-\(tag)-\(node)" }

    public init(base: Base, ports: [ServicePort]) {
        self.base = base
        maps = Dictionary(uniqueKeysWithValues: Self.mapNames.map { ($0, [:]) })
        chains = [:]
        affinitySets = [:]
        for port in ports { add(port) }
    }

    private mutating func add(_ port: ServicePort) {
        let key = "\(port.clusterIP) . \(port.proto) . \(port.port)"
        let nodeKey = port.nodePort.map { "\(port.proto) . \($0)" }
        guard !port.endpoints.isEmpty else {
            maps["no-endpoint-services"]![key] = "goto reject-chain"
            if let nodeKey { maps["no-endpoint-nodeports"]![nodeKey] = "goto reject-chain" }
            return
        }
        let service = "svc-" + port.id
        maps["service-ips"]![key] = "goto " + Self.quoted(service)
        chains[service] = balance(port, over: port.endpoints)
        guard let nodeKey else { return }
        if let local = port.localEndpoints {
            // externalTrafficPolicy: Local: this node's endpoints only (the client's address
            // kept: nothing here masquerades a NodePort's packets but the loopback source's);
            // without one here, dropped (upstream's "has no local endpoints").
            if local.isEmpty {
                maps["no-endpoint-nodeports"]![nodeKey] = "drop"
            } else {
                let external = "ext-" + port.id
                maps["service-nodeports"]![nodeKey] = "goto " + Self.quoted(external)
                chains[external] = balance(port, over: local)
            }
        } else {
            maps["service-nodeports"]![nodeKey] = "goto " + Self.quoted(service)
        }
    }

    /// The rules of a chain that picks one of `endpoints` of `port` (affinity first), and the
    /// endpoint chains they jump to.
    private mutating func balance(_ port: ServicePort, over endpoints: [EndpointAddress]) -> [String] {
        var rules: [String] = []
        var targets: [String] = []
        for endpoint in endpoints {
            let stem = "\(port.id)__\(endpoint.ip)/\(endpoint.port)"
            let chain = "ep-" + stem
            var endpointRules: [String] = []
            if let timeout = port.affinityTimeout {
                let set = "affinity-\(timeout)-" + stem
                affinitySets[set] = timeout
                rules.append("ip saddr @\(Self.quoted(set)) goto \(Self.quoted(chain))")
                endpointRules.append("update @\(Self.quoted(set)) { ip saddr }")
            }
            endpointRules.append("meta l4proto \(port.proto) dnat to \(endpoint.ip):\(endpoint.port)")
            chains[chain] = endpointRules
            targets.append(chain)
        }
        let choices = targets.enumerated().map { "\($0.offset) : goto \(Self.quoted($0.element))" }.joined(separator: ", ")
        rules.append("numgen random mod \(targets.count) vmap { \(choices) }")
        return rules
    }

    /// A chain or set name as nft reads it: bare (nft takes no quoted names there); ours start
    /// with a letter and hold only letters, digits and `-_./`, which its identifiers allow.
    static func quoted(_ name: String) -> String { name }

    /// The base: maps, the node's address set, the hook chains.
    func baseDefinition() -> [String] {
        let table = "ip \(base.table)"
        var lines = [
            "add table \(table)",
            "add map \(table) service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }",
            "add map \(table) service-nodeports { type inet_proto . inet_service : verdict ; }",
            "add map \(table) no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict ; }",
            "add map \(table) no-endpoint-nodeports { type inet_proto . inet_service : verdict ; }",
            "add set \(table) nodeport-addresses { type ipv4_addr ; }",
            "add chain \(table) reject-chain",
            "add rule \(table) reject-chain reject",
            "add chain \(table) services",
            "add rule \(table) services ip daddr . meta l4proto . th dport vmap @service-ips",
            "add rule \(table) services ip daddr @nodeport-addresses meta l4proto . th dport vmap @service-nodeports",
            "add chain \(table) endpoints-check",
            "add rule \(table) endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services",
            "add rule \(table) endpoints-check ip daddr @nodeport-addresses meta l4proto . th dport vmap @no-endpoint-nodeports",
            // Before the nat chains (dstnat is -100), as upstream's filter chains: a packet to a
            // Service port without endpoints is refused before anything else looks at it.
            "add chain \(table) filter-output { type filter hook output priority -110 ; policy accept ; }",
            "add rule \(table) filter-output ct state new jump endpoints-check",
            "add chain \(table) filter-forward { type filter hook forward priority -110 ; policy accept ; }",
            "add chain \(table) nat-output { type nat hook output priority -100 ; policy accept ; }",
            "add rule \(table) nat-output jump services",
            "add chain \(table) nat-prerouting { type nat hook prerouting priority -100 ; policy accept ; }",
            "add chain \(table) nat-postrouting { type nat hook postrouting priority 100 ; policy accept ; }",
            "add rule \(table) nat-postrouting ct status dnat ip saddr 127.0.0.0/8 oifname \"\(base.bridgePrefix)*\" masquerade",
        ]
        if !base.nodeAddresses.isEmpty {
            lines.append("add element \(table) nodeport-addresses { \(base.nodeAddresses.joined(separator: ", ")) }")
        }
        if let bridge = base.bridge {
            lines += [
                "add rule \(table) filter-forward iifname \"\(bridge)\" ct state new jump endpoints-check",
                "add rule \(table) nat-prerouting iifname \"\(bridge)\" jump services",
            ]
            // A pod of this node reaching a pod of this node (itself included) through a Service:
            // the reply would go straight back over the bridge (or, with br_netfilter, be
            // bridged back to the client's own port), past the host's conntrack; the client's
            // address is replaced by the gateway's. (postrouting has no input interface: the
            // source range says where the packet came from.)
            if let podCIDR = base.podCIDR {
                lines.append("add rule \(table) nat-postrouting ct status dnat ip saddr \(podCIDR) oifname \"\(bridge)\" masquerade")
            }
        }
        return lines
    }
}
