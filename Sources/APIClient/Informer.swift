// An informer: a local, indexable cache of one resource kept current by list-then-watch, as
// controllers are written in Kubernetes. It lists, watches from the list's resourceVersion,
// resumes the watch from the last version it saw, lists again when the server says that version
// is gone (410), and replays its whole cache every `resync` so handlers repair what they missed.
import ClusterAPI
import Foundation
import Logging
import Synchronization

/// Where an informer gets its objects: the API server (`KubeClient`) or a test's fake.
public protocol ListWatchSource<Object>: Sendable {
    associatedtype Object: APIObject
    func list() async throws -> List<Object>
    func watch(from resourceVersion: String) async throws -> AsyncThrowingStream<WatchEvent<Object>, any Error>
}

/// A resource of the API server, optionally narrowed to a namespace and selectors.
public struct ResourceSource<Object: APIObject>: ListWatchSource {
    public let client: KubeClient
    public var namespace: String?
    public var labelSelector: String?
    public var fieldSelector: String?

    public init(_ client: KubeClient, _ type: Object.Type, namespace: String? = nil, labelSelector: String? = nil, fieldSelector: String? = nil) {
        self.client = client
        self.namespace = namespace
        self.labelSelector = labelSelector
        self.fieldSelector = fieldSelector
    }

    public func list() async throws -> List<Object> {
        try await client.list(Object.self, namespace: namespace, labelSelector: labelSelector, fieldSelector: fieldSelector)
    }

    public func watch(from resourceVersion: String) async throws -> AsyncThrowingStream<WatchEvent<Object>, any Error> {
        try await client.watch(Object.self, namespace: namespace, labelSelector: labelSelector, fieldSelector: fieldSelector,
                               resourceVersion: resourceVersion, timeoutSeconds: 1800)
    }
}

/// What changed in an informer's cache.
public enum InformerEvent<Object: APIObject>: Sendable {
    case added(Object)
    case updated(old: Object, new: Object)
    case deleted(Object)
    /// The periodic replay of an object already known.
    case resync(Object)

    /// The object as it is now (the last state of a deleted one).
    public var object: Object {
        switch self {
        case .added(let object), .deleted(let object), .resync(let object): object
        case .updated(_, let new): new
        }
    }
}

public actor Informer<Object: APIObject> {
    private let source: any ListWatchSource<Object>
    private let resync: Duration
    private let logger: Logger
    private var cache: [String: Object] = [:]
    /// The cache's keys in order, kept until one is added or removed (`list()` is called on
    /// every sync of several controllers).
    private var orderedKeys: [String]?
    private var indexers: [String: @Sendable (Object) -> [String]] = [:]
    /// Index name → value → the keys of the cached objects whose index holds that value.
    private var indices: [String: [String: Set<String>]] = [:]
    private var subscribers: [UUID: AsyncStream<InformerEvent<Object>>.Continuation] = [:]
    private var handlers: [@Sendable (InformerEvent<Object>) -> Void] = []
    /// What the logs call this informer's objects.
    private let name: String
    private var synced = false
    private var syncWaiters: [UUID: CheckedContinuation<Void, Never>] = [:]
    private var lastResourceVersion = ""

    /// - Parameter name: what the logs call the objects (default: the type's kind).
    /// How long a watch may say nothing — no event, no bookmark (the API server sends one every
    /// 30 s to a watch that asks, as an informer's do) — before its connection is taken for dead
    /// and the informer watches again. A half-open connection (the server's machine lost power,
    /// a NAT forgot it) never ends by itself, and the cache would stay as it was for good.
    private let idleLimit: Duration

    public init(_ source: any ListWatchSource<Object>, resync: Duration = .seconds(300), name: String? = nil,
                idleLimit: Duration = .seconds(90), logger: Logger) {
        self.source = source
        self.resync = resync
        self.name = name ?? Object.defaultKind
        self.idleLimit = idleLimit
        self.logger = logger
    }

    /// The cache key of an object: "namespace/name", or "name" for cluster-scoped ones.
    public static func key(_ object: Object) -> String {
        key(name: object.metadata.name ?? "", namespace: object.metadata.namespace)
    }

    public static func key(name: String, namespace: String?) -> String {
        namespace.map { $0.isEmpty ? name : "\($0)/\(name)" } ?? name
    }

    /// Events from now on. Subscribe before `run()` to see the first list as `added` events.
    public func events() -> AsyncStream<InformerEvent<Object>> {
        let id = UUID()
        let (stream, continuation) = AsyncStream<InformerEvent<Object>>.makeStream(bufferingPolicy: .unbounded)
        subscribers[id] = continuation
        continuation.onTermination = { _ in Task { await self.unsubscribe(id) } }
        return stream
    }

    private func unsubscribe(_ id: UUID) { subscribers[id] = nil }

    /// Calls `handler` with every event from now on, synchronously, in order, on the informer
    /// itself, before the event is published to `events()` streams and — for the first list —
    /// before `waitForSync()` returns: once synced, the handler has seen every object of the
    /// first list. It must be quick and must not block (update a structure under a lock,
    /// yield to a stream). Add it before `run()` to see the first list as `added` events.
    public func addHandler(_ handler: @escaping @Sendable (InformerEvent<Object>) -> Void) {
        handlers.append(handler)
    }

    public func get(_ key: String) -> Object? { cache[key] }

    public func get(name: String, namespace: String? = nil) -> Object? { cache[Self.key(name: name, namespace: namespace)] }

    public func list() -> [Object] {
        let keys = orderedKeys ?? cache.keys.sorted()
        orderedKeys = keys
        return keys.compactMap { cache[$0] }
    }

    /// Indexes the cache by the values `keys` computes from each object (kept up to date with
    /// every event; adding an index of the same name again replaces it).
    public func addIndex(_ name: String, _ keys: @escaping @Sendable (Object) -> [String]) {
        indexers[name] = keys
        var index: [String: Set<String>] = [:]
        for (key, object) in cache {
            for value in keys(object) { index[value, default: []].insert(key) }
        }
        indices[name] = index
    }

    /// Objects whose index `name` holds `value`, in key order (none for an unknown index).
    public func byIndex(_ name: String, _ value: String) -> [Object] {
        guard let keys = indices[name]?[value] else { return [] }
        return keys.sorted().compactMap { cache[$0] }
    }

    /// Moves `key` in every index from what `old` held to what `new` holds.
    private func reindex(_ key: String, old: Object?, new: Object?) {
        for (name, values) in indexers {
            let before = old.map(values) ?? [], after = new.map(values) ?? []
            guard before != after else { continue }
            for value in before where !after.contains(value) {
                indices[name]?[value]?.remove(key)
                if indices[name]?[value]?.isEmpty == true { indices[name]?[value] = nil }
            }
            for value in after { indices[name, default: [:]][value, default: []].insert(key) }
        }
    }

    public var hasSynced: Bool { synced }

    /// Returns once the first list is in the cache, or when the calling task is cancelled.
    public func waitForSync() async {
        if synced { return }
        let id = UUID()
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                if Task.isCancelled || synced {
                    continuation.resume()
                } else {
                    syncWaiters[id] = continuation
                }
            }
        } onCancel: {
            Task { await self.releaseWaiter(id) }
        }
    }

    private func releaseWaiter(_ id: UUID) {
        syncWaiters.removeValue(forKey: id)?.resume()
    }

    /// Lists and watches until the task is cancelled, recovering from every failure with a
    /// back-off (200 ms doubling to 30 s).
    public func run() async {
        var backoff: Duration = .milliseconds(200)
        var needsList = true
        let resyncTask = Task { [resync] in
            while !Task.isCancelled {
                try? await Task.sleep(for: resync)
                if Task.isCancelled { break }
                self.replay()
            }
        }
        defer {
            resyncTask.cancel()
            for subscriber in subscribers.values { subscriber.finish() }
        }
        while !Task.isCancelled {
            do {
                if needsList {
                    try await relist()
                    needsList = false
                }
                let stream = Self.failingWhenIdle(try await source.watch(from: lastResourceVersion), limit: idleLimit)
                for try await event in stream {
                    if try apply(event) == .relist {
                        needsList = true
                        break
                    }
                }
                backoff = .milliseconds(200)
            } catch let error as APIError where error.isGone {
                logger.info("watch expired; listing again", metadata: ["kind": "\(name)"])
                needsList = true
            } catch let error as APIError where error.isResourceVersionTooLarge {
                logger.warning("the API server has not reached this informer's resource version (its store was restored?); listing again",
                               metadata: ["kind": "\(name)", "resourceVersion": "\(lastResourceVersion)"])
                needsList = true
            } catch {
                if Task.isCancelled { break }
                logger.warning("list/watch failed; retrying", metadata: ["kind": "\(name)", "error": "\(error)", "in": "\(backoff)"])
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(30))
            }
        }
    }

    private enum Applied { case ok, relist }

    private final class LastHeard: Sendable {
        let time = Mutex(ContinuousClock.now)
    }

    /// A watch that said nothing for its idle limit.
    struct WatchIdle: Error, CustomStringConvertible {
        let limit: Duration
        var description: String { "the watch said nothing (not even a bookmark) for \(limit): its connection is taken for dead" }
    }

    /// `stream`'s events, failing with `WatchIdle` when none comes for `limit` (and then no
    /// longer reading `stream`: its reader is cancelled, which closes its connection).
    static func failingWhenIdle(_ stream: AsyncThrowingStream<WatchEvent<Object>, any Error>,
                                limit: Duration) -> AsyncThrowingStream<WatchEvent<Object>, any Error> {
        AsyncThrowingStream { continuation in
            let lastHeard = LastHeard()
            let reader = Task {
                do {
                    for try await event in stream {
                        lastHeard.time.withLock { $0 = .now }
                        continuation.yield(event)
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            let watchdog = Task {
                while !Task.isCancelled {
                    let due = lastHeard.time.withLock { $0 } + limit
                    if ContinuousClock.now >= due {
                        continuation.finish(throwing: WatchIdle(limit: limit))
                        reader.cancel()
                        return
                    }
                    try? await Task.sleep(until: due, clock: .continuous)
                }
            }
            continuation.onTermination = { _ in
                reader.cancel()
                watchdog.cancel()
            }
        }
    }

    private func apply(_ event: WatchEvent<Object>) throws -> Applied {
        switch event.kind {
        case .error:
            if event.status?.code == 410 { return .relist }
            throw APIError.status(code: Int(event.status?.code ?? 500), status: event.status ?? Status())
        case .bookmark:
            if let version = event.object?.metadata.resourceVersion { lastResourceVersion = version }
        case .added, .modified:
            guard let object = event.object else { return .ok }
            let key = Self.key(object)
            let old = cache[key]
            cache[key] = object
            if old == nil { orderedKeys = nil }
            reindex(key, old: old, new: object)
            publish(old.map { .updated(old: $0, new: object) } ?? .added(object))
            lastResourceVersion = object.metadata.resourceVersion ?? lastResourceVersion
        case .deleted:
            guard let object = event.object else { return .ok }
            let key = Self.key(object)
            if let old = cache.removeValue(forKey: key) {
                orderedKeys = nil
                reindex(key, old: old, new: nil)
            }
            publish(.deleted(object))
            lastResourceVersion = object.metadata.resourceVersion ?? lastResourceVersion
        }
        return .ok
    }

    /// Replaces the cache with a fresh list, publishing the differences.
    private func relist() async throws {
        let list = try await source.list()
        var fresh: [String: Object] = [:]
        for object in list.items { fresh[Self.key(object)] = object }
        for (key, old) in cache where fresh[key] == nil { publish(.deleted(old)) }
        // The keys sorted, not the (key, object) pairs: sorting the pairs moved whole objects
        // (a Pod's dozens of references) at every swap, 7% of a scheduler's start with 4,000 pods.
        for key in fresh.keys.sorted() {
            let object = fresh[key]!
            if let old = cache[key] {
                if old != object { publish(.updated(old: old, new: object)) }
            } else {
                publish(.added(object))
            }
        }
        cache = fresh
        orderedKeys = nil
        for (name, keys) in indexers { addIndex(name, keys) }
        lastResourceVersion = list.metadata.resourceVersion ?? ""
        if !synced {
            synced = true
            for waiter in syncWaiters.values { waiter.resume() }
            syncWaiters.removeAll()
        }
    }

    private func replay() {
        for key in cache.keys.sorted() { if let object = cache[key] { publish(.resync(object)) } }
    }

    private func publish(_ event: InformerEvent<Object>) {
        for handler in handlers { handler(event) }
        for subscriber in subscribers.values { subscriber.yield(event) }
    }
}
