// The pods bound to this node, each with its worker: the informer (pods whose spec.nodeName is
// this node) starts a worker for a new pod, hands it each new version, and tells it when the
// pod is gone. At start, after the first list, what earlier runs left behind for pods that no
// longer exist — containers, volumes, namespaces, cgroups — is removed; housekeeping repeats
// that for pod directories nobody owns and unstages devices no pod uses, and grows the file
// systems of running pods' claims resized online.
import APIClient
import ClusterAPI
import Foundation
import Logging

actor PodManager {
    let context: KubeletContext
    private var workers: [String: (worker: PodWorker, task: Task<Void, Never>)] = [:]
    /// Pods seen deleted, so that a late event does not start a worker again.
    private var finished: Set<String> = []
    private var logger: Logger { context.logger }

    init(context: KubeletContext) {
        self.context = context
    }

    /// Feeds the workers from `informer` until cancelled.
    func run(informer: Informer<Pod>) async {
        let events = await informer.events()
        let feed = Task {
            for await event in events { await self.handle(event) }
        }
        await informer.waitForSync()
        await cleanUpOrphans(known: Set(await informer.list().map(\.uid)))
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(10))
            if Task.isCancelled { break }
            await cleanUpOrphans(known: Set(await informer.list().map(\.uid)))
            await expandVolumes()
        }
        feed.cancel()
        for (_, entry) in workers { entry.task.cancel() }
    }

    func handle(_ event: InformerEvent<Pod>) async {
        let pod = event.object
        let uid = pod.uid
        guard !uid.isEmpty, pod.spec.nodeName == context.settings.nodeName else { return }
        switch event {
        case .deleted:
            await workers[uid]?.worker.removed()
        case .added, .updated, .resync:
            if let entry = workers[uid] {
                await entry.worker.update(pod)
            } else if !finished.contains(uid) {
                let worker = PodWorker(pod: pod, context: context) { [weak self] uid in await self?.workerFinished(uid) }
                let task = Task { await worker.run() }
                workers[uid] = (worker, task)
            }
        }
    }

    /// Online expansion of every running pod's claims (each worker checks its own).
    func expandVolumes() async {
        let running = workers.values.map(\.worker)
        await withTaskGroup(of: Void.self) { group in
            for worker in running { group.addTask { await worker.expandVolumesIfPending() } }
        }
    }

    func workerFinished(_ uid: String) async {
        finished.insert(uid)
        if let entry = workers.removeValue(forKey: uid) { await entry.worker.stop() }
    }

    /// The worker of pod `uid`, for the HTTP server (logs, exec).
    func worker(_ uid: String) -> PodWorker? { workers[uid]?.worker }

    var podCount: Int { workers.count }

    /// Removes what belongs to pods that are neither known to the API server nor worked on:
    /// their containers (stopped), volumes, namespaces and cgroups. Then unstages devices no
    /// pod uses.
    func cleanUpOrphans(known: Set<String>) async {
        let owned = Set(workers.keys).union(known)
        var orphans = Set<String>()
        for record in context.runtime.records() where !owned.contains(record.podUID) {
            orphans.insert(record.podUID)
            logger.info("stopping a container of a pod that no longer exists", metadata: ["pod": "\(record.podNamespace)/\(record.podName)", "container": "\(record.name)"])
            _ = await context.runtime.stop(record.id, grace: .seconds(2))
            try? await context.runtime.remove(record.id)
        }
        for id in context.runtime.removeUnrecorded() {
            logger.info("removed a container directory without a record (left by a machine crash)", metadata: ["id": "\(id)"])
        }
        for uid in await context.volumes.podDirectories() where !owned.contains(uid) {
            orphans.insert(uid)
        }
        for uid in orphans {
            do {
                try await context.network?.tearDown(uid: uid, netns: context.sandbox(uid).netNamespace)
                try await context.sandbox(uid).remove()
                try await context.volumes.tearDown(podUID: uid)
                context.runtime.cgroups.remove(Cgroups.podPath(parent: context.runtime.cgroupParent, podUID: uid))
                logger.info("cleaned up an orphaned pod", metadata: ["uid": "\(uid)"])
            } catch {
                logger.warning("cannot clean up an orphaned pod", metadata: ["uid": "\(uid)", "error": "\(error)"])
            }
        }
        do {
            try await context.volumes.unstageUnused()
        } catch {
            logger.warning("cannot unstage an unused volume", metadata: ["error": "\(error)"])
        }
    }
}
