// VolumeBinding's PreBind: write what the cycle reserved — the static volumes' `claimRef`
// (the binder completes the bind) and the provisioned claims' `selected-node` (the provisioner
// creates the volume there) — then wait, woken by the informers rather than polling, until every
// claim is bound, at most `bindTimeout`. A claim whose `selected-node` was removed (the
// provisioner gave up) or a volume whose claimRef was taken back fails the cycle: the pod's
// reservations are released and it is retried after its backoff.
import APIClient
import ClusterAPI

extension Cycle {
    func preBind(_ job: BindJob) async throws {
        let info = job.pending.info
        var written: [String: Int64] = [:]   // object key → resourceVersion we wrote
        for (claimKey, volumeName) in job.plan.staticBindings {
            let (found, foundVolume) = cache.read { ($0.claims[claimKey], $0.volumes[volumeName]) }
            guard let claim = found else { throw SchedulingError("persistentvolumeclaim \"\(claimKey)\" not found") }
            guard var volume = foundVolume else { throw SchedulingError("persistentvolume \"\(volumeName)\" not found") }
            if let ref = volume.spec.claimRef, ref.name == claim.metadata.name, ref.namespace == claim.metadata.namespace,
               ref.uid == claim.metadata.uid { continue }
            volume.spec.claimRef = ObjectReference(kind: "PersistentVolumeClaim", namespace: claim.metadata.namespace,
                                                   name: claim.metadata.name, uid: claim.metadata.uid, apiVersion: "v1",
                                                   resourceVersion: claim.metadata.resourceVersion)
            volume.metadata.annotations = (volume.metadata.annotations ?? [:]).merging([SchedulerNames.boundByController: "yes"]) { $1 }
            let updated = try await writes.run { try await client.update(volume) }
            written["pv/" + volumeName] = Int64(updated.metadata.resourceVersion ?? "") ?? 0
        }
        for claimKey in job.plan.provisions {
            guard var claim = cache.read({ $0.claims[claimKey] }) else { throw SchedulingError("persistentvolumeclaim \"\(claimKey)\" not found") }
            if claim.metadata.annotations?[SchedulerNames.selectedNode] == job.node { continue }
            claim.metadata.annotations = (claim.metadata.annotations ?? [:]).merging([SchedulerNames.selectedNode: job.node]) { $1 }
            let updated = try await writes.run { try await client.update(claim) }
            written["pvc/" + claimKey] = Int64(updated.metadata.resourceVersion ?? "") ?? 0
        }
        let deadline = ContinuousClock.now + server.configuration.bindTimeout
        let keys = job.plan.staticBindings.map(\.claimKey) + job.plan.provisions
        while true {
            try Task.checkCancellation()
            let generation = cache.claimChanges.generation(keys)
            if try cache.read({ try bindingsDone(job, written: written, $0) }) { return }
            let left = deadline - .now
            if left <= .zero {
                throw SchedulingError("binding volumes: timed out waiting for the condition (pod \(info.key), \(server.configuration.bindTimeout))")
            }
            await cache.claimChanges.wait(for: keys, since: generation, timeout: min(left, .seconds(5)))
        }
    }

    /// Whether every claim of the plan is bound; throws when a binding was undone.
    private func bindingsDone(_ job: BindJob, written: [String: Int64], _ state: ClusterState) throws -> Bool {
        func seen<T: APIObject>(_ object: T, _ key: String) -> Bool {
            (Int64(object.metadata.resourceVersion ?? "") ?? 0) >= (written[key] ?? 0)
        }
        var done = true
        for (claimKey, volumeName) in job.plan.staticBindings {
            guard let claim = state.claims[claimKey] else { throw SchedulingError("persistentvolumeclaim \"\(claimKey)\" was deleted") }
            if isBound(claim, state) { continue }
            done = false
            if let volume = state.volumes[volumeName], seen(volume, "pv/" + volumeName) {
                let ref = volume.spec.claimRef
                if ref?.name != claim.metadata.name || ref?.namespace != claim.metadata.namespace {
                    throw SchedulingError("claimRef of persistentvolume \"\(volumeName)\" was reset")
                }
            }
        }
        for claimKey in job.plan.provisions {
            guard let claim = state.claims[claimKey] else { throw SchedulingError("persistentvolumeclaim \"\(claimKey)\" was deleted") }
            if isBound(claim, state) { continue }
            done = false
            if seen(claim, "pvc/" + claimKey), claim.metadata.annotations?[SchedulerNames.selectedNode] != job.node {
                throw SchedulingError("selectedNode annotation reset for PVC \"\(claim.metadata.name ?? "")\"")
            }
        }
        return done
    }

    private func isBound(_ claim: PersistentVolumeClaim, _ state: ClusterState) -> Bool {
        guard claim.isFullyBound, let volume = state.volumes[claim.spec.volumeName ?? ""] else { return false }
        return volume.spec.claimRef?.uid == claim.metadata.uid
    }
}
