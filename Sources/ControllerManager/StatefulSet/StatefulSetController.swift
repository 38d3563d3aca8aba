// The StatefulSet controller (kube-controller-manager's pkg/controller/statefulset): replicas
// `<set>-0…<set>-(n-1)` with stable names, hostnames and claims; created in order, each Running
// and Ready before the next, and removed in reverse (`OrderedReady`), or all at once
// (`Parallel`); templates recorded as ControllerRevisions and rolled out from the highest
// ordinal down to `partition`, one replica at a time (`RollingUpdate`) or only when a replica
// is deleted (`OnDelete`); claims kept or handed to the garbage collector as
// `persistentVolumeClaimRetentionPolicy` says.
//
// Names are deterministic, so the controller needs no expectations: a create that races an
// earlier one fails with AlreadyExists and the next sync sees the pod. Every sync starts from
// the caches, so a restarted controller continues where the last one stopped.
import APIClient
import ClusterAPI
import Foundation
import Logging

final class StatefulSetController: Sendable {
    let client: KubeClient
    let sets: Informer<StatefulSet>
    let pods: Informer<Pod>
    let claims: Informer<PersistentVolumeClaim>
    let revisions: Informer<ControllerRevision>
    let recorder: EventRecorder
    let logger: Logger
    let controller: Controller<String>

    static let ownerIndex = "statefulset-owner"
    static let namespaceIndex = "namespace"

    struct Informers {
        let sets: Informer<StatefulSet>
        let pods: Informer<Pod>
        let claims: Informer<PersistentVolumeClaim>
        let revisions: Informer<ControllerRevision>
    }

    init(client: KubeClient, informers: Informers, recorder: EventRecorder, workers: Int, logger: Logger) async {
        self.client = client
        sets = informers.sets
        pods = informers.pods
        claims = informers.claims
        revisions = informers.revisions
        self.recorder = recorder
        self.logger = logger
        let box = LateBound<StatefulSetController>()
        controller = Controller(name: "statefulset", workers: workers, logger: logger) { key in
            guard let controller = box.value else { return .done }
            return try await controller.sync(key)
        }
        box.value = self
        let ownerKey: @Sendable (ObjectMeta) -> [String] = { meta in
            guard let owner = meta.ownerReferences?.first(where: { $0.controller == true && $0.kind == "StatefulSet" }) else { return [] }
            return ["\(meta.namespace ?? "")/\(owner.name)"]
        }
        await pods.addIndex(Self.ownerIndex) { ownerKey($0.metadata) }
        await pods.addIndex(Self.namespaceIndex) { [$0.metadata.namespace ?? ""] }
        await revisions.addIndex(Self.ownerIndex) { ownerKey($0.metadata) }
        await controller.enqueue(from: sets) { event in
            if case .deleted = event { return [] }
            return [Informer<StatefulSet>.key(event.object)]
        }
        // A pod change wakes its set. An orphan named `<set>-<n>` wakes that set, which may
        // adopt it (only pods with a replica's name are ever adopted).
        await controller.enqueue(from: pods) { event in
            var keys = Set<String>()
            var changed = [event.object]
            if case .updated(let old, _) = event { changed.append(old) }
            for pod in changed {
                let owners = ownerKey(pod.metadata)
                keys.formUnion(owners)
                if owners.isEmpty, pod.metadata.ownerReferences?.contains(where: { $0.controller == true }) != true,
                   let name = pod.metadata.name, let dash = name.lastIndex(of: "-") {
                    keys.insert("\(pod.metadata.namespace ?? "")/\(name[..<dash])")
                }
            }
            return Array(keys)
        }
        await controller.enqueue(from: revisions) { event in ownerKey(event.object.metadata) }
        await controller.enqueue(from: claims) { event in
            // A claim of a replica that went away (deleted while the pod waits for it) wakes the set.
            guard case .deleted(let claim) = event else { return [] }
            return (claim.metadata.ownerReferences ?? []).filter { $0.kind == "StatefulSet" }
                .map { "\(claim.metadata.namespace ?? "")/\($0.name)" }
        }
    }

    func run() async { await controller.run() }

    // MARK: Sync

    func sync(_ key: String) async throws -> SyncResult {
        guard let set = await sets.get(key), set.metadata.deletionTimestamp == nil else { return .done }
        let selector: LabelSelector
        do { selector = try LabelSelector(set.spec.selector) } catch {
            recorder.event(set, .warning, "InvalidSelector", "invalid selector: \(error)")
            return .done
        }
        let owned = try await claimPods(set, selector: selector)
        let (current, update, collisionCount) = try await resolveRevisions(set)
        var pass = Pass(set: set, current: current, update: update, now: Time.now())
        pass.count(owned)
        let result = try await reconcile(&pass, owned: owned)
        try await writeStatus(pass, collisionCount: collisionCount)
        try await truncateHistory(set, live: owned, keep: [current.metadata.name ?? "", update.metadata.name ?? ""])
        return result
    }

    /// One sync's view: the set, its two revisions and the status counted from its pods.
    struct Pass {
        let set: StatefulSet
        let current: ControllerRevision
        let update: ControllerRevision
        let now: Time
        var status = StatefulSetStatus()

        var currentName: String { current.metadata.name ?? "" }
        var updateName: String { update.metadata.name ?? "" }

        /// `updateStatefulSet`'s counting, before any action.
        mutating func count(_ pods: [Pod]) {
            status = StatefulSetStatus()
            status.observedGeneration = set.metadata.generation
            status.currentRevision = currentName
            status.updateRevision = updateName
            var ready: Int32 = 0, currentCount: Int32 = 0, updated: Int32 = 0, available: Int32 = 0
            for pod in pods {
                if pod.isCreated { status.replicas += 1 }
                if pod.isRunningAndReady {
                    ready += 1
                    if pod.isAvailable(minReadySeconds: set.spec.minReadySeconds ?? 0, now: now) { available += 1 }
                }
                if pod.isCreated && !pod.isTerminating {
                    if pod.revisionHash == currentName { currentCount += 1 }
                    if pod.revisionHash == updateName { updated += 1 }
                }
            }
            status.readyReplicas = ready
            status.availableReplicas = available
            status.currentReplicas = currentCount
            status.updatedReplicas = updated
        }
    }

    /// The replicas in order and the condemned pods, then the one step the policy allows.
    func reconcile(_ pass: inout Pass, owned: [Pod]) async throws -> SyncResult {
        let set = pass.set
        var byOrdinal: [Int: Pod] = [:]
        var condemned: [(Int, Pod)] = []
        for pod in owned {
            guard let ordinal = set.ordinal(of: pod) else { continue }
            if set.ordinals.contains(ordinal) { byOrdinal[ordinal] = pod } else { condemned.append((ordinal, pod)) }
        }
        condemned.sort { $0.0 > $1.0 }
        let monotonic = !set.isParallel
        let minReady = set.spec.minReadySeconds ?? 0
        var waitFor: Duration?

        for ordinal in set.ordinals {
            if var pod = byOrdinal[ordinal] {
                if pod.hasFinished && !pod.isTerminating {
                    recorder.event(set, .warning, "RecreatingFailedPod",
                                   "StatefulSet \(set.namespace)/\(set.name) is recreating \(pod.status.phase == "Failed" ? "failed" : "terminated") Pod \(pod.metadata.name ?? "")")
                    try await deletePod(set, pod)
                    if monotonic { return .done }
                    continue
                }
                if pod.isTerminating {
                    if monotonic { return .done }
                    continue
                }
                try await ensureClaims(set, ordinal: ordinal, pod: pod)
                if !set.identityMatches(pod, ordinal: ordinal) {
                    pod = try await fixIdentity(set, pod, ordinal: ordinal)
                }
                if !pod.isRunningAndReady {
                    if monotonic { return .done }
                    continue
                }
                if !pod.isAvailable(minReadySeconds: minReady, now: pass.now) {
                    waitFor = .seconds(Int64(minReady))
                    if monotonic { return .requeue(after: .seconds(1)) }
                }
                continue
            }
            let revision = useCurrentRevision(set, ordinal: ordinal, pass: pass) ? pass.current : pass.update
            let template = try StatefulSetRevisions.template(of: revision)
            guard try await ensureClaims(set, ordinal: ordinal, pod: nil) else { return .requeue(after: .seconds(1)) }
            let created = try await createPod(set, set.newPod(ordinal: ordinal, template: template, revision: revision.metadata.name ?? ""))
            if created {
                pass.status.replicas += 1
                if revision.metadata.name == pass.updateName { pass.status.updatedReplicas = (pass.status.updatedReplicas ?? 0) + 1 }
                if revision.metadata.name == pass.currentName { pass.status.currentReplicas = (pass.status.currentReplicas ?? 0) + 1 }
            }
            if monotonic { return .done }
        }

        // Scale down: the highest ordinal first, one at a time unless Parallel.
        for (ordinal, pod) in condemned {
            if pod.isTerminating {
                if monotonic { return .done }
                continue
            }
            try await ensureClaimOwners(set, ordinal: ordinal, pod: pod)
            try await deletePod(set, pod)
            if monotonic { return .done }
        }

        // Rolling update: from the highest ordinal down to the partition, one replica at a
        // time, only when every replica is healthy.
        let settled = waitFor.map { SyncResult.requeue(after: $0) } ?? .done
        let replicas = set.ordinals.compactMap { byOrdinal[$0] }
        guard !set.isOnDelete, replicas.contains(where: { $0.revisionHash != pass.updateName }) else { return settled }
        if replicas.count < set.replicaCount || replicas.contains(where: { !$0.isRunningAndReady || $0.isTerminating }) {
            return .done
        }
        for ordinal in set.ordinals.reversed() where ordinal - set.firstOrdinal >= set.partition {
            guard let pod = byOrdinal[ordinal], pod.revisionHash != pass.updateName else { continue }
            try await deletePod(set, pod)
            return .done
        }
        return settled
    }

    /// Whether the replica of `ordinal` is made at the current revision: below the partition
    /// of a RollingUpdate (`newVersionedStatefulSetPod`).
    func useCurrentRevision(_ set: StatefulSet, ordinal: Int, pass: Pass) -> Bool {
        guard !set.isOnDelete else { return false }
        return ordinal - set.firstOrdinal < set.partition
    }

    // MARK: Status

    /// Writes the counted status; a finished rollout makes the update revision current.
    func writeStatus(_ pass: Pass, collisionCount: Int32) async throws {
        var status = pass.status
        status.collisionCount = collisionCount == 0 ? nil : collisionCount
        let set = pass.set
        if !set.isOnDelete, (status.updatedReplicas ?? 0) == status.replicas, (status.readyReplicas ?? 0) == status.replicas {
            status.currentRevision = status.updateRevision
            status.currentReplicas = status.updatedReplicas
        }
        if status.collisionCount == nil { status.collisionCount = set.status.collisionCount }
        status.conditions = set.status.conditions
        guard status != set.status else { return }
        var updated = set
        updated.status = status
        do {
            _ = try await client.updateStatus(updated)
        } catch let error as APIError where error.isConflict || error.isNotFound {
            return  // the next event syncs again
        }
    }

    // MARK: Pods

    /// The set's pods: those it controls, plus orphans named and labelled as its replicas
    /// (adopted); controlled pods that no longer match are released.
    func claimPods(_ set: StatefulSet, selector: LabelSelector) async throws -> [Pod] {
        var owned: [Pod] = []
        for pod in await pods.byIndex(Self.namespaceIndex, set.namespace) {
            let matches = selector.matches(pod.metadata.labels ?? [:]) && set.ordinal(of: pod) != nil
            switch pod.controllerUID {
            case set.metadata.uid:
                if matches || pod.isTerminating {
                    owned.append(pod)
                } else {
                    try await setControllerReference(of: pod, to: nil, set: set)
                }
            case nil where matches && !pod.isTerminating:
                if let adopted = try await setControllerReference(of: pod, to: set.controllerReference, set: set) {
                    owned.append(adopted)
                }
            default:
                continue
            }
        }
        return owned
    }

    /// Adopts (`reference`) or releases (nil) a pod, by a patch that fails if the pod changed.
    @discardableResult
    func setControllerReference(of pod: Pod, to reference: OwnerReference?, set: StatefulSet) async throws -> Pod? {
        var owners = (pod.metadata.ownerReferences ?? []).filter { $0.uid != set.metadata.uid }
        if let reference { owners.append(reference) }
        let patch: JSONValue = ["metadata": ["ownerReferences": try JSONValue(encoding: owners),
                                             "resourceVersion": .string(pod.metadata.resourceVersion ?? ""),
                                             "uid": .string(pod.metadata.uid ?? "")]]
        do {
            let result = try await client.mergePatch(Pod.self, name: pod.metadata.name ?? "", namespace: set.namespace, patch: patch)
            logger.info(reference == nil ? "released pod" : "adopted pod", metadata: ["statefulset": "\(set.namespace)/\(set.name)",
                                                                                   "pod": "\(pod.metadata.name ?? "")"])
            return result
        } catch let error as APIError where error.isConflict || error.isNotFound {
            return nil
        }
    }

    /// Creates a replica; false when it already existed (an earlier create the cache has not shown).
    func createPod(_ set: StatefulSet, _ pod: Pod) async throws -> Bool {
        let name = pod.metadata.name ?? ""
        do {
            _ = try await client.create(pod)
            recorder.event(set, .normal, "SuccessfulCreate", "create Pod \(name) in StatefulSet \(set.name) successful")
            logger.info("created replica", metadata: ["statefulset": "\(set.namespace)/\(set.name)", "pod": "\(name)"])
            return true
        } catch let error as APIError where error.isAlreadyExists {
            return false
        } catch {
            recorder.event(set, .warning, "FailedCreate", "create Pod \(name) in StatefulSet \(set.name) failed error: \(error)")
            throw error
        }
    }

    func deletePod(_ set: StatefulSet, _ pod: Pod) async throws {
        let name = pod.metadata.name ?? ""
        do {
            try await client.delete(Pod.self, name: name, namespace: set.namespace, options: DeleteOptions(preconditionUID: pod.metadata.uid))
            recorder.event(set, .normal, "SuccessfulDelete", "delete Pod \(name) in StatefulSet \(set.name) successful")
            logger.info("deleted replica", metadata: ["statefulset": "\(set.namespace)/\(set.name)", "pod": "\(name)"])
        } catch let error as APIError where error.isNotFound || error.code == 409 {
            return
        } catch {
            recorder.event(set, .warning, "FailedDelete", "delete Pod \(name) in StatefulSet \(set.name) failed error: \(error)")
            throw error
        }
    }

    /// Puts back the identity labels of a replica (`updateIdentity`).
    func fixIdentity(_ set: StatefulSet, _ pod: Pod, ordinal: Int) async throws -> Pod {
        let patch: JSONValue = ["metadata": ["labels": [StatefulSetLabel.podName: .string(set.podName(ordinal)),
                                                        StatefulSetLabel.podIndex: .string(String(ordinal))],
                                             "resourceVersion": .string(pod.metadata.resourceVersion ?? "")]]
        return try await client.mergePatch(Pod.self, name: pod.metadata.name ?? "", namespace: set.namespace, patch: patch)
    }

    // MARK: Claims

    /// Creates the replica's missing claims and keeps their owners as the retention policy
    /// says. False when a claim is being deleted (the replica waits until it is gone).
    @discardableResult
    func ensureClaims(_ set: StatefulSet, ordinal: Int, pod: Pod?) async throws -> Bool {
        for var claim in set.claims(ordinal: ordinal) {
            let name = claim.metadata.name ?? ""
            if let existing = await claims.get(name: name, namespace: set.namespace) {
                if existing.metadata.deletionTimestamp != nil {
                    logger.info("waiting for a claim being deleted", metadata: ["statefulset": "\(set.namespace)/\(set.name)", "claim": "\(name)"])
                    return false
                }
                try await patchClaimOwners(existing, set.claimOwners(current: existing.metadata.ownerReferences, ordinal: ordinal, pod: pod))
                continue
            }
            let owners = set.claimOwners(current: nil, ordinal: ordinal, pod: pod)
            claim.metadata.ownerReferences = owners.isEmpty ? nil : owners
            do {
                _ = try await client.create(claim)
                recorder.event(set, .normal, "SuccessfulCreate",
                               "create Claim \(name) Pod \(set.podName(ordinal)) in StatefulSet \(set.name) success")
            } catch let error as APIError where error.isAlreadyExists {
                continue
            } catch {
                recorder.event(set, .warning, "FailedCreate",
                               "create Claim \(name) for Pod \(set.podName(ordinal)) in StatefulSet \(set.name) failed error: \(error)")
                throw error
            }
        }
        return true
    }

    /// Before a condemned replica goes: its claims get the owners the policy asks for (the
    /// pod itself under `whenScaled: Delete`, so the garbage collector removes them after it).
    func ensureClaimOwners(_ set: StatefulSet, ordinal: Int, pod: Pod) async throws {
        for template in set.spec.volumeClaimTemplates ?? [] {
            guard let claim = await claims.get(name: set.claimName(template, ordinal), namespace: set.namespace) else { continue }
            try await patchClaimOwners(claim, set.claimOwners(current: claim.metadata.ownerReferences, ordinal: ordinal, pod: pod))
        }
    }

    func patchClaimOwners(_ claim: PersistentVolumeClaim, _ owners: [OwnerReference]) async throws {
        guard owners != (claim.metadata.ownerReferences ?? []) else { return }
        let patch: JSONValue = ["metadata": ["ownerReferences": owners.isEmpty ? .null : try JSONValue(encoding: owners),
                                             "resourceVersion": .string(claim.metadata.resourceVersion ?? "")]]
        do {
            _ = try await client.mergePatch(PersistentVolumeClaim.self, name: claim.metadata.name ?? "",
                                            namespace: claim.metadata.namespace, patch: patch)
        } catch let error as APIError where error.isConflict || error.isNotFound {
            throw error  // the cache was stale: retry with back-off
        }
    }

    // MARK: Revisions

    /// The current and update revisions (`getStatefulSetRevisions`): the update revision is
    /// the one recording today's template, made when missing; an equal older revision is
    /// renumbered to the newest (a rollback); a name taken by other data bumps the collision count.
    func resolveRevisions(_ set: StatefulSet) async throws -> (ControllerRevision, ControllerRevision, Int32) {
        let key = "\(set.namespace)/\(set.name)"
        var history = await revisions.byIndex(Self.ownerIndex, key).filter { $0.metadata.ownerReferences?.contains { $0.uid == set.metadata.uid } == true }
        history.sort { $0.revision < $1.revision }
        var collisionCount = set.status.collisionCount ?? 0
        let next = (history.last?.revision ?? 0) + 1
        let data = try StatefulSetRevisions.data(of: set)
        var update: ControllerRevision
        if let equal = history.last(where: { $0.data == data }) {
            update = equal
            if equal.revision != history.last?.revision {
                var renumbered = equal
                renumbered.revision = next
                update = try await client.update(renumbered)
            }
        } else {
            while true {
                let made = try StatefulSetRevisions.make(set, number: next, collisionCount: collisionCount)
                do {
                    update = try await client.create(made)
                    break
                } catch let error as APIError where error.isAlreadyExists {
                    let existing = try await client.get(ControllerRevision.self, name: made.metadata.name ?? "", namespace: set.namespace)
                    if existing.data == data && existing.metadata.ownerReferences?.contains(where: { $0.uid == set.metadata.uid }) == true {
                        update = existing
                        break
                    }
                    collisionCount += 1
                    guard collisionCount < 1000 else { throw StatefulSetError("too many ControllerRevision name collisions for \(key)") }
                }
            }
        }
        let currentName = set.status.currentRevision ?? ""
        let current = history.first { $0.metadata.name == currentName } ?? update
        return (current, update, collisionCount)
    }

    /// Deletes the oldest revisions no pod uses beyond `revisionHistoryLimit`.
    func truncateHistory(_ set: StatefulSet, live: [Pod], keep: Set<String>) async throws {
        let used = Set(live.map(\.revisionHash)).union(keep)
        let history = await revisions.byIndex(Self.ownerIndex, "\(set.namespace)/\(set.name)")
            .filter { !used.contains($0.metadata.name ?? "") }
            .sorted { $0.revision < $1.revision }
        let limit = Int(set.spec.revisionHistoryLimit ?? 10)
        guard history.count > limit else { return }
        for revision in history.prefix(history.count - limit) {
            do {
                try await client.delete(ControllerRevision.self, name: revision.metadata.name ?? "", namespace: set.namespace)
            } catch let error as APIError where error.isNotFound {
                continue
            }
        }
    }
}
