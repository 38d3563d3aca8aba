// What the proxy programs, read from the API's objects: one `ServicePort` per port of every
// Service that has a ClusterIP (not headless, not ExternalName), with the endpoints its
// EndpointSlices list for that port. Pure: the rule generator and its tests start here.
import ClusterAPI

/// One port of one Service, as the rules need it.
public struct ServicePort: Sendable, Hashable, Comparable {
    public var namespace: String
    public var name: String
    /// The port's name in the Service (`""` for a single unnamed port).
    public var portName: String
    /// `tcp`, `udp` or `sctp` (nft's spelling).
    public var proto: String
    public var clusterIP: String
    public var port: Int
    public var nodePort: Int?
    /// `sessionAffinity: ClientIP`: the affinity timeout in seconds; nil: no affinity.
    public var affinityTimeout: Int?
    /// Where its packets go (ready endpoints; serving terminating ones when none is ready).
    public var endpoints: [EndpointAddress]
    /// `externalTrafficPolicy: Local` (a NodePort or LoadBalancer Service): the endpoints on this
    /// proxy's node, where its NodePort's packets go (chosen as `endpoints` are, among them
    /// only); nil: the NodePort goes to `endpoints` (policy Cluster).
    public var localEndpoints: [EndpointAddress]?

    public init(namespace: String, name: String, portName: String = "", proto: String = "tcp", clusterIP: String, port: Int,
                nodePort: Int? = nil, affinityTimeout: Int? = nil, endpoints: [EndpointAddress] = [], localEndpoints: [EndpointAddress]? = nil) {
        self.namespace = namespace
        self.name = name
        self.portName = portName
        self.proto = proto
        self.clusterIP = clusterIP
        self.port = port
        self.nodePort = nodePort
        self.affinityTimeout = affinityTimeout
        self.endpoints = endpoints
        self.localEndpoints = localEndpoints
    }

    /// `namespace/name/proto/port`, the stem of its chains' names.
    public var id: String { "\(namespace)/\(name)/\(proto)/\(portName.isEmpty ? "p\(port)" : portName)" }

    /// By namespace, name, protocol, port name, port and address (stored fields: `id` would
    /// build two strings per comparison, on every sync of every proxy).
    public static func < (a: ServicePort, b: ServicePort) -> Bool {
        (a.namespace, a.name, a.proto, a.portName, a.port, a.clusterIP) < (b.namespace, b.name, b.proto, b.portName, b.port, b.clusterIP)
    }
}

/// One endpoint of a Service port: a pod address and the port its slice resolved.
public struct EndpointAddress: Sendable, Hashable, Comparable {
    public var ip: String
    public var port: Int
    public init(ip: String, port: Int) {
        self.ip = ip
        self.port = port
    }
    public static func < (a: EndpointAddress, b: EndpointAddress) -> Bool { (a.ip, a.port) < (b.ip, b.port) }
}

public enum ServicePorts {
    /// Kubernetes' default `sessionAffinityConfig.clientIP.timeoutSeconds` (3 hours).
    public static let defaultAffinityTimeout = 10800

    /// The ports to program: every port of every Service with a ClusterIP (skipping headless and
    /// ExternalName Services, and ClusterIPs in `skipAddresses` — addresses of this host, such as
    /// cluster DNS answering on the Service device itself), each with its endpoints from the
    /// Service's IPv4 slices, and, for a NodePort with `externalTrafficPolicy: Local`, those of
    /// them on node `nodeName` (the slices' `nodeName`). Sorted, endpoints deduplicated and sorted.
    public static func from(services: [Service], slices: [EndpointSlice], skipAddresses: Set<String> = [],
                            nodeName: String? = nil) -> [ServicePort] {
        var slicesByService: [String: [EndpointSlice]] = [:]
        for slice in slices where slice.addressType == "IPv4" {
            guard let service = slice.metadata.labels?[EndpointSlice.serviceNameLabel], let namespace = slice.metadata.namespace else { continue }
            slicesByService[namespace + "/" + service, default: []].append(slice)
        }
        var result: [ServicePort] = []
        for service in services {
            guard let spec = service.spec, let namespace = service.metadata.namespace, let name = service.metadata.name,
                  spec["type"]?.stringValue != "ExternalName",
                  let clusterIP = spec["clusterIP"]?.stringValue, clusterIP != "None", IPv4CIDR.parseAddress(clusterIP) != nil,
                  !skipAddresses.contains(clusterIP) else { continue }
            let affinity: Int? = spec["sessionAffinity"]?.stringValue == "ClientIP"
                ? Int(spec["sessionAffinityConfig"]?["clientIP"]?["timeoutSeconds"]?.int64Value ?? Int64(defaultAffinityTimeout)) : nil
            let serviceSlices = slicesByService[namespace + "/" + name] ?? []
            for port in spec["ports"]?.arrayValue ?? [] {
                guard let number = port["port"]?.int64Value, (1...65535).contains(number) else { continue }
                let portName = port["name"]?.stringValue ?? ""
                let proto = (port["protocol"]?.stringValue ?? "TCP").lowercased()
                guard ["tcp", "udp", "sctp"].contains(proto) else { continue }
                let nodePort = port["nodePort"]?.int64Value.flatMap { (1...65535).contains($0) ? Int($0) : nil }
                let local = nodePort != nil && spec["externalTrafficPolicy"]?.stringValue == "Local"
                result.append(ServicePort(namespace: namespace, name: name, portName: portName, proto: proto, clusterIP: clusterIP,
                                          port: Int(number), nodePort: nodePort, affinityTimeout: affinity,
                                          endpoints: endpoints(of: serviceSlices, portName: portName, proto: proto),
                                          localEndpoints: local ? endpoints(of: serviceSlices, portName: portName, proto: proto, node: nodeName ?? "") : nil))
            }
        }
        return result.sorted()
    }

    /// The endpoints of the slices' port `portName`/`proto`: the ready ones (`ready` unset
    /// counts as ready), or, when none is, the serving terminating ones (upstream's fallback,
    /// so a rolling update keeps answering).
    /// With `node`, only the endpoints on that node (the same fallback among them).
    static func endpoints(of slices: [EndpointSlice], portName: String, proto: String, node: String? = nil) -> [EndpointAddress] {
        var ready: Set<EndpointAddress> = [], terminating: Set<EndpointAddress> = []
        for slice in slices {
            guard let port = (slice.ports ?? []).first(where: { ($0.name ?? "") == portName && ($0.protocol ?? "TCP").lowercased() == proto }),
                  let number = port.port, (1...65535).contains(number) else { continue }
            for endpoint in slice.endpoints where node == nil || endpoint.nodeName == node {
                guard let ip = endpoint.addresses.first, IPv4CIDR.parseAddress(ip) != nil else { continue }
                let address = EndpointAddress(ip: ip, port: Int(number))
                if endpoint.conditions.ready ?? true {
                    ready.insert(address)
                } else if endpoint.conditions.serving ?? false, endpoint.conditions.terminating ?? false {
                    terminating.insert(address)
                }
            }
        }
        return (ready.isEmpty ? terminating : ready).sorted()
    }
}
