import Foundation
import Synchronization
import GRPCWire
import MVCCStore

/// etcdserverpb.Watch: one bidirectional stream carries many watches.
struct WatchService {
    let store: MVCCStore
    let headers: HeaderFactory
    /// Interval of progress notifications for watches created with progress_notify.
    let progressInterval: Duration

    func register(in router: inout GRPCRouter) {
        router.streaming("/etcdserverpb.Watch/Watch", watch)
    }

    @Sendable func watch(
        requests: AsyncThrowingMapSequence<RequestStream, Etcdserverpb_WatchRequest>,
        send: @escaping @Sendable (Etcdserverpb_WatchResponse) async throws -> Void
    ) async throws {
        let stream = WatchStream(store: store, headers: headers, send: send)
        defer { stream.close() }
        let progressInterval = self.progressInterval
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for try await req in requests { try await stream.handle(req) }
            }
            group.addTask {
                while !Task.isCancelled {
                    try await Task.sleep(for: progressInterval)
                    try await stream.sendPeriodicProgress()
                }
            }
            // The stream ends when the client stops sending or the connection goes.
            _ = try await group.next()
            group.cancelAll()
        }
    }
}

/// The watches of one Watch stream and the tasks that forward their events.
///
/// Every response goes straight to the stream's writer, which suspends the
/// sender while a megabyte of the stream's responses waits for the client
/// (GRPCWire's `ResponseWriter`): nothing else queues them. A watch's events
/// are acknowledged to the store only once the writer has taken them, so a
/// client that stops reading leaves its events in the store — its watches fall
/// back to reading history when it reads again, or end with `compact_revision`
/// if compaction overtakes them — and holds no more than that megabyte plus one
/// response per watch. Requests that need an answer (create, cancel,
/// progress) wait for room too, so such a client also stops being read.
final class WatchStream: @unchecked Sendable {
    private struct Entry {
        let watch: Watch
        let task: Task<Void, Never>
        let progressNotify: Bool
    }

    private let store: MVCCStore
    private let headers: HeaderFactory
    private let sink: @Sendable (Etcdserverpb_WatchResponse) async throws -> Void
    // Lock order: `lock`, then MVCCStore's `WatchHub.lock` (`sendPeriodicProgress` reads
    // `Watch.isSynced` under it); nothing else is taken while it is held.
    private struct State {
        var entries: [Int64: Entry] = [:]
        var nextID: Int64 = 0
        /// A progress request arrived that no progress response has answered yet.
        var progressPending = false
        /// Answers progress requests, one at a time (requests that arrive meanwhile share the next answer, as etcd's).
        var progressTask: Task<Void, Never>?
        var closed = false
    }
    private let lock = Mutex(State())

    init(store: MVCCStore, headers: HeaderFactory, send: @escaping @Sendable (Etcdserverpb_WatchResponse) async throws -> Void) {
        self.store = store
        self.headers = headers
        self.sink = send
    }

    private func send(_ id: Int64, revision: Int64? = nil, _ fill: (inout Etcdserverpb_WatchResponse) -> Void = { _ in }) async throws {
        var r = Etcdserverpb_WatchResponse()
        r.header = headers.header(revision ?? store.revision)
        r.watchID = id
        fill(&r)
        try await sink(r)
    }

    func handle(_ req: Etcdserverpb_WatchRequest) async throws {
        switch req.requestUnion {
        case .createRequest(let c): try await create(c)
        case .cancelRequest(let c): try await cancel(c.watchID, reason: "")
        case .progressRequest: requestProgress()
        case nil: break
        }
    }

    private func create(_ c: Etcdserverpb_WatchCreateRequest) async throws {
        let id: Int64? = lock.withLock { state in
            if c.watchID != 0 {
                return state.entries[c.watchID] == nil ? c.watchID : nil
            }
            while state.entries[state.nextID] != nil { state.nextID += 1 }
            defer { state.nextID += 1 }
            return state.nextID
        }
        guard let id else {
            try await send(-1) { $0.created = true; $0.canceled = true; $0.cancelReason = "etcdserver: watch ID \(c.watchID) is already in use on this stream" }
            return
        }
        if c.startRevision < 0 {
            try await send(-1) { $0.created = true; $0.canceled = true; $0.cancelReason = "etcdserver: negative start revision" }
            return
        }
        var req = WatchRequest(key: c.key.isEmpty ? [0] : [UInt8](c.key), rangeEnd: [UInt8](c.rangeEnd),
                               startRevision: c.startRevision, prevKV: c.prevKv)
        req.noPut = c.filters.contains(.noput)
        req.noDelete = c.filters.contains(.nodelete)
        let watch: Watch
        do {
            watch = try store.watch(req)
        } catch let e as MVCCError where e.code == .compacted {
            let compacted = store.compactedRevision
            try await send(id) { $0.created = true }
            try await send(id) { $0.canceled = true; $0.compactRevision = compacted; $0.cancelReason = e.message }
            return
        } catch {
            try await send(-1) { $0.created = true; $0.canceled = true; $0.cancelReason = "\(error)" }
            return
        }
        do {
            try await send(id) { $0.created = true }  // before any event of the watch
        } catch {
            watch.cancel()
            throw error
        }
        // Requests are handled one at a time: a cancel of this watch comes after this registration.
        // The task starts under the lock, so that its removal (when the watch ends) follows it.
        let accepted = lock.withLock { (state: inout State) -> Bool in
            guard !state.closed else { return false }
            state.entries[id] = Entry(watch: watch, task: Task { [self] in await forward(watch, id) }, progressNotify: c.progressNotify)
            return true
        }
        if !accepted { watch.cancel() }
    }

    /// Sends a watch's updates until it ends; each batch is acknowledged once the writer has taken it.
    private func forward(_ watch: Watch, _ id: Int64) async {
        do {
            while let update = try await watch.next() {
                switch update {
                case .events(let events):
                    let rev = events.last?.kv.modRevision
                    try await send(id, revision: max(rev ?? 0, 0) == 0 ? nil : rev) { $0.events = events.map(Mvccpb_Event.init) }
                    watch.acknowledge()
                case .compacted(let c):
                    lock.withLock { state in _ = state.entries.removeValue(forKey: id) }
                    try await send(id) { $0.canceled = true; $0.compactRevision = c; $0.cancelReason = MVCCError.compacted.message }
                    return
                }
            }
        } catch is CancellationError {
        } catch let e as MVCCError {
            lock.withLock { state in _ = state.entries.removeValue(forKey: id) }
            watch.cancel()
            try? await send(id) { $0.canceled = true; $0.cancelReason = e.message }
        } catch {
            // The stream is gone (the writer refused): nothing more to tell the client.
            watch.cancel()
        }
    }

    private func cancel(_ id: Int64, reason: String) async throws {
        guard let e = lock.withLock({ state in state.entries.removeValue(forKey: id) }) else { return }
        e.watch.cancel()
        e.task.cancel()
        try await send(id) { $0.canceled = true; if !reason.isEmpty { $0.cancelReason = reason } }
    }

    /// Answers a WatchProgressRequest once every watch on the stream has sent
    /// everything up to the revision reported (watch_id -1, no events).
    private func requestProgress() {
        lock.withLock { state in
            state.progressPending = true
            guard state.progressTask == nil, !state.closed else { return }
            state.progressTask = Task { [self] in await answerProgress() }
        }
    }

    private func answerProgress() async {
        while !Task.isCancelled {
            // Cleared before the revision is read: a request that arrives later gets another answer.
            lock.withLock { state in state.progressPending = false }
            let rev = store.revision
            let watches = lock.withLock { state in state.entries.values.map(\.watch) }
            if watches.allSatisfy(\.isSynced) {
                do {
                    try await send(-1, revision: rev)
                } catch {
                    break
                }
                let more = lock.withLock { (state: inout State) -> Bool in
                    if state.progressPending { return true }
                    state.progressTask = nil
                    return false
                }
                if !more { return }
            } else {
                try? await Task.sleep(for: .milliseconds(5))
            }
        }
        lock.withLock { state in state.progressTask = nil }
    }

    /// Periodic progress for watches created with progress_notify that are caught up.
    func sendPeriodicProgress() async throws {
        let rev = store.revision
        let due = lock.withLock { state in state.entries.filter { $0.value.progressNotify && $0.value.watch.isSynced }.map(\.key) }
        for id in due.sorted() { try await send(id, revision: rev) }
    }

    func close() {
        let (all, progress) = lock.withLock { (state: inout State) -> ([Entry], Task<Void, Never>?) in
            state.closed = true
            let a = Array(state.entries.values)
            state.entries.removeAll()
            defer { state.progressTask = nil }
            return (a, state.progressTask)
        }
        for e in all {
            e.watch.cancel()
            e.task.cancel()
        }
        progress?.cancel()
    }
}
