// `ballast dns`: the cluster's DNS server. Informers on Services and EndpointSlices (all
// namespaces) feed the records; every change marks them stale, and one task rebuilds them and
// swaps them into the server (changes that come while it rebuilds are folded into the next
// rebuild). The server listens before the first list arrives: until then it answers from an
// empty zone (NXDOMAIN for every Service), and pods that start with the cluster retry.
import APIClient
import ClusterAPI
import Foundation
import Logging
import ServiceLifecycle

/// What `ballast dns` is given.
public struct ClusterDNSConfiguration: Sendable {
    /// The address to answer on (the kube-dns Service's ClusterIP under `ballast up`).
    public var host = "127.0.0.1"
    public var port = 53
    public var domain = DNSName("cluster.local")!
    /// Every record's TTL, seconds.
    public var ttl: UInt32 = 30
    public var limits = DNSServerLimits()
    /// How often the informers replay their caches.
    public var resync: Duration = .seconds(300)
    /// The pod range whose addresses `<a-b-c-d>.<ns>.pod.<domain>` answers; nil: none.
    public var podRange: IPv4CIDR?

    public init() {}
}

public final class ClusterDNSServer: ServiceLifecycle.Service, Sendable {
    public let client: KubeClient
    public let configuration: ClusterDNSConfiguration
    public let server: DNSServer
    private let logger: Logger

    public init(client: KubeClient, configuration: ClusterDNSConfiguration, logger: Logger) {
        self.client = client
        self.configuration = configuration
        self.logger = logger
        server = DNSServer(records: Self.records(configuration, serial: 1, services: [], slices: []), limits: configuration.limits, logger: logger)
    }

    static func records(_ configuration: ClusterDNSConfiguration, serial: UInt32, services: [ClusterAPI.Service], slices: [EndpointSlice]) -> ClusterRecords {
        let nameserver = IPv4Address(configuration.host).flatMap { $0.bytes[0] == 127 || $0.value == 0 ? nil : $0 }
        return ClusterRecords(domain: configuration.domain, ttl: configuration.ttl, serial: serial, nameserver: nameserver,
                              podRange: configuration.podRange, services: services, slices: slices)
    }

    /// Binds the server (so a caller learns at once that the address is wrong); `run` then
    /// serves until shutdown. Returns the port.
    @discardableResult
    public func bind() async throws -> Int {
        do {
            return try await server.bind(host: configuration.host, port: configuration.port)
        } catch {
            throw ClusterDNSError("cannot listen on \(configuration.host):\(configuration.port) (UDP and TCP): \(error); give `ballast dns --bind-address` an address of this machine and a free port")
        }
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown { await self.follow() }
        await server.shutdown()
    }

    /// Keeps the records up to date until cancelled.
    private func follow() async {
        let informers = SharedInformers(client: client, resync: configuration.resync, logger: logger)
        let services = await informers.informer(ClusterAPI.Service.self)
        let slices = await informers.informer(EndpointSlice.self)
        let (changes, changed) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        await services.addHandler { _ in changed.yield() }
        await slices.addHandler { _ in changed.yield() }
        await informers.start()
        await informers.waitForSync()
        logger.info("serving the cluster domain", metadata: ["domain": "\(configuration.domain)", "address": "\(configuration.host):\(configuration.port)"])
        var serial: UInt32 = UInt32(truncatingIfNeeded: Int(Date().timeIntervalSince1970))
        changed.yield()
        for await _ in changes {
            if Task.isCancelled { break }
            serial &+= 1
            let records = Self.records(configuration, serial: serial, services: await services.list(), slices: await slices.list())
            server.update(records)
        }
        await informers.stop()
    }
}

/// A failure of `ballast dns` at start, said as is.
public struct ClusterDNSError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
