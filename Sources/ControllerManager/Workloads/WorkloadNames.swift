// The names Kubernetes' ReplicaSet and Deployment controllers write, verbatim: kubectl
// (`rollout status`, `rollout history`, `rollout undo`) and users match on them.

extension EventSourceName {
    public static let replicaSetController = "replicaset-controller"
    public static let deploymentController = "deployment-controller"
}

/// Deployment and ReplicaSet annotations and labels (apps/v1 and pkg/controller/deployment/util).
public enum DeploymentAnnotation {
    /// The revision of a ReplicaSet's template, copied to its Deployment.
    public static let revision = "deployment.kubernetes.io/revision"
    /// The revisions a ReplicaSet had before it was rolled back to (comma-separated).
    public static let revisionHistory = "deployment.kubernetes.io/revision-history"
    /// The Deployment's replicas when the ReplicaSet was last scaled by it.
    public static let desiredReplicas = "deployment.kubernetes.io/desired-replicas"
    /// The Deployment's replicas plus maxSurge then.
    public static let maxReplicas = "deployment.kubernetes.io/max-replicas"
    /// extensions/v1beta1's rollback request; never copied.
    public static let rollbackTo = "deprecated.deployment.rollback.to"
    /// What the user said the change was (`kubectl annotate … kubernetes.io/change-cause=…`), copied.
    public static let changeCause = "kubernetes.io/change-cause"
    public static let lastAppliedConfiguration = "kubectl.kubernetes.io/last-applied-configuration"
    /// The label (and selector term) that keeps the ReplicaSets of one Deployment apart.
    public static let podTemplateHashLabel = "pod-template-hash"

    /// Deployment annotations never copied to its ReplicaSets.
    static let notCopied: Set<String> = [lastAppliedConfiguration, revision, revisionHistory, desiredReplicas, maxReplicas, rollbackTo]
}

/// Deployment condition reasons (pkg/controller/deployment/util).
enum DeploymentReason {
    static let newReplicaSetCreated = "NewReplicaSetCreated"
    static let foundNewReplicaSet = "FoundNewReplicaSet"
    static let replicaSetUpdated = "ReplicaSetUpdated"
    static let newReplicaSetAvailable = "NewReplicaSetAvailable"
    static let progressDeadlineExceeded = "ProgressDeadlineExceeded"
    static let failedReplicaSetCreate = "ReplicaSetCreateError"
    static let paused = "DeploymentPaused"
    static let resumed = "DeploymentResumed"
    static let minimumReplicasAvailable = "MinimumReplicasAvailable"
    static let minimumReplicasUnavailable = "MinimumReplicasUnavailable"
}
