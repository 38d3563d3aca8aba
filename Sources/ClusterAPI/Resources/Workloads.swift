// apps/v1 and batch/v1 defaulting (apps/v1 and batch/v1 `defaults.go`, the registries'
// `PrepareForCreate`) and validation (`pkg/apis/apps/validation`, `pkg/apis/batch/validation`),
// for the modelled fields, with Kubernetes' messages.

extension Validation {
    /// `ValidateNonnegativeField`.
    static func nonNegative<N: BinaryInteger>(_ value: N?, _ path: FieldPath) -> [FieldError] {
        guard let value, value < 0 else { return [] }
        return [.invalid(path, number: value, "must be greater than or equal to 0")]
    }

    /// A workload's selector (`ValidateLabelSelector` and the non-empty rule), and that it
    /// selects the template's labels. `kind` words the empty-selector message as upstream does.
    static func workloadSelector(_ selector: LabelSelectorSpec?, template labels: [String: String]?, kind: String,
                                 _ path: FieldPath) -> [FieldError] {
        guard let selector else { return [.required(path.child("selector"))] }
        let parsed: LabelSelector
        do { parsed = try selector.selector() } catch {
            return [.invalid(path.child("selector"), literal: compactJSON(selector), error.message)]
        }
        if (selector.matchLabels ?? [:]).isEmpty && (selector.matchExpressions ?? []).isEmpty {
            return [.invalid(path.child("selector"), literal: compactJSON(selector), "empty selector is invalid for \(kind)")]
        }
        if !parsed.matches(labels ?? [:]) {
            let literal = "map[string]string{" + (labels ?? [:]).sorted { $0.key < $1.key }
                .map { goQuoted($0.key) + ":" + goQuoted($0.value) }.joined(separator: ", ") + "}"
            return [.invalid(path.child("template", "metadata", "labels"), literal: literal,
                             "`selector` does not match template `labels`")]
        }
        return []
    }
}

extension PodTemplateSpec {
    /// `ValidatePodTemplateSpec` plus the workload rules: labels and annotations, the pod spec,
    /// a restart policy among `restartPolicies`, no `activeDeadlineSeconds` unless allowed.
    func validate(_ path: FieldPath, restartPolicies: [String], kind: String, allowDeadline: Bool = false) -> [FieldError] {
        var errors = Validation.labels(metadata.labels, path.child("metadata", "labels"))
        errors += Validation.annotations(metadata.annotations, path.child("metadata", "annotations"))
        errors += spec.validate(path: path.child("spec"))
        let policy = spec.restartPolicy ?? ""
        if policy.isEmpty {
            errors.append(.required(path.child("spec", "restartPolicy"),
                                    "valid values: " + restartPolicies.map(goQuoted).joined(separator: ", ")))
        } else if !restartPolicies.contains(policy) {
            errors.append(.notSupported(path.child("spec", "restartPolicy"), policy, restartPolicies))
        }
        if !allowDeadline, spec.activeDeadlineSeconds != nil {
            errors.append(.forbidden(path.child("spec", "activeDeadlineSeconds"), "activeDeadlineSeconds in \(kind) is not Supported"))
        }
        return errors
    }
}

// MARK: StatefulSet

extension StatefulSet {
    static let podManagementPolicies = ["OrderedReady", "Parallel"]
    static let retentionPolicies = ["Retain", "Delete"]

    /// `SetDefaults_StatefulSet`.
    public mutating func applyDefaults() {
        if (spec.podManagementPolicy ?? "").isEmpty { spec.podManagementPolicy = "OrderedReady" }
        var strategy = spec.updateStrategy ?? StatefulSetUpdateStrategy()
        if (strategy.type ?? "").isEmpty { strategy.type = "RollingUpdate" }
        if strategy.type == "RollingUpdate" {
            var rolling = strategy.rollingUpdate ?? RollingUpdateStatefulSetStrategy()
            if rolling.partition == nil { rolling.partition = 0 }
            strategy.rollingUpdate = rolling
        }
        spec.updateStrategy = strategy
        var retention = spec.persistentVolumeClaimRetentionPolicy ?? StatefulSetPersistentVolumeClaimRetentionPolicy()
        if (retention.whenDeleted ?? "").isEmpty { retention.whenDeleted = "Retain" }
        if (retention.whenScaled ?? "").isEmpty { retention.whenScaled = "Retain" }
        spec.persistentVolumeClaimRetentionPolicy = retention
        if spec.replicas == nil { spec.replicas = 1 }
        if spec.revisionHistoryLimit == nil { spec.revisionHistoryLimit = 10 }
        spec.template.spec.applyDefaults()
        if var claims = spec.volumeClaimTemplates {
            for index in claims.indices where claims[index].spec.volumeMode == nil { claims[index].spec.volumeMode = "Filesystem" }
            spec.volumeClaimTemplates = claims
        }
    }

    /// Create validation (`ValidateStatefulSet`).
    public func validate() -> [FieldError] {
        var errors = Validation.objectMeta(metadata, namespaced: true, name: Validation.nameIsDNSLabel)
        errors += spec.validate("spec")
        return errors.deduplicated()
    }

    static let updatableSpecFields = "'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds'"

    /// Update validation (`ValidateStatefulSetUpdate`): only replicas, ordinals, template,
    /// update strategy, claim retention and minReadySeconds may change.
    public func validateUpdate(old: StatefulSet) -> [FieldError] {
        var errors = Validation.objectMetaUpdate(metadata, old.metadata) + spec.validate("spec")
        var mine = spec, theirs = old.spec
        for s in [\StatefulSetSpec.replicas, \.minReadySeconds] { mine[keyPath: s] = nil; theirs[keyPath: s] = nil }
        mine.ordinals = nil; theirs.ordinals = nil
        mine.template = PodTemplateSpec(); theirs.template = PodTemplateSpec()
        mine.updateStrategy = nil; theirs.updateStrategy = nil
        mine.persistentVolumeClaimRetentionPolicy = nil; theirs.persistentVolumeClaimRetentionPolicy = nil
        if mine != theirs {
            errors.append(.forbidden("spec", "updates to statefulset spec for fields other than \(Self.updatableSpecFields) are forbidden"))
        }
        return errors.deduplicated()
    }

    /// The first ordinal (`spec.ordinals.start`, 0 by default).
    public var firstOrdinal: Int { Int(spec.ordinals?.start ?? 0) }
}

extension StatefulSetSpec {
    /// `ValidateStatefulSetSpec`.
    func validate(_ path: FieldPath) -> [FieldError] {
        var errors: [FieldError] = []
        switch podManagementPolicy ?? "" {
        case "": errors.append(.required(path.child("podManagementPolicy")))
        case "OrderedReady", "Parallel": break
        case let other: errors.append(.invalid(path.child("podManagementPolicy"), other, "must be 'OrderedReady' or 'Parallel'"))
        }
        let strategyPath = path.child("updateStrategy")
        switch updateStrategy?.type ?? "" {
        case "": errors.append(.required(strategyPath))
        case "OnDelete":
            if updateStrategy?.rollingUpdate != nil {
                errors.append(.invalid(strategyPath.child("rollingUpdate"), literal: compactJSON(updateStrategy!.rollingUpdate!),
                                       "only allowed for updateStrategy 'RollingUpdate'"))
            }
        case "RollingUpdate":
            errors += Validation.nonNegative(updateStrategy?.rollingUpdate?.partition, strategyPath.child("rollingUpdate", "partition"))
        case let other:
            errors.append(.invalid(strategyPath, other, "must be 'RollingUpdate' or 'OnDelete'"))
        }
        if let retention = persistentVolumeClaimRetentionPolicy {
            let retentionPath = path.child("persistentVolumeClaimRetentionPolicy")
            for (name, value) in [("whenDeleted", retention.whenDeleted ?? ""), ("whenScaled", retention.whenScaled ?? "")]
            where !StatefulSet.retentionPolicies.contains(value) {
                errors.append(.notSupported(retentionPath.child(name), value, StatefulSet.retentionPolicies))
            }
        }
        errors += Validation.nonNegative(replicas, path.child("replicas"))
        errors += Validation.nonNegative(minReadySeconds, path.child("minReadySeconds"))
        errors += Validation.nonNegative(revisionHistoryLimit, path.child("revisionHistoryLimit"))
        errors += Validation.nonNegative(ordinals?.start, path.child("ordinals", "start"))
        if let service = serviceName, !service.isEmpty {
            errors += Validation.dns1123Label(service, path.child("serviceName"))
        }
        errors += Validation.workloadSelector(selector, template: template.metadata.labels, kind: "statefulset", path)
        // Upstream skips the template's pod spec (its mounts name claim templates, not volumes);
        // Ballast validates it with each claim template as the volume the replicas will have.
        var withClaims = template
        var volumes = (withClaims.spec.volumes ?? []).filter { volume in
            !(volumeClaimTemplates ?? []).contains { $0.metadata.name == volume.name }
        }
        for claim in volumeClaimTemplates ?? [] where !(claim.metadata.name ?? "").isEmpty {
            volumes.append(Volume(name: claim.metadata.name ?? "",
                                  persistentVolumeClaim: PersistentVolumeClaimVolumeSource(claimName: claim.metadata.name ?? "")))
        }
        withClaims.spec.volumes = volumes.isEmpty ? nil : volumes
        errors += withClaims.validate(path.child("template"), restartPolicies: ["Always"], kind: "StatefulSet")
        var names: Set<String> = []
        for (index, claim) in (volumeClaimTemplates ?? []).enumerated() {
            let claimPath = path.child("volumeClaimTemplates").index(index)
            let name = claim.metadata.name ?? ""
            if name.isEmpty {
                errors.append(.required(claimPath.child("metadata", "name")))
            } else {
                errors += Validation.dns1123Subdomain(name, claimPath.child("metadata", "name"))
                if !names.insert(name).inserted { errors.append(.duplicate(claimPath.child("metadata", "name"), name)) }
            }
            errors += Validation.labels(claim.metadata.labels, claimPath.child("metadata", "labels"))
            errors += claim.spec.validate(path: claimPath.child("spec"))
        }
        return errors
    }
}

// MARK: Deployment and ReplicaSet

extension Deployment {
    static let strategies = ["Recreate", "RollingUpdate"]

    /// `SetDefaults_Deployment`.
    public mutating func applyDefaults() {
        if spec.replicas == nil { spec.replicas = 1 }
        var strategy = spec.strategy ?? DeploymentStrategy()
        if (strategy.type ?? "").isEmpty { strategy.type = "RollingUpdate" }
        if strategy.type == "RollingUpdate" {
            var rolling = strategy.rollingUpdate ?? RollingUpdateDeployment()
            if rolling.maxUnavailable == nil { rolling.maxUnavailable = .string("25%") }
            if rolling.maxSurge == nil { rolling.maxSurge = .string("25%") }
            strategy.rollingUpdate = rolling
        }
        spec.strategy = strategy
        if spec.revisionHistoryLimit == nil { spec.revisionHistoryLimit = 10 }
        if spec.progressDeadlineSeconds == nil { spec.progressDeadlineSeconds = 600 }
        spec.template.spec.applyDefaults()
    }

    /// Create validation (`ValidateDeployment`).
    public func validate() -> [FieldError] {
        var errors = Validation.objectMeta(metadata, namespaced: true, name: Validation.nameIsDNSSubdomain)
        errors += spec.validate("spec")
        return errors.deduplicated()
    }

    /// Update validation (`ValidateDeploymentUpdate`): the selector is immutable in apps/v1.
    public func validateUpdate(old: Deployment) -> [FieldError] {
        var errors = Validation.objectMetaUpdate(metadata, old.metadata) + spec.validate("spec")
        if spec.selector != old.spec.selector {
            errors.append(.invalid("spec.selector", literal: compactJSON(spec.selector), "field is immutable"))
        }
        return errors.deduplicated()
    }
}

extension DeploymentSpec {
    /// `ValidateDeploymentSpec`.
    func validate(_ path: FieldPath) -> [FieldError] {
        var errors = Validation.nonNegative(replicas, path.child("replicas"))
        errors += Validation.workloadSelector(selector, template: template.metadata.labels, kind: "deployment", path)
        errors += template.validate(path.child("template"), restartPolicies: ["Always"], kind: "Deployment")
        let strategyPath = path.child("strategy")
        switch strategy?.type ?? "" {
        case "Recreate":
            if strategy?.rollingUpdate != nil {
                errors.append(.forbidden(strategyPath.child("rollingUpdate"), "may not be specified when strategy `type` is 'Recreate'"))
            }
        case "RollingUpdate":
            if let rolling = strategy?.rollingUpdate {
                errors += rolling.validate(strategyPath.child("rollingUpdate"))
            } else {
                errors.append(.required(strategyPath.child("rollingUpdate"), "this should be defaulted and never be nil"))
            }
        case let other:
            errors.append(.notSupported(strategyPath.child("type"), other, Deployment.strategies))
        }
        errors += Validation.nonNegative(minReadySeconds, path.child("minReadySeconds"))
        errors += Validation.nonNegative(revisionHistoryLimit, path.child("revisionHistoryLimit"))
        if let deadline = progressDeadlineSeconds {
            errors += Validation.nonNegative(deadline, path.child("progressDeadlineSeconds"))
            if deadline <= (minReadySeconds ?? 0) {
                errors.append(.invalid(path.child("progressDeadlineSeconds"), number: deadline, "must be greater than minReadySeconds"))
            }
        }
        return errors
    }
}

extension RollingUpdateDeployment {
    /// `ValidateRollingUpdateDeployment`.
    func validate(_ path: FieldPath) -> [FieldError] {
        var errors: [FieldError] = []
        func check(_ value: IntOrString?, _ name: String) -> Int {
            guard let value else { return 0 }
            let field = path.child(name)
            switch value {
            case .int(let number):
                errors += Validation.nonNegative(number, field)
                return Int(number)
            case .string(let text):
                guard let percent = value.percent else {
                    errors.append(.invalid(field, text, "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"))
                    return 0
                }
                if percent < 0 { errors.append(.invalid(field, text, "must be greater than or equal to 0")) }
                if percent > 100 { errors.append(.invalid(field, text, "must not be greater than 100%")) }
                return percent
            }
        }
        let unavailable = check(maxUnavailable, "maxUnavailable")
        let surge = check(maxSurge, "maxSurge")
        if unavailable == 0 && surge == 0 {
            errors.append(.invalid(path.child("maxUnavailable"), maxUnavailable?.description ?? "0", "may not be 0 when `maxSurge` is 0"))
        }
        return errors
    }
}

extension ReplicaSet {
    /// `SetDefaults_ReplicaSet`.
    public mutating func applyDefaults() {
        if spec.replicas == nil { spec.replicas = 1 }
        spec.template?.spec.applyDefaults()
    }

    /// Create validation (`ValidateReplicaSet`).
    public func validate() -> [FieldError] {
        var errors = Validation.objectMeta(metadata, namespaced: true, name: Validation.nameIsDNSSubdomain)
        errors += spec.validate("spec")
        return errors.deduplicated()
    }

    /// Update validation (`ValidateReplicaSetUpdate`): the selector is immutable in apps/v1.
    public func validateUpdate(old: ReplicaSet) -> [FieldError] {
        var errors = Validation.objectMetaUpdate(metadata, old.metadata) + spec.validate("spec")
        if spec.selector != old.spec.selector {
            errors.append(.invalid("spec.selector", literal: compactJSON(spec.selector), "field is immutable"))
        }
        return errors.deduplicated()
    }
}

extension ReplicaSetSpec {
    /// `ValidateReplicaSetSpec`.
    func validate(_ path: FieldPath) -> [FieldError] {
        var errors = Validation.nonNegative(replicas, path.child("replicas"))
        errors += Validation.nonNegative(minReadySeconds, path.child("minReadySeconds"))
        guard let template else {
            errors.append(.required(path.child("template")))
            return errors
        }
        errors += Validation.workloadSelector(selector, template: template.metadata.labels, kind: "deployment", path)
        errors += template.validate(path.child("template"), restartPolicies: ["Always"], kind: "ReplicaSet")
        return errors
    }
}

// MARK: ControllerRevision

extension ControllerRevision {
    public mutating func applyDefaults() {}

    /// `ValidateControllerRevisionCreate`.
    public func validate() -> [FieldError] {
        var errors = Validation.objectMeta(metadata, namespaced: true, name: Validation.nameIsDNSSubdomain)
        if data == nil { errors.append(.required("data")) }
        errors += Validation.nonNegative(revision, "revision")
        return errors.deduplicated()
    }

    /// `ValidateControllerRevisionUpdate`: `data` is immutable.
    public func validateUpdate(old: ControllerRevision) -> [FieldError] {
        var errors = Validation.objectMetaUpdate(metadata, old.metadata) + validate()
        if data != old.data { errors.append(.invalid("data", literal: "{}", "field is immutable")) }
        return errors.deduplicated()
    }
}

// MARK: Scale

extension Scale {
    public mutating func applyDefaults() {}

    /// `ValidateScale`: a non-negative replica count.
    public func validate() -> [FieldError] {
        Validation.nonNegative(spec.replicas, "spec.replicas")
    }

    public func validateUpdate(old: Scale) -> [FieldError] { validate() }
}

// MARK: Job

extension Job {
    /// The label a generated selector matches: the Job's uid.
    public static let controllerUIDLabel = "batch.kubernetes.io/controller-uid"
    /// The label carrying the Job's name on its pods.
    public static let jobNameLabel = "batch.kubernetes.io/job-name"
    static let completionModes = ["NonIndexed", "Indexed"]

    /// `SetDefaults_Job`, and the strategy's generated selector (`generateSelector`): unless
    /// `manualSelector`, the pods carry `batch.kubernetes.io/controller-uid: <uid>` and
    /// `batch.kubernetes.io/job-name` (and their legacy forms) and the selector matches the uid.
    public mutating func applyDefaults() {
        if spec.completions == nil && spec.parallelism == nil { spec.completions = 1 }
        if spec.parallelism == nil { spec.parallelism = 1 }
        if spec.backoffLimit == nil && spec.backoffLimitPerIndex == nil { spec.backoffLimit = 6 }
        if (spec.completionMode ?? "").isEmpty { spec.completionMode = "NonIndexed" }
        if spec.suspend == nil { spec.suspend = false }
        if (spec.podReplacementPolicy ?? "").isEmpty {
            spec.podReplacementPolicy = spec.podFailurePolicy == nil ? "TerminatingOrFailed" : "Failed"
        }
        if spec.manualSelector != true, let uid = metadata.uid, !uid.isEmpty {
            var labels = spec.template.metadata.labels ?? [:]
            let name = metadata.name ?? ""
            if labels[Self.controllerUIDLabel] == nil { labels[Self.controllerUIDLabel] = uid }
            if labels["controller-uid"] == nil { labels["controller-uid"] = uid }
            if labels[Self.jobNameLabel] == nil { labels[Self.jobNameLabel] = name }
            if labels["job-name"] == nil { labels["job-name"] = name }
            spec.template.metadata.labels = labels
            if spec.selector == nil { spec.selector = LabelSelectorSpec(matchLabels: [Self.controllerUIDLabel: uid]) }
        }
        spec.template.spec.applyDefaults()
    }

    /// Create validation (`ValidateJob`).
    public func validate() -> [FieldError] {
        var errors = Validation.objectMeta(metadata, namespaced: true, name: Validation.nameIsDNSLabel)
        if spec.manualSelector != true, let uid = metadata.uid {
            let generated = LabelSelectorSpec(matchLabels: [Self.controllerUIDLabel: uid])
            if let selector = spec.selector, selector != generated {
                errors.append(.invalid("spec.selector", literal: compactJSON(selector), "`selector` not auto-generated"))
            }
        }
        errors += spec.validate("spec")
        return errors.deduplicated()
    }

    /// Update validation (`ValidateJobUpdate`): the selector, completions (non-indexed),
    /// completion mode and the pod template are immutable.
    public func validateUpdate(old: Job) -> [FieldError] {
        var errors = Validation.objectMetaUpdate(metadata, old.metadata) + spec.validate("spec")
        if spec.selector != old.spec.selector {
            errors.append(.invalid("spec.selector", literal: compactJSON(spec.selector), "field is immutable"))
        }
        if spec.completions != old.spec.completions && spec.completionMode != "Indexed" {
            errors.append(.invalid("spec.completions", literal: spec.completions.map { String($0) } ?? "null", "field is immutable"))
        }
        if spec.completionMode != old.spec.completionMode {
            errors.append(.invalid("spec.completionMode", spec.completionMode ?? "", "field is immutable"))
        }
        if spec.template != old.spec.template {
            errors.append(.invalid("spec.template", literal: compactJSON(spec.template), "field is immutable"))
        }
        return errors.deduplicated()
    }
}

extension JobSpec {
    /// `validateJobSpec`.
    func validate(_ path: FieldPath) -> [FieldError] {
        var errors = Validation.nonNegative(parallelism, path.child("parallelism"))
        errors += Validation.nonNegative(completions, path.child("completions"))
        if let deadline = activeDeadlineSeconds, deadline <= 0 {
            errors.append(.invalid(path.child("activeDeadlineSeconds"), number: deadline, "must be greater than 0"))
        }
        errors += Validation.nonNegative(backoffLimit, path.child("backoffLimit"))
        errors += Validation.nonNegative(ttlSecondsAfterFinished, path.child("ttlSecondsAfterFinished"))
        let mode = completionMode ?? ""
        if !Job.completionModes.contains(mode) {
            errors.append(.notSupported(path.child("completionMode"), mode, Job.completionModes))
        } else if mode == "Indexed" && completions == nil {
            errors.append(.required(path.child("completions"), "when completion mode is Indexed"))
        }
        errors += Validation.workloadSelector(selector, template: template.metadata.labels, kind: "job", path)
        errors += template.validate(path.child("template"), restartPolicies: ["OnFailure", "Never"], kind: "Job", allowDeadline: true)
        return errors
    }

    /// Whether the Job needs a fixed number of successes (it is not a work queue).
    public var hasCompletions: Bool { completions != nil }
}
