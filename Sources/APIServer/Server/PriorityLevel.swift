/// The priority level of a request: a small version of Kubernetes' API Priority and Fairness,
/// with fixed levels instead of FlowSchema and PriorityLevelConfiguration objects.
///
/// | level | who (Kubernetes' default FlowSchema it stands for) |
/// |---|---|
/// | `exempt` | group `system:masters` (`exempt`): never limited nor queued |
/// | `system` | group `system:nodes` (`system-nodes`); users `system:kube-controller-manager`, `system:kube-scheduler` (`kube-controller-manager`, `kube-scheduler`), `system:cloud-controller-manager` and the `kube-system/cloud-controller-manager` service account (`kube-system-service-accounts`) |
/// | `workload` | everyone else (`global-default`, `catch-all`) |
public enum PriorityLevel: String, Sendable, CaseIterable {
    case exempt
    case system
    case workload

    /// The control plane's own users, whose requests a bulk client must not starve.
    public static let systemUsers: Set<String> = [
        "system:kube-controller-manager", "system:kube-scheduler", "system:cloud-controller-manager",
        "system:serviceaccount:kube-system:cloud-controller-manager",
    ]

    /// The level of `user`'s requests.
    public static func of(_ user: UserInfo) -> PriorityLevel {
        if user.groups.contains("system:masters") { return .exempt }
        if user.groups.contains("system:nodes") || systemUsers.contains(user.name) { return .system }
        return .workload
    }
}
