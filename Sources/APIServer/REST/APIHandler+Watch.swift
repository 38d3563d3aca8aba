import ClusterAPI
import Foundation
import HTTPKit
import MVCCStore

extension APIHandler {
    /// One item of a watch response.
    enum WatchItem: Sendable {
        /// `shared` names the event ("TYPE|revision|key") for the encoded-line cache.
        case event(type: String, object: JSONValue, shared: String?)
        case bookmark(revision: Int64)
        case end
        case failed(APIError)
    }

    /// `?watch=true`: the objects' changes as JSON lines, streamed. With no resource
    /// version (or "0") the current objects come first as ADDED; otherwise only changes
    /// after the given version. History older than the store's compaction ends the
    /// stream with a 410 Expired ERROR event.
    func watch(_ c: RequestContext, _ info: ResourceInfo) async throws -> HTTPResponse {
        var fieldSelector = c.query["fieldSelector"] ?? ""
        if !c.attributes.name.isEmpty {  // GET …/pods/{name}?watch=true
            fieldSelector += (fieldSelector.isEmpty ? "" : ",") + "metadata.name=" + FieldSelector.escapeValue(c.attributes.name)
        }
        let selection = try Selection(resource: info, labelSelector: c.query["labelSelector"], fieldSelector: fieldSelector)
        let prefix = info.listPrefix(namespace: c.attributes.namespace)
        let rvText = c.query["resourceVersion"] ?? ""
        var initial: [JSONValue] = []
        let from: Int64
        if rvText.isEmpty || rvText == "0" {
            let page = try await store.list(prefix: prefix, limit: 0, continueAfter: nil, revision: 0) { selection.matches($0) }
            initial = page.items
            from = page.revision + 1
        } else {
            guard let rv = Int64(rvText), rv > 0 else {
                throw APIError.badRequest("resourceVersion \"\(rvText)\" is not a resource version: expected a positive integer")
            }
            from = rv + 1
        }
        let updates = try await store.call { try await store.kv.watch(prefix: Array(prefix.utf8), fromRevision: from) }
        let timeoutSeconds = Int(c.query["timeoutSeconds"] ?? "") ?? Int.random(in: watchTimeoutRange)
        let bookmarks = c.query["allowWatchBookmarks"] == "true"
        let table = c.wantsTable
        let include = c.include
        let kind = info.kind
        let groupVersion = info.groupVersion
        let requested = from - 1
        let initialObjects = initial
        let hub = watchHub
        let cache = watchCache
        let metrics = self.metrics
        return .streaming(headers: ["Content-Type": "application/json"]) { writer in
            metrics.watchStarted()
            defer { metrics.watchEnded() }
            let (items, sink) = AsyncStream<WatchItem>.makeStream()
            let token = hub.register { sink.yield(.end) }
            defer { hub.unregister(token) }
            let producer = Task {
                do {
                    for try await update in updates {
                        switch update {
                        case .events(let events):
                            for event in events {
                                for item in Self.translate(event, selection: selection, cache: cache) { sink.yield(item) }
                            }
                        case .compacted(let compacted):
                            sink.yield(.failed(.tooOld(requested: requested, compacted: compacted)))
                            sink.yield(.end)
                        }
                    }
                    sink.yield(.end)
                } catch {
                    sink.yield(.failed(ObjectStore.map(error)))
                    sink.yield(.end)
                }
            }
            let timer = Task {
                try? await Task.sleep(for: .seconds(timeoutSeconds))
                sink.yield(.end)
            }
            let ticker = Task {
                guard bookmarks else { return }
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(30))
                    if Task.isCancelled { break }
                    sink.yield(.bookmark(revision: 0))
                }
            }
            defer {
                producer.cancel()
                timer.cancel()
                ticker.cancel()
                sink.finish()
            }
            var lastRevision = requested
            func line(_ type: String, _ object: JSONValue) -> Data {
                var payload = object
                if table, type != "ERROR", type != "BOOKMARK" {
                    payload = TablePrinter.table(kind: kind, objects: [object],
                                                 listMeta: ["resourceVersion": object["metadata"]?["resourceVersion"] ?? ""],
                                                 include: include)
                }
                var line = Self.encode(["type": .string(type), "object": payload])
                line.append(0x0A)
                return line
            }
            func send(_ type: String, _ object: JSONValue) async throws {
                try await writer.write(line(type, object))
            }
            for object in initialObjects { try await send("ADDED", object) }
            for await item in items {
                switch item {
                case .event(let type, let object, let shared):
                    if let rv = object["metadata"]?["resourceVersion"]?.stringValue.flatMap(Int64.init) { lastRevision = max(lastRevision, rv) }
                    if let shared, !table {
                        try await writer.write(cache.line(shared) { line(type, object) })
                    } else {
                        try await send(type, object)
                    }
                case .bookmark:
                    try await send("BOOKMARK", ["kind": .string(kind), "apiVersion": .string(groupVersion),
                                                "metadata": ["resourceVersion": .string(String(lastRevision))]])
                case .failed(let error):
                    try await send("ERROR", (try? JSONValue(encoding: error.status)) ?? [:])
                case .end:
                    return
                }
                if Task.isCancelled { return }
            }
        }
    }

    /// A store event as watch events, after the selectors: an object that stops matching
    /// is DELETED for this watcher, one that starts matching is ADDED.
    static func translate(_ event: StoreEvent, selection: Selection, cache: WatchEventCache? = nil) -> [WatchItem] {
        let rv = JSONValue.string(String(event.kv.modRevision))
        let name = "\(event.kv.modRevision)|" + String(decoding: event.kv.key, as: UTF8.self)
        func decoded(_ kv: KeyValue?, _ which: String) -> JSONValue? {
            guard let kv, !kv.value.isEmpty else { return nil }
            func decode() -> JSONValue? {
                guard var object = try? ObjectStore.decode(kv) else { return nil }
                object["metadata"]?["resourceVersion"] = rv
                return object
            }
            return cache.map { $0.object(which + "|" + name, decode) } ?? decode()
        }
        func item(_ type: String, _ object: JSONValue) -> WatchItem {
            .event(type: type, object: object, shared: type + "|" + name)
        }
        let previous = decoded(event.prevKV, "prev")
        let previousMatches = previous.map(selection.matches) ?? false
        switch event.type {
        case .delete:
            guard let previous, previousMatches else { return [] }
            return [item("DELETED", previous)]
        case .put:
            guard let current = decoded(event.kv, "current") else { return [] }
            let currentMatches = selection.matches(current)
            switch (previousMatches, currentMatches) {
            case (true, true): return [item("MODIFIED", current)]
            case (false, true): return [item("ADDED", current)]
            case (true, false):
                var gone = previous!
                gone["metadata"]?["resourceVersion"] = rv
                return [item("DELETED", gone)]
            case (false, false): return []
            }
        }
    }
}


/// Decoded objects and encoded watch lines shared by every watcher of an event: a write that a
/// hundred watchers see is decoded and encoded once, not a hundred times. Entries are keyed by
/// the event's revision and key, so they never go stale; the oldest go beyond `capacity`.
final class WatchEventCache: @unchecked Sendable {
    private let lock = NSLock()
    private var objects: [String: JSONValue] = [:]
    private var lines: [String: Data] = [:]
    private var order: [String] = []
    private var head = 0
    private let capacity: Int

    init(capacity: Int = 4096) { self.capacity = capacity }

    func object(_ key: String, _ make: () -> JSONValue?) -> JSONValue? {
        if let hit = lock.withLock({ objects[key] }) { return hit }
        guard let made = make() else { return nil }
        lock.withLock {
            if objects.updateValue(made, forKey: key) == nil { remember("o" + key) }
        }
        return made
    }

    func line(_ key: String, _ make: () -> Data) -> Data {
        if let hit = lock.withLock({ lines[key] }) { return hit }
        let made = make()
        lock.withLock {
            if lines.updateValue(made, forKey: key) == nil { remember("l" + key) }
        }
        return made
    }

    /// Records a new entry and evicts the oldest beyond capacity (under the lock).
    private func remember(_ tagged: String) {
        order.append(tagged)
        while order.count - head > capacity {
            let oldest = order[head]
            head += 1
            if oldest.hasPrefix("o") { objects[String(oldest.dropFirst())] = nil } else { lines[String(oldest.dropFirst())] = nil }
        }
        if head > 4096, head * 2 > order.count {
            order.removeFirst(head)
            head = 0
        }
    }
}
