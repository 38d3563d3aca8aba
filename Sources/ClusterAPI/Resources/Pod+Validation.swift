// Pod validation (core validation.go): `ValidatePodCreate` and `ValidatePodUpdate` on `Pod`,
// `ValidatePodSpec` for the modelled fields on `PodSpec` (volumes, containers and init
// containers, ports, environment, mounts and devices, tolerations, the enumerated policies),
// with the field paths and messages Kubernetes reports.
import Foundation

extension Volume {
    /// The field name Kubernetes reports for a second source (it has a few quirks).
    static func forbiddenPathName(_ source: String) -> String {
        switch source {
        case "cephfs": return "cephFS"
        case "downwardAPI": return "downwarAPI"
        default: return source
        }
    }
}

extension Pod {
    /// Create validation (`ValidatePodCreate`).
    public func validate() -> [FieldError] {
        var errors = Validation.objectMeta(metadata, namespaced: true, name: Validation.nameIsDNSSubdomain)
        errors += spec.validate(path: "spec")
        let whitespace = { (list: [Container]?, path: FieldPath) -> [FieldError] in
            (list ?? []).enumerated().compactMap { index, container in
                let image = container.image ?? ""
                return image != image.trimmingCharacters(in: .whitespaces)
                    ? .invalid(path.index(index).child("image"), image, "must not have leading or trailing whitespace")
                    : nil
            }
        }
        errors += whitespace(spec.containers, "spec.containers")
        errors += whitespace(spec.initContainers, "spec.initContainers")
        if let ephemeral = spec.ephemeralContainers, !ephemeral.isEmpty {
            errors.append(.forbidden("spec.ephemeralContainers", "cannot be set on create"))
        }
        return errors.deduplicated()
    }

    static let updatableSpecFields = [
        "`spec.containers[*].image`",
        "`spec.initContainers[*].image`",
        "`spec.activeDeadlineSeconds`",
        "`spec.tolerations` (only additions to existing tolerations)",
        "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
    ]

    /// Update validation (`ValidatePodUpdate`): only images, `activeDeadlineSeconds`
    /// (lowered), added tolerations and removed scheduling gates may change.
    public func validateUpdate(old: Pod) -> [FieldError] {
        var errors = Validation.objectMetaUpdate(metadata, old.metadata)
        errors += validate().filter { $0.field != "spec.ephemeralContainers" }
        let specPath: FieldPath = "spec"
        for (new, old, path) in [
            (spec.containers, old.spec.containers, specPath.child("containers")),
            (spec.initContainers ?? [], old.spec.initContainers ?? [], specPath.child("initContainers")),
        ] {
            if new.count != old.count {
                errors.append(.forbidden(path, "pod updates may not add or remove containers"))
                return errors.deduplicated()
            }
            for (index, container) in new.enumerated() where (container.image ?? "").isEmpty {
                errors.append(.required(path.index(index).child("image")))
            }
        }
        if let deadline = spec.activeDeadlineSeconds {
            if deadline < 0 || deadline > Int64(Int32.max) {
                errors.append(
                    .invalid(specPath.child("activeDeadlineSeconds"), number: deadline,
                        "must be between 0 and 2147483647, inclusive"))
                return errors.deduplicated()
            }
            if let previous = old.spec.activeDeadlineSeconds, previous < deadline {
                errors.append(
                    .invalid(specPath.child("activeDeadlineSeconds"), number: deadline,
                        "must be less than or equal to previous value"))
                return errors.deduplicated()
            }
        } else if old.spec.activeDeadlineSeconds != nil {
            errors.append(
                .invalid(specPath.child("activeDeadlineSeconds"), literal: "null",
                    "must not update from a positive integer to nil value"))
        }
        // Only additions to tolerations (tolerationSeconds may change).
        for previous in old.spec.tolerations ?? [] {
            let found = (spec.tolerations ?? []).contains { candidate in
                var clone = previous
                clone.tolerationSeconds = candidate.tolerationSeconds
                return clone == candidate
            }
            if !found {
                errors.append(
                    .forbidden(specPath.child("tolerations"), "existing toleration can not be modified except its tolerationSeconds"))
                break
            }
        }
        // Only deletions of scheduling gates.
        let oldGates = Set((old.spec.schedulingGates ?? []).compactMap { $0["name"]?.stringValue })
        for (index, gate) in (spec.schedulingGates ?? []).enumerated() {
            if let name = gate["name"]?.stringValue, !oldGates.contains(name) {
                errors.append(
                    .forbidden(specPath.child("schedulingGates").index(index).child("name"),
                        "only deletion is allowed, but found new scheduling gate '\(name)'"))
            }
        }
        if spec != old.spec {
            var munged = spec
            for index in munged.containers.indices { munged.containers[index].image = old.spec.containers[index].image }
            if var initContainers = munged.initContainers, let oldInit = old.spec.initContainers {
                for index in initContainers.indices { initContainers[index].image = oldInit[index].image }
                munged.initContainers = initContainers
            }
            munged.activeDeadlineSeconds = old.spec.activeDeadlineSeconds
            munged.schedulingGates = old.spec.schedulingGates
            munged.tolerations = old.spec.tolerations
            if let previous = old.spec.terminationGracePeriodSeconds, previous < 0,
                munged.terminationGracePeriodSeconds == 1
            {
                munged.terminationGracePeriodSeconds = previous
            }
            if munged != old.spec {
                errors.append(
                    .forbidden(specPath,
                        "pod updates may not change fields other than "
                            + Self.updatableSpecFields.joined(separator: ",") + "\n" + jsonDiff(old.spec, munged)))
            }
        }
        return errors.deduplicated()
    }
}

extension PodSpec {
    static let restartPolicies = ["Always", "OnFailure", "Never"]
    static let dnsPolicies = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"]
    static let pullPolicies = ["Always", "IfNotPresent", "Never"]
    static let protocols = ["SCTP", "TCP", "UDP"]
    static let terminationMessagePolicies = ["File", "FallbackToLogsOnError"]

    /// `ValidatePodSpec` for the modelled fields.
    func validate(path: FieldPath) -> [FieldError] {
        var errors: [FieldError] = []
        if terminationGracePeriodSeconds == nil { errors.append(.required(path.child("terminationGracePeriodSeconds"))) }

        // Volumes: names and exactly one source each.
        var volumeSources: [String: Volume] = [:]
        for (index, volume) in (volumes ?? []).enumerated() {
            let volumePath = path.child("volumes").index(index)
            var volumeErrors = Self.validateVolumeSource(volume, volumePath)
            if volume.name.isEmpty {
                volumeErrors.append(.required(volumePath.child("name")))
            } else {
                volumeErrors += Validation.dns1123Label(volume.name, volumePath.child("name"))
            }
            if volumeSources[volume.name] != nil { volumeErrors.append(.duplicate(volumePath.child("name"), volume.name)) }
            if volumeErrors.isEmpty { volumeSources[volume.name] = volume } else { errors += volumeErrors }
        }

        // Containers.
        let containersPath = path.child("containers")
        if containers.isEmpty {
            errors.append(.required(containersPath))
        } else {
            var names = Set<String>()
            for (index, container) in containers.enumerated() {
                let containerPath = containersPath.index(index)
                errors += Self.validateContainer(container, volumes: volumeSources, containerPath)
                if names.contains(container.name) {
                    errors.append(.duplicate(containerPath.child("name"), container.name))
                } else {
                    names.insert(container.name)
                }
                if container.restartPolicy != nil {
                    errors.append(.forbidden(containerPath.child("restartPolicy"), "may not be set for non-init containers"))
                }
            }
            errors += Self.hostPortConflicts(containers, containersPath)
        }
        var allNames = Set(containers.map(\.name))
        for (index, container) in (initContainers ?? []).enumerated() {
            let containerPath = path.child("initContainers").index(index)
            errors += Self.validateContainer(container, volumes: volumeSources, containerPath)
            if let policy = container.restartPolicy, policy != "Always" {
                errors.append(.notSupported(containerPath.child("restartPolicy"), policy, ["Always"]))
            }
            if allNames.contains(container.name) {
                errors.append(.duplicate(containerPath.child("name"), container.name))
            } else if !container.name.isEmpty {
                allNames.insert(container.name)
            }
            errors += Self.hostPortConflicts([container], path.child("initContainers"))
            if container.restartPolicy != "Always" {
                for (probe, name) in [
                    (container.livenessProbe, "livenessProbe"), (container.readinessProbe, "readinessProbe"),
                    (container.startupProbe, "startupProbe"), (container.lifecycle, "lifecycle"),
                ] where probe != nil {
                    errors.append(
                        .forbidden(containerPath.child(name), "may not be set for init containers without restartPolicy=Always"))
                }
            }
        }

        errors += Self.enumeration(restartPolicy, Self.restartPolicies, path.child("restartPolicy"))
        errors += Self.enumeration(dnsPolicy, Self.dnsPolicies, path.child("dnsPolicy"))
        errors += Validation.labels(nodeSelector, path.child("nodeSelector"))
        if let name = serviceAccountName, !name.isEmpty {
            errors += Validation.nameIsDNSSubdomain(name, false).map { .invalid(path.child("serviceAccountName"), name, $0) }
        }
        if let name = nodeName, !name.isEmpty {
            errors += Validation.nameIsDNSSubdomain(name, false).map { .invalid(path.child("nodeName"), name, $0) }
        }
        if let deadline = activeDeadlineSeconds, deadline < 1 || deadline > Int64(Int32.max) {
            errors.append(
                .invalid(path.child("activeDeadlineSeconds"), number: deadline, "must be between 1 and 2147483647, inclusive"))
        }
        if let hostname, !hostname.isEmpty { errors += Validation.dns1123Label(hostname, path.child("hostname")) }
        if let subdomain, !subdomain.isEmpty { errors += Validation.dns1123Label(subdomain, path.child("subdomain")) }
        if let tolerations, !tolerations.isEmpty { errors += Self.validateTolerations(tolerations, path.child("tolerations")) }
        if let name = priorityClassName, !name.isEmpty {
            errors += Validation.nameIsDNSSubdomain(name, false).map { .invalid(path.child("priorityClassName"), name, $0) }
        }
        if let policy = preemptionPolicy {
            errors += Self.enumeration(policy, ["PreemptLowerPriority", "Never"], path.child("preemptionPolicy"))
        }
        return errors
    }

    /// Required when empty, unsupported when not in `supported`.
    static func enumeration(_ value: String?, _ supported: [String], _ path: FieldPath) -> [FieldError] {
        let value = value ?? ""
        if value.isEmpty { return [.required(path)] }
        return supported.contains(value) ? [] : [.notSupported(path, value, supported)]
    }

    static func validateVolumeSource(_ volume: Volume, _ path: FieldPath) -> [FieldError] {
        let sources = volume.sourceNames
        guard let first = sources.first else { return [.required(path, "must specify a volume type")] }
        var errors: [FieldError] = []
        for extra in sources.dropFirst() {
            errors.append(.forbidden(path.child(Volume.forbiddenPathName(extra)), "may not specify more than 1 volume type"))
        }
        switch first {
        case "hostPath":
            errors += Validation.hostPath(volume.hostPath!, path.child("hostPath"))
        case "persistentVolumeClaim":
            if volume.persistentVolumeClaim!.claimName.isEmpty {
                errors.append(.required(path.child("persistentVolumeClaim", "claimName")))
            }
        case "emptyDir":
            if let limit = volume.emptyDir?.sizeLimit, limit.sign < 0 {
                errors.append(.forbidden(path.child("emptyDir", "sizeLimit"), "SizeLimit field must be a valid resource quantity"))
            }
        case "csi":
            errors += Validation.csiDriverName(volume.csi?["driver"]?.stringValue ?? "", path.child("csi", "driver"))
        default:
            break
        }
        return errors
    }

    static func validateContainer(_ container: Container, volumes: [String: Volume], _ path: FieldPath) -> [FieldError] {
        var errors: [FieldError] = []
        if container.name.isEmpty {
            errors.append(.required(path.child("name")))
        } else {
            errors += Validation.dns1123Label(container.name, path.child("name"))
        }
        if (container.image ?? "").isEmpty { errors.append(.required(path.child("image"))) }
        errors += enumeration(container.terminationMessagePolicy, terminationMessagePolicies, path.child("terminationMessagePolicy"))

        // Ports.
        var portNames = Set<String>()
        for (index, port) in (container.ports ?? []).enumerated() {
            let portPath = path.child("ports").index(index)
            if let name = port.name, !name.isEmpty {
                let messages = Validation.portNameErrors(name)
                if !messages.isEmpty {
                    errors += messages.map { .invalid(portPath.child("name"), name, $0) }
                } else if portNames.contains(name) {
                    errors.append(.duplicate(portPath.child("name"), name))
                } else {
                    portNames.insert(name)
                }
            }
            if port.containerPort == 0 {
                errors.append(.required(portPath.child("containerPort")))
            } else {
                errors += Validation.portNumberErrors(Int64(port.containerPort)).map {
                    .invalid(portPath.child("containerPort"), number: port.containerPort, $0)
                }
            }
            if let hostPort = port.hostPort, hostPort != 0 {
                errors += Validation.portNumberErrors(Int64(hostPort)).map {
                    .invalid(portPath.child("hostPort"), number: hostPort, $0)
                }
            }
            errors += enumeration(port.protocol, protocols, portPath.child("protocol"))
        }

        // Environment (relaxed names, the 1.32 default).
        for (index, variable) in (container.env ?? []).enumerated() {
            let namePath = path.child("env").index(index).child("name")
            if variable.name.isEmpty {
                errors.append(.required(namePath))
            } else if variable.name.unicodeScalars.contains(where: { $0.value < 32 || $0.value > 126 || $0 == "=" }) {
                errors.append(
                    .invalid(namePath, variable.name,
                        "a valid environment variable name must consist only of printable ASCII characters other than '='"))
            }
        }

        // Volume mounts and devices.
        let mounts = container.volumeMounts ?? []
        let devices = container.volumeDevices ?? []
        let devicePaths = Dictionary(devices.map { ($0.name, $0.devicePath) }, uniquingKeysWith: { _, last in last })
        let mountPaths = Dictionary(mounts.map { ($0.name, $0.mountPath) }, uniquingKeysWith: { _, last in last })
        var mountPoints = Set<String>()
        for (index, mount) in mounts.enumerated() {
            let mountPath = path.child("volumeMounts").index(index)
            if mount.name.isEmpty { errors.append(.required(mountPath.child("name"))) }
            if volumes[mount.name] == nil { errors.append(.notFound(mountPath.child("name"), mount.name)) }
            if mount.mountPath.isEmpty { errors.append(.required(mountPath.child("mountPath"))) }
            if mountPoints.contains(mount.mountPath) {
                errors.append(.invalid(mountPath.child("mountPath"), mount.mountPath, "must be unique"))
            }
            mountPoints.insert(mount.mountPath)
            if devicePaths[mount.name] != nil {
                errors.append(.invalid(mountPath.child("name"), mount.name, "must not already exist in volumeDevices"))
            }
            if devicePaths.values.contains(mount.mountPath) {
                errors.append(
                    .invalid(mountPath.child("mountPath"), mount.mountPath, "must not already exist as a path in volumeDevices"))
            }
            if let subPath = mount.subPath, !subPath.isEmpty {
                errors += Validation.localDescendingPath(subPath, path.child("volumeMounts", "subPath"))
            }
        }
        var deviceNames = Set<String>()
        var seenDevicePaths = Set<String>()
        for (index, device) in devices.enumerated() {
            let devicePath = path.child("volumeDevices").index(index)
            let volume = volumes[device.name]
            if device.name.isEmpty { errors.append(.required(devicePath.child("name"))) }
            if deviceNames.contains(device.name) {
                errors.append(.invalid(devicePath.child("name"), device.name, "must be unique"))
            }
            if let volume, volume.persistentVolumeClaim == nil && volume.ephemeral == nil {
                errors.append(
                    .invalid(devicePath.child("name"), device.name,
                        "can only use volume source type of PersistentVolumeClaim or Ephemeral for block mode"))
            }
            if volume == nil { errors.append(.notFound(devicePath.child("name"), device.name)) }
            if device.devicePath.isEmpty { errors.append(.required(devicePath.child("devicePath"))) }
            if seenDevicePaths.contains(device.devicePath) {
                errors.append(.invalid(devicePath.child("devicePath"), device.devicePath, "must be unique"))
            }
            if !device.devicePath.isEmpty && device.devicePath.split(separator: "/").contains("..") {
                errors.append(.invalid(devicePath.child("devicePath"), device.devicePath, "can not contain backsteps ('..')"))
            } else {
                seenDevicePaths.insert(device.devicePath)
            }
            if mountPaths[device.name] != nil {
                errors.append(.invalid(devicePath.child("name"), device.name, "must not already exist in volumeMounts"))
            }
            if mountPaths.values.contains(device.devicePath) {
                errors.append(
                    .invalid(devicePath.child("devicePath"), device.devicePath, "must not already exist as a path in volumeMounts"))
            }
            if !device.name.isEmpty { deviceNames.insert(device.name) }
        }

        errors += enumeration(container.imagePullPolicy, pullPolicies, path.child("imagePullPolicy"))
        errors += Validation.resourceRequirements(container.resources, path.child("resources"))
        return errors
    }

    static func hostPortConflicts(_ containers: [Container], _ path: FieldPath) -> [FieldError] {
        var seen = Set<String>()
        var errors: [FieldError] = []
        for (c, container) in containers.enumerated() {
            for (p, port) in (container.ports ?? []).enumerated() {
                guard let hostPort = port.hostPort, hostPort != 0 else { continue }
                let key = "\(port.protocol ?? "")/\(port.hostIP ?? "")/\(hostPort)"
                if !seen.insert(key).inserted {
                    errors.append(.duplicate(path.index(c).child("ports").index(p).child("hostPort"), key))
                }
            }
        }
        return errors
    }

    static let taintEffects = ["NoSchedule", "PreferNoSchedule", "NoExecute"]

    static func validateTolerations(_ tolerations: [Toleration], _ path: FieldPath) -> [FieldError] {
        var errors: [FieldError] = []
        for (index, toleration) in tolerations.enumerated() {
            let itemPath = path.index(index)
            let key = toleration.key ?? ""
            let op = toleration.operator ?? ""
            let effect = toleration.effect ?? ""
            if !key.isEmpty { errors += Validation.qualifiedName(key, itemPath.child("key")) }
            if key.isEmpty && op != "Exists" {
                errors.append(
                    .invalid(itemPath.child("operator"), op,
                        "operator must be Exists when `key` is empty, which means \"match all values and all keys\""))
            }
            if toleration.tolerationSeconds != nil && effect != "NoExecute" {
                errors.append(
                    .invalid(itemPath.child("effect"), effect, "effect must be 'NoExecute' when `tolerationSeconds` is set"))
            }
            switch op {
            case "Equal", "":
                let messages = LabelValidation.labelValueErrors(toleration.value ?? "")
                if !messages.isEmpty {
                    errors.append(.invalid(itemPath.child("operator"), toleration.value ?? "", messages.joined(separator: ";")))
                }
            case "Exists":
                if let value = toleration.value, !value.isEmpty {
                    errors.append(.invalid(itemPath.child("operator"), value, "value must be empty when `operator` is 'Exists'"))
                }
            default:
                errors.append(.notSupported(itemPath.child("operator"), op, ["Equal", "Exists"]))
            }
            if !effect.isEmpty && !taintEffects.contains(effect) {
                errors.append(.notSupported(itemPath.child("effect"), effect, taintEffects))
            }
        }
        return errors
    }
}
