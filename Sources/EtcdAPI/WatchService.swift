import Foundation
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
        let (outbound, sink) = AsyncStream<Etcdserverpb_WatchResponse>.makeStream()
        let stream = WatchStream(store: store, headers: headers, sink: sink)
        defer { stream.close() }
        let progressInterval = self.progressInterval
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for await r in outbound { try await send(r) }
            }
            group.addTask {
                for try await req in requests { stream.handle(req) }
            }
            group.addTask {
                while !Task.isCancelled {
                    try await Task.sleep(for: progressInterval)
                    stream.sendPeriodicProgress()
                }
            }
            // The stream ends when the client stops sending or the connection goes.
            _ = try await group.next()
            group.cancelAll()
        }
    }
}

/// The watches of one Watch stream and the tasks that forward their events.
final class WatchStream: @unchecked Sendable {
    private struct Entry {
        let watch: Watch
        let task: Task<Void, Never>
        let progressNotify: Bool
    }

    private let store: MVCCStore
    private let headers: HeaderFactory
    private let sink: AsyncStream<Etcdserverpb_WatchResponse>.Continuation
    private let lock = NSLock()
    private var entries: [Int64: Entry] = [:]
    private var nextID: Int64 = 0
    private var progressTask: Task<Void, Never>?

    init(store: MVCCStore, headers: HeaderFactory, sink: AsyncStream<Etcdserverpb_WatchResponse>.Continuation) {
        self.store = store
        self.headers = headers
        self.sink = sink
    }

    private func send(_ id: Int64, revision: Int64? = nil, _ fill: (inout Etcdserverpb_WatchResponse) -> Void = { _ in }) {
        var r = Etcdserverpb_WatchResponse()
        r.header = headers.header(revision ?? store.revision)
        r.watchID = id
        fill(&r)
        sink.yield(r)
    }

    func handle(_ req: Etcdserverpb_WatchRequest) {
        switch req.requestUnion {
        case .createRequest(let c): create(c)
        case .cancelRequest(let c): cancel(c.watchID, reason: "")
        case .progressRequest: requestProgress()
        case nil: break
        }
    }

    private func create(_ c: Etcdserverpb_WatchCreateRequest) {
        let id: Int64? = lock.withLock {
            if c.watchID != 0 {
                return entries[c.watchID] == nil ? c.watchID : nil
            }
            while entries[nextID] != nil { nextID += 1 }
            defer { nextID += 1 }
            return nextID
        }
        guard let id else {
            send(-1) { $0.created = true; $0.canceled = true; $0.cancelReason = "etcdserver: watch ID \(c.watchID) is already in use on this stream" }
            return
        }
        if c.startRevision < 0 {
            send(-1) { $0.created = true; $0.canceled = true; $0.cancelReason = "etcdserver: negative start revision" }
            return
        }
        var req = WatchRequest(key: c.key.isEmpty ? [0] : [UInt8](c.key), rangeEnd: [UInt8](c.rangeEnd),
                               startRevision: c.startRevision, prevKV: c.prevKv)
        req.noPut = c.filters.contains(.noput)
        req.noDelete = c.filters.contains(.nodelete)
        let watch: Watch
        do {
            watch = try store.watch(req)
        } catch {
            let compacted = store.compactedRevision
            send(id) { $0.created = true }
            send(id) { $0.canceled = true; $0.compactRevision = compacted; $0.cancelReason = "etcdserver: mvcc: required revision has been compacted" }
            return
        }
        send(id) { $0.created = true }
        let task = Task { [self] in
            do {
                while let update = try await watch.next() {
                    switch update {
                    case .events(let events):
                        let rev = events.last?.kv.modRevision
                        send(id, revision: max(rev ?? 0, 0) == 0 ? nil : rev) { $0.events = events.map(Mvccpb_Event.init) }
                        watch.acknowledge()
                    case .compacted(let c):
                        send(id) { $0.canceled = true; $0.compactRevision = c; $0.cancelReason = "etcdserver: mvcc: required revision has been compacted" }
                        lock.withLock { _ = entries.removeValue(forKey: id) }
                        return
                    }
                }
            } catch is CancellationError {
            } catch {
                send(id) { $0.canceled = true; $0.cancelReason = "\(error)" }
                lock.withLock { _ = entries.removeValue(forKey: id) }
            }
        }
        lock.withLock { entries[id] = Entry(watch: watch, task: task, progressNotify: c.progressNotify) }
    }

    private func cancel(_ id: Int64, reason: String) {
        guard let e = lock.withLock({ entries.removeValue(forKey: id) }) else { return }
        e.watch.cancel()
        e.task.cancel()
        send(id) { $0.canceled = true; if !reason.isEmpty { $0.cancelReason = reason } }
    }

    /// Answers a WatchProgressRequest once every watch on the stream has sent
    /// everything up to the revision reported (watch_id -1, no events).
    private func requestProgress() {
        let previous = lock.withLock { progressTask }
        progressTask = Task { [self] in
            await previous?.value
            while !Task.isCancelled {
                let rev = store.revision
                let watches = lock.withLock { entries.values.map(\.watch) }
                if watches.allSatisfy(\.isSynced) {
                    send(-1, revision: rev)
                    return
                }
                try? await Task.sleep(for: .milliseconds(5))
            }
        }
    }

    /// Periodic progress for watches created with progress_notify that are caught up.
    func sendPeriodicProgress() {
        let rev = store.revision
        let due = lock.withLock { entries.filter { $0.value.progressNotify && $0.value.watch.isSynced }.map(\.key) }
        for id in due.sorted() { send(id, revision: rev) }
    }

    func close() {
        let all = lock.withLock { () -> [Entry] in
            let a = Array(entries.values)
            entries.removeAll()
            return a
        }
        for e in all {
            e.watch.cancel()
            e.task.cancel()
        }
        progressTask?.cancel()
        sink.finish()
    }
}
