// The names kube-scheduler reads and writes, verbatim: users, `kubectl describe` and the other
// components (the provisioner reads `selected-node`) match on them.

/// Annotations, labels, taints and reasons the scheduler shares with the rest of the cluster.
public enum SchedulerNames {
    /// The scheduler a pod without `spec.schedulerName` belongs to.
    public static let defaultScheduler = "default-scheduler"
    /// PVC: the node the scheduler chose for a WaitForFirstConsumer claim (read by the provisioner).
    public static let selectedNode = "volume.kubernetes.io/selected-node"
    /// PVC: the binding has been completed once (the binder's `pv.kubernetes.io/bind-completed`).
    public static let bindCompleted = "pv.kubernetes.io/bind-completed"
    /// PV and PVC: the binding was made by a controller (here, the scheduler's assume), not the user.
    public static let boundByController = "pv.kubernetes.io/bound-by-controller"
    /// The taint that stands for `spec.unschedulable` (NodeUnschedulable lets a pod tolerating it through).
    public static let unschedulableTaint = "node.kubernetes.io/unschedulable"
    /// A class whose volumes nobody provisions (local volumes): only static PVs can serve it.
    public static let noProvisioner = "kubernetes.io/no-provisioner"
    /// Condition type and reasons on the pod.
    public static let podScheduled = "PodScheduled"
    public static let reasonUnschedulable = "Unschedulable"
    public static let reasonSchedulerError = "SchedulerError"
    /// Event reasons.
    public static let eventScheduled = "Scheduled"
    public static let eventFailedScheduling = "FailedScheduling"
}
