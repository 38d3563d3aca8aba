import ClusterAPI
import Foundation
import HTTPKit
import MVCCStore
import Synchronization

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
        let timeoutSeconds = try watchTimeout(c.query["timeoutSeconds"])
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
        let limits = watchBuffer
        let logger = self.logger
        let resource = info.qualifiedResource
        return .streaming(headers: ["Content-Type": "application/json"]) { writer in
            metrics.watchStarted()
            defer { metrics.watchEnded() }
            let queue = WatchQueue<WatchItem>(limits: limits)
            let token = hub.register { queue.finish(with: .end) }
            defer { hub.unregister(token) }
            // The store side: translate and queue without ever waiting for the client.
            let producer = Task {
                do {
                    for try await update in updates {
                        switch update {
                        case .events(let events):
                            for event in events {
                                let cost = event.kv.value.count + (event.prevKV?.value.count ?? 0)
                                for item in Self.translate(event, selection: selection, cache: cache) {
                                    guard queue.push(item, cost: cost) else { return }
                                }
                            }
                        case .compacted(let compacted):
                            queue.finish(with: .failed(.tooOld(requested: requested, compacted: compacted)))
                            return
                        }
                    }
                    queue.finish(with: .end)
                } catch {
                    queue.finish(with: .failed(ObjectStore.map(error)))
                }
            }
            let timer = Task {
                try? await Task.sleep(for: .seconds(timeoutSeconds))
                queue.finish(with: .end)
            }
            let ticker = Task {
                guard bookmarks else { return }
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(30))
                    if Task.isCancelled { break }
                    queue.push(.bookmark(revision: 0), cost: 0)
                }
            }
            defer {
                producer.cancel()
                timer.cancel()
                ticker.cancel()
                queue.finish()
            }
            // The client side: write what is queued; writing waits while the client does not read.
            let consumer = Task {
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
                while let item = await queue.next() {
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
            // A client that fell `limits` behind is cut off, its pending write included: the
            // connection closes and the client re-lists, as with Kubernetes' unresponsive watchers.
            queue.onOverflow {
                consumer.cancel()
                metrics.watchTerminated(resource: resource)
                logger.warning("closed a watch whose client does not read fast enough",
                               metadata: ["resource": "\(resource)", "bufferedEvents": "\(limits.events)",
                                          "bufferedBytes": "\(limits.bytes)"])
            }
            try await withTaskCancellationHandler {
                try await consumer.value
            } onCancel: {
                consumer.cancel()
            }
            if queue.overflowed { throw WatchTerminated() }
        }
    }

    /// Ends a watch response without its final chunk: the connection closes.
    struct WatchTerminated: Error {}

    /// The longest a watch may ask to last (`timeoutSeconds`); longer requests get this.
    static let maxWatchTimeoutSeconds: Int64 = 24 * 3600

    /// `timeoutSeconds=`: absent or 0 is the server's random 30–60 minutes (as Kubernetes'
    /// `--min-request-timeout` doubling); anything else is clamped to 0...24 h, so that
    /// `9223372036854775807` is a long watch, not an overflowing timer.
    func watchTimeout(_ text: String?) throws(APIError) -> Int {
        guard let text, !text.isEmpty else { return Int.random(in: watchTimeoutRange) }
        guard let seconds = Int64(text) else {
            throw APIError.badRequest("timeoutSeconds \"\(text)\" is not valid: expected a whole number of seconds")
        }
        if seconds == 0 { return Int.random(in: watchTimeoutRange) }
        return Int(min(max(seconds, 0), Self.maxWatchTimeoutSeconds))
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
            return cache.map { $0.object(which + "|" + name, cost: kv.value.count, decode) } ?? decode()
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
/// the event's revision and key, so they never go stale; the oldest go beyond `capacity`
/// entries or `byteCapacity` bytes (objects counted by their stored size, lines by theirs),
/// so that large objects cannot make the cache hold gigabytes.
final class WatchEventCache: Sendable {
    private struct Entries {
        var objects: [String: JSONValue] = [:]
        var lines: [String: Data] = [:]
        var order: [(key: String, cost: Int)] = []
        var head = 0
        var bytes = 0

        /// Records a new entry and evicts the oldest beyond the capacities.
        mutating func remember(_ tagged: String, cost: Int, capacity: Int, byteCapacity: Int) {
            order.append((tagged, cost))
            bytes += cost
            while order.count - head > capacity || (bytes > byteCapacity && order.count - head > 1) {
                let (oldest, oldestCost) = order[head]
                head += 1
                bytes -= oldestCost
                if oldest.hasPrefix("o") { objects[String(oldest.dropFirst())] = nil } else { lines[String(oldest.dropFirst())] = nil }
            }
            if head > 4096, head * 2 > order.count {
                order.removeFirst(head)
                head = 0
            }
        }
    }
    private let entries = Mutex(Entries())
    private let capacity: Int
    private let byteCapacity: Int

    init(capacity: Int = 4096, byteCapacity: Int = 16 << 20) {
        self.capacity = capacity
        self.byteCapacity = byteCapacity
    }

    /// The decoded object of `key`, made by `make` the first time; `cost` is its stored size.
    func object(_ key: String, cost: Int = 0, _ make: () -> JSONValue?) -> JSONValue? {
        if let hit = entries.withLock({ $0.objects[key] }) { return hit }
        guard let made = make() else { return nil }
        entries.withLock {
            if $0.objects.updateValue(made, forKey: key) == nil {
                $0.remember("o" + key, cost: cost, capacity: capacity, byteCapacity: byteCapacity)
            }
        }
        return made
    }

    func line(_ key: String, _ make: () -> Data) -> Data {
        if let hit = entries.withLock({ $0.lines[key] }) { return hit }
        let made = make()
        entries.withLock {
            if $0.lines.updateValue(made, forKey: key) == nil {
                $0.remember("l" + key, cost: made.count, capacity: capacity, byteCapacity: byteCapacity)
            }
        }
        return made
    }

    /// Entries and bytes held.
    var size: (entries: Int, bytes: Int) { entries.withLock { ($0.order.count - $0.head, $0.bytes) } }
}
