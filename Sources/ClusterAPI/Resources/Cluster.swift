// Namespace, Node, Event, Service, Endpoints, ConfigMap and Secret defaulting and validation
// (core/v1 defaults.go, the resource strategies, core validation.go and events.go).

import Foundation

extension Namespace {
    /// The label Kubernetes sets to a namespace's own name.
    public static let nameLabel = "kubernetes.io/metadata.name"

    /// `SetDefaults_Namespace` (the name label) and the strategy's create defaults:
    /// `spec.finalizers: [kubernetes]`, `status.phase: Active`.
    public mutating func applyDefaults() {
        if let name = metadata.name, !name.isEmpty {
            var labels = metadata.labels ?? [:]
            labels[Self.nameLabel] = name
            metadata.labels = labels
        }
        if spec.finalizers == nil { spec.finalizers = ["kubernetes"] }
        if (status.phase ?? "").isEmpty { status.phase = "Active" }
    }

    /// Create validation (`ValidateNamespace`): the name is a DNS label.
    public func validate() -> [FieldError] {
        var errors = Validation.objectMeta(metadata, namespaced: false, name: Validation.nameIsDNSLabel)
        for finalizer in spec.finalizers ?? [] {
            errors += Validation.qualifiedName(finalizer, "spec.finalizers")
            errors += Validation.kubeFinalizerName(finalizer, "spec.finalizers")
        }
        return errors.deduplicated()
    }

    /// Update validation (`ValidateNamespaceUpdate`); spec and status changes are ignored by
    /// a plain update, as in Kubernetes (they go through `finalize` and `status`).
    public func validateUpdate(old: Namespace) -> [FieldError] {
        (Validation.objectMetaUpdate(metadata, old.metadata) + validate()).deduplicated()
    }
}

extension Node {
    /// `SetDefaults_NodeStatus` (allocatable from capacity) and the v1 conversion that keeps
    /// `podCIDR` and `podCIDRs` in step.
    public mutating func applyDefaults() {
        if status.allocatable == nil, let capacity = status.capacity { status.allocatable = capacity }
        if let cidr = spec.podCIDR, !cidr.isEmpty, (spec.podCIDRs ?? []).isEmpty { spec.podCIDRs = [cidr] }
        if (spec.podCIDR ?? "").isEmpty, let first = spec.podCIDRs?.first { spec.podCIDR = first }
    }

    /// Create validation (`ValidateNode`). Taint errors use the path `metadata.taints`, as
    /// Kubernetes reports them.
    public func validate() -> [FieldError] {
        var errors = Validation.objectMeta(metadata, namespaced: false, name: Validation.nameIsDNSSubdomain)
        var seen: [String: Set<String>] = [:]
        for (index, taint) in (spec.taints ?? []).enumerated() {
            let path = FieldPath("metadata").child("taints").index(index)
            errors += Validation.qualifiedName(taint.key, path.child("key"))
            let valueErrors = LabelValidation.labelValueErrors(taint.value ?? "")
            if !valueErrors.isEmpty {
                errors.append(.invalid(path.child("value"), taint.value ?? "", valueErrors.joined(separator: ";")))
            }
            if taint.effect.isEmpty {
                errors.append(.required(path.child("effect")))
            } else if !PodSpec.taintEffects.contains(taint.effect) {
                errors.append(.notSupported(path.child("effect"), taint.effect, PodSpec.taintEffects))
            }
            if seen[taint.effect, default: []].contains(taint.key) {
                var duplicate = FieldError.duplicate(path, compactJSON(taint), style: .literal)
                duplicate.detail = "taints must be unique by key and effect pair"
                errors.append(duplicate)
                continue
            }
            seen[taint.effect, default: []].insert(taint.key)
        }
        for (list, name) in [(status.capacity, "capacity"), (status.allocatable, "allocatable")] {
            for key in (list ?? [:]).keys.sorted() {
                let path = FieldPath("status").child(name).key(key)
                errors += Validation.qualifiedName(key, path)
                errors += Validation.nonNegativeQuantity(list![key]!, path)
            }
        }
        let cidrs = spec.podCIDRs ?? []
        for (index, cidr) in cidrs.enumerated() where !Validation.isValidCIDR(cidr) {
            errors.append(.invalid(FieldPath("spec.podCIDRs").index(index), literal: goStringSlice(cidrs), "must be valid CIDR"))
        }
        if cidrs.count > 2 || (cidrs.count == 2 && cidrs[0].contains(":") == cidrs[1].contains(":")) {
            errors.append(
                .invalid("spec.podCIDRs", literal: goStringSlice(cidrs), "may specify no more than one CIDR for each IP family"))
        }
        return errors.deduplicated()
    }

    /// Update validation (`ValidateNodeUpdate`): `podCIDRs` and `providerID` may only be set
    /// when they were empty.
    public func validateUpdate(old: Node) -> [FieldError] {
        var errors = Validation.objectMetaUpdate(metadata, old.metadata) + validate()
        let oldCIDRs = old.spec.podCIDRs ?? []
        if !oldCIDRs.isEmpty && oldCIDRs != (spec.podCIDRs ?? []) {
            errors.append(.forbidden("spec.podCIDRs", "node updates may not change podCIDR except from \"\" to valid"))
        }
        if let previous = old.spec.providerID, !previous.isEmpty, previous != spec.providerID {
            errors.append(.forbidden("spec.providerID", "node updates may not change providerID except from \"\" to valid"))
        }
        return errors.deduplicated()
    }
}

extension Event {
    /// Sets `count: 1` when it is missing, and `firstTimestamp`/`lastTimestamp` to each other
    /// when only one is set.
    public mutating func applyDefaults() {
        if count == nil { count = 1 }
        if firstTimestamp == nil { firstTimestamp = lastTimestamp }
        if lastTimestamp == nil { lastTimestamp = firstTimestamp }
    }

    /// Create validation as the core/v1 endpoint runs it (`legacyValidateEvent`): the
    /// involved object's namespace must match the event's.
    public func validate() -> [FieldError] {
        var errors: [FieldError] = []
        let namespace = metadata.namespace ?? ""
        let involvedNamespace = involvedObject.namespace ?? ""
        let mismatch = FieldError.invalid("involvedObject.namespace", involvedNamespace, "does not match event.namespace")
        if eventTime == nil {
            if involvedNamespace.isEmpty {
                if !namespace.isEmpty && namespace != "default" { errors.append(mismatch) }
            } else if namespace != involvedNamespace {
                errors.append(mismatch)
            }
        } else {
            if involvedNamespace.isEmpty && namespace != "default" && namespace != "kube-system" { errors.append(mismatch) }
            let controller = reportingComponent ?? ""
            if controller.isEmpty { errors.append(.required("reportingComponent")) }
            errors += Validation.qualifiedName(controller, "reportingComponent")
            let instance = reportingInstance ?? ""
            if instance.isEmpty { errors.append(.required("reportingInstance")) }
            if instance.utf8.count > 128 { errors.append(.invalid("reportingInstance", "", "can have at most 128 characters")) }
            let action = action ?? ""
            if action.isEmpty { errors.append(.required("action")) }
            if action.utf8.count > 128 { errors.append(.invalid("action", "", "can have at most 128 characters")) }
            let reason = reason ?? ""
            if reason.isEmpty { errors.append(.required("reason")) }
            if reason.utf8.count > 128 { errors.append(.invalid("reason", "", "can have at most 128 characters")) }
            if (message ?? "").utf8.count > 1024 { errors.append(.invalid("message", "", "can have at most 1024 characters")) }
        }
        errors += LabelValidation.dns1123SubdomainErrors(namespace).map { .invalid("namespace", namespace, $0) }
        return errors.deduplicated()
    }

    /// Update validation: the same checks as on create, plus metadata rules.
    public func validateUpdate(old: Event) -> [FieldError] {
        (Validation.objectMetaUpdate(metadata, old.metadata) + validate()).deduplicated()
    }
}

extension Service {
    /// `SetDefaults_Service` on the raw spec: `type: ClusterIP`, `sessionAffinity: None`
    /// (`ClientIP` gets `sessionAffinityConfig.clientIP.timeoutSeconds: 10800`),
    /// `internalTrafficPolicy: Cluster`, `externalTrafficPolicy: Cluster` for NodePort and
    /// LoadBalancer, `allocateLoadBalancerNodePorts: true` for LoadBalancer, and per port
    /// `protocol: TCP`, `targetPort = port`. ClusterIPs, NodePorts and IP families are the
    /// API server's allocation, not defaults.
    public mutating func applyDefaults() {
        var spec = self.spec ?? [:]
        guard case .object = spec else { return }
        if spec["type"] == nil { spec["type"] = "ClusterIP" }
        if spec["sessionAffinity"] == nil { spec["sessionAffinity"] = "None" }
        if spec["sessionAffinity"]?.stringValue == "ClientIP" && spec["sessionAffinityConfig"]?["clientIP"]?["timeoutSeconds"] == nil {
            spec["sessionAffinityConfig"] = ["clientIP": ["timeoutSeconds": .integer(Self.defaultClientIPTimeout)]]
        }
        let type = spec["type"]?.stringValue ?? ""
        if spec["internalTrafficPolicy"] == nil && ["ClusterIP", "NodePort", "LoadBalancer"].contains(type) {
            spec["internalTrafficPolicy"] = "Cluster"
        }
        if spec["externalTrafficPolicy"] == nil && ["NodePort", "LoadBalancer"].contains(type) { spec["externalTrafficPolicy"] = "Cluster" }
        if spec["allocateLoadBalancerNodePorts"] == nil && type == "LoadBalancer" { spec["allocateLoadBalancerNodePorts"] = true }
        if case .array(var ports)? = spec["ports"] {
            for index in ports.indices {
                guard case .object = ports[index] else { continue }
                if ports[index]["protocol"] == nil { ports[index]["protocol"] = "TCP" }
                if ports[index]["targetPort"] == nil, let port = ports[index]["port"] { ports[index]["targetPort"] = port }
            }
            spec["ports"] = .array(ports)
        }
        self.spec = spec
    }

    /// `sessionAffinityConfig.clientIP.timeoutSeconds` by default: 3 hours.
    public static let defaultClientIPTimeout: Int64 = 10800
    static let types = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]

    /// Create validation (`ValidateService`, the parts Ballast's Services use): the name is a
    /// DNS-1035 label, the type and session affinity are known, ports are named and in range,
    /// and the selector's labels are valid.
    public func validate() -> [FieldError] {
        var errors = Validation.objectMeta(metadata, namespaced: true, name: Validation.nameIsDNS1035Label)
        let spec = self.spec ?? [:]
        let type = spec["type"]?.stringValue ?? "ClusterIP"
        if !Self.types.contains(type) { errors.append(.notSupported("spec.type", type, Self.types)) }
        let ports = spec["ports"]?.arrayValue ?? []
        let headless = spec["clusterIP"]?.stringValue == "None"
        if ports.isEmpty && type != "ExternalName" && !headless { errors.append(.required("spec.ports")) }
        if type == "ExternalName" && (spec["externalName"]?.stringValue ?? "").isEmpty { errors.append(.required("spec.externalName")) }
        var names: Set<String> = []
        var keys: Set<String> = []
        var nodePorts: Set<String> = []
        for (index, port) in ports.enumerated() {
            let path = FieldPath("spec.ports").index(index)
            let name = port["name"]?.stringValue ?? ""
            if ports.count > 1 && name.isEmpty { errors.append(.required(path.child("name"))) }
            if !name.isEmpty {
                errors += Validation.dns1123LabelErrors(name).map { .invalid(path.child("name"), name, $0) }
                if !names.insert(name).inserted { errors.append(.duplicate(path.child("name"), name)) }
            }
            let number = port["port"]?.int64Value ?? 0
            if !(1...65535).contains(number) {
                errors.append(.invalid(path.child("port"), number: number, "must be between 1 and 65535, inclusive"))
            }
            let proto = port["protocol"]?.stringValue ?? "TCP"
            if !["TCP", "UDP", "SCTP"].contains(proto) { errors.append(.notSupported(path.child("protocol"), proto, ["SCTP", "TCP", "UDP"])) }
            if !keys.insert("\(number)/\(proto)").inserted {
                // The duplicate key as Go's %#v prints it (field.Duplicate of a ServicePort).
                errors.append(.duplicate(path, "core.ServicePort{Name:\"\", Protocol:\"\(proto)\", AppProtocol:(*string)(nil), Port:\(number), TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}", style: .literal))
            }
            if let nodePort = port["nodePort"]?.int64Value, !(0...65535).contains(nodePort) {
                errors.append(.invalid(path.child("nodePort"), number: nodePort, "must be between 1 and 65535, inclusive"))
            }
            // One NodePort per protocol: two TCP ports on one NodePort would be one key in every
            // kube-proxy's map (TCP and UDP may share one, as the DNS ports do).
            if let nodePort = port["nodePort"]?.int64Value, nodePort != 0, !nodePorts.insert("\(nodePort)/\(proto)").inserted {
                errors.append(.duplicate(path.child("nodePort"), String(nodePort), style: .literal))
            }
            if let target = port["targetPort"] {
                if let number = target.int64Value, !(1...65535).contains(number) {
                    errors.append(.invalid(path.child("targetPort"), number: number, "must be between 1 and 65535, inclusive"))
                } else if let name = target.stringValue, name.isEmpty || name.utf8.count > 15 {
                    errors.append(.invalid(path.child("targetPort"), name, "must be no more than 15 characters"))
                }
            }
        }
        let affinity = spec["sessionAffinity"]?.stringValue ?? "None"
        if !["ClientIP", "None"].contains(affinity) { errors.append(.notSupported("spec.sessionAffinity", affinity, ["ClientIP", "None"])) }
        if affinity == "ClientIP", let timeout = spec["sessionAffinityConfig"]?["clientIP"]?["timeoutSeconds"]?.int64Value,
           !(1...86400).contains(timeout) {
            errors.append(.invalid("spec.sessionAffinityConfig.clientIP.timeoutSeconds", number: timeout, "must be greater than 0 and less than 86400"))
        }
        if affinity == "None", spec["sessionAffinityConfig"] != nil, spec["sessionAffinityConfig"] != .object([:]) {
            errors.append(.invalid("spec.sessionAffinityConfig", literal: compactJSON(spec["sessionAffinityConfig"]!),
                                   "must not be set when session affinity is None"))
        }
        for (key, value) in (spec["selector"]?.objectValue ?? [:]).sorted(by: { $0.key < $1.key }) {
            errors += Validation.qualifiedName(key, FieldPath("spec.selector"))
            let text = value.stringValue ?? ""
            errors += LabelValidation.labelValueErrors(text).map { .invalid(FieldPath("spec.selector"), text, $0) }
        }
        return errors.deduplicated()
    }

    /// Update validation (`ValidateServiceUpdate`): the primary ClusterIP may not change once
    /// set, except to or from ExternalName.
    public func validateUpdate(old: Service) -> [FieldError] {
        var errors = Validation.objectMetaUpdate(metadata, old.metadata) + validate()
        let newType = spec?["type"]?.stringValue ?? "ClusterIP", oldType = old.spec?["type"]?.stringValue ?? "ClusterIP"
        if newType != "ExternalName" && oldType != "ExternalName" {
            let newIPs = (spec?["clusterIPs"]?.arrayValue ?? []).compactMap(\.stringValue)
            let oldIPs = (old.spec?["clusterIPs"]?.arrayValue ?? []).compactMap(\.stringValue)
            let newIP = newIPs.first ?? spec?["clusterIP"]?.stringValue ?? ""
            let oldIP = oldIPs.first ?? old.spec?["clusterIP"]?.stringValue ?? ""
            if !oldIP.isEmpty && newIP != oldIP {
                errors.append(.invalid(FieldPath("spec.clusterIPs").index(0), newIP, "may not change once set"))
            }
        }
        return errors.deduplicated()
    }
}

extension Endpoints {
    /// Endpoints have no defaults beyond those of their subsets, which are kept raw.
    public mutating func applyDefaults() {}

    /// Metadata validation; the name is a DNS subdomain.
    public func validate() -> [FieldError] {
        Validation.objectMeta(metadata, namespaced: true, name: Validation.nameIsDNSSubdomain).deduplicated()
    }

    /// Metadata update rules plus create validation.
    public func validateUpdate(old: Endpoints) -> [FieldError] {
        (Validation.objectMetaUpdate(metadata, old.metadata) + validate()).deduplicated()
    }
}

extension Lease {
    /// Leases have no defaults.
    public mutating func applyDefaults() {}

    /// Create validation (`ValidateLease`).
    public func validate() -> [FieldError] {
        var errors = Validation.objectMeta(metadata, namespaced: true, name: Validation.nameIsDNSSubdomain)
        if let duration = spec.leaseDurationSeconds, duration <= 0 {
            errors.append(.invalid("spec.leaseDurationSeconds", number: duration, "must be greater than 0"))
        }
        if let transitions = spec.leaseTransitions, transitions < 0 {
            errors.append(.invalid("spec.leaseTransitions", number: transitions, "must be greater than or equal to 0"))
        }
        if let strategy = spec.strategy, strategy != "OldestEmulationVersion" {
            errors.append(.notSupported("spec.strategy", strategy, ["OldestEmulationVersion"]))
        }
        if let holder = spec.preferredHolder, !holder.isEmpty, (spec.strategy ?? "").isEmpty {
            errors.append(.forbidden("spec.preferredHolder", "may only be specified if `strategy` is defined"))
        }
        return errors.deduplicated()
    }

    /// Update validation (`ValidateLeaseUpdate`): metadata rules plus the spec checks.
    public func validateUpdate(old: Lease) -> [FieldError] {
        (Validation.objectMetaUpdate(metadata, old.metadata) + validate()).deduplicated()
    }
}

/// What ConfigMaps and Secrets share (apimachinery's `ValidateConfigMap`, `ValidateSecret`):
/// keys of `[-._a-zA-Z0-9]+` up to 253 bytes, not "." or "..", at most 1 MiB of data in all, and
/// no change to the data of an immutable object.
enum KeyedData {
    static let maxTotalBytes = 1 << 20

    static func validateKeys(_ maps: [(FieldPath, [String: String]?)]) -> [FieldError] {
        var errors: [FieldError] = []
        var seen: Set<String> = []
        for (path, map) in maps {
            for key in (map ?? [:]).keys.sorted() {
                if key.isEmpty || key.utf8.count > 253 || key == "." || key == ".."
                    || !key.utf8.allSatisfy({ $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_")
                        || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0)
                        || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) {
                    errors.append(.invalid(path, key, "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"))
                }
                if !seen.insert(key).inserted { errors.append(.invalid(path, key, "duplicate of key present in another map")) }
            }
        }
        return errors
    }

    static func immutableUpdate(_ old: Bool?, _ new: Bool?, dataChanged: Bool) -> [FieldError] {
        guard old == true else { return [] }
        var errors: [FieldError] = []
        if new != true { errors.append(.forbidden("immutable", "field is immutable when `immutable` is set")) }
        if dataChanged { errors.append(.forbidden("data", "field is immutable when `immutable` is set")) }
        return errors
    }
}

extension ConfigMap {
    /// ConfigMaps have no defaults.
    public mutating func applyDefaults() {}

    /// Create validation (`ValidateConfigMap`).
    public func validate() -> [FieldError] {
        var errors = Validation.objectMeta(metadata, namespaced: true, name: Validation.nameIsDNSSubdomain)
        errors += KeyedData.validateKeys([(FieldPath("data"), data), (FieldPath("binaryData"), binaryData)])
        for (key, value) in binaryData ?? [:] where Data(base64Encoded: value) == nil {
            errors.append(.invalid(FieldPath("binaryData").key(key), "<value omitted>", "illegal base64 data"))
        }
        let total = (data ?? [:]).values.reduce(0) { $0 + $1.utf8.count } + (binaryData ?? [:]).values.reduce(0) { $0 + $1.utf8.count * 3 / 4 }
        if total > KeyedData.maxTotalBytes {
            errors.append(.tooLong("", max: KeyedData.maxTotalBytes))
        }
        return errors.deduplicated()
    }

    /// Metadata update rules, create validation, and immutability.
    public func validateUpdate(old: ConfigMap) -> [FieldError] {
        (Validation.objectMetaUpdate(metadata, old.metadata) + validate()
            + KeyedData.immutableUpdate(old.immutable, immutable, dataChanged: data != old.data || binaryData != old.binaryData)).deduplicated()
    }
}

extension Secret {
    /// `stringData` merged into `data` (base64) and dropped, as the API server does on every
    /// write; `type` defaults to `Opaque`.
    public mutating func applyDefaults() {
        if let plain = stringData {
            var merged = data ?? [:]
            for (key, value) in plain { merged[key] = Data(value.utf8).base64EncodedString() }
            data = merged
            stringData = nil
        }
        if (type ?? "").isEmpty { type = "Opaque" }
    }

    /// Create validation (`ValidateSecret`).
    public func validate() -> [FieldError] {
        var errors = Validation.objectMeta(metadata, namespaced: true, name: Validation.nameIsDNSSubdomain)
        errors += KeyedData.validateKeys([(FieldPath("data"), data)])
        var total = 0
        for (key, value) in data ?? [:] {
            if let bytes = Data(base64Encoded: value) { total += bytes.count } else {
                errors.append(.invalid(FieldPath("data").key(key), "<secret contents redacted>", "illegal base64 data"))
            }
        }
        if total > KeyedData.maxTotalBytes { errors.append(.tooLong("data", max: KeyedData.maxTotalBytes)) }
        return errors.deduplicated()
    }

    /// Metadata update rules, create validation, immutability, and `type` never changing.
    public func validateUpdate(old: Secret) -> [FieldError] {
        var errors = Validation.objectMetaUpdate(metadata, old.metadata) + validate()
        if type != old.type { errors.append(.invalid("type", type ?? "", "field is immutable")) }
        errors += KeyedData.immutableUpdate(old.immutable, immutable, dataChanged: data != old.data)
        return errors.deduplicated()
    }
}
