// What the Job controller reads from a pod, as pkg/controller (FilterActivePods, IsPodReady,
// ActivePods ordering) and pkg/controller/job (isPodFailed, getFinishedTime, completion index)
// compute it. A namespace of functions rather than `Pod` members: the other workload
// controllers of this module read pods their own way.
import ClusterAPI
import Foundation

enum JobPods {
    /// The owner reference with `controller: true`.
    static func controllerRef(_ pod: Pod) -> OwnerReference? {
        pod.metadata.ownerReferences?.first { $0.controller == true }
    }

    static func hasTrackingFinalizer(_ pod: Pod) -> Bool {
        pod.metadata.finalizers?.contains(Finalizer.jobTracking) ?? false
    }

    /// `FilterActivePods`: neither Succeeded nor Failed, not being deleted.
    static func isActive(_ pod: Pod) -> Bool {
        pod.status.phase != "Succeeded" && pod.status.phase != "Failed" && pod.metadata.deletionTimestamp == nil
    }

    /// `CountTerminatingPods`: being deleted, not yet Succeeded or Failed.
    static func isTerminating(_ pod: Pod) -> Bool {
        pod.metadata.deletionTimestamp != nil && pod.status.phase != "Succeeded" && pod.status.phase != "Failed"
    }

    /// `isPodFailed`: Failed; or, unless only failed pods are replaced (podReplacementPolicy
    /// Failed, or a pod failure policy), deleted before it succeeded — an orphan that never
    /// reaches Failed still counts as a failure.
    static func isFailed(_ pod: Pod, _ job: Job) -> Bool {
        if pod.status.phase == "Failed" { return true }
        if onlyReplaceFailedPods(job) { return false }
        return pod.metadata.deletionTimestamp != nil && pod.status.phase != "Succeeded"
    }

    /// `onlyReplaceFailedPods`: a terminating pod is replaced only once it has failed.
    static func onlyReplaceFailedPods(_ job: Job) -> Bool {
        job.spec.podReplacementPolicy == "Failed" || job.spec.podFailurePolicy != nil
    }

    /// The `batch.kubernetes.io/job-completion-index` annotation, nil when absent or not a
    /// non-negative number.
    static func completionIndex(_ pod: Pod) -> Int? {
        guard let text = pod.metadata.annotations?[Annotation.jobCompletionIndex], let index = Int(text), index >= 0 else { return nil }
        return index
    }

    /// Container restarts (init containers included), as `pastBackoffLimitOnFailure` sums them.
    static func restartCount(_ pod: Pod) -> Int {
        let statuses = (pod.status.initContainerStatuses ?? []) + (pod.status.containerStatuses ?? [])
        return statuses.reduce(0) { $0 + Int($1["restartCount"]?.int64Value ?? 0) }
    }

    /// `getFinishedTime`: the latest `finishedAt` when every container terminated; else the
    /// time Ready went False; else the deletion time less the grace period; else the creation time.
    static func finishedTime(_ pod: Pod) -> Date {
        if let time = containersFinishedTime(pod) { return time }
        if let ready = pod.status.conditions?.first(where: { $0.type == "Ready" }), ready.status == "False",
           let time = ready.lastTransitionTime {
            return time.date
        }
        if let deletion = pod.metadata.deletionTimestamp {
            return deletion.adding(seconds: -(pod.metadata.deletionGracePeriodSeconds ?? 0)).date
        }
        return pod.metadata.creationTimestamp?.date ?? Date()
    }

    private static func containersFinishedTime(_ pod: Pod) -> Date? {
        var latest: Date?
        for status in pod.status.containerStatuses ?? [] {
            guard let text = status["state"]?["terminated"]?["finishedAt"]?.stringValue, let time = try? Time(rfc3339: text) else {
                return nil
            }
            if latest.map({ $0 < time.date }) ?? true { latest = time.date }
        }
        return latest
    }

    /// `controller.ActivePods`' order, the pods to delete first first: unscheduled before
    /// scheduled; Pending before Unknown before Running; not ready before ready; ready for less
    /// time before longer; more restarts before fewer; newer before older.
    static func deletionOrder(_ a: Pod, _ b: Pod) -> Bool {
        let aScheduled = !(a.spec.nodeName ?? "").isEmpty, bScheduled = !(b.spec.nodeName ?? "").isEmpty
        if aScheduled != bScheduled { return !aScheduled }
        let rank = ["Pending": 0, "Unknown": 1, "Running": 2]
        let aPhase = rank[a.status.phase ?? "Pending"] ?? 0, bPhase = rank[b.status.phase ?? "Pending"] ?? 0
        if aPhase != bPhase { return aPhase < bPhase }
        let aReady = a.isReady, bReady = b.isReady
        if aReady != bReady { return !aReady }
        if aReady, let aSince = readySince(a), let bSince = readySince(b), aSince != bSince { return aSince > bSince }
        let aRestarts = restartCount(a), bRestarts = restartCount(b)
        if aRestarts != bRestarts { return aRestarts > bRestarts }
        let aCreated = a.metadata.creationTimestamp ?? .minimum, bCreated = b.metadata.creationTimestamp ?? .minimum
        if aCreated != bCreated { return aCreated > bCreated }
        return (a.metadata.name ?? "") < (b.metadata.name ?? "")
    }

    private static func readySince(_ pod: Pod) -> Time? {
        pod.status.conditions?.first { $0.type == "Ready" }?.lastTransitionTime
    }

    /// "namespace/name".
    static func key(_ pod: Pod) -> String { "\(pod.metadata.namespace ?? "")/\(pod.metadata.name ?? "")" }
}
