// What a Service's endpoints should be, from its pods (the EndpointSlice controller's
// `reconciler.reconcileByAddressType` input and `endpointutil`): one endpoint per pod that has an
// IPv4 address and may take traffic, grouped by the ports its containers resolve the Service's
// target ports to (a named target port can resolve differently per pod).
import ClusterAPI

/// A Service's desired endpoints, by port set.
struct DesiredEndpoints: Equatable {
    /// Endpoints keyed by port set; the key is the ports as they will appear in the slice.
    var groups: [[EndpointPort]: [Endpoint]] = [:]

    var count: Int { groups.values.reduce(0) { $0 + $1.count } }

    /// The service's selector (nil: none, so no managed endpoints).
    static func selector(_ service: Service) -> [String: String]? {
        guard let members = service.spec?["selector"]?.objectValue, !members.isEmpty else { return nil }
        var selector: [String: String] = [:]
        for (key, value) in members { selector[key] = value.stringValue ?? "" }
        return selector
    }

    /// Whether the controller manages endpoints for this Service: a selector, and not ExternalName.
    static func isManaged(_ service: Service) -> Bool {
        selector(service) != nil && service.spec?["type"]?.stringValue != "ExternalName"
    }

    static func selects(_ service: Service, _ pod: Pod) -> Bool {
        guard let selector = selector(service), pod.metadata.namespace == service.metadata.namespace else { return false }
        let labels = pod.metadata.labels ?? [:]
        return selector.allSatisfy { labels[$0.key] == $0.value }
    }

    /// `ShouldPodBeInEndpoints` with terminating pods included: an address, and not finished
    /// (a pod that will not run again serves nothing).
    static func shouldInclude(_ pod: Pod) -> Bool {
        guard ipv4Address(pod) != nil else { return false }
        switch pod.status.phase {
        case "Succeeded", "Failed": return false
        default: return true
        }
    }

    /// The pod's IPv4 address: the first of `status.podIPs`, else `status.podIP`.
    static func ipv4Address(_ pod: Pod) -> String? {
        let listed = (pod.status.podIPs ?? []).compactMap { $0["ip"]?.stringValue }
        for ip in listed + [pod.status.podIP].compactMap({ $0 }) where IPv4CIDR.parseAddress(ip) != nil { return ip }
        return nil
    }

    /// `ShouldSetHostname`: the pod names a hostname and its subdomain is this Service.
    static func hostname(_ pod: Pod, _ service: Service) -> String? {
        guard let hostname = pod.spec.hostname, !hostname.isEmpty, pod.spec.subdomain == service.metadata.name,
              pod.metadata.namespace == service.metadata.namespace else { return nil }
        return hostname
    }

    /// The ports of `service` as `pod` serves them; a named target port that the pod does not
    /// expose (with the same protocol) is left out for that pod (`podutil.FindPort`).
    static func ports(_ service: Service, _ pod: Pod) -> [EndpointPort] {
        var result: [EndpointPort] = []
        for port in service.spec?["ports"]?.arrayValue ?? [] {
            let proto = port["protocol"]?.stringValue ?? "TCP"
            let number: Int32?
            switch port["targetPort"] {
            case .string(let name)?:
                if let n = Int32(name) {
                    number = n
                } else {
                    number = pod.spec.containers.lazy.flatMap { $0.ports ?? [] }
                        .first { $0.name == name && ($0.protocol ?? "TCP") == proto }?.containerPort
                }
            case let value?:
                number = value.int64Value.flatMap { Int32(exactly: $0) }
            case nil:
                number = port["port"]?.int64Value.flatMap { Int32(exactly: $0) }
            }
            guard let number, number > 0 else { continue }
            result.append(EndpointPort(name: port["name"]?.stringValue ?? "", protocol: proto, port: number,
                                       appProtocol: port["appProtocol"]?.stringValue))
        }
        return result
    }

    /// The endpoint of one pod (`podToEndpoint`): ready unless not Ready or terminating (both
    /// overridden by `publishNotReadyAddresses`), serving when Ready, terminating when
    /// being deleted; node, zone, target reference and hostname.
    static func endpoint(_ pod: Pod, _ service: Service, zone: String?) -> Endpoint? {
        guard let ip = ipv4Address(pod) else { return nil }
        let publishNotReady = service.spec?["publishNotReadyAddresses"]?.boolValue == true
        let terminating = pod.metadata.deletionTimestamp != nil
        let serving = pod.isReady
        let ready = publishNotReady || (serving && !terminating)
        let node = pod.spec.nodeName.flatMap { $0.isEmpty ? nil : $0 }
        return Endpoint(addresses: [ip], conditions: EndpointConditions(ready: ready, serving: serving, terminating: terminating),
                        hostname: hostname(pod, service),
                        targetRef: ObjectReference(kind: "Pod", namespace: pod.metadata.namespace, name: pod.metadata.name, uid: pod.metadata.uid),
                        nodeName: node, zone: zone.flatMap { $0.isEmpty ? nil : $0 })
    }

    /// The desired endpoints of `service` among `pods` (those of its namespace), `zone` giving
    /// a node's zone label.
    static func compute(_ service: Service, pods: [Pod], zone: (String) -> String?) -> DesiredEndpoints {
        var desired = DesiredEndpoints()
        let sorted = pods.sorted { ($0.metadata.name ?? "") < ($1.metadata.name ?? "") }
        for pod in sorted where selects(service, pod) && shouldInclude(pod) {
            guard let endpoint = endpoint(pod, service, zone: pod.spec.nodeName.flatMap(zone)) else { continue }
            desired.groups[ports(service, pod), default: []].append(endpoint)
        }
        return desired
    }
}

extension Endpoint {
    /// What identifies an endpoint across syncs: its pod, else its address.
    var identity: String { targetRef?.uid ?? addresses.first ?? "" }
}
