// The Job controller (kube-controller-manager's pkg/controller/job, as 1.32 behaves with its
// default feature gates): runs a Job's pod template until `completions` pods succeeded (or,
// without completions, until one did and the rest finished), at most `parallelism` at once,
// replacing failed pods after an exponential back-off until `backoffLimit` failures, within
// `activeDeadlineSeconds`, stopping them all while `suspend`.
//
// Counting survives restarts and lagging caches. Every pod carries the finalizer
// `batch.kubernetes.io/job-tracking` until the Job's status counts it, in two writes:
//
//   pod Succeeded ─▶ status.uncountedTerminatedPods.succeeded += uid   (write 1)
//                ─▶ pod's finalizer removed                            (the pod may now go)
//                ─▶ uid moved from the list into status.succeeded      (write 2)
//
// A crash between the writes leaves the uid in the list: the next process counts it once, as a
// pod without the finalizer whose uid is listed. A pod deleted before it was counted stays,
// finalizer held, until it is. Creations and deletions are remembered (`PodExpectations`) until
// the pod informer shows them, so a lagging watch never causes extra pods.
//
// | Job                                              | action                                                   |
// |--------------------------------------------------|----------------------------------------------------------|
// | Complete or Failed                               | nothing                                                  |
// | failures > backoffLimit, or (OnFailure) restarts ≥ backoffLimit | FailureTarget BackoffLimitExceeded; active pods deleted |
// | running longer than activeDeadlineSeconds        | FailureTarget DeadlineExceeded; active pods deleted      |
// | FailureTarget and no pod left terminating/uncounted | Failed (same reason), event with the reason            |
// | completions reached (or one success, work queue) and none active | SuccessCriteriaMet CompletionsReached      |
// | SuccessCriteriaMet and every pod counted         | Complete, completionTime, event Completed                |
// | suspended                                        | active pods deleted, Suspended True (event Suspended)    |
// | resumed                                          | Suspended False, startTime reset (event Resumed)         |
// | fewer active than min(parallelism, remaining)    | pods created (after the failure back-off), SuccessfulCreate |
// | more active than that                            | the least advanced deleted, SuccessfulDelete             |
import APIClient
import ClusterAPI
import Foundation
import Logging

/// The Job controller's tuning (`--concurrent-job-syncs`, the pod failure back-off).
struct JobControllerOptions: Sendable {
    var workers = 5
    /// The first delay before a failed pod is replaced; doubled for each further failure.
    var podFailureBackoff: Duration = .seconds(10)
    var podFailureBackoffMax: Duration = .seconds(360)
}

final class JobController: Sendable {
    /// The longest `uncountedTerminatedPods` grows in one sync (`MaxUncountedPods`).
    static let maxUncountedPods = 500
    /// Pods created or deleted in one sync at most (`MaxPodCreateDeletePerSync`).
    static let maxPodCreateDeletePerSync = 500
    /// Pods by the uid of their controller, when it is a Job.
    static let ownerIndex = "job-controller/controller-uid"
    /// Pods without a controller, by namespace: the candidates for adoption.
    static let orphanIndex = "job-controller/orphans"

    let client: KubeClient
    /// Jobs, overlaid with this controller's own status writes until the informer shows them.
    let jobs: ObjectStore<Job>
    let pods: Informer<Pod>
    let recorder: EventRecorder
    let options: JobControllerOptions
    let logger: Logger
    let controller: Controller<String>
    /// Pods whose tracking finalizer is left to remove because no unfinished Job owns them.
    let orphans: Controller<String>
    let expectations = PodExpectations()
    let finalizerExpectations = FinalizerRemovalExpectations()
    let backoff = JobBackoffStore()

    init(client: KubeClient, jobs: Informer<Job>, pods: Informer<Pod>, recorder: EventRecorder, options: JobControllerOptions,
         logger: Logger) async {
        self.client = client
        self.jobs = ObjectStore(jobs)
        self.pods = pods
        self.recorder = recorder
        self.options = options
        self.logger = logger
        let box = LateBound<JobController>()
        controller = Controller(name: "job", workers: options.workers, queue: WorkQueue(baseDelay: .milliseconds(5), maxDelay: .seconds(60)),
                                logger: logger) { key in
            guard let controller = box.value else { return .done }
            return try await controller.sync(key)
        }
        orphans = Controller(name: "job-orphan-pod", workers: 1, queue: WorkQueue(baseDelay: .milliseconds(5), maxDelay: .seconds(60)),
                             logger: logger) { key in
            guard let controller = box.value else { return .done }
            return try await controller.syncOrphanPod(key)
        }
        box.value = self
        await pods.addIndex(Self.ownerIndex) { pod in
            guard let ref = JobPods.controllerRef(pod), ref.kind == Job.defaultKind else { return [] }
            return [ref.uid]
        }
        await pods.addIndex(Self.orphanIndex) { pod in JobPods.controllerRef(pod) == nil ? [pod.metadata.namespace ?? ""] : [] }
        // The handlers need the caches (resolving a pod's Job), so they run as tasks of the
        // controller rather than as key functions.
        let jobEvents = await jobs.events(), podEvents = await pods.events()
        controller.addTask {
            for await event in jobEvents { await box.value?.handle(event) }
        }
        controller.addTask {
            for await event in podEvents { await box.value?.handle(event) }
        }
    }

    func run() async {
        // Both caches listed before any sync: a pod missing from a cache still filling would
        // look like one to create.
        await jobs.informer.waitForSync()
        await pods.waitForSync()
        if Task.isCancelled { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.controller.run() }
            group.addTask { await self.orphans.run() }
        }
    }

    static func key(_ job: Job) -> String { Informer<Job>.key(job) }

    // MARK: Events

    private func enqueue(_ job: Job) async { await controller.queue.add(Self.key(job)) }

    private func handle(_ event: InformerEvent<Job>) async {
        switch event {
        case .added(let job), .resync(let job):
            await enqueue(job)
        case .updated(let old, let new):
            await enqueue(new)
            // A finished Job leaves no finalizer behind (a backup: it removes them before it finishes).
            if JobConditions.isFinished(new) { await cleanUpPodFinalizers(new) }
            if let start = new.status.startTime, let deadline = new.spec.activeDeadlineSeconds, old.spec.activeDeadlineSeconds != deadline {
                let left = Duration.seconds(deadline) - .seconds(Date().timeIntervalSince(start.date))
                await controller.queue.add(Self.key(new), after: left)
            }
        case .deleted(let job):
            await enqueue(job)
            await cleanUpPodFinalizers(job)
        }
    }

    private func handle(_ event: InformerEvent<Pod>) async {
        switch event {
        case .added(let pod):
            if pod.metadata.deletionTimestamp != nil {
                // Seen first while being deleted (a restart): not the creation of a pod we expect.
                await podGone(pod, final: false)
                return
            }
            if let ref = JobPods.controllerRef(pod) {
                guard let job = await resolve(pod.metadata.namespace, ref) else { return }
                expectations.creationObserved(Self.key(job), uid: job.metadata.uid ?? "")
                await enqueue(job)
                return
            }
            if JobPods.hasTrackingFinalizer(pod) { await orphans.queue.add(JobPods.key(pod)) }
            for job in await jobsSelecting(pod) { await enqueue(job) }
        case .updated(let old, let new):
            if old.metadata.resourceVersion == new.metadata.resourceVersion { return }
            if new.metadata.deletionTimestamp != nil {
                // Pods deleted gracefully are replaced at once, not when the kubelet is done.
                await podGone(new, final: false)
                return
            }
            let finalizerRemoved = !JobPods.hasTrackingFinalizer(new)
            let ref = JobPods.controllerRef(new), oldRef = JobPods.controllerRef(old)
            let refChanged = ref != oldRef
            if refChanged, let oldRef, let job = await resolve(old.metadata.namespace, oldRef) {
                if finalizerRemoved { finalizerExpectations.observed(Self.key(job), uid: new.metadata.uid ?? "") }
                await enqueue(job)
            }
            if let ref {
                guard let job = await resolve(new.metadata.namespace, ref) else { return }
                if finalizerRemoved { finalizerExpectations.observed(Self.key(job), uid: new.metadata.uid ?? "") }
                await enqueue(job)
                return
            }
            if JobPods.hasTrackingFinalizer(new) { await orphans.queue.add(JobPods.key(new)) }
            if refChanged || new.metadata.labels != old.metadata.labels {
                for job in await jobsSelecting(new) { await enqueue(job) }
            }
        case .deleted(let pod):
            await podGone(pod, final: true)
        case .resync:
            break
        }
    }

    /// A pod deleted (`final`) or being deleted.
    private func podGone(_ pod: Pod, final: Bool) async {
        let hasFinalizer = JobPods.hasTrackingFinalizer(pod)
        guard let ref = JobPods.controllerRef(pod) else {
            if hasFinalizer { await orphans.queue.add(JobPods.key(pod)) }
            return
        }
        guard let job = await resolve(pod.metadata.namespace, ref), !JobConditions.isFinished(job) else {
            // No sync will remove this finalizer.
            if hasFinalizer { await orphans.queue.add(JobPods.key(pod)) }
            return
        }
        let key = Self.key(job)
        expectations.deletionObserved(key, uid: job.metadata.uid ?? "")
        if final || !hasFinalizer { finalizerExpectations.observed(key, uid: pod.metadata.uid ?? "") }
        await enqueue(job)
    }

    /// The Job a controller reference names, if the cache has it with that uid.
    func resolve(_ namespace: String?, _ ref: OwnerReference) async -> Job? {
        guard ref.kind == Job.defaultKind, ref.apiVersion.hasPrefix("batch/") else { return nil }
        guard let job = await jobs.get(name: ref.name, namespace: namespace), job.metadata.uid == ref.uid else { return nil }
        return job
    }

    /// Jobs of the pod's namespace whose selector matches it (candidates to adopt an orphan).
    private func jobsSelecting(_ pod: Pod) async -> [Job] {
        let labels = pod.metadata.labels ?? [:]
        return await jobs.list().filter { job in
            guard job.metadata.namespace == pod.metadata.namespace, let spec = job.spec.selector,
                  let selector = try? LabelSelector(spec), !selector.isEmpty else { return false }
            return selector.matches(labels)
        }
    }

    /// Queues every pod of `job` that still has the tracking finalizer for its removal.
    private func cleanUpPodFinalizers(_ job: Job) async {
        guard let uid = job.metadata.uid else { return }
        for pod in await pods.byIndex(Self.ownerIndex, uid) where JobPods.hasTrackingFinalizer(pod) {
            await orphans.queue.add(JobPods.key(pod))
        }
    }
}
