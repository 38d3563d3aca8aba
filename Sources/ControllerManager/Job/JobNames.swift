// The names Kubernetes' Job controller writes, verbatim: kubectl, `kubectl wait
// --for=condition=complete`, TTL controllers and users match on them.
import ClusterAPI

extension Finalizer {
    /// On every pod of a Job until the controller has counted it in the Job's status
    /// (`batch.JobTrackingFinalizer`): a finished pod cannot vanish before it is counted.
    public static let jobTracking = "batch.kubernetes.io/job-tracking"
}

extension Annotation {
    /// Indexed Jobs: the pod's completion index, as annotation and as label (`batch.JobCompletionIndexAnnotation`).
    public static let jobCompletionIndex = "batch.kubernetes.io/job-completion-index"
}

extension EventSourceName {
    public static let jobController = "job-controller"
}

/// Job condition types, reasons and messages as kube-controller-manager 1.32 writes them.
enum JobConditions {
    static let complete = "Complete"
    static let failed = "Failed"
    static let suspended = "Suspended"
    /// Interim conditions: the outcome is decided, the pods are still being terminated or counted.
    static let successCriteriaMet = "SuccessCriteriaMet"
    static let failureTarget = "FailureTarget"

    static let reasonBackoffLimitExceeded = "BackoffLimitExceeded"
    static let messageBackoffLimitExceeded = "Job has reached the specified backoff limit"
    static let reasonDeadlineExceeded = "DeadlineExceeded"
    static let messageDeadlineExceeded = "Job was active longer than specified deadline"
    static let reasonCompletionsReached = "CompletionsReached"
    static let messageCompletionsReached = "Reached expected number of succeeded pods"

    /// `spec.managedBy` of Jobs this controller syncs (absent means the same).
    static let managedByJobController = "kubernetes.io/job-controller"

    /// The condition of `type` (whatever its status).
    static func find(_ type: String, in job: Job) -> JobCondition? {
        job.status.conditions?.first { $0.type == type }
    }

    /// `IsJobFinished`: Complete or Failed is True.
    static func isFinished(_ job: Job) -> Bool {
        finishedCondition(job) != nil
    }

    /// The True Complete or Failed condition.
    static func finishedCondition(_ job: Job) -> JobCondition? {
        job.status.conditions?.first { ($0.type == complete || $0.type == failed) && $0.status == "True" }
    }

    static func make(_ type: String, status: String = "True", reason: String, message: String, now: Time) -> JobCondition {
        JobCondition(type: type, status: status, lastProbeTime: now, lastTransitionTime: now, reason: reason, message: message)
    }

    /// `ensureJobConditionStatus`: sets the condition of `type` to `status`, `reason`, `message`
    /// (new transition time when any differs); a False condition is never added where none was.
    /// Returns whether the list changed.
    @discardableResult
    static func ensure(_ conditions: inout [JobCondition], _ type: String, status: String, reason: String, message: String,
                       now: Time) -> Bool {
        if let index = conditions.firstIndex(where: { $0.type == type }) {
            let current = conditions[index]
            guard current.status != status || (current.reason ?? "") != reason || (current.message ?? "") != message else { return false }
            conditions[index] = make(type, status: status, reason: reason, message: message, now: now)
            return true
        }
        guard status != "False" else { return false }
        conditions.append(make(type, status: status, reason: reason, message: message, now: now))
        return true
    }
}
