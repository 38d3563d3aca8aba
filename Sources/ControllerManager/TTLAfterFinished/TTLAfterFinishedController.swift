// TTL after finished (kube-controller-manager's pkg/controller/ttlafterfinished): a Job with
// `spec.ttlSecondsAfterFinished` is deleted that many seconds after it finished — the
// lastTransitionTime of its True Complete or Failed condition — with propagationPolicy
// Foreground, so that its pods go before it.
//
// | Job                                                         | action                               |
// |-------------------------------------------------------------|--------------------------------------|
// | no TTL, not finished, or being deleted                      | nothing                              |
// | finished, TTL not yet expired                               | looked at again when it expires      |
// | expired in the cache, and still on a fresh read (same uid)  | DELETE, Foreground, uid precondition |
//
// The fresh read matters: the TTL may have been changed (or removed) after the cache saw it.
import APIClient
import ClusterAPI
import Foundation
import Logging

final class TTLAfterFinishedController: Sendable {
    let client: KubeClient
    let jobs: Informer<Job>
    let logger: Logger
    let controller: Controller<String>

    init(client: KubeClient, jobs: Informer<Job>, workers: Int, logger: Logger) async {
        self.client = client
        self.jobs = jobs
        self.logger = logger
        let box = LateBound<TTLAfterFinishedController>()
        controller = Controller(name: "ttl-after-finished", workers: workers, logger: logger) { key in
            guard let controller = box.value else { return .done }
            return try await controller.sync(key)
        }
        box.value = self
        await controller.enqueue(from: jobs) { event in
            if case .deleted = event { return [] }
            let job = event.object
            guard job.metadata.deletionTimestamp == nil, Self.needsCleanup(job) else { return [] }
            return [Informer<Job>.key(job)]
        }
    }

    func run() async { await controller.run() }

    func sync(_ key: String) async throws -> SyncResult {
        guard let cached = await jobs.get(key) else { return .done }
        switch try Self.expiry(cached, now: Date()) {
        case .none: return .done
        case .wait(let left): return .requeue(after: left)
        case .expired: break
        }
        // The cache may be stale: decide again on the Job as it is now.
        let fresh: Job
        do {
            fresh = try await client.get(Job.self, name: cached.metadata.name ?? "", namespace: cached.metadata.namespace)
        } catch let error as APIError where error.isNotFound {
            return .done
        }
        switch try Self.expiry(fresh, now: Date()) {
        case .none: return .done
        case .wait(let left): return .requeue(after: left)
        case .expired: break
        }
        logger.info("cleaning up job", metadata: ["job": "\(key)", "ttlSecondsAfterFinished": "\(fresh.spec.ttlSecondsAfterFinished ?? 0)"])
        do {
            try await client.delete(Job.self, name: fresh.metadata.name ?? "", namespace: fresh.metadata.namespace,
                                    options: DeleteOptions(preconditionUID: fresh.metadata.uid, propagationPolicy: .foreground))
        } catch let error as APIError where error.isNotFound {}
        return .done
    }

    enum Expiry: Equatable {
        /// Not to be cleaned up (no TTL, not finished, being deleted).
        case none
        case wait(Duration)
        case expired
    }

    /// `processTTL`: whether `job`'s TTL has expired at `now`, or how long is left.
    static func expiry(_ job: Job, now: Date) throws -> Expiry {
        guard job.metadata.deletionTimestamp == nil, needsCleanup(job), let ttl = job.spec.ttlSecondsAfterFinished else { return .none }
        guard let finished = JobConditions.finishedCondition(job)?.lastTransitionTime else {
            throw JobControllerError("unable to find the time when the Job \(Informer<Job>.key(job)) finished")
        }
        let left = Duration.seconds(finished.date.addingTimeInterval(TimeInterval(ttl)).timeIntervalSince(now))
        return left <= .zero ? .expired : .wait(left)
    }

    /// `needsCleanup`: a TTL and finished.
    static func needsCleanup(_ job: Job) -> Bool {
        job.spec.ttlSecondsAfterFinished != nil && JobConditions.isFinished(job)
    }
}
