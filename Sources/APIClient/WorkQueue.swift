// A controller's work queue, with Kubernetes' semantics: a key is queued at most once however
// often it is added; a key being processed is not handed out again until `done`, and is queued
// again then if it was added meanwhile; failed keys come back after a per-key exponential
// back-off (`addRateLimited`) until `forget`. Delayed adds (`add(_:after:)`) wait in tasks the
// queue owns: one per key (the earliest wins, as client-go's delaying queue keeps the earliest),
// all cancelled by `shutDown`, so a stopped controller leaves nothing sleeping behind it.
import Foundation

public actor WorkQueue<Key: Hashable & Sendable> {
    private var queue: [Key] = []
    private var head = 0
    private var dirty: Set<Key> = []
    private var processing: Set<Key> = []
    private var waiters: [CheckedContinuation<Key?, Never>] = []
    private var failures: [Key: Int] = [:]
    private var shuttingDown = false
    /// key → the task that adds it later, and when.
    private var delayed: [Key: (due: ContinuousClock.Instant, id: UInt64, task: Task<Void, Never>)] = [:]
    private var nextDelayID: UInt64 = 0
    private let baseDelay: Duration
    private let maxDelay: Duration

    public init(baseDelay: Duration = .milliseconds(5), maxDelay: Duration = .seconds(300)) {
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
    }

    /// Keys waiting to be handed out.
    public var count: Int { queue.count - head }

    public func add(_ key: Key) {
        guard !shuttingDown, !dirty.contains(key) else { return }
        dirty.insert(key)
        if processing.contains(key) { return }
        if !waiters.isEmpty {
            dirty.remove(key)
            processing.insert(key)
            waiters.removeFirst().resume(returning: key)
        } else {
            queue.append(key)
        }
    }

    /// Adds `key` after `delay`. A key already waiting to be added earlier keeps its time; one
    /// waiting longer is moved to the earlier time. Nothing is added once the queue shuts down.
    public func add(_ key: Key, after delay: Duration) {
        guard !shuttingDown else { return }
        guard delay > .zero else { return add(key) }
        let due = ContinuousClock.now + delay
        if let waiting = delayed[key] {
            if waiting.due <= due { return }
            waiting.task.cancel()
        }
        nextDelayID &+= 1
        let id = nextDelayID
        let task = Task {
            try? await Task.sleep(until: due)
            self.fire(key, id: id)
        }
        delayed[key] = (due, id, task)
    }

    /// A delayed add whose time came (or that was cancelled: then it only forgets itself).
    private func fire(_ key: Key, id: UInt64) {
        guard delayed[key]?.id == id else { return }
        let cancelled = delayed[key]?.task.isCancelled ?? true
        delayed[key] = nil
        if !cancelled { add(key) }
    }

    /// Keys waiting for a delayed add.
    public var delayedCount: Int { delayed.count }

    /// Adds `key` after its back-off: `baseDelay` doubled for each failure since `forget`.
    public func addRateLimited(_ key: Key) {
        let failed = failures[key, default: 0]
        failures[key] = failed + 1
        add(key, after: delay(afterFailures: failed))
    }

    /// How long a key waits after `failures` earlier failures.
    public func delay(afterFailures failures: Int) -> Duration {
        min(baseDelay * Int(pow(2, Double(min(failures, 30)))), maxDelay)
    }

    /// Clears `key`'s back-off (call it when the key was processed successfully).
    public func forget(_ key: Key) { failures[key] = nil }

    public func failureCount(_ key: Key) -> Int { failures[key, default: 0] }

    /// The next key, waiting for one; nil once the queue is shut down.
    public func next() async -> Key? {
        if head < queue.count {
            let key = queue[head]
            head += 1
            if head > 1024, head * 2 > queue.count {
                queue.removeFirst(head)
                head = 0
            }
            dirty.remove(key)
            processing.insert(key)
            return key
        }
        if shuttingDown { return nil }
        return await withCheckedContinuation { waiters.append($0) }
    }

    /// Marks `key` processed; it is queued again if it was added meanwhile.
    public func done(_ key: Key) {
        processing.remove(key)
        guard dirty.contains(key) else { return }
        if !waiters.isEmpty {
            dirty.remove(key)
            processing.insert(key)
            waiters.removeFirst().resume(returning: key)
        } else {
            queue.append(key)
        }
    }

    /// Stops handing out keys: `next()` returns nil to every waiter, and the delayed adds are
    /// cancelled (their tasks end at once instead of sleeping out their back-off).
    public func shutDown() {
        shuttingDown = true
        for waiter in waiters { waiter.resume(returning: nil) }
        waiters.removeAll()
        for waiting in delayed.values { waiting.task.cancel() }
        delayed.removeAll()
    }
}
