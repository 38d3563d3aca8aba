import Synchronization

/// One resource's events in the order the watch cache applied them, shared by every watch of the
/// resource that is written from an event loop (`DirectWatch`): the cache appends each event once
/// (under its lock: one writer), and each watch reads on from its own position (`Cursor`) in its
/// loop's round of writes. No event is queued once per watcher.
///
/// ```
///   segment (base 0)           segment (base 64)          tail (base 128)
///   [e0 e1 … e63] ──next──▶ [e64 … e127] ──next──▶ [e128 e129 _ _ …]
///        ▲                        ▲                          ▲ published = 2
///   a slow watch's cursor    another watch's cursor     the writer, and a new cursor
/// ```
///
/// The log holds only its tail segment; each cursor holds the segment it reads, and a segment holds
/// the next, so a segment is freed once no cursor stands in it or before it. What a watch holds
/// back is bounded by the watch itself: the flusher closes a watch whose cursor is more than its
/// `WatchBufferLimits` behind the log's end (`lag`), and the client re-lists, as a watch whose
/// queue overflowed was closed. A segment takes at most `segmentEvents` events or, past
/// `segmentBytes` of stored bytes, no more: the tail keeps little beyond the cache's own window.
///
/// Concurrency: slots are written once, before `published` is raised (release); a reader reads
/// only slots below the `published` it loaded (acquire), and a segment's `next` is set only once
/// every slot of it is published, so a reader that finds `next` set and has read up to
/// `published` has read the whole segment.
final class EventLog: Sendable {
    /// At most this many events per segment.
    static let segmentEvents = 64
    /// A segment takes no more events once it holds this many stored bytes.
    static let segmentBytes = 1 << 20

    final class Segment: @unchecked Sendable {
        /// The position of its first slot in the log.
        let base: Int
        /// Set once, by the writer, before any event of the next segment is published.
        let next = AtomicLazyReference<Segment>()
        /// Slots below this are set and never change.
        let published = Atomic<Int>(0)
        private let slots: UnsafeMutablePointer<Unmanaged<CachedEvent>>

        init(base: Int) {
            self.base = base
            slots = .allocate(capacity: EventLog.segmentEvents)
        }

        deinit {
            for index in 0..<published.load(ordering: .relaxed) { slots[index].release() }
            slots.deallocate()
        }

        /// The writer: sets slot `index` (the next one) and publishes it.
        fileprivate func publish(_ event: CachedEvent, at index: Int) {
            slots[index] = .passRetained(event)
            published.store(index + 1, ordering: .releasing)
        }

        /// A published slot, borrowed: valid while this segment is.
        @inline(__always)
        func withEvent<R>(at index: Int, _ body: (CachedEvent) -> R) -> R {
            slots[index]._withUnsafeGuaranteedRef(body)
        }
    }

    /// A watch's position in the log: the next event to read, and the stored bytes read so far.
    struct Cursor: Sendable {
        fileprivate(set) var segment: Segment
        fileprivate(set) var index: Int
        fileprivate(set) var bytes: Int

        var position: Int { segment.base + index }

        /// Calls `body` with each event published after the cursor, in order, while it returns
        /// true and the position is below `limit`; the cursor moves past each event given.
        mutating func read(upTo limit: Int, _ body: (CachedEvent) -> Bool) {
            while position < limit {
                let published = segment.published.load(ordering: .acquiring)
                if index < published {
                    let more = segment.withEvent(at: index) { event in
                        bytes += event.cost
                        return body(event)
                    }
                    index += 1
                    if !more { return }
                    continue
                }
                // The segment is over once `next` is set; what was published before it, read.
                guard let next = segment.next.load(), index >= segment.published.load(ordering: .acquiring) else { return }
                segment = next
                index = 0
            }
        }
    }

    private struct Writer {
        var tail: Segment
        var tailBytes = 0
    }

    private let writer: Mutex<Writer>
    /// Positions and stored bytes appended so far (the position of the next event, and the sum of costs).
    private let appended = Atomic<Int>(0)
    private let appendedBytes = Atomic<Int>(0)
    /// Who to tell when events are appended (the flushers of the loops with watches on this log),
    /// with how many of their watches read it.
    private let listeners = Mutex<[ObjectIdentifier: (count: Int, wake: @Sendable () -> Void)]>([:])

    init() { writer = Mutex(Writer(tail: Segment(base: 0))) }

    /// The position after the last event appended.
    var end: Int { appended.load(ordering: .acquiring) }

    /// The cache, under its lock (one writer at a time, in the order of the events).
    func append(_ event: CachedEvent) {
        writer.withLock { w in
            var index = w.tail.published.load(ordering: .relaxed)
            if index == Self.segmentEvents || w.tailBytes >= Self.segmentBytes {
                let next = Segment(base: w.tail.base + index)
                _ = w.tail.next.storeIfNil(next)
                w.tail = next
                w.tailBytes = 0
                index = 0
            }
            w.tail.publish(event, at: index)
            w.tailBytes += event.cost
            appendedBytes.add(event.cost, ordering: .relaxed)
            appended.add(1, ordering: .releasing)
        }
    }

    /// A cursor at the end of the log: it reads the events appended after this call. Taken under
    /// the cache's lock, so that it continues exactly what the watch's backlog was read at.
    func cursor() -> Cursor {
        writer.withLock { w in
            Cursor(segment: w.tail, index: w.tail.published.load(ordering: .relaxed), bytes: appendedBytes.load(ordering: .relaxed))
        }
    }

    /// How far `cursor` is behind the end: events, and their stored bytes.
    func lag(_ cursor: Cursor) -> (events: Int, bytes: Int) {
        let end = appended.load(ordering: .acquiring)
        return (max(0, end - cursor.position), max(0, appendedBytes.load(ordering: .relaxed) - cursor.bytes))
    }

    /// Calls `wake` whenever events are appended, until `stopListening(id)` is called as many
    /// times as this was.
    func listen(_ id: ObjectIdentifier, wake: @escaping @Sendable () -> Void) {
        listeners.withLock { all in all[id] = ((all[id]?.count ?? 0) + 1, wake) }
    }

    func stopListening(_ id: ObjectIdentifier) {
        listeners.withLock { all in
            guard let entry = all[id] else { return }
            all[id] = entry.count > 1 ? (entry.count - 1, entry.wake) : nil
        }
    }

    /// Tells the listeners that events were appended (after the cache's lock is released).
    func notify() {
        let wakes = listeners.withLock { all in all.values.map(\.wake) }
        for wake in wakes { wake() }
    }
}
