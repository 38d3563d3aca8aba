// The controller pattern of Kubernetes (client-go's workqueue + informer loop, as
// pkg/controller/volume/persistentvolume/pv_controller_base.go uses it): informers' events only
// enqueue keys; a de-duplicating, rate-limited queue hands each key to one worker at a time;
// `sync(key)` reads the current state from the informers' caches and makes the world match it,
// level-triggered and idempotent; a failed key comes back after a per-key back-off, a
// successful one forgets its back-off; the informers' periodic resync re-enqueues every key,
// so a missed event is repaired at the next resync.
import ClusterAPI
import Logging
import Synchronization

/// What a controller's `sync` tells the runner about its key.
public enum SyncResult: Sendable, Equatable {
    /// Done: the key's back-off is forgotten.
    case done
    /// Done for now; look again after the duration (a state that changes with time, such as
    /// an operation in progress), back-off forgotten.
    case requeue(after: Duration)
    /// Not done, without an error worth logging (waiting for another object): the key comes
    /// back after its back-off, which grows.
    case retry
}

/// A named controller: a work queue, the sources that feed it, and `workers` tasks calling
/// `sync`. Use one worker where two keys must never be processed at once (Kubernetes' PV
/// binder keeps one for that reason); a key is never handed to two workers at once anyway.
public final class Controller<Key: Hashable & Sendable>: Sendable {
    public let name: String
    public let queue: WorkQueue<Key>
    public let workers: Int
    private let logger: Logger
    private let sync: @Sendable (Key) async throws -> SyncResult
    private let state = Mutex(Sources())

    private struct Sources {
        /// Loops that feed the queue (informer subscriptions) or run beside the workers.
        var tasks: [@Sendable () async -> Void] = []
        /// Informers whose first list must be in before the workers start.
        var syncs: [@Sendable () async -> Void] = []
    }

    /// - Parameters:
    ///   - name: the controller's name, in logs.
    ///   - workers: how many keys are processed at once.
    ///   - queue: the queue (its back-off: 5 ms doubling to 5 min by default).
    ///   - sync: makes the world match the desired state of one key. Throwing requeues the
    ///     key with back-off and logs the error.
    public init(name: String, workers: Int = 1, queue: WorkQueue<Key> = WorkQueue(), logger: Logger,
                sync: @escaping @Sendable (Key) async throws -> SyncResult) {
        precondition(workers > 0, "a controller needs at least one worker")
        self.name = name
        self.workers = workers
        self.queue = queue
        self.logger = logger
        self.sync = sync
    }

    /// Enqueues the keys `keys` derives from each event of `informer` (none: ignore the
    /// event). Subscribes at once, so call it before the informer runs to see its first list.
    /// The workers start once every informer given here has listed.
    public func enqueue<Object: APIObject>(from informer: Informer<Object>,
                                           _ keys: @escaping @Sendable (InformerEvent<Object>) -> [Key]) async {
        let events = await informer.events()
        let queue = self.queue
        state.withLock {
            $0.tasks.append {
                for await event in events {
                    for key in keys(event) { await queue.add(key) }
                }
            }
            $0.syncs.append { await informer.waitForSync() }
        }
    }

    /// Runs `task` beside the workers for as long as the controller runs (a periodic pass
    /// over something no informer covers, a lease renewal). It should return when cancelled.
    public func addTask(_ task: @escaping @Sendable () async -> Void) {
        state.withLock { $0.tasks.append(task) }
    }

    /// Runs until the calling task is cancelled: the sources at once, the workers once the
    /// informers have listed. On cancellation the queue shuts down and workers finish the key
    /// they hold.
    public func run() async {
        let sources = state.withLock { $0 }
        logger.info("starting controller", metadata: ["controller": "\(name)", "workers": "\(workers)"])
        await withTaskGroup(of: Void.self) { group in
            for task in sources.tasks { group.addTask(operation: task) }
            group.addTask { [self] in
                for waitForSync in sources.syncs { await waitForSync() }
                if Task.isCancelled { return }
                await withTaskGroup(of: Void.self) { workers in
                    for _ in 0..<self.workers { workers.addTask { await self.work() } }
                }
            }
            await withTaskCancellationHandler {
                await group.next()
            } onCancel: {
                Task { await self.queue.shutDown() }
            }
            group.cancelAll()
        }
        logger.info("stopped controller", metadata: ["controller": "\(name)"])
    }

    /// Takes keys until the queue shuts down or the controller is cancelled (the queue's
    /// shutdown arrives from another task, and keys already queued would still be handed
    /// out: a controller that lost its lease must not go on working through them).
    private func work() async {
        while !Task.isCancelled, let key = await queue.next() {
            await process(key)
            await queue.done(key)
        }
    }

    /// One key through `sync`, and what its result means for the queue.
    func process(_ key: Key) async {
        do {
            switch try await sync(key) {
            case .done:
                await queue.forget(key)
            case .requeue(let delay):
                await queue.forget(key)
                await queue.add(key, after: delay)
            case .retry:
                await queue.addRateLimited(key)
            }
        } catch is CancellationError {
            return
        } catch {
            let delay = await queue.delay(afterFailures: queue.failureCount(key))
            logger.warning("sync failed; retrying", metadata: [
                "controller": "\(name)", "key": "\(key)", "error": "\(error)", "in": "\(delay)",
            ])
            await queue.addRateLimited(key)
        }
    }
}
