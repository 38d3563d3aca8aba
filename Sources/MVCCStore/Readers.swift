import Foundation
import LSMTree

/// Threads of the store's own for work that blocks on the engine (reads,
/// hashes, snapshots, full compactions), so that none of it runs on Swift's
/// cooperative pool, whose few threads every task of the process shares.
/// Work waits in a queue for one of `count` threads, in order.
final class BlockingPool: @unchecked Sendable {
    private let condition = NSCondition()
    private var queue: [@Sendable () -> Void] = []
    private var head = 0
    private var stopped = false
    private var running = 0
    private let done = DispatchGroup()
    /// Each pool thread points this thread-specific key at its pool.
    private static let poolKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// Whether the calling thread is one of the pool's.
    var isPoolThread: Bool { pthread_getspecific(Self.poolKey) == Unmanaged.passUnretained(self).toOpaque() }

    init(name: String, threads count: Int) {
        running = count
        for i in 0..<count {
            done.enter()
            let threadName = count == 1 ? name : "\(name)-\(i)"
            let t = Thread { [self] in
                pthread_setspecific(Self.poolKey, Unmanaged.passUnretained(self).toOpaque())
                loop()
                done.leave()
            }
            t.name = threadName
            t.start()
        }
    }

    /// Runs `work` on one of the pool's threads; false if the pool is stopped (nothing runs).
    @discardableResult
    func submit(_ work: @escaping @Sendable () -> Void) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard !stopped else { return false }
        queue.append(work)
        condition.signal()
        return true
    }

    /// Runs `body` on the pool; the caller suspends meanwhile.
    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
            let queued = submit { c.resume(with: Result { try body() }) }
            if !queued { c.resume(throwing: MVCCError.closed) }
        }
    }

    private func loop() {
        while true {
            condition.lock()
            while head == queue.count && !stopped { condition.wait() }
            if head == queue.count {  // stopped and drained
                condition.unlock()
                return
            }
            let work = queue[head]
            head += 1
            if head > 1024 && head * 2 > queue.count {
                queue.removeFirst(head)
                head = 0
            }
            condition.unlock()
            work()
        }
    }

    /// Lets queued work finish, then stops the threads.
    func stop() async {
        markStopped()
        await withCheckedContinuation { c in done.notify(queue: .global()) { c.resume() } }
    }

    private func markStopped() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }
}

extension MVCCStore {
    /// `range` on the store's reader threads: `done` runs there with the
    /// result. For a server's event loop, which must not block and needs no
    /// task of its own (`isCancelled` is asked before the read starts: a
    /// client that gave up costs nothing).
    public func range(_ request: RangeRequest, isCancelled: @escaping @Sendable () -> Bool = { false },
                      done: @escaping @Sendable (Result<RangeResponse, any Error>) -> Void) {
        let queued = readers.submit { [self] in
            if isCancelled() { return done(.failure(CancellationError())) }
            done(Result { try range(request) })
        }
        if !queued { done(.failure(MVCCError.closed)) }
    }

    /// `range` for async callers (the `KeyValueStore` operations): the read
    /// runs on the store's reader threads while the caller suspends.
    public func read(_ request: RangeRequest) async throws -> RangeResponse {
        try await readers.run { [self] in try range(request) }
    }

    /// Runs blocking work that reads the store at length (a hash, a snapshot
    /// batch) on the store's reader threads while the caller suspends.
    public func offload<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await readers.run(body)
    }

    /// A consistent, resumable walk over every live key at `revision` (0:
    /// now), in key order: a snapshot or a hash reads the whole store in
    /// batches, never all of it at once.
    public func cursor(at revision: Int64 = 0) throws -> KeyValueCursor {
        let (current, compacted) = published.withLock { ($0.revision, $0.compactRevision) }
        let rev = revision > 0 ? revision : current
        if rev > current { throw MVCCError.futureRevision }
        if rev < compacted { throw MVCCError.compacted }
        return KeyValueCursor(store: self, revision: rev, snapshot: db.snapshot())
    }
}

/// See `MVCCStore.cursor(at:)`. Its engine snapshot keeps what it reads from
/// being overwritten; a compaction past its revision ends it (`compacted`).
/// Not for concurrent use.
public final class KeyValueCursor: @unchecked Sendable {
    private let store: MVCCStore
    public let revision: Int64
    private let snapshot: Snapshot
    /// Resume after this key (nil: from the start).
    private var after: [UInt8]?
    public private(set) var isFinished = false

    init(store: MVCCStore, revision: Int64, snapshot: Snapshot) {
        self.store = store
        self.revision = revision
        self.snapshot = snapshot
    }

    /// The next live keys, up to about `maxBytes` of keys and values (at least one); empty once finished.
    public func next(maxBytes: Int) throws -> [KeyValue] {
        guard !isFinished else { return [] }
        let start = after.map { $0 + [0] } ?? [0]
        var batch: [KeyValue] = []
        var bytes = 0
        try store.scanLive(from: start, at: revision, snapshot: snapshot) { kv in
            batch.append(kv)
            bytes += kv.key.count + kv.value.count + 32
            return bytes < maxBytes
        }
        // A compaction past the walk's revision drops history rows it may need (the engine's
        // compaction filter reads the compact revision live, snapshot or not): it fails then
        // rather than leave keys out.
        if revision < store.compactedRevision { throw MVCCError.compacted }
        if let last = batch.last { after = last.key } else { isFinished = true }
        return batch
    }
}

extension MVCCStore {
    /// Calls `body` with each live key from `start` on at `rev`, in key order, until it returns false.
    func scanLive(from start: [UInt8], at rev: Int64, snapshot: Snapshot, _ body: (KeyValue) -> Bool) throws {
        do {
            let it = try db.makeIterator(from: Layout.currentKey(start), to: [Layout.current + 1], snapshot: snapshot)
            while let (k, v) = try it.next() {
                let key = Array(k.dropFirst())
                guard let r = try resolve(key, current: v, at: rev, snapshot: snapshot) else { continue }
                if !body(r.keyValue(key)) { return }
            }
        } catch let e as MVCCError {
            throw e
        } catch {
            throw MVCCError.storage(error)
        }
    }
}
