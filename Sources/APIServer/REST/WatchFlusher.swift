import HTTPKit
import NIOCore
import Synchronization

/// Writes the watch responses of one event loop, from that loop: the watch cache appends each
/// event once to its resource's `EventLog` and kicks the flushers of the loops whose watches read
/// that log; the flusher then writes every watch of the loop that has something to send, each as
/// one chunk of up to `APIHandler.linesPerWrite` lines, and flushes it. No queue push per event
/// per watch, no task per watch, no task wake and no loop hop per write, and at most one round of
/// writes per `interval` per loop: under load the events that arrive meanwhile share one write
/// (one TLS record, one syscall) per watch.
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

    /// Adds `watch` to the rounds, from the moment it is registered with the cache: until it goes
    /// `live` nothing is written, but a watch whose backlog takes long to write is still held to
    /// its bounds (its cursor falling too far behind the log closes it).
    func attach(_ watch: DirectWatch) {
        watch.log.listen(ObjectIdentifier(self)) { [weak self] in self?.kick() }
        eventLoop.execute {
            self.state.withLock { $0.watches[ObjectIdentifier(watch)] = watch }
            if watch.drain() != .idle { self.kick() }
        }
    }

    /// Starts writing `watch`'s events, once everything the response wrote before (its head, its
    /// backlog) has reached the connection: this is queued on the loop behind those writes.
    func activate(_ watch: DirectWatch) {
        eventLoop.execute {
            watch.goLive()
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

    /// One round: each watch writes what is new; finished watches leave; a watch whose client does
    /// not read keeps its place in the log (bounded by its `WatchBufferLimits`) for a later round.
    private func flush() {
        let watches = state.withLock { s -> [DirectWatch] in
            s.scheduled = false
            s.lastFlush = .now()
            return Array(s.watches.values)
        }
        var again = false
        var finished: [DirectWatch] = []
        for watch in watches {
            switch watch.drain() {
            case .idle: break
            case .blocked: again = true
            case .finished: finished.append(watch)
            }
        }
        if !finished.isEmpty {
            let removed = state.withLock { s in finished.filter { s.watches.removeValue(forKey: ObjectIdentifier($0)) != nil } }
            for watch in removed { watch.log.stopListening(ObjectIdentifier(self)) }
        }
        if again { kick() }
    }
}

/// One watch response written by a `WatchFlusher`: where it reads the resource's `EventLog`, which
/// of the events it sends (its cache registration), its queue of control items (bookmarks, its end,
/// each marked with the log position it follows), how its lines are written, its connection, and
/// how it ended.
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
        /// Everything there was to send was written.
        case idle
        /// The client is not reading: something is still to be sent.
        case blocked
        /// The watch is over; write nothing more.
        case finished
    }

    let watcher: WatchCache.Watcher
    let log: EventLog
    let lines: WatchLines
    let body: HTTPDirectBody
    var queue: WatchQueue<WatchItem> { watcher.queue }

    private struct State {
        var outcome: Outcome?
        var waiter: CheckedContinuation<Outcome, Never>?
        /// Where the watch reads the log; dropped when it is over, so that it holds no segment.
        var cursor: EventLog.Cursor?
        /// Its backlog has been written: it may write.
        var live = false
    }

    private let state: Mutex<State>

    init(watcher: WatchCache.Watcher, log: EventLog, cursor: EventLog.Cursor, lines: WatchLines, body: HTTPDirectBody) {
        self.watcher = watcher
        self.log = log
        self.lines = lines
        self.body = body
        state = Mutex(State(cursor: cursor))
    }

    /// On the loop: its backlog is written.
    func goLive() { state.withLock { $0.live = true } }

    /// On the loop: writes what the log and the queue hold for it while the connection takes it,
    /// several lines per chunk, each control item after the log's events before it. Once the
    /// watch is over nothing more is written: the response's end, written by the server after
    /// `outcome()` returns, reaches the loop behind this. A watch more than its limits behind the
    /// log's end is ended as overflowed.
    func drain() -> Drained {
        let taken = state.withLock { s -> (EventLog.Cursor, Bool)? in
            guard s.outcome == nil, let cursor = s.cursor else { return nil }
            return (cursor, s.live)
        }
        guard let (taken, live) = taken else { return .finished }
        var cursor = taken
        let lag = log.lag(cursor)
        let limits = queue.limits
        if lag.events > 1 && (lag.events > limits.events || lag.bytes > limits.bytes) {
            state.withLock { $0.cursor = nil }
            queue.overflow()  // its handler completes the watch as overflowed
            return .finished
        }
        guard live else { return .idle }
        var wrote = false
        var ended = false
        while body.isWritable && !ended {
            var buffer = body.allocator.buffer(capacity: 1024 + 1024 * min(max(lag.events, 1), APIHandler.linesPerWrite))
            var count = 0
            var progressed = false
            while count < APIHandler.linesPerWrite && !ended {
                let mark = queue.firstMark
                let start = cursor.position
                cursor.read(upTo: mark ?? Int.max) { change in
                    guard let seen = watcher.sees(change) else { return true }
                    lines.appendEvent(type: seen.type, object: seen.object, to: &buffer)
                    count += 1
                    return count < APIHandler.linesPerWrite
                }
                if cursor.position != start { progressed = true }
                guard let mark, cursor.position >= mark, count < APIHandler.linesPerWrite, let item = queue.popFirst() else { break }
                progressed = true
                if case .end = item { ended = true; break }
                lines.append(item, to: &buffer)
                count += 1
                if case .failed = item { ended = true }
            }
            if buffer.readableBytes > 0 {
                body.write(buffer)
                wrote = true
            }
            if !progressed { break }
        }
        if wrote { body.flush() }
        let more = log.lag(cursor).events > 0 || queue.firstMark != nil
        state.withLock { s in if s.cursor != nil { s.cursor = cursor } }
        if ended {
            complete(.ended)
            return .finished
        }
        if !body.isActive { return .finished }
        return more ? .blocked : .idle
    }

    /// Ends the watch with `outcome` (the first one given counts).
    func complete(_ outcome: Outcome) {
        let waiter = state.withLock { s -> CheckedContinuation<Outcome, Never>? in
            guard s.outcome == nil else { return nil }
            s.outcome = outcome
            s.cursor = nil
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
