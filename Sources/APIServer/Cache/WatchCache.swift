import ClusterAPI
import Foundation
import Logging
import MVCCStore
import Synchronization

/// How the watch cache is sized (kube-apiserver's `--watch-cache-sizes` and
/// `--default-watch-cache-size`).
public struct WatchCacheOptions: Sendable, Equatable {
    /// Events kept per resource (`pods`, `storageclasses.storage.k8s.io`), beside the default.
    public var sizes: [String: Int] = [:]
    /// Events kept for the other resources.
    public var defaultSize = 10_000
    /// The most bytes (stored sizes) of events one resource keeps, whatever its size.
    public var windowBytes = 64 << 20
    /// How often a watch that allows bookmarks gets one (Kubernetes: about a minute).
    public var bookmarkInterval: Duration = .seconds(30)

    public init() {}

    /// `pods#5000,events#100`: resource (plural, `.group` for other groups) `#` events.
    public static func parseSizes(_ text: String) throws(APIError) -> [String: Int] {
        var sizes: [String: Int] = [:]
        for entry in text.split(separator: ",") where !entry.isEmpty {
            let parts = entry.split(separator: "#", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, let size = Int(parts[1]), size > 0 else {
                throw APIError.badRequest("--watch-cache-sizes entry \"\(entry)\" is not valid: write resource#events, e.g. pods#5000, with a positive number of events")
            }
            sizes[String(parts[0])] = size
        }
        return sizes
    }
}

/// What one watch response carries, in order.
enum WatchItem: Sendable {
    case event(type: String, object: CachedObject)
    /// A BOOKMARK at `revision`; `initialEventsEnd` marks the end of `sendInitialEvents`.
    case bookmark(revision: Int64, initialEventsEnd: Bool)
    case end
    case failed(APIError)
}

/// The API server's watch cache (Kubernetes' "cacher"): every object under `/registry/` in
/// memory, kept current by one store watch, with a window of each resource's recent changes.
/// Watches are served from it (one store watch per API server, not one per client), and so
/// are lists that do not ask for an exact past revision.
///
/// The one store watch covers the whole key space, so the cache's revision follows the
/// store's with every write, whatever it touches: a consistent read takes the store's current
/// revision and waits until the cache has reached it (as Kubernetes 1.31+ does with etcd's
/// progress notifications), then answers from memory.
///
/// A resource's window holds its last `windowSize` events (and at most `windowBytes` of
/// them). A watch may start from any revision the window still covers; older ones get 410
/// Expired and the client re-lists. When the cache must be rebuilt (its store watch fell
/// behind a compaction) every watch ends and the clients re-watch.
final class WatchCache: Sendable {
    /// One watch registered with the cache.
    final class Watcher: Sendable {
        let id: Int
        let keyPrefix: String
        /// The watched keys: a resource's `keyPrefix`, or one namespace of it.
        let prefix: String
        let selection: Selection
        /// Its control items (bookmarks, its end), and its events unless it reads them from `log`.
        let queue: WatchQueue<WatchItem>
        /// Events at or below this revision are not sent (the client has them).
        let after: Int64
        /// The resource's event log, when the watch reads its events from there (a `DirectWatch`)
        /// rather than having them pushed onto its queue.
        let log: EventLog?

        init(id: Int, keyPrefix: String, prefix: String, selection: Selection, queue: WatchQueue<WatchItem>, after: Int64, log: EventLog?) {
            self.id = id
            self.keyPrefix = keyPrefix
            self.prefix = prefix
            self.selection = selection
            self.queue = queue
            self.after = after
            self.log = log
            self.prefixBytes = prefix == keyPrefix ? [] : Array(prefix.utf8)
        }

        /// `prefix`'s bytes, empty when it is the whole resource (every key of it has it).
        private let prefixBytes: [UInt8]

        /// What this watch sends of `change` (nil: nothing): the same test whether the event is
        /// pushed to it or read from the log.
        @inline(__always)
        func sees(_ change: CachedEvent) -> (type: String, object: CachedObject)? {
            guard change.revision > after, prefixBytes.isEmpty || WatchCache.hasPrefix(change.key, prefixBytes) else { return nil }
            return change.seen(by: selection)
        }
    }

    /// Whether key `a` sorts before `b` by their UTF-8 bytes (the store's order), with one
    /// `memcmp` where both are contiguous (the generic comparison walks them byte by byte).
    static func precedes(_ a: String, _ b: String) -> Bool {
        let fast = a.utf8.withContiguousStorageIfAvailable { x in
            b.utf8.withContiguousStorageIfAvailable { y -> Bool in
                let common = min(x.count, y.count)
                let order = common == 0 ? 0 : memcmp(x.baseAddress!, y.baseAddress!, common)
                return order != 0 ? order < 0 : x.count < y.count
            }
        }
        return (fast ?? nil) ?? a.utf8.lexicographicallyPrecedes(b.utf8)
    }

    /// Whether `key` starts with the bytes `prefix`: one `memcmp` where the key is contiguous.
    static func hasPrefix(_ key: String, _ prefix: [UInt8]) -> Bool {
        let fast = key.utf8.withContiguousStorageIfAvailable { k -> Bool in
            k.count >= prefix.count && (prefix.isEmpty || prefix.withUnsafeBufferPointer { p in memcmp(k.baseAddress!, p.baseAddress!, p.count) == 0 })
        }
        return fast ?? key.utf8.starts(with: prefix)
    }

    /// How a watch starts.
    enum Start: Sendable {
        /// The current objects first (as ADDED), then the changes.
        case current
        /// The changes after this revision.
        case after(Int64)
    }

    /// A registered watch, with what it must send before anything queued.
    struct Registration: Sendable {
        let watcher: Watcher
        private(set) var backlog: [WatchItem]
        /// For a watch that reads the log: where it starts reading, right after the backlog.
        private(set) var cursor: EventLog.Cursor?
        /// The cache's revision at registration: what the current objects were read at.
        let revision: Int64

        init(watcher: Watcher, backlog: [WatchItem], cursor: EventLog.Cursor?, revision: Int64) {
            self.watcher = watcher
            self.backlog = backlog
            self.cursor = cursor
            self.revision = revision
        }

        /// The cursor, left here no more (a cursor holds the log from its position on).
        mutating func takeCursor() -> EventLog.Cursor? {
            defer { cursor = nil }
            return cursor
        }

        /// The backlog, left here no more (it holds its objects).
        mutating func takeBacklog() -> [WatchItem] {
            defer { backlog = [] }
            return backlog
        }
    }

    /// The fields served from an index rather than a scan, per resource.
    static let indexedFields: [String: String] = ["/registry/pods/": "spec.nodeName"]

    struct Resource {
        var objects: [String: CachedObject] = [:]
        /// The same objects in key order (by UTF-8 bytes), kept in order as they change, so that
        /// a list is a range of it: no sort, no lookup per object.
        var ordered: [CachedObject] = []
        /// Values of the resource's indexed field to the keys that have them.
        var index: [String: Set<String>] = [:]
        /// Recent events from `windowHead` on; slots before it are emptied as events leave.
        var window: [CachedEvent?] = []
        var windowHead = 0
        var windowBytes = 0
        /// Every event of this resource after this revision is in the window.
        var windowStart: Int64
        /// Every watch of the resource, and those of them whose events are pushed onto their queue
        /// (the others read `EventLog`).
        var watchers: [Int: Watcher] = [:]
        var pushed: [Int: Watcher] = [:]

        init(windowStart: Int64) { self.windowStart = windowStart }

        /// The position of the first object whose key is not below `key` (`ordered.count` if none).
        func position(of key: String) -> Int {
            if let last = ordered.last, WatchCache.precedes(last.key, key) { return ordered.count }
            var low = 0
            var high = ordered.count
            while low < high {
                let mid = (low + high) / 2
                if WatchCache.precedes(ordered[mid].key, key) { low = mid + 1 } else { high = mid }
            }
            return low
        }

        /// The range of `ordered` whose keys start with `prefix`.
        func range(prefix: String) -> Range<Int> {
            let low = position(of: prefix)
            var high = ordered.count
            var probe = low
            // Keys with the prefix (its bytes: the order is by bytes) follow `low` contiguously; the
            // end is found by bisection.
            while probe < high {
                let mid = (probe + high) / 2
                if ordered[mid].key.utf8.starts(with: prefix.utf8) { probe = mid + 1 } else { high = mid }
            }
            return low..<high
        }
    }

    private struct State {
        var resources: [String: Resource] = [:]
        /// Every store event up to this revision has been applied.
        var revision: Int64 = 0
        /// The revision the objects were read at: a resource with no event since has a window
        /// that starts there.
        var loadedAt: Int64 = 0
        var ready = false
        var waiters: [Int: (target: Int64, continuation: CheckedContinuation<Bool, Never>)] = [:]
        var readyWaiters: [Int: CheckedContinuation<Bool, Never>] = [:]
        var nextID = 0
        /// Each resource's event log, made when a watch first asks for it, kept across rebuilds.
        var logs: [String: EventLog] = [:]
        var feed: Task<Void, Never>?
        var stopped = false
    }

    private let state = Mutex(State())
    private let store: ObjectStore
    private let logger: Logger
    /// Window sizes per resource key prefix; `defaultWindowSize` for the others.
    let windowSizes: [String: Int]
    let defaultWindowSize: Int
    /// The most bytes (stored sizes) one resource's window holds, whatever its size.
    let windowByteLimit: Int

    init(store: ObjectStore, logger: Logger, options: WatchCacheOptions, registry: ResourceRegistry) {
        self.store = store
        self.logger = logger
        var sizes: [String: Int] = [:]
        for (name, size) in options.sizes {
            for info in registry.resources where info.qualifiedResource == name || info.resource == name {
                sizes[info.keyPrefix] = max(1, size)
            }
        }
        self.windowSizes = sizes
        self.defaultWindowSize = max(1, options.defaultSize)
        self.windowByteLimit = options.windowBytes
    }

    // MARK: Lifecycle

    /// Starts filling the cache (once; later calls do nothing).
    func start() {
        state.withLock { s in
            guard s.feed == nil, !s.stopped else { return }
            s.feed = Task { [weak self] in await self?.feed() }
        }
    }

    /// Stops the store watch and ends every watch.
    func stop() {
        let (feed, watchers, waiters, readyWaiters) = state.withLock { s in
            s.stopped = true
            s.ready = false
            let w = s.resources.values.flatMap { $0.watchers.values }
            for key in s.resources.keys {
                s.resources[key]?.watchers = [:]
                s.resources[key]?.pushed = [:]
            }
            let waiting = Array(s.waiters.values.map(\.continuation))
            let readyWaiting = Array(s.readyWaiters.values)
            s.waiters = [:]
            s.readyWaiters = [:]
            return (s.feed, w, waiting, readyWaiting)
        }
        feed?.cancel()
        for w in watchers { w.queue.finish(with: .end) }
        for c in waiters { c.resume(returning: false) }
        for c in readyWaiters { c.resume(returning: false) }
    }

    var isReady: Bool { state.withLock { $0.ready } }

    /// The events one resource's window holds now, and their stored bytes.
    func window(_ keyPrefix: String) -> (events: Int, bytes: Int) {
        state.withLock { s in
            guard let r = s.resources[keyPrefix] else { return (0, 0) }
            return (r.window.count - r.windowHead, r.windowBytes)
        }
    }
    var revision: Int64 { state.withLock { $0.revision } }

    /// Waits until the cache serves (started, and filled from the store), at most `timeout`.
    /// Throws 429 with Retry-After, as Kubernetes does while its cache (re)initializes.
    func awaitReady(timeout: Duration = .seconds(10)) async throws(APIError) {
        if isReady { return }
        start()
        let ok = await wait(timeout: timeout) { s, id, c in
            if s.ready { return true }
            if s.stopped { return false }
            s.readyWaiters[id] = c
            return nil
        } cancel: { s, id in s.readyWaiters.removeValue(forKey: id) }
        guard ok else {
            throw APIError(.tooManyRequests, "storage is (re)initializing: the watch cache is not ready yet; retry",
                           details: StatusDetails(retryAfterSeconds: 1))
        }
    }

    /// Waits until the cache has applied every store event up to `revision`, at most
    /// `timeout`; false when it has not by then.
    func awaitRevision(_ revision: Int64, timeout: Duration = .seconds(3)) async -> Bool {
        if state.withLock({ $0.ready && $0.revision >= revision }) { return true }
        return await wait(timeout: timeout) { s, id, c in
            if s.ready && s.revision >= revision { return true }
            if s.stopped { return false }
            s.waiters[id] = (revision, c)
            return nil
        } cancel: { s, id in s.waiters.removeValue(forKey: id)?.continuation }
    }

    /// Parks a continuation that `register` either answers at once or records under an id,
    /// and answers false after `timeout` (or on cancellation) if nothing else did.
    private func wait(timeout: Duration,
                      register: @escaping @Sendable (inout State, Int, CheckedContinuation<Bool, Never>) -> Bool?,
                      cancel: @escaping @Sendable (inout State, Int) -> CheckedContinuation<Bool, Never>?) async -> Bool {
        let id = state.withLock { s in
            s.nextID += 1
            return s.nextID
        }
        let timer = Task { [weak self] in
            try? await Task.sleep(for: timeout)
            self?.state.withLock { cancel(&$0, id) }?.resume(returning: false)
        }
        defer { timer.cancel() }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
                if let answer = state.withLock({ register(&$0, id, c) }) { c.resume(returning: answer) }
            }
        } onCancel: {
            state.withLock { cancel(&$0, id) }?.resume(returning: false)
        }
    }

    // MARK: Reads

    /// The objects under `prefix` (of the resource at `keyPrefix`) that `selection` accepts, in
    /// key order, after `continueAfter`, at most `limit` (0: all); with the revision read at
    /// and whether more remain.
    func list(keyPrefix: String, prefix: String, selection: Selection, limit: Int)
        -> (items: ArraySlice<CachedObject>, revision: Int64, more: Bool) {
        let (candidates, revision) = state.withLock { s in
            (Self.candidateObjects(s, keyPrefix: keyPrefix, prefix: prefix, selection: selection), s.revision)
        }
        // Selectors are applied outside the lock: the feed need not wait.
        if selection.isEverything {
            guard limit > 0 && candidates.count > limit else { return (candidates, revision, false) }
            return (candidates.prefix(limit), revision, true)
        }
        var items: [CachedObject] = []
        for object in candidates where selection.matches(object.object) {
            if limit > 0 && items.count == limit { return (items[...], revision, true) }
            items.append(object)
        }
        return (items[...], revision, false)
    }

    /// The cached version of `key` (nil inside when it is absent), if the cache is filled and has
    /// applied every store event up to `revision`; nil when it has not (read the store).
    func current(keyPrefix: String, key: String, asNewAs revision: Int64) -> CachedObject?? {
        state.withLock { s in
            guard s.ready, s.revision >= revision else { return nil }
            return .some(s.resources[keyPrefix]?.objects[key])
        }
    }

    /// The cached version of `key`, if the cache is filled and holds it: possibly behind the
    /// store (a write whose event the cache has not applied yet), so only for a start that a
    /// compare-and-swap on its revision checks.
    func cached(keyPrefix: String, key: String) -> CachedObject? {
        state.withLock { s in s.ready ? s.resources[keyPrefix]?.objects[key] : nil }
    }

    /// The current versions of the keys that may match, in key order (selectors not applied
    /// yet): one key for `metadata.name=` in a namespace, the index for an indexed field's `=`,
    /// else the prefix's range of the ordered objects (shared with the cache, not copied).
    private static func candidateObjects(_ s: State, keyPrefix: String, prefix: String, selection: Selection) -> ArraySlice<CachedObject> {
        guard let resource = s.resources[keyPrefix] else { return [] }
        let equalities = selection.fields.requirements.filter { $0.operator == .equals }
        if prefix != keyPrefix || !selection.resource.namespaced, let name = equalities.first(where: { $0.field == "metadata.name" }) {
            return resource.objects[prefix + name.value].map { [$0] } ?? []
        }
        if let field = indexedFields[keyPrefix], let wanted = equalities.first(where: { $0.field == field }) {
            return ArraySlice(resource.index[wanted.value, default: []].filter { $0.hasPrefix(prefix) }
                .sorted(by: precedes)
                .compactMap { resource.objects[$0] })
        }
        if prefix == keyPrefix { return resource.ordered[...] }
        return resource.ordered[resource.range(prefix: prefix)]
    }

    // MARK: Watches

    /// Registers a watch on `prefix` of the resource at `keyPrefix`. Throws 410 Expired for a
    /// start the window no longer covers. Everything queued after the returned backlog
    /// follows it without a gap or a repeat.
    /// With `log` (this resource's `eventLog`), the watch's events are not pushed onto `queue`: it
    /// reads them from the log from the returned cursor on, and `queue` gets only its control items.
    func register(keyPrefix: String, prefix: String, selection: Selection, start: Start,
                  queue: WatchQueue<WatchItem>, log: EventLog? = nil) throws(APIError) -> Registration {
        // What the watch must send first is taken with its registration, under one lock, so
        // that the queue continues it exactly; the selectors are applied after, outside it.
        enum Backlog { case current(ArraySlice<CachedObject>), changes([CachedEvent]) }
        let registered = state.withLock { s -> Result<(Watcher, Backlog, Int64, EventLog.Cursor?), APIError> in
            if s.stopped { return .failure(APIError(.serviceUnavailable, "the API server is shutting down")) }
            s.nextID += 1
            let backlog: Backlog
            let after: Int64
            switch start {
            case .current:
                after = s.revision
                backlog = .current(Self.candidateObjects(s, keyPrefix: keyPrefix, prefix: prefix, selection: selection))
            case .after(let revision):
                let resource = s.resources[keyPrefix] ?? Resource(windowStart: s.loadedAt)
                guard revision >= resource.windowStart else {
                    return .failure(.tooOld(requested: revision, compacted: resource.windowStart + 1))
                }
                after = revision
                backlog = .changes(resource.window[resource.windowHead...].compactMap { $0.flatMap { $0.revision > revision ? $0 : nil } })
            }
            let watcher = Watcher(id: s.nextID, keyPrefix: keyPrefix, prefix: prefix, selection: selection, queue: queue, after: after, log: log)
            s.resources[keyPrefix, default: Resource(windowStart: s.loadedAt)].watchers[watcher.id] = watcher
            if log == nil { s.resources[keyPrefix]!.pushed[watcher.id] = watcher }
            return .success((watcher, backlog, s.revision, log?.cursor()))
        }
        let (watcher, backlog, revision, cursor) = try registered.get()
        var items: [WatchItem] = []
        switch backlog {
        case .current(let objects):
            for object in objects where selection.isEverything || selection.matches(object.object) {
                items.append(.event(type: "ADDED", object: object))
            }
        case .changes(let events):
            for event in events where event.key.hasPrefix(prefix) {
                if let seen = event.seen(by: selection) { items.append(.event(type: seen.type, object: seen.object)) }
            }
        }
        return Registration(watcher: watcher, backlog: items, cursor: cursor, revision: revision)
    }

    func unregister(_ watcher: Watcher) {
        state.withLock { s in
            _ = s.resources[watcher.keyPrefix]?.watchers.removeValue(forKey: watcher.id)
            _ = s.resources[watcher.keyPrefix]?.pushed.removeValue(forKey: watcher.id)
        }
    }

    /// The event log of the resource at `keyPrefix` (one per resource for the cache's life).
    func eventLog(_ keyPrefix: String) -> EventLog {
        state.withLock { s in
            if let log = s.logs[keyPrefix] { return log }
            let log = EventLog()
            s.logs[keyPrefix] = log
            return log
        }
    }

    /// Queues a BOOKMARK for `watcher` at the cache's revision. Queued under the lock that
    /// dispatches events, so it never overtakes an event at or below its revision.
    func bookmark(_ watcher: Watcher) {
        state.withLock { s in
            guard s.resources[watcher.keyPrefix]?.watchers[watcher.id] != nil else { return }
            watcher.queue.push(.bookmark(revision: max(watcher.after, s.revision), initialEventsEnd: false), cost: 0)
        }
    }

    // MARK: Filling

    /// Lists everything, then follows the store from there; starts over when the store watch
    /// ends or falls behind a compaction, until stopped.
    private func feed() async {
        var failures = 0
        while !Task.isCancelled {
            do {
                let revision = try await load()
                failures = 0
                let updates = try await store.call { try await store.kv.watch(prefix: [], fromRevision: revision + 1) }
                for try await update in updates {
                    switch update {
                    case .events(let events):
                        apply(events)
                    case .compacted(let compacted):
                        logger.warning("the watch cache fell behind the store's compaction; rebuilding it",
                                       metadata: ["compacted": "\(compacted)", "cached": "\(self.revision)"])
                        throw RebuildNeeded()
                    }
                }
                if Task.isCancelled { break }
                throw RebuildNeeded()
            } catch is CancellationError {
                break
            } catch {
                if Task.isCancelled { break }
                failures += 1
                if !(error is RebuildNeeded) {
                    logger.warning("the watch cache cannot read the store; retrying", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: .milliseconds(min(2000, 25 << min(failures, 7))))
            }
        }
    }

    private struct RebuildNeeded: Error {}

    /// Reads every object under `/registry/` at one revision into a fresh cache and makes it
    /// the served one; watches on the previous one end (their clients re-watch). Returns the
    /// revision read at.
    private func load() async throws -> Int64 {
        let registry = Array("/registry/".utf8)
        var resources: [String: Resource] = [:]
        var after: [UInt8]?
        var revision: Int64 = 0
        while true {
            let page = try await store.call { try await store.kv.list(prefix: registry, limit: 10_000, continueAfter: after, revision: revision) }
            revision = page.revision
            for kv in page.kvs {
                guard let keyPrefix = Self.keyPrefix(kv.key) else { continue }
                guard let object = decode(kv) else { continue }
                if resources[keyPrefix] == nil { resources[keyPrefix] = Resource(windowStart: revision) }
                Self.store(object, in: &resources[keyPrefix]!, keyPrefix: keyPrefix)
            }
            guard page.more, let last = page.kvs.last else { break }
            after = last.key
        }
        let (ended, readyWaiters) = state.withLock { s in
            let ended = s.resources.values.flatMap { $0.watchers.values }
            s.resources = resources
            s.revision = revision
            s.loadedAt = revision
            s.ready = true
            let readyWaiters = Array(s.readyWaiters.values)
            s.readyWaiters = [:]
            return (ended, readyWaiters)
        }
        for w in ended { w.queue.finish(with: .end) }
        for c in readyWaiters { c.resume(returning: true) }
        wakeWaiters()
        logger.debug("watch cache loaded", metadata: ["revision": "\(revision)", "resources": "\(resources.count)"])
        return revision
    }

    /// `/registry/pods/` of `/registry/pods/default/web`; nil outside `/registry/`.
    static func keyPrefix(_ key: [UInt8]) -> String? {
        let registry = "/registry/".utf8
        guard key.count > registry.count, key.starts(with: registry) else { return nil }
        guard let slash = key[registry.count...].firstIndex(of: UInt8(ascii: "/")) else { return nil }
        return String(decoding: key[...slash], as: UTF8.self)
    }

    private func decode(_ kv: KeyValue) -> CachedObject? {
        do {
            let object = try ObjectStore.decode(kv)
            return CachedObject(key: String(decoding: kv.key, as: UTF8.self), object: object, revision: kv.modRevision,
                                cost: kv.value.count, bytes: StoredJSON.withResourceVersion(kv.value, kv.modRevision))
        } catch {
            logger.warning("the watch cache cannot read an object; it leaves the cache", metadata: ["key": "\(String(decoding: kv.key, as: UTF8.self))",
                                                                                       "error": "\(error.message)"])
            return nil
        }
    }

    /// Puts `object` in `resource`, its index included; returns the version it replaced.
    @discardableResult
    private static func store(_ object: CachedObject, in resource: inout Resource, keyPrefix: String) -> CachedObject? {
        let previous = resource.objects.updateValue(object, forKey: object.key)
        let at = resource.position(of: object.key)
        if at < resource.ordered.count && resource.ordered[at].key == object.key {
            resource.ordered[at] = object
        } else {
            resource.ordered.insert(object, at: at)
        }
        if let field = indexedFields[keyPrefix] {
            let old = previous.flatMap { Selection.fieldValue($0.object, field) } ?? ""
            let new = Selection.fieldValue(object.object, field) ?? ""
            if old != new || previous == nil {
                if previous != nil { resource.index[old]?.remove(object.key) }
                resource.index[new, default: []].insert(object.key)
            }
        }
        return previous
    }

    private static func remove(_ key: String, from resource: inout Resource, keyPrefix: String) -> CachedObject? {
        guard let previous = resource.objects.removeValue(forKey: key) else { return nil }
        let at = resource.position(of: key)
        if at < resource.ordered.count && resource.ordered[at].key == key { resource.ordered.remove(at: at) }
        if let field = indexedFields[keyPrefix] {
            let old = Selection.fieldValue(previous.object, field) ?? ""
            resource.index[old]?.remove(key)
            if resource.index[old]?.isEmpty == true { resource.index[old] = nil }
        }
        return previous
    }

    /// Applies a batch of store events (whole revisions, in order) and hands each to the
    /// watchers that see it. Objects are decoded before the lock is taken.
    private func apply(_ events: [StoreEvent]) {
        guard let last = events.last?.kv.modRevision else { return }
        let decoded: [(event: StoreEvent, keyPrefix: String, object: CachedObject?)] = events.compactMap { event in
            guard let keyPrefix = Self.keyPrefix(event.kv.key) else { return nil }
            switch event.type {
            case .put:
                // A value the cache cannot read (written under /registry/ by another client of
                // the same etcd) replaces what was there all the same: it goes from the cache and
                // its watchers see it deleted, rather than keep a version the store no longer has.
                return (event, keyPrefix, decode(event.kv))
            case .delete:
                return (event, keyPrefix, nil)
            }
        }
        let logs = state.withLock { s -> [EventLog] in
            guard s.ready else { return [] }
            var logs: [EventLog] = []
            for (event, keyPrefix, object) in decoded {
                let key = String(decoding: event.kv.key, as: UTF8.self)
                var resource = s.resources.removeValue(forKey: keyPrefix) ?? Resource(windowStart: s.loadedAt)
                let previous = object.map { Self.store($0, in: &resource, keyPrefix: keyPrefix) }
                    ?? Self.remove(key, from: &resource, keyPrefix: keyPrefix)
                if object == nil && previous == nil {  // a deletion of what the cache never had
                    s.resources[keyPrefix] = resource
                    continue
                }
                let change = CachedEvent(revision: event.kv.modRevision, key: key, current: object, previous: previous)
                append(change, to: &resource, keyPrefix: keyPrefix)
                if let log = s.logs[keyPrefix] {
                    log.append(change)
                    if !logs.contains(where: { $0 === log }) { logs.append(log) }
                }
                for watcher in resource.pushed.values {
                    guard let seen = watcher.sees(change) else { continue }
                    if !watcher.queue.push(.event(type: seen.type, object: seen.object), cost: seen.object.cost) {
                        resource.watchers[watcher.id] = nil  // overflowed or finished: its response ends
                        resource.pushed[watcher.id] = nil
                    }
                }
                s.resources[keyPrefix] = resource
            }
            s.revision = max(s.revision, last)
            return logs
        }
        for log in logs { log.notify() }
        wakeWaiters()
    }

    private func append(_ change: CachedEvent, to resource: inout Resource, keyPrefix: String) {
        resource.window.append(change)
        resource.windowBytes += change.cost
        let size = windowSizes[keyPrefix] ?? defaultWindowSize
        while resource.window.count - resource.windowHead > size
                || (resource.windowBytes > windowByteLimit && resource.window.count - resource.windowHead > 1) {
            guard let oldest = resource.window[resource.windowHead] else { break }
            resource.window[resource.windowHead] = nil
            resource.windowHead += 1
            resource.windowBytes -= oldest.cost
            resource.windowStart = max(resource.windowStart, oldest.revision)
        }
        if resource.windowHead > 1024 && resource.windowHead * 2 > resource.window.count {
            resource.window.removeFirst(resource.windowHead)
            resource.windowHead = 0
        }
    }

    private func wakeWaiters() {
        let due = state.withLock { s -> [CheckedContinuation<Bool, Never>] in
            guard s.ready else { return [] }
            let ids = s.waiters.filter { $0.value.target <= s.revision }.map(\.key)
            return ids.compactMap { s.waiters.removeValue(forKey: $0)?.continuation }
        }
        for c in due { c.resume(returning: true) }
    }
}
