import NIOCore
import Synchronization

/// How much one watch may hold between the store and its client.
public struct WatchBufferLimits: Sendable, Equatable {
    /// Events waiting to be written (Kubernetes' cacheWatcher channel holds up to 1000).
    public var events: Int
    /// Bytes of the stored objects behind those events.
    public var bytes: Int

    public init(events: Int = 1024, bytes: Int = 16 << 20) {
        self.events = events
        self.bytes = bytes
    }
}

/// The events on their way from the store's watch to one watch response: a bounded FIFO.
/// The store side pushes without waiting (it must never hold up the store); the HTTP side
/// pops and writes, and writing waits while the client does not read. When the client falls
/// `limits` behind, `push` refuses and the queue reports an overflow: the watch is closed
/// and the client re-lists, as Kubernetes closes a watcher whose buffer is full. Control
/// items (the end, an error) always fit.
final class WatchQueue<Item: Sendable>: Sendable {
    private struct State {
        /// Popped items leave it at once (a slot left behind would keep its object alive).
        /// `mark`: where the item stands in the watch's `EventLog` (its end when the item was queued).
        var items = CircularBuffer<(item: Item, cost: Int, mark: Int)>()
        var bytes = 0
        var waiter: CheckedContinuation<Item?, Never>?
        var finished = false
        var overflowed = false
        var onOverflow: (@Sendable () -> Void)?
        /// Told when an item arrives in an empty queue, or the queue finishes (nobody waiting).
        var onReady: (@Sendable () -> Void)?
    }

    let limits: WatchBufferLimits
    private let state = Mutex(State())
    /// For a watch that reads its events from an `EventLog` and gets only its control items (its
    /// bookmarks, its end) here: the log's end, taken with each item, so that the item is written
    /// after the log's events before it and before those after.
    private let marker: (@Sendable () -> Int)?

    init(limits: WatchBufferLimits, marker: (@Sendable () -> Int)? = nil) {
        self.limits = limits
        self.marker = marker
    }

    /// Adds an event of `cost` bytes. False when the queue is over its limits (the watch is
    /// then over: `overflowed` is set and the overflow handler has run) or finished.
    @discardableResult
    func push(_ item: Item, cost: Int) -> Bool {
        var ready: (@Sendable () -> Void)?
        let (accepted, waiter, overflow) = state.withLock { s -> (Bool, CheckedContinuation<Item?, Never>?, (@Sendable () -> Void)?) in
            if s.finished { return (false, nil, nil) }
            let pending = s.items.count
            if pending > 0 && (pending + 1 > limits.events || s.bytes + cost > limits.bytes) {
                s.overflowed = true
                s.finished = true
                let handler = s.onOverflow
                s.onOverflow = nil
                let w = s.waiter
                s.waiter = nil
                return (false, w, handler)
            }
            if let w = s.waiter {
                s.waiter = nil
                return (true, w, nil)
            }
            if s.items.isEmpty { ready = s.onReady }
            s.items.append((item, cost, marker?() ?? 0))
            s.bytes += cost
            return (true, nil, nil)
        }
        ready?()
        if accepted {
            waiter?.resume(returning: item)
        } else {
            waiter?.resume(returning: nil)
            overflow?()
        }
        return accepted
    }

    /// Adds `last` (the end, an error) regardless of the limits and accepts nothing after it.
    func finish(with last: Item? = nil) {
        var ready: (@Sendable () -> Void)?
        let waiter = state.withLock { s -> CheckedContinuation<Item?, Never>? in
            if s.finished { return nil }
            s.finished = true
            if let last, s.waiter == nil { s.items.append((last, 0, marker?() ?? 0)) }
            let w = s.waiter
            s.waiter = nil
            if w == nil { ready = s.onReady }
            return w
        }
        waiter?.resume(returning: last)
        ready?()
    }

    /// Runs `handler` whenever an item arrives in the empty queue or the queue finishes: for a
    /// writer that drains the queue from elsewhere (`WatchFlusher`) instead of awaiting `next()`.
    func onReady(_ handler: @escaping @Sendable () -> Void) {
        state.withLock { $0.onReady = handler }
    }

    /// Whether the queue is finished (nothing more will be accepted).
    var isFinished: Bool { state.withLock { $0.finished } }

    /// Runs `handler` once if the queue overflows (at once if it already has).
    func onOverflow(_ handler: @escaping @Sendable () -> Void) {
        let already = state.withLock { s -> Bool in
            if s.overflowed { return true }
            s.onOverflow = handler
            return false
        }
        if already { handler() }
    }

    var overflowed: Bool { state.withLock { $0.overflowed } }

    /// Ends the queue as an overflow (its watch fell too far behind an `EventLog` it reads):
    /// `overflowed` is set and the overflow handler runs, once.
    func overflow() {
        let (waiter, handler) = state.withLock { s -> (CheckedContinuation<Item?, Never>?, (@Sendable () -> Void)?) in
            if s.overflowed { return (nil, nil) }
            s.overflowed = true
            s.finished = true
            s.items.removeAll()
            s.bytes = 0
            let handler = s.onOverflow
            s.onOverflow = nil
            let w = s.waiter
            s.waiter = nil
            return (w, handler)
        }
        waiter?.resume(returning: nil)
        handler?()
    }

    /// The mark of the first item waiting (see `marker`), nil when none is.
    var firstMark: Int? { state.withLock { $0.items.first?.mark } }

    /// The first item waiting, without waiting for one.
    func popFirst() -> Item? {
        state.withLock { s in
            guard !s.overflowed, let (item, cost, _) = s.items.popFirst() else { return nil }
            s.bytes -= cost
            return item
        }
    }

    /// The next item and up to `max - 1` more already waiting: a writer that fell behind
    /// catches up in a few large writes instead of one per event. Empty once the queue is
    /// finished and drained, overflowed, or the task is cancelled.
    func nextBatch(max: Int) async -> [Item] {
        guard let first = await next() else { return [] }
        return [first] + available(max: max - 1)
    }

    /// Up to `max` items already waiting, without waiting for more.
    func available(max: Int) -> [Item] {
        state.withLock { s in
            var batch: [Item] = []
            guard !s.overflowed else { return batch }
            while batch.count < max, let (item, cost, _) = s.items.popFirst() {
                s.bytes -= cost
                batch.append(item)
            }
            return batch
        }
    }

    /// The next item; nil once the queue is finished and drained, overflowed, or the task is cancelled.
    func next() async -> Item? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Item?, Never>) in
                let ready: Item?? = state.withLock { s in
                    if s.overflowed || Task.isCancelled { return .some(nil) }
                    if let (item, cost, _) = s.items.popFirst() {
                        s.bytes -= cost
                        return .some(item)
                    }
                    if s.finished { return .some(nil) }
                    s.waiter = continuation
                    return .none
                }
                if case .some(let item) = ready { continuation.resume(returning: item) }
            }
        } onCancel: {
            let waiter = state.withLock { s -> CheckedContinuation<Item?, Never>? in
                let w = s.waiter
                s.waiter = nil
                return w
            }
            waiter?.resume(returning: nil)
        }
    }
}
