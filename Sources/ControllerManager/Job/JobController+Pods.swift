// Which pods a Job owns (`getPodsForJob` with pkg/controller's PodControllerRefManager): those
// whose controller reference names it and that its selector matches; an orphan its selector
// matches is adopted (owner reference and tracking finalizer added), an owned pod its selector
// no longer matches is released (both removed). And the orphan pods' finalizers: a pod whose
// Job is gone or finished keeps nothing that would hold its deletion.
import APIClient
import ClusterAPI
import Foundation

extension JobController {
    func podsForJob(_ job: Job) async throws -> [Pod] {
        let selector = try job.spec.selector.map { try LabelSelector($0) } ?? .nothing
        let uid = job.metadata.uid ?? ""
        var owned: [Pod] = []
        var canAdopt: Bool?
        let candidates = await pods.byIndex(Self.ownerIndex, uid) + pods.byIndex(Self.orphanIndex, job.metadata.namespace ?? "")
        for pod in candidates {
            let labels = pod.metadata.labels ?? [:]
            if let ref = JobPods.controllerRef(pod) {
                guard ref.uid == uid else { continue }
                if selector.matches(labels) {
                    owned.append(pod)
                } else if job.metadata.deletionTimestamp == nil {
                    try await release(pod, from: job)
                }
                continue
            }
            guard job.metadata.deletionTimestamp == nil, pod.metadata.deletionTimestamp == nil, selector.matches(labels) else { continue }
            if canAdopt == nil {
                // The cache may not show the Job's deletion yet: adopt only for a live Job.
                let fresh = try await client.get(Job.self, name: job.metadata.name ?? "", namespace: job.metadata.namespace)
                guard fresh.metadata.uid == uid else {
                    throw JobControllerError("original Job \(Self.key(job)) is gone: got uid \(fresh.metadata.uid ?? ""), wanted \(uid)")
                }
                canAdopt = fresh.metadata.deletionTimestamp == nil
            }
            guard canAdopt == true else {
                throw JobControllerError("Job \(Self.key(job)) is being deleted; its pods are not adopted")
            }
            owned.append(try await adopt(pod, by: job))
        }
        return owned
    }

    /// Adds the controller reference and the tracking finalizer (fails with 409 when the pod
    /// changed since the cache read it).
    private func adopt(_ pod: Pod, by job: Job) async throws -> Pod {
        let ref = OwnerReference(apiVersion: Job.defaultAPIVersion, kind: Job.defaultKind, name: job.metadata.name ?? "",
                                 uid: job.metadata.uid ?? "", controller: true, blockOwnerDeletion: true)
        let refs = (pod.metadata.ownerReferences ?? []).filter { $0.uid != ref.uid } + [ref]
        var finalizers = pod.metadata.finalizers ?? []
        if !finalizers.contains(Finalizer.jobTracking) { finalizers.append(Finalizer.jobTracking) }
        let adopted: Pod = try await client.mergePatch(Pod.self, name: pod.metadata.name ?? "", namespace: pod.metadata.namespace, patch: [
            "metadata": ["resourceVersion": .string(pod.metadata.resourceVersion ?? ""), "ownerReferences": try JSONValue(encoding: refs),
                         "finalizers": .array(finalizers.map { .string($0) })],
        ])
        logger.info("pod adopted by job", metadata: ["job": "\(Self.key(job))", "pod": "\(JobPods.key(pod))"])
        return adopted
    }

    /// Removes the Job's reference and the tracking finalizer from a pod it no longer selects.
    private func release(_ pod: Pod, from job: Job) async throws {
        let refs = (pod.metadata.ownerReferences ?? []).filter { $0.uid != job.metadata.uid }
        let finalizers = (pod.metadata.finalizers ?? []).filter { $0 != Finalizer.jobTracking }
        do {
            let _: Pod = try await client.mergePatch(Pod.self, name: pod.metadata.name ?? "", namespace: pod.metadata.namespace, patch: [
                "metadata": ["resourceVersion": .string(pod.metadata.resourceVersion ?? ""), "ownerReferences": try JSONValue(encoding: refs),
                             "finalizers": .array(finalizers.map { .string($0) })],
            ])
            logger.info("pod released by job", metadata: ["job": "\(Self.key(job))", "pod": "\(JobPods.key(pod))"])
        } catch let error as APIError where error.isNotFound {}
    }

    /// `syncOrphanPod`: removes the tracking finalizer of a pod no unfinished Job of this
    /// controller owns.
    func syncOrphanPod(_ key: String) async throws -> SyncResult {
        guard let pod = await pods.get(key), JobPods.hasTrackingFinalizer(pod) else { return .done }
        if let ref = JobPods.controllerRef(pod) {
            guard ref.kind == Job.defaultKind, ref.apiVersion == Job.defaultAPIVersion else { return .done }
            if let job = await resolve(pod.metadata.namespace, ref) {
                if let managedBy = job.spec.managedBy, managedBy != JobConditions.managedByJobController { return .done }
                // Adopted: its Job's syncs count it.
                if !JobConditions.isFinished(job) { return .done }
            }
        }
        do {
            try await JobRequests.removeTrackingFinalizer(client, pod)
            logger.debug("tracking finalizer removed from an orphan pod", metadata: ["pod": "\(key)"])
        } catch let error as APIError where error.isNotFound {}
        return .done
    }
}

struct JobControllerError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The calls the Job and TTL controllers make beyond `KubeClient`'s typed ones.
enum JobRequests {
    /// A strategic merge patch deleting the tracking finalizer from the list, whatever else
    /// changed in the pod meanwhile (the kubelet writes its status all the time).
    static func removeTrackingFinalizer(_ client: KubeClient, _ pod: Pod) async throws {
        guard JobPods.hasTrackingFinalizer(pod) else { return }
        let patch: JSONValue = ["metadata": ["$deleteFromPrimitiveList/finalizers": [.string(Finalizer.jobTracking)]]]
        let response = try await client.send(.PATCH, ResourcePath.object(Pod.self, name: pod.metadata.name ?? "", namespace: pod.metadata.namespace),
                                             json: patch.jsonData, contentType: "application/strategic-merge-patch+json")
        try check(response.status.code, response.body)
    }

    private static func check(_ code: UInt, _ body: Data) throws {
        guard !(200..<300).contains(code) else { return }
        throw KubeClient.apiError(Int(code), body)
    }
}
