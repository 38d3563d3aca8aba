import ClusterAPI
import Logging

/// ClusterIP and NodePort allocation for Services, as kube-apiserver's service REST storage
/// does it (`pkg/registry/core/service/storage/alloc.go`): on create, on update (type
/// changes allocate or release), on delete; requested items are honoured when free and in
/// range; a failure releases what the request had allocated and says why in Kubernetes'
/// words. The bitmaps live in the store (`RangeAllocation`), so several API servers share them.
struct ServiceAllocator: Sendable {
    let network: ServiceNetwork
    let store: ObjectStore
    let ips: RangeAllocation
    let ports: RangeAllocation

    static let ipKey = "/registry/ranges/serviceips"
    static let portKey = "/registry/ranges/servicenodeports"

    init(network: ServiceNetwork, store: ObjectStore) {
        self.network = network
        self.store = store
        self.ips = RangeAllocation(key: Self.ipKey, range: network.clusterIPRange.description, size: network.ipCount)
        self.ports = RangeAllocation(key: Self.portKey, range: network.nodePortRangeText, size: network.nodePortRange.count)
    }

    /// What one request allocated (to release if it fails) or what to release.
    struct Items: Sendable, Equatable {
        var ips: [String] = []
        var ports: [Int] = []
        var isEmpty: Bool { ips.isEmpty && ports.isEmpty }
    }

    // MARK: What a Service holds

    static func type(_ service: JSONValue) -> String { service["spec"]?["type"]?.stringValue ?? "ClusterIP" }

    /// Whether a Service of this shape holds a ClusterIP (not ExternalName, not headless).
    static func needsClusterIP(_ service: JSONValue) -> Bool {
        type(service) != "ExternalName" && service["spec"]?["clusterIP"]?.stringValue != "None"
    }

    /// Whether its ports get NodePorts: NodePort, and LoadBalancer unless
    /// `allocateLoadBalancerNodePorts: false`.
    static func needsNodePorts(_ service: JSONValue) -> Bool {
        switch type(service) {
        case "NodePort": return true
        case "LoadBalancer": return service["spec"]?["allocateLoadBalancerNodePorts"]?.boolValue != false
        default: return false
        }
    }

    /// Whether it gets a `healthCheckNodePort`: LoadBalancer with `externalTrafficPolicy: Local`.
    static func needsHealthCheckPort(_ service: JSONValue) -> Bool {
        type(service) == "LoadBalancer" && service["spec"]?["externalTrafficPolicy"]?.stringValue == "Local"
    }

    /// The ClusterIPs and NodePorts a stored Service holds.
    func held(by service: JSONValue) -> Items {
        var items = Items()
        if Self.type(service) != "ExternalName" {
            let addresses = (service["spec"]?["clusterIPs"]?.arrayValue ?? []).compactMap(\.stringValue)
            for ip in addresses.isEmpty ? [service["spec"]?["clusterIP"]?.stringValue].compactMap({ $0 }) : addresses
                where ip != "None" && !ip.isEmpty { items.ips.append(ip) }
        }
        for port in service["spec"]?["ports"]?.arrayValue ?? [] {
            if let nodePort = port["nodePort"]?.int64Value, nodePort != 0 { items.ports.append(Int(nodePort)) }
        }
        if let health = service["spec"]?["healthCheckNodePort"]?.int64Value, health != 0 { items.ports.append(Int(health)) }
        return items
    }

    // MARK: Create

    /// Allocates what a new Service needs and writes it into `service` (clusterIP,
    /// clusterIPs, ipFamilies, ipFamilyPolicy, nodePorts, healthCheckNodePort). Returns what
    /// was allocated: the caller releases it if the Service is not stored after all.
    func allocate(_ service: inout JSONValue, info: ResourceInfo, dryRun: Bool) async throws(APIError) -> Items {
        try Self.checkFamilies(service, info: info)
        var done = Items()
        do {
            try await allocateClusterIP(&service, old: nil, info: info, dryRun: dryRun, done: &done)
            try await allocateNodePorts(&service, old: nil, info: info, dryRun: dryRun, done: &done)
            Self.setFamilies(&service)
        } catch {
            if !dryRun { await release(done) }
            throw error
        }
        return done
    }

    // MARK: Update

    /// Allocates what an updated Service newly needs; returns it, and what the old one held
    /// that the new one does not (to release once the update is stored).
    func reallocate(_ service: inout JSONValue, old: JSONValue, info: ResourceInfo, dryRun: Bool) async throws(APIError) -> (allocated: Items, released: Items) {
        try Self.checkFamilies(service, info: info)
        var done = Items()
        do {
            try await allocateClusterIP(&service, old: old, info: info, dryRun: dryRun, done: &done)
            try await allocateNodePorts(&service, old: old, info: info, dryRun: dryRun, done: &done)
            Self.setFamilies(&service)
        } catch {
            if !dryRun { await release(done) }
            throw error
        }
        let before = held(by: old), after = held(by: service)
        let released = Items(ips: before.ips.filter { !after.ips.contains($0) }, ports: before.ports.filter { !after.ports.contains($0) })
        return (done, released)
    }

    /// The strategy's `PrepareForUpdate` for Services (`patchAllocatedValues` and
    /// `dropTypeDependentFields`): an update that omits the allocated ClusterIP or NodePorts
    /// keeps them (kubectl replace of a manifest without them), and a type change that no
    /// longer needs them drops them unless the update changed them itself.
    static func prepareForUpdate(_ new: JSONValue, old: JSONValue) -> JSONValue {
        guard case .object = new, case .object? = new["spec"] else { return new }
        var service = new
        // NormalizeClusterIPs: a changed clusterIP with clusterIPs left as they were stands
        // for the single-stack list.
        if service["spec"]?["clusterIP"] != old["spec"]?["clusterIP"], service["spec"]?["clusterIPs"] == old["spec"]?["clusterIPs"] {
            let ip = service["spec"]?["clusterIP"]?.stringValue ?? ""
            service["spec"]?["clusterIPs"] = ip.isEmpty ? nil : [.string(ip)]
        }
        if needsClusterIP(old) && needsClusterIP(service) {
            if (service["spec"]?["clusterIP"]?.stringValue ?? "").isEmpty, let ip = old["spec"]?["clusterIP"] { service["spec"]?["clusterIP"] = ip }
            if (service["spec"]?["clusterIPs"]?.arrayValue ?? []).isEmpty, let ips = old["spec"]?["clusterIPs"] { service["spec"]?["clusterIPs"] = ips }
        }
        if needsNodePorts(old) && needsNodePorts(service), var ports = service["spec"]?["ports"]?.arrayValue {
            let oldPorts = old["spec"]?["ports"]?.arrayValue ?? []
            for index in ports.indices where (ports[index]["nodePort"]?.int64Value ?? 0) == 0 {
                let match = oldPorts.first {
                    $0["port"] == ports[index]["port"] && ($0["protocol"]?.stringValue ?? "TCP") == (ports[index]["protocol"]?.stringValue ?? "TCP")
                }
                if let nodePort = match?["nodePort"], (nodePort.int64Value ?? 0) != 0 { ports[index]["nodePort"] = nodePort }
            }
            service["spec"]?["ports"] = .array(ports)
        }
        if needsHealthCheckPort(old) && needsHealthCheckPort(service), (service["spec"]?["healthCheckNodePort"]?.int64Value ?? 0) == 0,
           let port = old["spec"]?["healthCheckNodePort"] {
            service["spec"]?["healthCheckNodePort"] = port
        }
        // dropTypeDependentFields: what the new type does not use, if the update left it as it was.
        if type(service) == "ExternalName" && type(old) != "ExternalName" {
            if service["spec"]?["clusterIP"] == old["spec"]?["clusterIP"] { service["spec"]?["clusterIP"] = nil }
            if service["spec"]?["clusterIPs"] == old["spec"]?["clusterIPs"] { service["spec"]?["clusterIPs"] = nil }
            service["spec"]?["ipFamilies"] = nil
            service["spec"]?["ipFamilyPolicy"] = nil
        }
        if needsNodePorts(old) && !needsNodePorts(service), var ports = service["spec"]?["ports"]?.arrayValue {
            let oldPorts = old["spec"]?["ports"]?.arrayValue ?? []
            for index in ports.indices {
                let same = oldPorts.contains { $0["port"] == ports[index]["port"] && $0["nodePort"] == ports[index]["nodePort"] }
                if same { ports[index]["nodePort"] = nil }
            }
            service["spec"]?["ports"] = .array(ports)
        }
        if needsHealthCheckPort(old) && !needsHealthCheckPort(service),
           service["spec"]?["healthCheckNodePort"] == old["spec"]?["healthCheckNodePort"] {
            service["spec"]?["healthCheckNodePort"] = nil
        }
        return service
    }

    // MARK: Release

    /// Frees items (a deleted Service's, a failed request's). A failure is logged, not thrown:
    /// the repair loop frees what is left behind.
    func release(_ items: Items, logger: Logger? = nil) async {
        do {
            try await ips.release(items.ips.compactMap(network.ipOffset), store)
            try await ports.release(items.ports.compactMap { network.nodePortRange.contains($0) ? $0 - network.nodePortRange.lowerBound : nil }, store)
        } catch {
            logger?.warning("cannot release Service allocations; the repair loop will", metadata: ["items": "\(items)", "error": "\(error)"])
        }
    }

    // MARK: Pieces

    /// `ipFamilies`/`ipFamilyPolicy` asking for IPv6 or dual-stack, which this cluster lacks.
    static func checkFamilies(_ service: JSONValue, info: ResourceInfo) throws(APIError) {
        guard type(service) != "ExternalName" else { return }
        // A headless Service without selector may name any family (it takes its endpoints').
        if service["spec"]?["clusterIP"]?.stringValue == "None" && (service["spec"]?["selector"]?.objectValue ?? [:]).isEmpty { return }
        let name = service["metadata"]?["name"]?.stringValue ?? ""
        var errors: [FieldError] = []
        for (index, family) in (service["spec"]?["ipFamilies"]?.arrayValue ?? []).enumerated() {
            let value = family.stringValue ?? ""
            if value == "IPv4" { continue }
            if value == "IPv6" {
                errors.append(FieldError(type: .invalid, field: "spec.ipFamilies[\(index)]", badValue: value, detail: "not configured on this cluster"))
            } else {
                errors.append(FieldError(type: .notSupported, field: "spec.ipFamilies[\(index)]", badValue: value,
                                         detail: "supported values: \"IPv4\", \"IPv6\""))
            }
        }
        if let policy = service["spec"]?["ipFamilyPolicy"]?.stringValue, policy == "RequireDualStack", service["spec"]?["clusterIP"]?.stringValue != "None" {
            errors.append(FieldError(type: .invalid, field: "spec.ipFamilyPolicy", badValue: policy,
                                     detail: "this cluster is not configured for dual-stack services"))
        }
        if !errors.isEmpty { throw APIError.invalid(info, name, errors) }
    }

    /// `ipFamilies: [IPv4]` and the policy Kubernetes defaults on a single-stack cluster:
    /// `SingleStack`, or `RequireDualStack` for a headless Service without a selector (it
    /// takes whatever families its endpoints have).
    static func setFamilies(_ service: inout JSONValue) {
        guard type(service) != "ExternalName" else {
            service["spec"]?["ipFamilies"] = nil
            service["spec"]?["ipFamilyPolicy"] = nil
            return
        }
        let headless = service["spec"]?["clusterIP"]?.stringValue == "None"
        let selector = !(service["spec"]?["selector"]?.objectValue ?? [:]).isEmpty
        if service["spec"]?["ipFamilyPolicy"] == nil {
            service["spec"]?["ipFamilyPolicy"] = .string(headless && !selector ? "RequireDualStack" : "SingleStack")
        }
        if headless && !selector {
            // initIPFamilyFields' special case: a headless Service without selector takes the
            // endpoints' families, both unless it says SingleStack, even on a single-stack cluster.
            var families = (service["spec"]?["ipFamilies"]?.arrayValue ?? []).compactMap(\.stringValue)
            if families.isEmpty { families = ["IPv4"] }
            if families.count < 2 && service["spec"]?["ipFamilyPolicy"]?.stringValue != "SingleStack" {
                families.append(families[0] == "IPv4" ? "IPv6" : "IPv4")
            }
            service["spec"]?["ipFamilies"] = .array(families.map { .string($0) })
            return
        }
        service["spec"]?["ipFamilies"] = ["IPv4"]
    }

    func allocateClusterIP(_ service: inout JSONValue, old: JSONValue?, info: ResourceInfo, dryRun: Bool, done: inout Items) async throws(APIError) {
        let name = service["metadata"]?["name"]?.stringValue ?? ""
        let clusterIP = service["spec"]?["clusterIP"]?.stringValue ?? ""
        var clusterIPs = (service["spec"]?["clusterIPs"]?.arrayValue ?? []).compactMap(\.stringValue)
        if Self.type(service) == "ExternalName" {
            if !clusterIP.isEmpty || !clusterIPs.isEmpty {
                throw APIError.invalid(info, name, [FieldError(type: .forbidden, field: "spec.clusterIPs", detail: "may not be set for ExternalName services")])
            }
            service["spec"]?["clusterIP"] = nil
            service["spec"]?["clusterIPs"] = nil
            return
        }
        if clusterIPs.isEmpty && !clusterIP.isEmpty { clusterIPs = [clusterIP] }
        if !clusterIP.isEmpty, let first = clusterIPs.first, first != clusterIP {
            throw APIError.invalid(info, name, [FieldError(type: .invalid, field: "spec.clusterIPs", badValue: goStrings(clusterIPs),
                                                           badValueStyle: .literal, detail: "element [0] must match clusterIP")])
        }
        if clusterIPs.count > 1 {
            throw APIError.invalid(info, name, [FieldError(type: .invalid, field: "spec.clusterIPs", badValue: goStrings(clusterIPs),
                                                           badValueStyle: .literal, detail: "this cluster is not configured for dual-stack services")])
        }
        if clusterIPs.first == "None" {
            service["spec"]?["clusterIP"] = "None"
            service["spec"]?["clusterIPs"] = ["None"]
            return
        }
        // Already held by the old Service (an update keeping its address): nothing to do.
        if let old, let ip = clusterIPs.first, Self.needsClusterIP(old), held(by: old).ips.contains(ip) {
            service["spec"]?["clusterIP"] = .string(ip)
            service["spec"]?["clusterIPs"] = [.string(ip)]
            return
        }
        let ip: String
        if let requested = clusterIPs.first {
            guard IPv4CIDR.parseAddress(requested) != nil else {
                throw APIError.invalid(info, name, [FieldError(type: .invalid, field: "spec.clusterIPs[0]", badValue: requested,
                                                               detail: "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")])
            }
            let failure = { (reason: String) in
                APIError.invalid(info, name, [FieldError(type: .invalid, field: "spec.clusterIPs", badValue: goStrings(clusterIPs),
                                                         badValueStyle: .literal, detail: "failed to allocate IP \(requested): \(reason)")])
            }
            guard let offset = network.ipOffset(requested) else {
                throw failure("the provided IP (\(requested)) is not in the valid range. The range of valid IPs is \(network.clusterIPRange)")
            }
            do {
                try await ips.allocate(offset, store, persist: !dryRun)
            } catch {
                throw Self.map(error, failure: failure, full: "failed to allocate a serviceIP", item: "IP")
            }
            ip = requested
        } else {
            do {
                ip = network.ip(atOffset: try await ips.allocateNext(store, persist: !dryRun))
            } catch {
                throw Self.map(error, failure: { APIError.internalError("failed to allocate a serviceIP: \($0)") }, full: "failed to allocate a serviceIP", item: "IP")
            }
        }
        if !dryRun { done.ips.append(ip) }
        service["spec"]?["clusterIP"] = .string(ip)
        service["spec"]?["clusterIPs"] = [.string(ip)]
    }

    func allocateNodePorts(_ service: inout JSONValue, old: JSONValue?, info: ResourceInfo, dryRun: Bool, done: inout Items) async throws(APIError) {
        let name = service["metadata"]?["name"]?.stringValue ?? ""
        let oldHeld = old.map { held(by: $0).ports } ?? []
        let range = network.nodePortRange
        func take(_ requested: Int, field: String) async throws(APIError) {
            if oldHeld.contains(requested) || done.ports.contains(requested) { return }
            let failure = { (reason: String) in
                APIError.invalid(info, name, [FieldError(type: .invalid, field: field, badValue: String(requested), badValueStyle: .literal, detail: reason)])
            }
            guard range.contains(requested) else {
                throw failure("provided port is not in the valid range. The range of valid ports is \(network.nodePortRangeText)")
            }
            do {
                try await ports.allocate(requested - range.lowerBound, store, persist: !dryRun)
            } catch {
                throw Self.map(error, failure: failure, full: "failed to allocate a nodePort", item: "port")
            }
            if !dryRun { done.ports.append(requested) }
        }
        func next() async throws(APIError) -> Int {
            do {
                let port = range.lowerBound + (try await ports.allocateNext(store, persist: !dryRun))
                if !dryRun { done.ports.append(port) }
                return port
            } catch {
                throw Self.map(error, failure: { APIError.internalError("failed to allocate a nodePort: \($0)") }, full: "failed to allocate a nodePort", item: "port")
            }
        }
        if var list = service["spec"]?["ports"]?.arrayValue {
            if Self.type(service) == "LoadBalancer" && !Self.needsNodePorts(service) {
                // allocateLoadBalancerNodePorts: false — no new ones, but requested ones are honoured.
                for (index, port) in list.enumerated() {
                    if let nodePort = port["nodePort"]?.int64Value, nodePort != 0 { try await take(Int(nodePort), field: "spec.ports[\(index)].nodePort") }
                }
            } else if Self.needsNodePorts(service) {
                // A NodePort shared by two ports of one number (TCP and UDP) is allocated once.
                var byNumber: [Int64: JSONValue] = [:]
                for index in list.indices {
                    if let nodePort = list[index]["nodePort"]?.int64Value, nodePort != 0 {
                        try await take(Int(nodePort), field: "spec.ports[\(index)].nodePort")
                    } else if let port = list[index]["port"]?.int64Value, let shared = byNumber[port] {
                        list[index]["nodePort"] = shared
                    } else {
                        list[index]["nodePort"] = .integer(Int64(try await next()))
                    }
                    if let port = list[index]["port"]?.int64Value { byNumber[port] = list[index]["nodePort"] }
                }
                service["spec"]?["ports"] = .array(list)
            } else {
                for (index, port) in list.enumerated() where (port["nodePort"]?.int64Value ?? 0) != 0 {
                    throw APIError.invalid(info, name, [FieldError(type: .forbidden, field: "spec.ports[\(index)].nodePort",
                                                                   detail: "may not be used when `type` is '\(Self.type(service))'")])
                }
            }
        }
        if Self.needsHealthCheckPort(service) {
            if let port = service["spec"]?["healthCheckNodePort"]?.int64Value, port != 0 {
                // allocHealthCheckNodePort's words, as an internal error.
                let requested = Int(port)
                if !(oldHeld.contains(requested) || done.ports.contains(requested)) {
                    guard range.contains(requested) else {
                        throw APIError.internalError("failed to allocate requested HealthCheck NodePort \(requested): provided port is not in the valid range. The range of valid ports is \(network.nodePortRangeText)")
                    }
                    do {
                        try await ports.allocate(requested - range.lowerBound, store, persist: !dryRun)
                    } catch {
                        throw Self.map(error, failure: { APIError.internalError("failed to allocate requested HealthCheck NodePort \(requested): \($0)") },
                                       full: "failed to allocate a HealthCheck NodePort", item: "port")
                    }
                    if !dryRun { done.ports.append(requested) }
                }
            } else {
                service["spec"]?["healthCheckNodePort"] = .integer(Int64(try await next()))
            }
        } else if let port = service["spec"]?["healthCheckNodePort"]?.int64Value, port != 0 {
            throw APIError.invalid(info, name, [FieldError(type: .invalid, field: "spec.healthCheckNodePort", badValue: String(port),
                                                           badValueStyle: .literal,
                                                           detail: "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'")])
        }
    }

    /// The allocator's error in Kubernetes' words (`ErrAllocated`, `ErrFull`).
    static func map(_ error: AllocationError, failure: (String) -> APIError, full: String, item: String) -> APIError {
        switch error {
        case .allocated: return failure("provided \(item) is already allocated")
        case .notInRange: return failure("provided \(item) is not in the valid range")
        case .full: return APIError.internalError("\(full): range is full")
        case .storage(let underlying): return underlying
        }
    }
}

/// `[]string{"a", "b"}`, as Go's `%#v` prints a string slice in Kubernetes' messages.
func goStrings(_ values: [String]) -> String {
    "[]string{" + values.map { "\"\($0)\"" }.joined(separator: ", ") + "}"
}
