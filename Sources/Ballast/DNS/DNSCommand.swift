import APIClient
import ArgumentParser
import ClusterAPI
import ClusterDNS
import Logging

/// `ballast dns`: the cluster's DNS server — authoritative for the cluster domain, fed by
/// Services and EndpointSlices, answering over UDP and TCP; nothing is forwarded.
struct DNSCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dns",
        abstract: "Serve the cluster domain's names (Services, headless endpoints, SRV, PTR) over UDP and TCP (see docs/networking.md)."
    )

    @OptionGroup var api: KubeconfigOptions
    @OptionGroup var logging: LoggingOptions

    @Option(help: "The address to answer on (ballast up: the kube-dns Service's ClusterIP).")
    var bindAddress: String = "127.0.0.1"

    @Option(help: "The port, UDP and TCP.")
    var port: Int = 53

    @Option(help: "The cluster domain answered for (every other name is refused).")
    var clusterDomain: String = "cluster.local"

    @Option(help: "The TTL of every answer, in seconds.")
    var ttl: Int = 30

    @Option(help: "TCP connections open at once.")
    var maxConnections: Int = 64

    @Option(help: "The pod range: <a-b-c-d>.<ns>.pod.<cluster domain> is answered with a.b.c.d for its addresses (none when not given).")
    var clusterCIDR: String?

    func validate() throws {
        guard IPv4Address(bindAddress) != nil else { throw ValidationError("--bind-address \(bindAddress): expected an IPv4 address") }
        guard (0...65535).contains(port) else { throw ValidationError("--port \(port): a port, 0 to 65535") }
        guard DNSName(clusterDomain) != nil, !clusterDomain.isEmpty, clusterDomain != "." else {
            throw ValidationError("--cluster-domain \(clusterDomain): expected a domain name such as cluster.local")
        }
        guard (0...86400).contains(ttl) else { throw ValidationError("--ttl \(ttl): seconds, 0 to 86400") }
        guard maxConnections >= 1 else { throw ValidationError("--max-connections \(maxConnections): at least 1") }
        if let clusterCIDR, IPv4CIDR(clusterCIDR) == nil {
            throw ValidationError("--cluster-cidr \(clusterCIDR): expected an IPv4 range such as 198.18.0.0/16")
        }
    }

    func run() async throws {
        let logger = logging.logger("ballast.dns")
        let client = try api.client()
        var configuration = ClusterDNSConfiguration()
        configuration.host = bindAddress
        configuration.port = port
        configuration.domain = DNSName(clusterDomain)!
        configuration.ttl = UInt32(ttl)
        configuration.limits.maxConnections = maxConnections
        configuration.podRange = clusterCIDR.flatMap { IPv4CIDR($0) }
        let server = ClusterDNSServer(client: client, configuration: configuration, logger: logger)
        let bound = try await server.bind()
        logger.info("listening", metadata: ["address": "\(bindAddress):\(bound)", "server": "\(client.connection.server)"])
        try await runServices([("dns", server)], logger: logger)
        logger.info("stopped")
    }
}
