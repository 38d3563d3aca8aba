import HTTPKit
import NIOCore
import Synchronization

/// Writes the watch responses of one event loop, from that loop: the watch cache queues each
/// event to each watch (`WatchQueue`) and kicks the flusher of the watch's loop; the flusher
/// then writes every watch of the loop that has something queued, each as one chunk of up to
/// `APIHandler.linesPerWrite` lines, and flushes it. No task per watch, no task wake and no
/// loop hop per write, and at most one round of writes per `interval` per loop: under load
/// the events that arrive meanwhile share one write (one TLS record, one syscall) per watch.
final class WatchFlusher: Sendable {
    let eventLoop: any EventLoop
    let interval: TimeAmount

    private struct State {
        /// The watches attached (on the loop), by identity.
        var watches: [ObjectIdentifier: DirectWatch] = [:]
        var scheduled = false
        var lastFlush = NIODeadline.uptimeNanoseconds(0)
    }

    private let state = Mutex(State())

    init(eventLoop: any EventLoop, interval: Duration) {
        self.eventLoop = eventLoop
        let (seconds, attoseconds) = interval.components
        self.interval = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    /// Adds `watch`, once everything the response wrote before (its head, its backlog) has
    /// reached the connection: the attachment is queued on the loop behind those writes. Writes
    /// what is already queued at once.
    func attach(_ watch: DirectWatch) {
        eventLoop.execute {
            self.state.withLock { $0.watches[ObjectIdentifier(watch)] = watch }
            if watch.drain() != .idle { self.kick() }
        }
    }

    /// Something is queued (or a watch ended): a round of writes at once when the loop's last
    /// one was at least `interval` ago, else when it is.
    func kick() {
        let delay: TimeAmount? = state.withLock { s in
            if s.scheduled { return nil }
            s.scheduled = true
            let due = s.lastFlush + interval
            let now = NIODeadline.now()
            return due > now ? due - now : .zero
        }
        guard let delay else { return }
        if delay == .zero {
            eventLoop.execute { self.flush() }
        } else {
            eventLoop.scheduleTask(in: delay) { self.flush() }
        }
    }

    /// One round: each watch writes what is queued; finished watches leave; a watch whose
    /// client does not read keeps its events queued (bounded by its `WatchQueue`) for a later round.
    private func flush() {
        let watches = state.withLock { s -> [DirectWatch] in
            s.scheduled = false
            s.lastFlush = .now()
            return Array(s.watches.values)
        }
        var again = false
        var finished: [ObjectIdentifier] = []
        for watch in watches {
            switch watch.drain() {
            case .idle: break
            case .blocked: again = true
            case .finished: finished.append(ObjectIdentifier(watch))
            }
        }
        if !finished.isEmpty {
            state.withLock { s in for id in finished { s.watches[id] = nil } }
        }
        if again { kick() }
    }
}

/// One watch response written by a `WatchFlusher`: its queue, how its lines are written, its
/// connection, and how it ended.
final class DirectWatch: Sendable {
    enum Outcome: Sendable, Equatable {
        /// Its queue ended (timeout, shutdown, an ERROR event): the response ends normally.
        case ended
        /// Its client fell too far behind: the connection is closed.
        case overflowed
        /// The request was cancelled (the client went away, or the server is stopping).
        case cancelled
    }

    enum Drained: Equatable {
        /// Everything queued was written.
        case idle
        /// The client is not reading: something is still queued.
        case blocked
        /// The watch is over; write nothing more.
        case finished
    }

    let queue: WatchQueue<WatchItem>
    let lines: WatchLines
    let body: HTTPDirectBody

    private struct State {
        var outcome: Outcome?
        var waiter: CheckedContinuation<Outcome, Never>?
    }

    private let state = Mutex(State())

    init(queue: WatchQueue<WatchItem>, lines: WatchLines, body: HTTPDirectBody) {
        self.queue = queue
        self.lines = lines
        self.body = body
    }

    /// On the loop: writes what is queued while the connection takes it, several lines per chunk.
    /// Once the watch is over nothing more is written: the response's end, written by the server
    /// after `outcome()` returns, reaches the loop behind this.
    func drain() -> Drained {
        if state.withLock({ $0.outcome != nil }) { return .finished }
        var wrote = false
        var ended = false
        while body.isWritable && !ended {
            let batch = queue.available(max: APIHandler.linesPerWrite)
            if batch.isEmpty { break }
            var buffer = body.allocator.buffer(capacity: 2048 * batch.count)
            for item in batch {
                if case .end = item { ended = true; break }
                lines.append(item, to: &buffer)
                if case .failed = item { ended = true; break }
            }
            if buffer.readableBytes > 0 {
                body.write(buffer)
                wrote = true
            }
        }
        if wrote { body.flush() }
        if ended {
            complete(.ended)
            return .finished
        }
        if queue.overflowed || !body.isActive { return .finished }
        return queue.pending.events > 0 ? .blocked : .idle
    }

    /// Ends the watch with `outcome` (the first one given counts).
    func complete(_ outcome: Outcome) {
        let waiter = state.withLock { s -> CheckedContinuation<Outcome, Never>? in
            guard s.outcome == nil else { return nil }
            s.outcome = outcome
            let w = s.waiter
            s.waiter = nil
            return w
        }
        waiter?.resume(returning: outcome)
    }

    /// Waits until the watch is over.
    func outcome() async -> Outcome {
        await withCheckedContinuation { (c: CheckedContinuation<Outcome, Never>) in
            let done = state.withLock { s -> Outcome? in
                if let outcome = s.outcome { return outcome }
                s.waiter = c
                return nil
            }
            if let done { c.resume(returning: done) }
        }
    }
}

/// One `WatchFlusher` per event loop, made the first time a watch runs on it.
final class WatchFlushers: Sendable {
    private let flushers = Mutex<[ObjectIdentifier: WatchFlusher]>([:])
    let interval: Duration

    init(interval: Duration) { self.interval = interval }

    func flusher(for eventLoop: any EventLoop) -> WatchFlusher {
        flushers.withLock { all in
            let id = ObjectIdentifier(eventLoop as AnyObject)
            if let made = all[id] { return made }
            let made = WatchFlusher(eventLoop: eventLoop, interval: interval)
            all[id] = made
            return made
        }
    }
}
