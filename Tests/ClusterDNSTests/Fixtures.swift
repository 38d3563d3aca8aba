import ClusterAPI
@testable import ClusterDNS

/// Services and slices as the API server and the endpointslice controller write them.
enum Fixtures {
    static func service(_ name: String, namespace: String = "default", clusterIP: String, ports: [(String, String, Int64)] = [],
                        type: String = "ClusterIP", externalName: String? = nil) -> Service {
        var spec: [String: JSONValue] = ["type": .string(type), "clusterIP": .string(clusterIP),
                                         "ports": .array(ports.map { ["name": .string($0.0), "protocol": .string($0.1), "port": .integer($0.2)] })]
        if let externalName { spec["externalName"] = .string(externalName) }
        return Service(metadata: ObjectMeta(name: name, namespace: namespace), spec: .object(spec))
    }

    static func slice(_ name: String, service: String, namespace: String = "default",
                      endpoints: [(address: String, hostname: String?, ready: Bool?)], ports: [EndpointPort]) -> EndpointSlice {
        EndpointSlice(metadata: ObjectMeta(name: name, namespace: namespace, labels: ["kubernetes.io/service-name": service]),
                      addressType: "IPv4",
                      endpoints: endpoints.map { Endpoint(addresses: [$0.address], conditions: EndpointConditions(ready: $0.ready), hostname: $0.hostname) },
                      ports: ports)
    }

    static let domain = DNSName("cluster.local")!

    /// web (ClusterIP, ports http/TCP 80 and dns/UDP 53), db (headless: db-0, db-1 ready, db-2
    /// not ready, one endpoint without hostname), ext (ExternalName).
    static var records: ClusterRecords {
        ClusterRecords(domain: domain, ttl: 30, serial: 7, services: [
            service("web", clusterIP: "198.19.0.20", ports: [("http", "TCP", 80), ("dns", "UDP", 53), ("", "TCP", 8080)]),
            service("db", namespace: "data", clusterIP: "None", ports: [("pg", "TCP", 5432)]),
            service("ext", clusterIP: "", type: "ExternalName", externalName: "example.org"),
            service("empty", clusterIP: "None"),
        ], slices: [
            slice("db-abcde", service: "db", namespace: "data", endpoints: [
                ("198.18.1.5", "db-0", true), ("198.18.2.6", "db-1", nil), ("198.18.3.7", "db-2", false), ("198.18.1.9", nil, true),
            ], ports: [EndpointPort(name: "pg", protocol: "TCP", port: 5432)]),
            slice("web-xyz", service: "web", endpoints: [("198.18.1.100", nil, true)], ports: []),
        ])
    }

    static func query(_ name: String, _ type: DNSType, id: UInt16 = 0x1234, edns: Int? = nil) -> DNSMessage {
        var message = DNSMessage(header: DNSHeader(id: id))
        message.header.recursionDesired = true
        message.questions = [DNSQuestion(name: DNSName(name)!, type: type)]
        if let edns { message.additional = [DNSRecord(name: .root, type: .opt, dnsClass: UInt16(edns), ttl: 0, data: .other([]))] }
        return message
    }
}

extension DNSMessage {
    var addresses: [String] {
        answers.compactMap { if case .a(let address) = $0.data { "\(address)" } else { nil } }
    }
}
