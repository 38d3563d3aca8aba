// The scheduling cycle (decide, assume) and the binding cycle (PreBind, Bind), and how each
// reports: `PodScheduled=False` with reason `Unschedulable` and event `FailedScheduling` when no
// node fits, reason `SchedulerError` when a cycle fails, event `Scheduled` on success.
import APIClient
import ClusterAPI
import Foundation
import Logging
import Primitives

struct BindJob: Sendable {
    var pod: Pod
    var pending: PendingPod
    var node: String
    var plan: VolumePlan
}

struct Cycle: Sendable {
    let server: SchedulerServer
    let cache: SchedulerCache
    let queue: SchedulingQueue
    let recorder: EventRecorder
    let jobs: AsyncStream<BindJob>.Continuation
    /// Bounds the binding cycles' API writes in flight: with the pods of a burst every binding
    /// cycle would otherwise send at once, and each request beyond the client's kept-alive
    /// connections opens (and then closes) a TLS connection of its own, whose handshakes cost
    /// both processes more CPU than the bindings. client-go bounds a scheduler's requests by
    /// QPS instead; the cycles themselves stay unbounded (a WaitForFirstConsumer pod waiting
    /// for its disk holds no turn).
    let writes: ConcurrencyGate
    /// Pods in a cycle or a binding cycle: the event recorder yields to them.
    let activity: Activity

    var client: KubeClient { server.client }
    var logger: Logger { server.logger }

    // MARK: Scheduling cycle

    func scheduleOne(_ key: String) async {
        guard let pod = cache.pendingPod(key) else {
            await queue.remove(key)
            return
        }
        let pending: PendingPod
        do {
            pending = try PendingPod(pod)
        } catch {
            await report(pod, reason: SchedulerNames.reasonSchedulerError, message: error.description)
            await queue.failed(key)
            return
        }
        for _ in 0..<3 {
            let decision = Algorithm.decide(pending, cache.snapshot(), weights: server.configuration.weights,
                                            percentageOfNodesToScore: server.configuration.percentageOfNodesToScore,
                                            random: { server.randomIndex($0) })
            switch decision {
            case .unschedulable(let fit):
                logger.debug("unschedulable", metadata: ["pod": "\(key)", "why": "\(fit.message)"])
                await report(pod, reason: SchedulerNames.reasonUnschedulable, message: fit.message)
                await queue.unschedulable(key, waitingForObject: fit.waitingForObject)
                return
            case .node(let node, _):
                // The copy decided; the current state must agree before the pod counts there.
                if let plan = cache.assume(pending, on: node) {
                    // Busy from here to the binding cycle's end (it calls `end`).
                    activity.begin()
                    if case .terminated = jobs.yield(BindJob(pod: pod, pending: pending, node: node, plan: plan)) { activity.end() }
                    return
                }
                logger.debug("the node no longer fits in the current state; deciding again", metadata: ["pod": "\(key)", "node": "\(node)"])
            }
        }
        logger.info("the chosen node changed under three cycles in a row; backing off", metadata: ["pod": "\(key)"])
        await queue.failed(key)
    }

    // MARK: Binding cycle

    func bindingCycle(_ job: BindJob) async {
        defer { activity.end() }
        let key = job.pending.info.key
        do {
            if !job.plan.isEmpty { try await preBind(job) }
            try await bind(job)
            cache.releaseReservations(of: key)
            server.countScheduled()
            recorder.event(job.pod, .normal, SchedulerNames.eventScheduled,
                           "Successfully assigned \(job.pending.info.namespace)/\(job.pending.info.name) to \(job.node)")
            await queue.remove(key)
        } catch is CancellationError {
            cache.forget(key)
        } catch {
            cache.forget(key)
            // What the pod held on its node (and its volume reservations) is free again: pods
            // found unschedulable meanwhile may fit now, as upstream moves them after a forget.
            await queue.moveAll()
            let message = "\(error)"
            logger.info("binding failed", metadata: ["pod": "\(key)", "node": "\(job.node)", "error": "\(message)"])
            // The pod may be gone or bound by someone else (409 from the binding: already
            // assigned, or being deleted); report only if it still waits.
            if (error as? APIError)?.code == 409 {
                await queue.failed(key)
            } else if let pod = cache.pendingPod(key) {
                await report(pod, reason: SchedulerNames.reasonSchedulerError, message: message)
                await queue.failed(key)
            } else {
                await queue.remove(key)
            }
        }
    }

    /// `POST pods/{name}/binding`.
    func bind(_ job: BindJob) async throws {
        let info = job.pending.info
        try await writes.run { try await client.bind(pod: info.name, namespace: info.namespace, uid: info.uid, to: job.node) }
    }

    // MARK: Reporting

    /// Event `FailedScheduling` and condition `PodScheduled=False` (written only when it changes).
    func report(_ pod: Pod, reason: String, message: String) async {
        recorder.event(pod, .warning, SchedulerNames.eventFailedScheduling, message)
        var conditions = pod.status.conditions ?? []
        let old = conditions.first { $0.type == SchedulerNames.podScheduled }
        if old?.status == "False" && old?.reason == reason && old?.message == message { return }
        conditions.removeAll { $0.type == SchedulerNames.podScheduled }
        conditions.append(PodCondition(type: SchedulerNames.podScheduled, status: "False",
                                       lastTransitionTime: old?.status == "False" ? old?.lastTransitionTime : Time.now(),
                                       reason: reason, message: message))
        do {
            let encoded = try JSONValue(encoding: conditions)
            let patch: JSONValue = ["status": ["conditions": encoded]]
            _ = try await client.mergePatch(Pod.self, name: pod.metadata.name ?? "", namespace: pod.metadata.namespace,
                                            patch: patch, subresource: "status")
        } catch {
            logger.info("could not write the pod's PodScheduled condition", metadata: ["pod": "\(PodInfo.key(of: pod))", "error": "\(error)"])
        }
    }
}
