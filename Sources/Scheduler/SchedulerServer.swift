// `ballast scheduler`: kube-scheduler's framework for the pods whose `spec.schedulerName` is
// ours. Informers feed the cache and the scheduling queue; `parallelism` workers each pop a pod,
// decide on a copy of the state, and assume the pod on its node (re-checked under the cache's
// lock); the binding cycle (PreBind for volumes, then `POST pods/{name}/binding`) runs beside
// them. With leader election it acts only while it holds `kube-system/ballast-scheduler`.
import APIClient
import ClusterAPI
import Foundation
import Logging
import Primitives
import ServiceLifecycle
import Synchronization

public final class SchedulerServer: ServiceLifecycle.Service, Sendable {
    public let client: KubeClient
    public let configuration: SchedulerConfiguration
    let logger: Logger
    private let elector: LeaderElector?
    private let state = Mutex(State())
    let random: Mutex<SplitMix64>

    private struct State {
        var running = false
        var schedulingSince: ContinuousClock.Instant?
        var terms = 0
        var scheduled = 0
        var queue: SchedulingQueue?
        var cache: SchedulerCache?
    }

    public init(client: KubeClient, configuration: SchedulerConfiguration, logger: Logger) {
        self.client = client
        self.configuration = configuration
        self.logger = logger
        elector = configuration.leaderElect ? LeaderElector(client: client, config: configuration.leaderElection, logger: logger) : nil
        random = Mutex(SplitMix64(seed: configuration.seed ?? UInt64(truncatingIfNeeded: DispatchTime.now().uptimeNanoseconds)))
    }

    /// Whether the scheduler is running (this instance leads, or does not elect).
    public var isRunning: Bool { state.withLock { $0.running } }
    /// When this term's scheduling began: the informers had synced and their first lists were
    /// applied to the cache and the queue (kube-scheduler's `WaitForCacheSync` before its
    /// scheduling loop); nil while not running.
    public var schedulingSince: ContinuousClock.Instant? { state.withLock { $0.schedulingSince } }
    /// How many times scheduling started (a new term after each lost lease).
    public var terms: Int { state.withLock { $0.terms } }
    /// Pods bound by this instance.
    public var scheduledCount: Int { state.withLock { $0.scheduled } }

    /// Pods in activeQ, backoffQ, unschedulable and in flight.
    public func queueCounts() async -> (active: Int, backoff: Int, unschedulable: Int, inFlight: Int)? {
        guard let queue = state.withLock({ $0.queue }) else { return nil }
        return await queue.counts
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown { await self.campaign() }
    }

    private func campaign() async {
        guard let elector else {
            await runScheduler()
            return
        }
        while !Task.isCancelled {
            let lost = await elector.run { await self.runScheduler() }
            if !lost { return }
            try? await Task.sleep(for: configuration.leaderElection.retryPeriod)
        }
    }

    /// One term: fresh informers, cache and queue, until cancelled.
    func runScheduler() async {
        let informers = SharedInformers(client: client, resync: configuration.resync, logger: logger)
        // Pods through the scheduler's projection (PodProjection.swift), not the whole model.
        let pods = Informer<Pod>(ProjectedSource(client, Pod.self, decode: { try Pod(schedulingView: $0) }),
                                 resync: configuration.resync, logger: logger)
        let nodes = await informers.informer(Node.self)
        let claims = await informers.informer(PersistentVolumeClaim.self)
        let volumes = await informers.informer(PersistentVolume.self)
        let classes = await informers.informer(StorageClass.self)
        let csiNodes = await informers.informer(CSINode.self)
        let attachments = await informers.informer(VolumeAttachment.self)
        let cache = SchedulerCache(schedulerName: configuration.schedulerName)
        let queue = SchedulingQueue(initialBackoff: configuration.initialBackoff, maxBackoff: configuration.maxBackoff)
        let activity = Activity()
        let recorder = EventRecorder(client: client, component: configuration.schedulerName,
                                     host: ProcessInfo.processInfo.hostName, options: configuration.events, logger: logger,
                                     busy: { activity.isBusy })
        let streams = Streams(pods: await pods.events(), nodes: await nodes.events(), claims: await claims.events(),
                              volumes: await volumes.events(), classes: await classes.events(), csiNodes: await csiNodes.events(),
                              attachments: await attachments.events())
        state.withLock {
            $0.queue = queue
            $0.cache = cache
        }
        await informers.start()
        let podInformer = Task { await pods.run() }
        await informers.waitForSync()
        await pods.waitForSync()
        if Task.isCancelled {
            podInformer.cancel()
            await podInformer.value
            await informers.stop()
            return
        }
        // The first lists, applied before any cycle runs (the event streams repeat them; every
        // handler is idempotent).
        for node in await nodes.list() { cache.nodeChanged(node) }
        for claim in await claims.list() { cache.claimChanged(claim) }
        for volume in await volumes.list() { cache.volumeChanged(volume) }
        for storageClass in await classes.list() { cache.classChanged(storageClass) }
        for csiNode in await csiNodes.list() { cache.csiNodeChanged(csiNode) }
        for attachment in await attachments.list() { cache.attachmentChanged(attachment) }
        for pod in await pods.list() where cache.podChanged(pod) { await queue.add(PodInfo.key(of: pod)) }
        state.withLock {
            $0.running = true
            $0.schedulingSince = .now
            $0.terms += 1
        }
        logger.info("scheduler starting", metadata: ["name": "\(configuration.schedulerName)", "parallelism": "\(configuration.parallelism)"])
        let (jobs, jobSink) = AsyncStream<BindJob>.makeStream()
        let cycle = Cycle(server: self, cache: cache, queue: queue, recorder: recorder, jobs: jobSink,
                          writes: ConcurrencyGate(limit: configuration.concurrentWrites), activity: activity)
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await recorder.run() }
            group.addTask { await Self.consume(streams, cache: cache, queue: queue) }
            group.addTask { [configuration] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(30))
                    await queue.flushUnschedulable(olderThan: configuration.unschedulableFlush)
                }
            }
            group.addTask {
                await withDiscardingTaskGroup { bindings in
                    for await job in jobs { bindings.addTask { await cycle.bindingCycle(job) } }
                }
            }
            for _ in 0..<max(configuration.parallelism, 1) {
                group.addTask {
                    while let key = await queue.pop() {
                        activity.begin()
                        await cycle.scheduleOne(key)
                        activity.end()
                    }
                }
            }
            await withTaskCancellationHandler {
                await group.next()
            } onCancel: {
                Task { await queue.shutDown() }
            }
            await queue.shutDown()
            jobSink.finish()
            recorder.finish()
            group.cancelAll()
        }
        state.withLock {
            $0.running = false
            $0.schedulingSince = nil
            $0.queue = nil
            $0.cache = nil
        }
        podInformer.cancel()
        await podInformer.value
        await informers.stop()
        logger.info("scheduler stopped")
    }

    func countScheduled() { state.withLock { $0.scheduled += 1 } }

    func randomIndex(_ count: Int) -> Int { random.withLock { Int($0.next() % UInt64(count)) } }
}
