// `ballast kube-proxy`: watches Services, EndpointSlices and its own Node, and keeps its table
// `ip ballast-<tag>-<node>` equal to what they say. Changes are coalesced over `minSyncPeriod`;
// each sync recomputes the whole `Ruleset` from the informers' caches (pure), and sends only
// the difference from the last one it applied, in batches of at most `maxBatchLines` lines,
// one `nft` process each. The first sync, a changed base (the node's bridge or addresses) and
// any failed transaction rebuild the table in one atomic transaction: a restarted proxy starts
// from whatever its predecessor left, and connections already DNATed keep their conntrack
// entries. Stopping leaves the table in place (as kube-proxy leaves its rules): `ballast down`
// removes it.
import APIClient
import ClusterAPI
import Foundation
import HostSystem
import Logging
import ServiceLifecycle
import Synchronization

public struct KubeProxyConfiguration: Sendable {
    /// The node this proxy programs for (`--node-name`).
    public var nodeName: String
    /// The cluster's network tag: the table is `ballast-<tag>-<node>`, bridges `ballast<tag>n<i>`.
    public var tag: String
    /// The pod range and the size of each node's slice of it (to name the node's bridge).
    public var clusterCIDR: IPv4CIDR
    public var nodeMaskSize: Int = 24
    /// How long changes are gathered before a sync.
    public var minSyncPeriod: Duration = .milliseconds(50)
    /// Longest nft script of an incremental sync.
    public var maxBatchLines: Int = 5000
    /// How often the informers replay their caches (each replay is a sync with no change).
    public var resync: Duration = .seconds(300)

    public init(nodeName: String, tag: String, clusterCIDR: IPv4CIDR) {
        self.nodeName = nodeName
        self.tag = tag
        self.clusterCIDR = clusterCIDR
    }

    public var tableName: String { Ruleset.tableName(tag: tag, node: nodeName) }
    public var bridgePrefix: String { "ballast\(tag)n" }

    /// The node's bridge and its gateway, from its pod range; nil when it has none (yet).
    public func bridge(podCIDR: String?) -> (name: String, gateway: String)? {
        guard let podCIDR, let cidr = IPv4CIDR(podCIDR), cidr.prefixLength == nodeMaskSize, clusterCIDR.contains(cidr) else { return nil }
        let index = (cidr.network - clusterCIDR.network) >> UInt32(32 - nodeMaskSize)
        return (bridgePrefix + "\(index)", IPv4CIDR.format(cidr.network + 1))
    }
}

public final class KubeProxyServer: ServiceLifecycle.Service, Sendable {
    public let client: KubeClient
    public let configuration: KubeProxyConfiguration
    let logger: Logger
    private let state = Mutex(State())

    private struct State {
        var syncs = 0
        var failures = 0
        var lastSync: ContinuousClock.Instant?
        /// The bridge whose route_localnet is set (the kubelet makes the bridge, maybe later).
        var localnetBridge: String?
    }

    public init(client: KubeClient, configuration: KubeProxyConfiguration, logger: Logger) {
        self.client = client
        self.configuration = configuration
        self.logger = logger
    }

    /// Syncs applied so far, and syncs that failed.
    public var counts: (syncs: Int, failures: Int) { state.withLock { ($0.syncs, $0.failures) } }

    public func run() async throws {
        guard NFTables.isInstalled else {
            throw KubeProxyError(.nftables, "nft not found: kube-proxy programs nftables (install Debian's nftables, `make deps`)")
        }
        await cancelWhenGracefulShutdown { await self.proxy() }
    }

    private func proxy() async {
        let informers = SharedInformers(client: client, resync: configuration.resync, logger: logger)
        let services = await informers.informer(ClusterAPI.Service.self)
        let slices = await informers.informer(EndpointSlice.self)
        let nodes = await informers.informer(Node.self, fieldSelector: "metadata.name=\(configuration.nodeName)")
        // One pending signal is enough: a sync reads everything from the caches.
        let (signals, signal) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        await services.addHandler { _ in signal.yield() }
        await slices.addHandler { _ in signal.yield() }
        await nodes.addHandler { _ in signal.yield() }
        await informers.start()
        defer { signal.finish() }
        await informers.waitForSync()
        guard !Task.isCancelled else {
            await informers.stop()
            return
        }
        logger.info("caches synced", metadata: ["table": "ip \(configuration.tableName)"])
        var applied: Ruleset?
        var backoff: Duration = .milliseconds(200)
        signal.yield()
        for await _ in signals {
            try? await Task.sleep(for: configuration.minSyncPeriod)
            if Task.isCancelled { break }
            let wanted = await desired(services: services.list(), slices: slices.list(), node: nodes.get(name: configuration.nodeName))
            do {
                applied = try await sync(from: applied, to: wanted)
                backoff = .milliseconds(200)
            } catch {
                state.withLock { $0.failures += 1 }
                applied = nil
                logger.error("sync failed; rebuilding the table after \(backoff)", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(30))
                signal.yield()
            }
        }
        await informers.stop()
    }

    /// The rules the caches call for.
    func desired(services: [ClusterAPI.Service], slices: [EndpointSlice], node: Node?) -> Ruleset {
        let bridge = configuration.bridge(podCIDR: node?.spec.podCIDR)
        var addresses = (node?.status.addresses ?? []).filter { $0.type == "InternalIP" && IPv4CIDR.parseAddress($0.address) != nil }.map(\.address)
        if let bridge { addresses.append(bridge.gateway) }
        let base = Ruleset.Base(table: configuration.tableName, bridge: bridge?.name, podCIDR: bridge == nil ? nil : node?.spec.podCIDR, bridgePrefix: configuration.bridgePrefix,
                                nodeAddresses: Array(Set(addresses)))
        let ports = ServicePorts.from(services: services, slices: slices, skipAddresses: LocalAddresses.ipv4(), nodeName: configuration.nodeName)
        return Ruleset(base: base, ports: ports)
    }

    /// Brings the table from `applied` (nil: unknown) to `wanted`; returns what it now holds.
    func sync(from applied: Ruleset?, to wanted: Ruleset) async throws(KubeProxyError) -> Ruleset {
        let started = ContinuousClock.now
        if let bridge = wanted.base.bridge, state.withLock({ $0.localnetBridge }) != bridge, allowLoopbackSources(bridge) {
            state.withLock { $0.localnetBridge = bridge }
        }
        if let applied, applied.base == wanted.base {
            let steps = applied.changes(to: wanted)
            guard !steps.isEmpty else { return wanted }
            for script in Ruleset.batches(steps, maxLines: configuration.maxBatchLines) {
                try await NFTables.apply(script, table: configuration.tableName)
            }
            logger.debug("synced", metadata: ["steps": "\(steps.count)", "took": "\(ContinuousClock.now - started)"])
        } else {
            try await NFTables.apply(wanted.fullScript(), table: configuration.tableName)
            logger.info("table rebuilt", metadata: ["table": "ip \(configuration.tableName)", "chains": "\(wanted.chains.count)",
                                                    "bridge": "\(wanted.base.bridge ?? "none yet")", "took": "\(ContinuousClock.now - started)"])
        }
        state.withLock {
            $0.syncs += 1
            $0.lastSync = ContinuousClock.now
        }
        return wanted
    }

    /// `route_localnet` on the node's bridge (this cluster's own device, nothing else): a
    /// connection from 127.0.0.1 to a NodePort on 127.0.1.N is DNATed out through a bridge,
    /// and its replies come back to a loopback address on it.
    /// Returns whether it is set (false: no bridge yet, or it failed and said so).
    private func allowLoopbackSources(_ bridge: String) -> Bool {
        let path = "/proc/sys/net/ipv4/conf/\(bridge)/route_localnet"
        guard FileManager.default.fileExists(atPath: path) else { return false }
        do {
            try "1\n".write(toFile: path, atomically: false, encoding: .utf8)
            return true
        } catch {
            logger.warning("cannot set route_localnet on the node's bridge: NodePorts on 127.0.1.N will not answer from the host", metadata: ["path": "\(path)", "error": "\(error)"])
            return false
        }
    }
}
