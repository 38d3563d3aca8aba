// The Deployment controller's ReplicaSet bookkeeping (pkg/controller/deployment/sync.go): finding
// or making the new ReplicaSet and its revision, scaling (proportionally while several are
// active), cleaning old ones beyond revisionHistoryLimit, and the status.
import APIClient
import ClusterAPI

extension DeploymentController {
    typealias Util = DeploymentUtil

    /// `getAllReplicaSetsAndSyncRevision`: the new ReplicaSet (made when `create` and missing)
    /// with its revision raised above every old one's, and the old ones.
    func newAndOld(_ d: inout Deployment, _ pass: Pass, create: Bool) async throws -> (new: ReplicaSet?, old: [ReplicaSet]) {
        let old = Util.findOld(d, pass.sets)
        let new = try await newReplicaSet(&d, pass, old: old, create: create)
        if let new { pass.update(new) }
        return (new, old.map(pass.current))
    }

    /// `getNewReplicaSet`.
    private func newReplicaSet(_ d: inout Deployment, _ pass: Pass, old: [ReplicaSet], create: Bool) async throws -> ReplicaSet? {
        let newRevision = Util.maxRevision(old) + 1
        let now = Time.now()
        if var rs = Util.findNew(d, pass.sets) {
            let annotationsChanged = Util.setNewReplicaSetAnnotations(d, &rs, newRevision: newRevision, exists: true)
            if annotationsChanged || (rs.spec.minReadySeconds ?? 0) != (d.spec.minReadySeconds ?? 0) {
                rs.spec.minReadySeconds = d.spec.minReadySeconds
                return try await write(rs)
            }
            var changed = Util.setDeploymentRevision(&d, rs.metadata.annotations?[DeploymentAnnotation.revision] ?? "")
            if Util.hasProgressDeadline(d), Util.condition(d.status, "Progressing") == nil {
                Util.setCondition(&d.status, Util.newCondition("Progressing", "True", DeploymentReason.foundNewReplicaSet,
                                                               "Found new replica set \"\(rs.metadata.name ?? "")\"", now: now))
                changed = true
            }
            if changed { d = try await writeStatus(d) }
            return rs
        }
        guard create else { return nil }
        // The hash of the Deployment's template names the ReplicaSet and keeps its pods apart.
        var template = d.spec.template
        let hash = Util.podTemplateHash(template, collisionCount: d.status.collisionCount)
        template.metadata.labels = (template.metadata.labels ?? [:]).merging([DeploymentAnnotation.podTemplateHashLabel: hash]) { $1 }
        var selector = d.spec.selector ?? LabelSelectorSpec()
        selector.matchLabels = (selector.matchLabels ?? [:]).merging([DeploymentAnnotation.podTemplateHashLabel: hash]) { $1 }
        let name = (d.metadata.name ?? "") + "-" + hash
        let owner = OwnerReference(apiVersion: Deployment.defaultAPIVersion, kind: Deployment.defaultKind, name: d.metadata.name ?? "",
                                   uid: d.metadata.uid ?? "", controller: true, blockOwnerDeletion: true)
        var rs = ReplicaSet(metadata: ObjectMeta(name: name, namespace: d.metadata.namespace, labels: template.metadata.labels,
                                                 ownerReferences: [owner]),
                            spec: ReplicaSetSpec(replicas: 0, minReadySeconds: d.spec.minReadySeconds, selector: selector, template: template))
        let replicas = Util.newReplicaSetReplicas(d, all: old + [rs], new: rs, existing: pass.existingPods)
        rs.spec.replicas = replicas
        _ = Util.setNewReplicaSetAnnotations(d, &rs, newRevision: newRevision, exists: false)
        var alreadyExists = false
        let created: ReplicaSet
        do {
            created = try await client.create(rs)
        } catch let error as APIError where error.isAlreadyExists {
            // A slow cache, or another template with the same hash.
            let found = try await client.get(ReplicaSet.self, name: name, namespace: d.metadata.namespace)
            guard found.controllerRef?.uid == d.metadata.uid,
                  Util.equalIgnoringHash(found.spec.template ?? PodTemplateSpec(), d.spec.template) else {
                d.status.collisionCount = (d.status.collisionCount ?? 0) + 1
                logger.info("hash collision; collisionCount raised", metadata: ["deployment": "\(d.namespacedName)",
                                                                               "collisionCount": "\(d.status.collisionCount ?? 0)"])
                d = try await writeStatus(d)
                throw error
            }
            created = found
            alreadyExists = true
        } catch {
            let message = "Failed to create new replica set \"\(name)\": \(apiMessage(error))"
            if Util.hasProgressDeadline(d) {
                Util.setCondition(&d.status, Util.newCondition("Progressing", "False", DeploymentReason.failedReplicaSetCreate, message, now: now))
                if let written = try? await writeStatus(d) { d = written }
            }
            recorder.event(d, .warning, DeploymentReason.failedReplicaSetCreate, message)
            throw error
        }
        replicaSets.record(created)
        if !alreadyExists && replicas > 0 {
            recorder.event(d, .normal, "ScalingReplicaSet", "Scaled up replica set \(name) to \(replicas)")
        }
        var changed = Util.setDeploymentRevision(&d, String(newRevision))
        if !alreadyExists && Util.hasProgressDeadline(d) {
            Util.setCondition(&d.status, Util.newCondition("Progressing", "True", DeploymentReason.newReplicaSetCreated,
                                                           "Created new replica set \"\(name)\"", now: now))
            changed = true
        }
        if changed { d = try await writeStatus(d) }
        return created
    }

    // MARK: Writes

    func write(_ rs: ReplicaSet) async throws -> ReplicaSet {
        let updated = try await client.update(rs)
        replicaSets.record(updated)
        return updated
    }

    func writeStatus(_ d: Deployment) async throws -> Deployment {
        let updated = try await client.updateStatus(d)
        deployments.record(updated)
        return updated
    }

    /// `scaleReplicaSetAndRecordEvent`: scales unless already at `size`; whether it did.
    @discardableResult
    func scale(_ rs: ReplicaSet, to size: Int32, _ d: Deployment, _ pass: Pass) async throws -> Bool {
        let current = Util.specReplicas(rs)
        if current == size { return false }
        return try await scale(rs, to: size, d, pass, operation: current < size ? "up" : "down")
    }

    /// `scaleReplicaSet`: the size and the replica annotations; event `ScalingReplicaSet` when
    /// the size changed. Whether it did.
    @discardableResult
    func scale(_ rs: ReplicaSet, to size: Int32, _ d: Deployment, _ pass: Pass, operation: String) async throws -> Bool {
        let desired = Util.replicas(d), max = desired + Util.maxSurge(d)
        let current = Util.specReplicas(rs)
        let resize = current != size
        guard resize || Util.replicasAnnotationsNeedUpdate(rs, desired: desired, max: max) else { return false }
        var copy = rs
        copy.spec.replicas = size
        Util.setReplicasAnnotations(&copy, desired: desired, max: max)
        let updated = try await write(copy)
        pass.update(updated)
        if resize {
            recorder.event(d, .normal, "ScalingReplicaSet",
                           "Scaled \(operation) replica set \(updated.metadata.name ?? "") to \(size) from \(current)")
        }
        return resize
    }

    // MARK: Scaling events and pauses

    /// `sync`: scaling (also while paused), old ReplicaSets cleaned when paused, status.
    func syncScaling(_ d: inout Deployment, _ pass: Pass) async throws -> SyncResult {
        let (new, old) = try await newAndOld(&d, pass, create: false)
        try await scaleProportionally(d, new: new, old: old, pass)
        if d.spec.paused == true { try await cleanup(old.map(pass.current), d) }
        return try await syncStatus(&d, pass, new: new.map(pass.current))
    }

    /// `syncStatusOnly`.
    func syncStatusOnly(_ d: inout Deployment, _ pass: Pass) async throws -> SyncResult {
        let (new, _) = try await newAndOld(&d, pass, create: false)
        return try await syncStatus(&d, pass, new: new)
    }

    /// `isScalingEvent`: an active ReplicaSet was last scaled for other replicas than the
    /// Deployment's.
    func isScalingEvent(_ d: inout Deployment, _ pass: Pass) async throws -> Bool {
        _ = try await newAndOld(&d, pass, create: false)
        let replicas = Util.replicas(d)
        return Util.active(pass.sets).contains { rs in
            guard let desired = Util.annotatedInt(rs, DeploymentAnnotation.desiredReplicas) else { return false }
            return desired != replicas
        }
    }

    /// `checkPausedConditions`: Progressing Unknown `DeploymentPaused` / `DeploymentResumed`,
    /// so that the time spent paused does not count against the progress deadline.
    func checkPausedConditions(_ d: inout Deployment) async throws {
        guard Util.hasProgressDeadline(d) else { return }
        let condition = Util.condition(d.status, "Progressing")
        if condition?.reason == DeploymentReason.progressDeadlineExceeded { return }
        let pausedNoted = condition?.reason == DeploymentReason.paused
        let paused = d.spec.paused == true
        if paused && !pausedNoted {
            Util.setCondition(&d.status, Util.newCondition("Progressing", "Unknown", DeploymentReason.paused, "Deployment is paused", now: .now()))
        } else if !paused && pausedNoted {
            Util.setCondition(&d.status, Util.newCondition("Progressing", "Unknown", DeploymentReason.resumed, "Deployment is resumed", now: .now()))
        } else {
            return
        }
        d = try await writeStatus(d)
    }

    /// `scale`: one active ReplicaSet takes the replicas; a saturated new one empties the old
    /// ones; otherwise (RollingUpdate) every active ReplicaSet takes its share of the change,
    /// by its size over the max-replicas it was last scaled for, the rest to the largest.
    func scaleProportionally(_ d: Deployment, new: ReplicaSet?, old: [ReplicaSet], _ pass: Pass) async throws {
        if let target = Util.activeOrLatest(new: new, old: old) {
            if Util.specReplicas(target) != Util.replicas(d) { try await scale(target, to: Util.replicas(d), d, pass) }
            return
        }
        if Util.isSaturated(d, new) {
            for rs in Util.active(old) { try await scale(rs, to: 0, d, pass) }
            return
        }
        guard Util.isRollingUpdate(d) else { return }
        var all = Util.active(old + (new.map { [$0] } ?? []))
        let allowed = Util.replicas(d) > 0 ? Util.replicas(d) + Util.maxSurge(d) : 0
        let toAdd = allowed - Util.replicaCount(all)
        var operation = ""
        if toAdd > 0 {
            all = Util.sortedBySize(all, newerFirst: true)
            operation = "up"
        } else if toAdd < 0 {
            all = Util.sortedBySize(all, newerFirst: false)
            operation = "down"
        }
        var added: Int32 = 0
        var sizes: [Int32] = []
        for rs in all {
            let share = toAdd == 0 ? 0 : Util.proportion(rs, d, toAdd: toAdd, added: added)
            sizes.append(Util.specReplicas(rs) + share)
            added += share
        }
        for (index, rs) in all.enumerated() {
            var size = sizes[index]
            if index == 0 && toAdd != 0 { size = max(0, size + toAdd - added) }
            try await scale(rs, to: size, d, pass, operation: operation)
        }
    }

    /// `cleanupDeployment`: old ReplicaSets beyond revisionHistoryLimit, lowest revision first,
    /// deleted when they have no pods, want none and their status is current.
    func cleanup(_ old: [ReplicaSet], _ d: Deployment) async throws {
        guard let limit = d.spec.revisionHistoryLimit else { return }
        let cleanable = old.filter { $0.metadata.deletionTimestamp == nil }
        let excess = cleanable.count - Int(limit)
        guard excess > 0 else { return }
        for rs in Util.sortedByRevision(cleanable).prefix(excess) {
            if rs.status.replicas != 0 || Util.specReplicas(rs) != 0
                || (rs.metadata.generation ?? 0) > (rs.status.observedGeneration ?? 0) { continue }
            do {
                try await client.delete(ReplicaSet.self, name: rs.metadata.name ?? "", namespace: rs.metadata.namespace,
                                        options: DeleteOptions(preconditionUID: rs.metadata.uid))
                logger.info("old replica set cleaned up", metadata: ["deployment": "\(d.namespacedName)", "replicaset": "\(rs.metadata.name ?? "")"])
            } catch let error as APIError where error.isNotFound {
                continue
            }
        }
    }

    // MARK: Status

    /// `calculateStatus`: counts over every ReplicaSet, updated = the new one's, and the
    /// Available condition (at least replicas − maxUnavailable available).
    static func calculateStatus(_ d: Deployment, all: [ReplicaSet], new: ReplicaSet?, now: Time = .now()) -> DeploymentStatus {
        let available = Util.availableReplicaCount(all)
        let unavailable = max(0, Util.replicaCount(all) - available)
        func nonZero(_ value: Int32) -> Int32? { value == 0 ? nil : value }
        var status = DeploymentStatus(observedGeneration: d.metadata.generation, replicas: nonZero(Util.actualReplicaCount(all)),
                                      updatedReplicas: nonZero(new.map { $0.status.replicas } ?? 0),
                                      readyReplicas: nonZero(Util.readyReplicaCount(all)), availableReplicas: nonZero(available),
                                      unavailableReplicas: nonZero(unavailable), conditions: d.status.conditions,
                                      collisionCount: d.status.collisionCount)
        status.unknownFields = d.status.unknownFields
        if available >= Util.replicas(d) - Util.maxUnavailable(d) {
            Util.setCondition(&status, Util.newCondition("Available", "True", DeploymentReason.minimumReplicasAvailable,
                                                         "Deployment has minimum availability.", now: now))
        } else {
            Util.setCondition(&status, Util.newCondition("Available", "False", DeploymentReason.minimumReplicasUnavailable,
                                                         "Deployment does not have minimum availability.", now: now))
        }
        return status
    }

    /// `syncDeploymentStatus`.
    func syncStatus(_ d: inout Deployment, _ pass: Pass, new: ReplicaSet?) async throws -> SyncResult {
        let status = Self.calculateStatus(d, all: pass.sets, new: new.map(pass.current))
        if status != d.status {
            d.status = status
            d = try await writeStatus(d)
        }
        return .done
    }
}
