// The cluster domain's records, built from Services and EndpointSlices as the Kubernetes
// DNS-based service discovery specification (kubernetes/dns, docs/specification.md, schema
// 1.1.0) lays them out; `<domain>` is the cluster domain, `cluster.local` by default:
//
//   <svc>.<ns>.svc.<domain>              A    the ClusterIP                    (ClusterIP Service)
//                                        A    each ready endpoint's address    (headless Service)
//                                        CNAME  spec.externalName              (ExternalName Service)
//   <host>.<svc>.<ns>.svc.<domain>       A    a ready endpoint of a headless Service; <host> is the
//                                             endpoint's hostname, else its address with dashes
//                                             (198-18-0-5), as CoreDNS names it
//   _<port>._<proto>.<svc>.<ns>.svc.<domain>
//                                        SRV  per named port: 0 100 <port> <svc>.<ns>.svc.<domain>
//                                             (ClusterIP), or one per ready endpoint with its
//                                             <host>.<svc>… as target (headless), weights shared
//   <d>.<c>.<b>.<a>.in-addr.arpa         PTR  a ClusterIP → <svc>.<ns>.svc.<domain>; an endpoint
//                                             address of a headless Service → <host>.<svc>…
//   dns-version.<domain>                 TXT  "1.1.0"
//   <domain>                             SOA, NS ns.dns.<domain>
//   <a-b-c-d>.<ns>.pod.<domain>          A    a.b.c.d, for any address of the pod range when one is
//                                             given (the specification's deprecated pod records, as
//                                             kube-dns and CoreDNS's `pods insecure` answer them:
//                                             from the name, without looking for the pod; the range
//                                             keeps the answers to the cluster's own addresses)
//
// Every record has the same TTL (30 s by default, as kube-dns). A name with descendants but no
// records of its own (`svc.<domain>`, `<ns>.svc.<domain>`, `_tcp.<svc>…`) exists: asking it
// gives NOERROR without answers, not NXDOMAIN.
import ClusterAPI

/// One immutable view of the cluster's names; the server swaps in a new one as objects change.
public struct ClusterRecords: Sendable {
    /// The cluster domain (`cluster.local`).
    public let domain: DNSName
    /// The TTL of every record, and the SOA's negative-caching minimum.
    public let ttl: UInt32
    /// Owner (lowercased) → its records.
    private(set) var records: [DNSName: [DNSRecord]] = [:]
    /// Names that have descendants (lowercased): they exist even without records.
    private(set) var nonTerminals: Set<DNSName> = []
    /// The zone's SOA record.
    public let soa: DNSRecord
    /// The pod range `<a-b-c-d>.<ns>.pod.<domain>` is answered for; nil: no pod records.
    public let podRange: IPv4CIDR?

    /// The schema version the specification asks `dns-version.<domain>` to hold.
    public static let schemaVersion = "1.1.0"

    /// - Parameters:
    ///   - serial: the SOA serial (a new one with every rebuild lets caches see a change).
    ///   - nameserver: the server's own address, published as `ns.dns.<domain>`.
    ///   - podRange: answer `<a-b-c-d>.<ns>.pod.<domain>` for the addresses of this range.
    public init(domain: DNSName, ttl: UInt32 = 30, serial: UInt32 = 1, nameserver: IPv4Address? = nil, podRange: IPv4CIDR? = nil,
                services: [Service], slices: [EndpointSlice]) {
        self.domain = domain.lowercased
        self.ttl = ttl
        self.podRange = podRange
        let nsName = self.domain.prepending("dns")?.prepending("ns") ?? self.domain
        soa = DNSRecord(name: self.domain, type: .soa, ttl: ttl,
                        data: .soa(mname: nsName, rname: self.domain.prepending("hostmaster") ?? self.domain, serial: serial,
                                   refresh: 7200, retry: 1800, expire: 86400, minimum: ttl))
        add(soa)
        add(DNSRecord(name: self.domain, type: .ns, ttl: ttl, data: .ns(nsName)))
        if let nameserver { add(DNSRecord(name: nsName, type: .a, ttl: ttl, data: .a(nameserver))) }
        if let version = self.domain.prepending("dns-version") {
            add(DNSRecord(name: version, type: .txt, ttl: ttl, data: .txt([Array(Self.schemaVersion.utf8)])))
        }
        var slicesByService: [String: [EndpointSlice]] = [:]
        for slice in slices {
            guard let service = slice.metadata.labels?["kubernetes.io/service-name"], let namespace = slice.metadata.namespace else { continue }
            slicesByService[namespace + "/" + service, default: []].append(slice)
        }
        for service in services {
            guard let name = service.metadata.name, let namespace = service.metadata.namespace else { continue }
            addService(service, name: name, namespace: namespace, slices: slicesByService[namespace + "/" + name] ?? [])
        }
    }

    /// The records `name` owns (any case).
    public func records(of name: DNSName) -> [DNSRecord] {
        let key = name.lowercased
        if let owned = records[key] { return owned }
        if let address = podAddress(key) { return [DNSRecord(name: key, type: .a, ttl: ttl, data: .a(address))] }
        return []
    }

    /// Whether `name` exists in the zone: it owns records or has descendants.
    public func exists(_ name: DNSName) -> Bool {
        let key = name.lowercased
        return records[key] != nil || nonTerminals.contains(key) || podAddress(key) != nil || isPodNamespace(key)
    }

    /// The address a pod name `<a-b-c-d>.<ns>.pod.<domain>` (lowercased) stands for: four
    /// decimal bytes without leading zeros, joined by dashes, an address of the pod range; nil
    /// for any other name, or without a pod range.
    func podAddress(_ name: DNSName) -> IPv4Address? {
        guard let podRange, let labels = name.relativeLabels(to: domain), labels.count == 3, labels[2] == "pod" else { return nil }
        let parts = labels[0].split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 4, parts.allSatisfy({ $0 == "0" || !$0.hasPrefix("0") }),
              let address = IPv4Address(parts.joined(separator: ".")), podRange.contains(address.value) else { return nil }
        return address
    }

    /// `<ns>.pod.<domain>` (and `pod.<domain>`): there are pod names below it.
    private func isPodNamespace(_ name: DNSName) -> Bool {
        guard podRange != nil, let labels = name.relativeLabels(to: domain), (1...2).contains(labels.count), labels.last == "pod" else { return false }
        return true
    }

    /// The names that point at `address` (PTR targets).
    public func reverse(_ address: IPv4Address) -> [DNSName] {
        guard let name = Self.reverseName(address) else { return [] }
        return records(of: name).compactMap { if case .ptr(let target) = $0.data { target } else { nil } }
    }

    /// `<d>.<c>.<b>.<a>.in-addr.arpa`.
    public static func reverseName(_ address: IPv4Address) -> DNSName? {
        DNSName(address.bytes.reversed().map(String.init).joined(separator: ".") + ".in-addr.arpa")
    }

    // MARK: Building

    private mutating func add(_ record: DNSRecord) {
        let key = DNSName(checkedLabels: record.name.lowercased.labels)
        if records[key]?.contains(record) == true { return }
        records[key, default: []].append(record)
        // Every ancestor exists from now on.
        if key.labels.count > 1 { markExists(DNSName(checkedLabels: Array(key.labels.dropFirst()))) }
    }

    /// Marks `name` (lowercased) and its ancestors as existing; an ancestor already marked has
    /// its own ancestors marked.
    private mutating func markExists(_ name: DNSName) {
        var labels = name.labels
        while !labels.isEmpty {
            guard nonTerminals.insert(DNSName(checkedLabels: labels)).inserted else { return }
            labels.removeFirst()
        }
    }

    private mutating func addService(_ service: Service, name: String, namespace: String, slices: [EndpointSlice]) {
        guard let base = domain.prepending("svc")?.prepending(namespace)?.prepending(name) else { return }
        let spec = service.spec
        if spec?["type"]?.stringValue == "ExternalName" {
            if let external = spec?["externalName"]?.stringValue, let target = DNSName(external) {
                add(DNSRecord(name: base, type: .cname, ttl: ttl, data: .cname(target)))
            }
            return
        }
        let clusterIP = spec?["clusterIP"]?.stringValue
        if clusterIP == "None" {
            addHeadless(base: base, slices: slices)
            return
        }
        guard let clusterIP, let address = IPv4Address(clusterIP) else { return }   // not allocated yet, or IPv6
        add(DNSRecord(name: base, type: .a, ttl: ttl, data: .a(address)))
        if let reverse = Self.reverseName(address) { add(DNSRecord(name: reverse, type: .ptr, ttl: ttl, data: .ptr(base))) }
        for port in spec?["ports"]?.arrayValue ?? [] {
            guard let portName = port["name"]?.stringValue, !portName.isEmpty,
                  let number = port["port"]?.int64Value, let number = UInt16(exactly: number),
                  let owner = srvName(base: base, port: portName, protocol: port["protocol"]?.stringValue) else { continue }
            add(DNSRecord(name: owner, type: .srv, ttl: ttl, data: .srv(priority: 0, weight: 100, port: number, target: base)))
        }
    }

    private mutating func addHeadless(base: DNSName, slices: [EndpointSlice]) {
        // The name exists even with no ready endpoint: NOERROR without answers.
        markExists(base.lowercased)
        var targets: [(host: DNSName, address: IPv4Address, ports: [EndpointPort])] = []
        for slice in slices where slice.addressType == "IPv4" {
            for endpoint in slice.endpoints where endpoint.conditions.ready != false {
                for text in endpoint.addresses {
                    guard let address = IPv4Address(text) else { continue }
                    let label = endpoint.hostname.flatMap { $0.isEmpty ? nil : $0 } ?? text.replacingOccurrences(of: ".", with: "-")
                    guard let host = base.prepending(label) else { continue }
                    targets.append((host, address, slice.ports ?? []))
                }
            }
        }
        for target in targets {
            add(DNSRecord(name: base, type: .a, ttl: ttl, data: .a(target.address)))
            add(DNSRecord(name: target.host, type: .a, ttl: ttl, data: .a(target.address)))
            if let reverse = Self.reverseName(target.address) {
                add(DNSRecord(name: reverse, type: .ptr, ttl: ttl, data: .ptr(target.host)))
            }
        }
        // SRV: one per (named port, endpoint), the weight shared among the endpoints of a port.
        var byPort: [DNSName: [(UInt16, DNSName)]] = [:]
        for target in targets {
            for port in target.ports {
                guard let portName = port.name, !portName.isEmpty, let number = port.port, let number = UInt16(exactly: number),
                      let owner = srvName(base: base, port: portName, protocol: port.protocol) else { continue }
                if byPort[owner]?.contains(where: { $0.0 == number && $0.1 == target.host }) != true {
                    byPort[owner, default: []].append((number, target.host))
                }
            }
        }
        for (owner, entries) in byPort {
            let weight = UInt16(max(1, 100 / entries.count))
            for (number, host) in entries {
                add(DNSRecord(name: owner, type: .srv, ttl: ttl, data: .srv(priority: 0, weight: weight, port: number, target: host)))
            }
        }
    }

    /// `_<port>._<proto>.<base>`, the protocol in lower case (TCP when unset).
    private func srvName(base: DNSName, port: String, protocol proto: String?) -> DNSName? {
        base.prepending("_" + (proto ?? "TCP").lowercased())?.prepending("_" + port.lowercased())
    }
}
