// Pod defaulting as the API server applies it on create (core/v1 defaults.go: `SetDefaults_Pod`,
// `SetDefaults_PodSpec`, `SetDefaults_Container`, `SetDefaults_Volume`, `SetDefaults_Probe`;
// then the pod strategy's `status.phase` and `status.qosClass`), on the generated pod types.

extension Container {
    /// Container defaults (`SetDefaults_Container`, ports, probes, env field refs).
    mutating func applyDefaults() {
        if (imagePullPolicy ?? "").isEmpty {
            imagePullPolicy = Self.imageTag(image ?? "") == "latest" ? "Always" : "IfNotPresent"
        }
        if (terminationMessagePath ?? "").isEmpty { terminationMessagePath = "/dev/termination-log" }
        if (terminationMessagePolicy ?? "").isEmpty { terminationMessagePolicy = "File" }
        if var ports {
            for index in ports.indices where (ports[index].protocol ?? "").isEmpty { ports[index].protocol = "TCP" }
            self.ports = ports
        }
        if var env {
            for index in env.indices {
                if var fieldRef = env[index].valueFrom?["fieldRef"], fieldRef["apiVersion"] == nil {
                    fieldRef["apiVersion"] = "v1"
                    env[index].valueFrom?["fieldRef"] = fieldRef
                }
            }
            self.env = env
        }
        livenessProbe = livenessProbe.map(Self.defaultedProbe)
        readinessProbe = readinessProbe.map(Self.defaultedProbe)
        startupProbe = startupProbe.map(Self.defaultedProbe)
    }

    /// `SetDefaults_Probe` and `SetDefaults_HTTPGetAction` applied to a raw probe.
    static func defaultedProbe(_ probe: JSONValue) -> JSONValue {
        guard case .object = probe else { return probe }
        var probe = probe
        let defaults: [(String, JSONValue)] = [
            ("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1), ("failureThreshold", 3),
        ]
        for (key, value) in defaults where probe[key] == nil { probe[key] = value }
        if var httpGet = probe["httpGet"], case .object = httpGet {
            if httpGet["path"] == nil { httpGet["path"] = "/" }
            if httpGet["scheme"] == nil { httpGet["scheme"] = "HTTP" }
            probe["httpGet"] = httpGet
        }
        return probe
    }

    /// Copies limits into requests that are not set (`SetDefaults_Pod`).
    mutating func defaultRequestsFromLimits() {
        guard var resources, let limits = resources.limits else { return }
        var requests = resources.requests ?? [:]
        for (name, value) in limits where requests[name] == nil { requests[name] = value }
        resources.requests = requests
        self.resources = resources
    }
}

extension Volume {
    /// Volume defaults: an `emptyDir` when no source is set, file modes, `hostPath.type`.
    mutating func applyDefaults() {
        if sourceNames.isEmpty { emptyDir = EmptyDirVolumeSource() }
        if hostPath != nil && hostPath?.type == nil { hostPath?.type = "" }
        for key in ["secret", "configMap", "downwardAPI", "projected"] {
            let current: JSONValue?
            switch key {
            case "secret": current = secret
            case "configMap": current = configMap
            case "downwardAPI": current = downwardAPI
            default: current = projected
            }
            guard var source = current, case .object = source, source["defaultMode"] == nil else { continue }
            source["defaultMode"] = 420
            switch key {
            case "secret": secret = source
            case "configMap": configMap = source
            case "downwardAPI": downwardAPI = source
            default: projected = source
            }
        }
    }
}

extension PodSpec {
    /// `SetDefaults_PodSpec` plus the pod-only defaults of `SetDefaults_Pod`.
    mutating func applyDefaults() {
        if (dnsPolicy ?? "").isEmpty { dnsPolicy = "ClusterFirst" }
        if (restartPolicy ?? "").isEmpty { restartPolicy = "Always" }
        if securityContext == nil { securityContext = [:] }
        if terminationGracePeriodSeconds == nil { terminationGracePeriodSeconds = 30 }
        if (schedulerName ?? "").isEmpty { schedulerName = "default-scheduler" }
        if enableServiceLinks == nil { enableServiceLinks = true }
        // v1 conversion keeps the deprecated alias in step with serviceAccountName.
        if (serviceAccountName ?? "").isEmpty, let alias = serviceAccount, !alias.isEmpty { serviceAccountName = alias }
        if let name = serviceAccountName, !name.isEmpty { serviceAccount = name }
        for index in containers.indices {
            containers[index].applyDefaults()
            containers[index].defaultRequestsFromLimits()
        }
        if var initContainers {
            for index in initContainers.indices {
                initContainers[index].applyDefaults()
                initContainers[index].defaultRequestsFromLimits()
            }
            self.initContainers = initContainers
        }
        if hostNetwork == true {
            func hostPorts(_ list: inout [Container]) {
                for c in list.indices {
                    guard var ports = list[c].ports else { continue }
                    for p in ports.indices where (ports[p].hostPort ?? 0) == 0 {
                        ports[p].hostPort = ports[p].containerPort
                    }
                    list[c].ports = ports
                }
            }
            hostPorts(&containers)
            if var initContainers {
                hostPorts(&initContainers)
                self.initContainers = initContainers
            }
        }
        if var volumes {
            for index in volumes.indices { volumes[index].applyDefaults() }
            self.volumes = volumes
        }
    }
}

extension Pod {
    /// Defaults as the API server applies them on create: `SetDefaults_Pod`/`PodSpec`/
    /// `Container`/`Volume`/`Probe`, then the strategy's `status.phase: Pending` and `qosClass`.
    public mutating func applyDefaults() {
        spec.applyDefaults()
        if (status.phase ?? "").isEmpty { status.phase = "Pending" }
        if (status.qosClass ?? "").isEmpty { status.qosClass = spec.qosClass }
    }
}
