// EndpointSlice defaulting and validation (discovery/v1 defaults.go, discovery validation.go).

extension EndpointSlice {
    /// The label naming the Service a slice belongs to.
    public static let serviceNameLabel = "kubernetes.io/service-name"
    /// The label naming the controller that manages a slice.
    public static let managedByLabel = "endpointslice.kubernetes.io/managed-by"
    /// The EndpointSlice controller's value of `managedByLabel`.
    public static let controllerName = "endpointslice-controller.k8s.io"
    /// Most endpoints in one slice (`maxEndpoints`), ports in one slice (`maxPorts`).
    public static let maxEndpoints = 1000
    public static let maxPorts = 20000
    static let addressTypes = ["FQDN", "IPv4", "IPv6"]

    /// `SetDefaults_EndpointPort`: `name: ""` and `protocol: TCP` on every port.
    public mutating func applyDefaults() {
        guard var list = ports else { return }
        for index in list.indices {
            if list[index].name == nil { list[index].name = "" }
            if list[index].protocol == nil { list[index].protocol = "TCP" }
        }
        ports = list
    }

    /// Create validation (`ValidateEndpointSliceCreate`).
    public func validate() -> [FieldError] {
        var errors = Validation.objectMeta(metadata, namespaced: true, name: Validation.nameIsDNSSubdomain)
        if !Self.addressTypes.contains(addressType) {
            errors.append(addressType.isEmpty ? .required("addressType") : .notSupported("addressType", addressType, Self.addressTypes))
        }
        if endpoints.count > Self.maxEndpoints {
            errors.append(.tooMany("endpoints", actual: endpoints.count, max: Self.maxEndpoints))
        }
        for (index, endpoint) in endpoints.enumerated() {
            let path = FieldPath("endpoints").index(index)
            if endpoint.addresses.isEmpty {
                errors.append(.required(path.child("addresses"), "must contain at least 1 address"))
            } else if endpoint.addresses.count > 100 {
                errors.append(.tooMany(path.child("addresses"), actual: endpoint.addresses.count, max: 100))
            }
            for (n, address) in endpoint.addresses.enumerated() {
                let at = path.child("addresses").index(n)
                switch addressType {
                case "IPv4":
                    if IPv4CIDR.parseAddress(address) == nil { errors.append(.invalid(at, address, "must be a valid IPv4 address")) }
                case "IPv6":
                    if !Validation.isValidIPv6(Substring(address)) { errors.append(.invalid(at, address, "must be a valid IPv6 address")) }
                case "FQDN":
                    errors += LabelValidation.dns1123SubdomainErrors(address).map { .invalid(at, address, $0) }
                default:
                    break
                }
            }
            if let hostname = endpoint.hostname {
                errors += Validation.dns1123LabelErrors(hostname).map { .invalid(path.child("hostname"), hostname, $0) }
            }
            if let node = endpoint.nodeName, !node.isEmpty {
                errors += LabelValidation.dns1123SubdomainErrors(node).map { .invalid(path.child("nodeName"), node, $0) }
            }
        }
        let list = ports ?? []
        if list.count > Self.maxPorts { errors.append(.tooMany("ports", actual: list.count, max: Self.maxPorts)) }
        var names: Set<String> = []
        for (index, port) in list.enumerated() {
            let path = FieldPath("ports").index(index)
            let name = port.name ?? ""
            if !name.isEmpty {
                errors += Validation.dns1123LabelErrors(name).map { .invalid(path.child("name"), name, $0) }
            }
            if !names.insert(name).inserted { errors.append(.duplicate(path.child("name"), name)) }
            let proto = port.protocol ?? "TCP"
            if !["SCTP", "TCP", "UDP"].contains(proto) { errors.append(.notSupported(path.child("protocol"), proto, ["SCTP", "TCP", "UDP"])) }
            if let number = port.port, !(1...65535).contains(number) {
                errors.append(.invalid(path.child("port"), number: number, "must be between 1 and 65535, inclusive"))
            }
        }
        return errors.deduplicated()
    }

    /// Update validation (`ValidateEndpointSliceUpdate`): `addressType` is immutable.
    public func validateUpdate(old: EndpointSlice) -> [FieldError] {
        var errors = Validation.objectMetaUpdate(metadata, old.metadata) + validate()
        if addressType != old.addressType { errors.append(.invalid("addressType", addressType, "field is immutable")) }
        return errors.deduplicated()
    }
}
