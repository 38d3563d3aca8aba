import ClusterAPI
import Foundation
import HTTPKit
import MVCCStore
import NIOCore
import Synchronization

extension APIHandler {
    /// `?watch=true`: the objects' changes as JSON lines, streamed from the watch cache. With
    /// no resource version (or "0") the current objects come first as ADDED; otherwise only
    /// changes after the given version. `sendInitialEvents=true` (with
    /// `resourceVersionMatch=NotOlderThan` and `allowWatchBookmarks=true`, as Kubernetes
    /// requires) sends the current objects, then a BOOKMARK annotated
    /// `k8s.io/initial-events-end`, then the changes. A version older than the cache's window
    /// of the resource ends the stream with a 410 Expired ERROR event: the client re-lists.
    func watch(_ c: RequestContext, _ info: ResourceInfo) async throws -> HTTPResponse {
        var fieldSelector = c.query["fieldSelector"] ?? ""
        if !c.attributes.name.isEmpty {  // GET …/pods/{name}?watch=true
            fieldSelector += (fieldSelector.isEmpty ? "" : ",") + "metadata.name=" + FieldSelector.escapeValue(c.attributes.name)
        }
        let selection = try Selection(resource: info, labelSelector: c.query["labelSelector"], fieldSelector: fieldSelector)
        let prefix = info.listPrefix(namespace: c.attributes.namespace)
        let bookmarks = c.query["allowWatchBookmarks"] == "true"
        let sendInitialEvents = try Self.watchStart(c.query, bookmarks: bookmarks)
        let rv = try Self.resourceVersion(c.query["resourceVersion"])
        let timeoutSeconds = try watchTimeout(c.query["timeoutSeconds"])
        let cache = watchCache
        try await cache.awaitReady()
        let start: WatchCache.Start
        switch (sendInitialEvents, rv) {
        case (true?, _), (nil, nil), (nil, 0?):
            try await awaitFresh(rv)  // the current objects, at least as new as asked (nil: consistent)
            start = .current
        case (false?, nil), (false?, 0?): start = .after(cache.revision)
        case (_, let n?):
            // Past what the cache has seen: the store must have it (else "too large", as
            // Kubernetes answers) — a watch from a revision the store has not reached (a store
            // restored from an older backup) would otherwise drop every event until it does.
            if n > cache.revision { try await awaitFresh(n) }
            start = .after(n)
        }
        let table = c.wantsTable
        let include = c.include
        let kind = info.kind
        let groupVersion = info.groupVersion
        let hub = watchHub
        let metrics = self.metrics
        let limits = watchBuffer
        let logger = self.logger
        let bookmarkInterval = self.bookmarkInterval
        let resource = info.qualifiedResource
        let keyPrefix = info.keyPrefix
        let flushers = watchFlushers
        return .streaming(headers: ["Content-Type": "application/json"]) { writer in
            metrics.watchStarted()
            defer { metrics.watchEnded() }
            let lines = WatchLines(table: table, include: include, kind: kind, groupVersion: groupVersion, custom: info.printerColumns,
                                   setsVersion: info.schema != nil)
            // Written from the connection's event loop (`writer.direct`), a watch reads its events
            // from the resource's log; elsewhere they are pushed onto its queue.
            let log: EventLog? = writer.direct == nil ? nil : cache.eventLog(keyPrefix)
            var marker: (@Sendable () -> Int)?
            if let log { marker = { @Sendable in log.end } }
            let queue = WatchQueue<WatchItem>(limits: limits, marker: marker)
            let token = hub.register { queue.finish(with: .end) }
            defer { hub.unregister(token) }
            var registration: WatchCache.Registration
            do throws(APIError) {
                registration = try cache.register(keyPrefix: keyPrefix, prefix: prefix, selection: selection, start: start, queue: queue,
                                                  log: log)
            } catch {
                var out = Data()
                lines.append(.failed(error), to: &out)
                try await writer.write(out)
                return
            }
            let watcher = registration.watcher
            // Written from the connection's loop by its flusher, with every other watch of that
            // loop: no task of its own. Attached now, so that the flusher holds it to its bounds
            // while its backlog is written; it writes once that is done.
            var direct: (watch: DirectWatch, flusher: WatchFlusher)?
            // The cursor moves to the watch: one left here would hold every segment of the log
            // from the start for the watch's life.
            if let body = writer.direct, let log, let cursor = registration.takeCursor() {
                let watch = DirectWatch(watcher: watcher, log: log, cursor: cursor, lines: lines, body: body)
                let flusher = flushers.flusher(for: body.eventLoop)
                queue.onReady { flusher.kick() }
                queue.onOverflow {
                    watch.complete(.overflowed)
                    metrics.watchTerminated(resource: resource)
                    logger.warning("closed a watch whose client does not read fast enough",
                                   metadata: ["resource": "\(resource)", "bufferedEvents": "\(limits.events)",
                                              "bufferedBytes": "\(limits.bytes)"])
                }
                flusher.attach(watch)
                direct = (watch, flusher)
            }
            let timer = Task {
                try? await Task.sleep(for: .seconds(timeoutSeconds))
                queue.finish(with: .end)
            }
            let ticker = Task {
                guard bookmarks else { return }
                while !Task.isCancelled {
                    try? await Task.sleep(for: bookmarkInterval)
                    if Task.isCancelled { break }
                    cache.bookmark(watcher)
                }
            }
            defer {
                cache.unregister(watcher)
                timer.cancel()
                ticker.cancel()
                queue.finish()
                if let direct {
                    direct.watch.complete(.cancelled)  // if nothing else ended it (its backlog could not be written)
                    direct.flusher.kick()  // it leaves the flusher at its next round
                }
            }
            // The backlog first, through the response's own writer (waiting while the client
            // does not read); then what the cache queues.
            var backlog = registration.takeBacklog()
            if sendInitialEvents == true {
                backlog.append(.bookmark(revision: registration.revision, initialEventsEnd: true))
            }
            var position = 0
            while position < backlog.count {
                let batch = backlog[position..<min(backlog.count, position + Self.linesPerWrite)]
                position += batch.count
                var out = ByteBuffer()
                for item in batch { lines.append(item, to: &out) }
                try await writer.write(Data(out.readableBytesView))
            }
            backlog = []  // written: its objects are not held for the watch's life
            if let (watch, flusher) = direct {
                flusher.activate(watch)
                let outcome = await withTaskCancellationHandler {
                    await watch.outcome()
                } onCancel: {
                    watch.complete(.cancelled)
                }
                // A client that fell `limits` behind is cut off: the connection closes and the
                // client re-lists, as with Kubernetes' unresponsive watchers.
                if outcome == .overflowed { throw WatchTerminated() }
                return
            }
            // Elsewhere (no connection to write from its loop): a task writes what is queued,
            // several events per write when they wait; writing waits while the client does not read.
            let consumer = Task {
                var lastWrite = ContinuousClock.now - Self.watchWriteInterval
                while true {
                    var batch = await queue.nextBatch(max: Self.linesPerWrite)
                    if batch.isEmpty || Task.isCancelled { return }
                    let due = lastWrite + Self.watchWriteInterval
                    if batch.count < Self.linesPerWrite, ContinuousClock.now < due, case .event = batch[batch.count - 1] {
                        try? await Task.sleep(until: due)
                        batch += queue.available(max: Self.linesPerWrite - batch.count)
                    }
                    lastWrite = ContinuousClock.now
                    var out = ByteBuffer()
                    var last = false
                    for item in batch {
                        if case .end = item { last = true; break }
                        lines.append(item, to: &out)
                        if case .failed = item { last = true; break }
                    }
                    if out.readableBytes > 0 { try await writer.write(Data(out.readableBytesView)) }
                    if last { return }
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

    /// Watch lines per write at most (a batch of waiting events).
    static let linesPerWrite = 256
    /// The shortest time between two rounds of watch writes on one event loop (between two
    /// writes of one watch) while events keep coming.
    static let watchWriteInterval: Duration = .milliseconds(20)

    /// `sendInitialEvents`, checked as Kubernetes checks a watch's list options.
    static func watchStart(_ query: [String: String], bookmarks: Bool) throws(APIError) -> Bool? {
        let match = query["resourceVersionMatch"] ?? ""
        guard let text = query["sendInitialEvents"], !text.isEmpty else {
            if !match.isEmpty {
                throw APIError.badRequest("resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided")
            }
            return nil
        }
        guard let send = Bool(text) else {
            throw APIError.badRequest("sendInitialEvents \"\(text)\" is not valid: expected true or false")
        }
        if match != "NotOlderThan" {
            throw APIError.badRequest("resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan")
        }
        if !bookmarks {
            throw APIError.badRequest("allowWatchBookmarks: Forbidden: sendInitialEvents requires setting allowWatchBookmarks to true")
        }
        return send
    }

    /// `resourceVersion=`: nil when absent, else a revision (0 for "0").
    static func resourceVersion(_ text: String?) throws(APIError) -> Int64? {
        guard let text, !text.isEmpty else { return nil }
        guard let rv = Int64(text), rv >= 0 else {
            throw APIError.badRequest("resourceVersion \"\(text)\" is not a resource version: expected a positive integer")
        }
        return rv
    }

    /// Waits until the watch cache is at least as new as `rv` asks: nil is a consistent read
    /// (the store's current revision), 0 any. 504 when the cache cannot get there in time.
    func awaitFresh(_ rv: Int64?) async throws(APIError) {
        if rv == 0 { return }
        let target: Int64
        if let rv {
            let current = try await store.currentRevision()
            if current < rv {
                throw APIError(.timeout, "Too large resource version: \(rv), current: \(current)",
                               details: StatusDetails(causes: [StatusCause(reason: APIError.resourceVersionTooLarge, message: "Too large resource version")],
                                                      retryAfterSeconds: 1))
            }
            target = rv
        } else {
            target = try await store.currentRevision()
        }
        guard await watchCache.awaitRevision(target) else {
            throw APIError(.timeout, "Timeout: the watch cache did not reach resource version \(target) in time; retry")
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
}

/// The JSON lines of one watch response. An event's object is written from its cached bytes,
/// the same bytes for every watcher of it, unless the watch asked for Tables.
struct WatchLines: Sendable {
    let table: Bool
    let include: IncludeObject
    let kind: String
    let groupVersion: String
    /// A custom resource's printer columns.
    var custom: [CustomResourceColumnDefinition]? = nil
    /// A custom resource's: an object stored at another version is written with this one's
    /// `apiVersion` (encoded for this watch, not shared).
    var setsVersion = false

    func append(_ item: WatchItem, to out: inout Data) {
        var buffer = ByteBuffer()
        append(item, to: &buffer)
        out.append(contentsOf: buffer.readableBytesView)
    }

    func append(_ item: WatchItem, to out: inout ByteBuffer) {
        switch item {
        case .event(let type, let object):
            appendEvent(type: type, object: object, to: &out)
        case .bookmark(let revision, let initialEventsEnd):
            var metadata: JSONValue = ["resourceVersion": .string(String(revision))]
            if initialEventsEnd { metadata["annotations"] = ["k8s.io/initial-events-end": "true"] }
            line("BOOKMARK", ["kind": .string(kind), "apiVersion": .string(groupVersion), "metadata": metadata], to: &out)
        case .failed(let error):
            line("ERROR", (try? JSONValue(encoding: error.status)) ?? [:], to: &out)
        case .end:
            break
        }
    }

    /// One event's line: the object's cached bytes, shared by every watcher, unless the watch asked for Tables.
    func appendEvent(type: String, object: CachedObject, to out: inout ByteBuffer) {
        if table {
            let rows = TablePrinter.table(kind: kind, objects: [object.object],
                                          listMeta: ["resourceVersion": .string(String(object.revision))], include: include, custom: custom)
            line(type, rows, to: &out)
        } else {
            out.writeStaticString(#"{"object":"#)
            if setsVersion {
                out.writeBytes(APIHandler.servedBytes(object, groupVersion: groupVersion, custom: true))
            } else {
                out.writeBytes(object.bytes)
            }
            out.writeStaticString(#","type":""#)
            out.writeString(type)
            out.writeStaticString("\"}\n")
        }
    }

    private func line(_ type: String, _ object: JSONValue, to out: inout ByteBuffer) {
        out.writeBytes(APIHandler.encode(["type": .string(type), "object": object]))
        out.writeInteger(UInt8(0x0A))
    }
}
