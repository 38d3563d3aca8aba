import APIClient
import ArgumentParser
import ClusterAPI
import Foundation
import KubeProxy
import Logging

/// `ballast kube-proxy`: the node's Services on nftables — ClusterIPs (from its pods and from
/// the host), NodePorts on the node's addresses, `sessionAffinity: ClientIP` — in its own table
/// `ip ballast-<tag>-<node>`, updated incrementally (docs/networking.md).
struct KubeProxyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kube-proxy",
        abstract: "Program a node's Services into nftables, as kube-proxy's nftables mode does (see docs/networking.md)."
    )

    @OptionGroup var api: KubeconfigOptions
    @OptionGroup var logging: LoggingOptions

    @Option(help: "The node whose pods' traffic (from its bridge) and NodePorts (on its addresses) this proxy handles.")
    var nodeName: String

    @Option(help: "nftables (kube-proxy's iptables and ipvs modes are not built).")
    var proxyMode: String = "nftables"

    @Option(help: "The cluster's network tag (`ballast up --network-tag`; 0000 is the kubelet's default): the table is ballast-<tag>-<node>, the bridges ballast<tag>n<i>.")
    var networkTag: String = "0000"

    @Option(help: "The pods' range (to find the node's bridge from its spec.podCIDR).")
    var clusterCidr: String = "198.18.0.0/16"

    @Option(help: "The size of each node's slice of --cluster-cidr.")
    var nodeCidrMaskSize: Int = 24

    @Option(help: "How long changes are gathered before the rules are updated.")
    var minSyncPeriod: Duration = .milliseconds(50)

    func validate() throws {
        if proxyMode != "nftables" {
            throw ValidationError("--proxy-mode \(proxyMode): only nftables is built; leave the flag out or pass --proxy-mode nftables")
        }
        if nodeName.isEmpty { throw ValidationError("--node-name must not be empty") }
        guard networkTag.count == 4, networkTag.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) }) else {
            throw ValidationError("--network-tag \(networkTag): expected four lowercase letters or digits, the tag `ballast up` gave the cluster")
        }
        guard IPv4CIDR(clusterCidr) != nil else { throw ValidationError("--cluster-cidr \(clusterCidr): expected an IPv4 network such as 198.18.0.0/16") }
        guard (16...30).contains(nodeCidrMaskSize) else { throw ValidationError("--node-cidr-mask-size \(nodeCidrMaskSize): between 16 and 30") }
        if minSyncPeriod < .zero { throw ValidationError("--min-sync-period \(minSyncPeriod): expected a duration like 50ms") }
    }

    func run() async throws {
        let logger = logging.logger("ballast.kube-proxy")
        let client = try api.client()
        var configuration = KubeProxyConfiguration(nodeName: nodeName, tag: networkTag, clusterCIDR: IPv4CIDR(clusterCidr)!)
        configuration.nodeMaskSize = nodeCidrMaskSize
        configuration.minSyncPeriod = minSyncPeriod
        let server = KubeProxyServer(client: client, configuration: configuration, logger: logger)
        logger.info("running", metadata: ["server": "\(client.connection.server)", "node": "\(nodeName)", "table": "ip \(configuration.tableName)"])
        try await runServices([("kube-proxy", server)], logger: logger)
        logger.info("stopped")
    }
}
