import Foundation
import LSMTree

/// What to watch: etcd's WatchCreateRequest.
public struct WatchRequest: Sendable {
    public var key: [UInt8]
    /// Empty: the single key; [0]: every key >= key; else [key, rangeEnd).
    public var rangeEnd: [UInt8] = []
    /// 0: from the next revision; else replay history from this revision on.
    public var startRevision: Int64 = 0
    public var prevKV = false
    public var noPut = false
    public var noDelete = false

    public init(key: [UInt8], rangeEnd: [UInt8] = [], startRevision: Int64 = 0, prevKV: Bool = false) {
        self.key = key
        self.rangeEnd = rangeEnd
        self.startRevision = startRevision
        self.prevKV = prevKV
    }
}

extension Event {
    /// What an event holds in memory while it waits in a watcher's buffer (roughly).
    var bufferedSize: Int {
        64 + kv.key.count + kv.value.count + (prevKV.map { $0.key.count + $0.value.count } ?? 0)
    }
}

public enum WatchUpdate: Sendable, Equatable {
    /// Events of one or more whole revisions, in revision order.
    case events([Event])
    /// The watch fell behind compaction (or started below it) and is over;
    /// resume with a fresh read at or after this revision.
    case compacted(Int64)
}

/// The watchers of one store. Writers publish each committed revision's
/// events; a watcher that is caught up ("synced") gets them pushed into a
/// bounded buffer. A watcher that starts in the past, or whose buffer
/// overflows because its consumer is slow, is "unsynced": its consumer reads
/// the missing revisions from the store's revision log itself, then rejoins.
/// Writers therefore never wait for watchers, and a watcher's memory is
/// bounded.
final class WatchHub: @unchecked Sendable {
    final class State: @unchecked Sendable {  // every field is guarded by the hub lock
        let range: KeyRange
        let request: WatchRequest
        /// Every revision up to this one has been delivered or queued.
        var covered: Int64
        var synced: Bool
        var pending: [Event] = []
        /// `Event.bufferedSize` of `pending`.
        var pendingBytes = 0
        var waiter: CheckedContinuation<Void, Never>?
        var canceled = false
        var compactedAt: Int64?
        /// Events were handed to the consumer and not yet acknowledged as sent on.
        var unacknowledged = false

        init(request: WatchRequest, covered: Int64, synced: Bool) {
            self.request = request
            self.range = KeyRange(key: request.key, rangeEnd: request.rangeEnd)
            self.covered = covered
            self.synced = synced
        }

        func matches(_ e: Event) -> Bool {
            if e.type == .put && request.noPut { return false }
            if e.type == .delete && request.noDelete { return false }
            if request.startRevision > 0 && e.kv.modRevision < request.startRevision { return false }
            return range.contains(e.kv.key)
        }

        func wake() {
            let w = waiter
            waiter = nil
            w?.resume()
        }
    }

    // Lock order: EtcdAPI's `WatchStream.lock`, then `lock` (`sendPeriodicProgress` reads
    // `Watch.isSynced` under its own lock); no other lock of ours is held when it is taken. Nothing
    // is taken while `lock` is held: not the store's `published` nor the lessor's lock (the writer calls
    // `publish` and `compacted` after releasing those), no engine lock (a watcher's history is read
    // on the reader threads with `lock` released). The only other work under it is resuming a
    // waiter (`State.wake`), which schedules the waiting task and runs none of it. `Watch` takes it
    // (`isSynced`, `acknowledge`, `next`, and `next`'s cancellation handler on the cancelling
    // thread), and so does `Watch.deinit`: dropping the last reference to a watch takes it, which
    // is safe under any lock since nothing is taken under this one.
    /// Guards the hub's fields and every field of every `State`. It stays an `NSLock` where the
    /// rest of the project uses `Mutex`: it guards a graph (the hub and each watcher's `State`
    /// object, which the watch's consumer holds too), not one value a `Mutex` could own.
    let lock = NSLock()
    var publishedRevision: Int64 = 0
    var compactRevision: Int64 = 0
    /// Events one synced watcher may have waiting for its consumer, and their bytes.
    var bufferLimit: Int
    var bufferBytesLimit: Int
    /// Events all watchers together may have waiting, and their bytes: with
    /// many slow watchers, each goes unsynced (reads history later) before
    /// memory grows. (Watchers share the bytes of one event; counted once each.)
    var totalBufferLimit: Int
    var totalBufferBytesLimit: Int
    /// Watchers the hub accepts at once.
    var maxWatchers: Int
    /// Events waiting in all buffers (the sum of every `pending.count`), and their bytes.
    private(set) var buffered = 0
    private(set) var bufferedBytes = 0
    private var watchers: [ObjectIdentifier: State] = [:]

    init(bufferLimit: Int = 1024, bufferBytesLimit: Int = 4 << 20, totalBufferLimit: Int = 256 << 10,
         totalBufferBytesLimit: Int = 128 << 20, maxWatchers: Int = 100_000) {
        self.bufferLimit = bufferLimit
        self.bufferBytesLimit = bufferBytesLimit
        self.totalBufferLimit = totalBufferLimit
        self.totalBufferBytesLimit = totalBufferBytesLimit
        self.maxWatchers = maxWatchers
    }

    var count: Int { lock.withLock { watchers.count } }

    func add(_ request: WatchRequest) throws -> State {
        try lock.withLock {
            guard watchers.count < maxWatchers else { throw MVCCError.tooManyWatchers(limit: maxWatchers) }
            let s: State
            if request.startRevision <= 0 || request.startRevision > publishedRevision {
                s = State(request: request, covered: publishedRevision, synced: true)
            } else {
                s = State(request: request, covered: request.startRevision - 1, synced: false)
            }
            watchers[ObjectIdentifier(s)] = s
            return s
        }
    }

    func remove(_ s: State) {
        lock.withLock {
            s.canceled = true
            watchers[ObjectIdentifier(s)] = nil
            buffered -= s.pending.count
            bufferedBytes -= s.pendingBytes
            s.pending = []
            s.pendingBytes = 0
            s.wake()
        }
    }

    /// Hands a watcher's buffered events to its consumer. Hub lock held.
    func take(_ s: State) -> [Event] {
        let events = s.pending
        buffered -= events.count
        bufferedBytes -= s.pendingBytes
        s.pending = []
        s.pendingBytes = 0
        return events
    }

    /// Called by the writer, in revision order, after the revisions are durable.
    func publish(_ revisions: [(Int64, [Event])], through last: Int64) {
        lock.withLock {
            for (rev, events) in revisions {
                for s in watchers.values where s.synced && !s.canceled {
                    let mine = events.filter(s.matches)
                    if !mine.isEmpty {
                        let bytes = mine.reduce(0) { $0 + $1.bufferedSize }
                        if s.pending.count + mine.count > bufferLimit || buffered + mine.count > totalBufferLimit
                            || (!s.pending.isEmpty && s.pendingBytes + bytes > bufferBytesLimit)
                            || (buffered > 0 && bufferedBytes + bytes > totalBufferBytesLimit) {
                            s.synced = false  // the consumer catches up from the store
                            continue
                        }
                        s.pending.append(contentsOf: mine)
                        s.pendingBytes += bytes
                        buffered += mine.count
                        bufferedBytes += bytes
                        s.wake()
                    }
                    s.covered = rev
                }
            }
            publishedRevision = last
            for s in watchers.values where s.synced { s.covered = last }
        }
    }

    func compacted(_ rev: Int64) {
        lock.withLock {
            compactRevision = rev
            // Unsynced watchers that still need history below the new compaction point are over.
            for s in watchers.values where !s.synced && s.covered + 1 < rev {
                s.compactedAt = rev
                s.wake()
            }
        }
    }

    func closeAll() {
        lock.withLock {
            for s in watchers.values {
                s.canceled = true
                s.pending = []
                s.pendingBytes = 0
                s.wake()
            }
            watchers.removeAll()
            buffered = 0
            bufferedBytes = 0
        }
    }
}

/// One watch. `next()` returns updates in revision order, never splitting a
/// revision, never repeating or skipping one; nil once canceled.
public final class Watch: @unchecked Sendable {
    private let store: MVCCStore
    let state: WatchHub.State
    /// Revisions read from the store per catch-up step (etcd's watchBatchMaxRevs)...
    private let catchUpRevisions: Int64 = 1000
    /// ...or fewer, once their events hold this many bytes (whole revisions only).
    static let catchUpBytes = 1 << 20

    init(store: MVCCStore, state: WatchHub.State) {
        self.store = store
        self.state = state
    }

    /// A watch nobody holds any more leaves the hub (and its buffer) with it.
    deinit { store.hub.remove(state) }

    /// Whether every published revision has been handed to the consumer and
    /// acknowledged (what etcd's progress notifications require: a progress
    /// revision must never overtake an event still on its way).
    public var isSynced: Bool {
        store.hub.lock.withLock { state.synced && state.pending.isEmpty && !state.unacknowledged }
    }

    /// Tells the watch that the events `next()` returned have been sent on.
    public func acknowledge() {
        store.hub.lock.withLock { state.unacknowledged = false }
    }

    public func cancel() { store.hub.remove(state) }

    private enum Step {
        case done(WatchUpdate?)
        case readHistory(from: Int64, through: Int64)
        case again
        case wait
    }

    /// Decides the next step under the hub lock.
    private func step() -> Step {
        let hub = store.hub
        return hub.lock.withLock {
            if state.canceled { return .done(nil) }
            if let c = state.compactedAt { return .done(.compacted(c)) }
            if !state.pending.isEmpty {
                state.unacknowledged = true
                return .done(.events(hub.take(state)))
            }
            guard !state.synced else { return .wait }
            let from = state.covered + 1
            if from < hub.compactRevision {
                state.compactedAt = hub.compactRevision
                return .done(.compacted(hub.compactRevision))
            }
            if from > hub.publishedRevision {
                state.synced = true
                return .again
            }
            return .readHistory(from: from, through: min(hub.publishedRevision, from + catchUpRevisions - 1))
        }
    }

    public func next() async throws -> WatchUpdate? {
        let hub = store.hub
        while true {
            switch step() {
            case .done(let update):
                if case .compacted = update { cancel() }
                return update
            case .again:
                continue
            case .readHistory(let from, let through):
                // On the store's reader threads: a history read blocks on the engine.
                let (store, state) = (self.store, self.state)
                let (events, covered) = try await store.readers.run {
                    try store.history(from: from, through: through, for: state, maxBytes: Watch.catchUpBytes)
                }
                // A compaction past `from` that began during the read may have dropped history
                // rows it needed (the engine's compaction filter reads the compact revision live):
                // the watch ends as compacted then, never with a silent gap.
                let overtaken = hub.lock.withLock { () -> Int64? in
                    let compacted = store.compactedRevision
                    if from < compacted {
                        state.compactedAt = compacted
                        return compacted
                    }
                    if state.covered < covered { state.covered = covered }
                    if !events.isEmpty { state.unacknowledged = true }
                    return nil
                }
                if let overtaken {
                    cancel()
                    return .compacted(overtaken)
                }
                if !events.isEmpty { return .events(events) }
            case .wait:
                try Task.checkCancellation()
                let state = self.state
                await withTaskCancellationHandler {
                    await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                        hub.lock.withLock {
                            if state.pending.isEmpty && state.synced && !state.canceled && state.compactedAt == nil
                                && !Task.isCancelled {
                                state.waiter = c
                            } else {
                                c.resume()
                            }
                        }
                    }
                } onCancel: {
                    hub.lock.withLock { state.wake() }
                }
            }
        }
    }
}

extension MVCCStore {
    /// Starts a watch. Throws `compacted` when the start revision is below the
    /// compaction point (etcd answers with a canceled watch carrying it).
    public func watch(_ request: WatchRequest) throws -> Watch {
        let compacted = compactedRevision
        if request.startRevision > 0 && request.startRevision < compacted { throw MVCCError.compacted }
        return Watch(store: self, state: try hub.add(request))
    }

    public var watcherCount: Int { hub.count }

    /// Events of revisions [from, through] that the watcher wants, read from
    /// the revision log, stopping after the first revision that brings them
    /// to `maxBytes` (a revision is never split); with the last revision read.
    func history(from: Int64, through: Int64, for s: WatchHub.State, maxBytes: Int = .max) throws -> (events: [Event], through: Int64) {
        do {
            var out: [Event] = []
            var bytes = 0
            var last = from - 1
            let it = try db.makeIterator(from: Layout.logKey(from, 0), to: Layout.logKey(through + 1, 0))
            while let (k, v) = try it.next() {
                guard k.count == 13, let entry = LogEntry.decode(v) else { continue }
                guard let rev = Int64(exactly: k.readBE64(at: 1)) else { continue }
                if rev != last {
                    if bytes >= maxBytes { return (out, last) }
                    last = rev
                }
                let kv: KeyValue
                switch entry.type {
                case .put:
                    guard let r = try version(entry.key, at: rev) else { continue }
                    kv = r.keyValue(entry.key)
                case .delete:
                    kv = KeyValue(key: entry.key, createRevision: 0, modRevision: rev, version: 0, value: [], lease: 0)
                }
                var e = Event(type: entry.type, kv: kv, prevKV: nil)
                guard s.matches(e) else { continue }
                if s.request.prevKV && entry.prevModRevision > 0 {
                    e.prevKV = try version(entry.key, at: entry.prevModRevision)?.keyValue(entry.key)
                }
                out.append(e)
                bytes += e.bufferedSize
            }
            return (out, through)
        } catch let e as MVCCError {
            throw e
        } catch {
            throw MVCCError.storage(error)
        }
    }
}
