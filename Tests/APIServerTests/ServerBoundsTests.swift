// The API server's resource bounds against hostile clients (issue 12): each test measures
// what the hostile client costs the server (memory, or seats) while it runs, then checks
// that a well-behaved client is still served.
import ClusterAPI
import Foundation
import Glibc
import HTTPKit
import Logging
import MVCCStore
import NIOHTTP1
import Synchronization
import Testing
import TestSupport
@testable import APIServer

/// glibc's `mallopt(M_MMAP_THRESHOLD, bytes)` (not in the Glibc module): allocations of at
/// least `bytes` are mapped, and unmapped when freed.
func setMallocMmapThreshold(_ bytes: Int32) {
    typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }
    _ = unsafeBitCast(symbol, to: Mallopt.self)(-3 /* M_MMAP_THRESHOLD */, bytes)
}

/// An API server on 127.0.0.1 (plain HTTP, any port) over a fresh embedded store; always stopped.
func withRunningServer(configure: (inout APIServerOptions) -> Void = { _ in }, storeOptions: MVCCOptions = MVCCOptions(),
                       _ body: (APIServer, MVCCStore) async throws -> Void) async throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("apiserver-bounds-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: directory + "-store", withIntermediateDirectories: true)
    let store = try MVCCStore.open(path: directory + "-store", options: storeOptions)
    var options = APIServerOptions(dataDir: directory)
    options.securePort = 0
    options.insecureHTTP = true
    configure(&options)
    var logger = Logger(label: "test")
    logger.logLevel = .critical
    let server: APIServer
    do {
        server = try await APIServer.start(options: options, store: store, logger: logger)
    } catch {
        try? await store.close()
        try? FileManager.default.removeItem(atPath: directory)
        try? FileManager.default.removeItem(atPath: directory + "-store")
        throw error
    }
    let running = Task { try await server.run() }
    func stop() async {
        server.shutdown()
        _ = try? await running.value
        try? await store.close()
        try? FileManager.default.removeItem(atPath: directory)
        try? FileManager.default.removeItem(atPath: directory + "-store")
    }
    do {
        try await body(server, store)
    } catch {
        await stop()
        throw error
    }
    await stop()
}

func adminClient(_ server: APIServer) -> (HTTPClient, HTTPHeaders) {
    (HTTPClient(host: "127.0.0.1", port: server.port, timeout: .seconds(20), keepAlive: true),
     ["Authorization": "Bearer \(server.adminToken)", "Content-Type": "application/json"])
}

/// Tests that measure this process's memory run alone (`make test` runs every suite whose name
/// contains "MemoryBound" after the others, each in a test process of its own), so that no other test's
/// allocations count.
@Suite(.serialized) struct ServerMemoryBoundTests {
    @Test func aWatcherThatNeverReadsIsClosedAndMemoryStaysBounded() async throws {
        // A small memtable, so that what the store keeps of the 128 MiB written stays small and
        // the growth measured is the watchers'.
        var storeOptions = MVCCOptions()
        storeOptions.engine.writeBufferSize = 2 << 20
        // Large blocks mapped and unmapped as they come and go (glibc otherwise raises its mmap
        // threshold and keeps freed megabytes in the heap), so that RSS follows live memory.
        setMallocMmapThreshold(256 << 10)
        try await withRunningServer(configure: {
            $0.watchBuffer = WatchBufferLimits(events: 1024, bytes: 4 << 20)
            $0.watchCache.windowBytes = 8 << 20
        },
                                    storeOptions: storeOptions) { server, _ in
            let (client, headers) = adminClient(server)
            let watch = "GET /api/v1/namespaces/default/pods?watch=true HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(server.adminToken)\r\n\r\n"
            // A well-behaved watcher, reading everything (and keeping nothing, so as not to be measured).
            let good = try await RawConnection(port: server.port, keep: false)
            defer { Task { await good.close() } }
            try await good.send(watch)
            // The hostile one: the same watch, never a byte read.
            let hostile = try await RawConnection(port: server.port, reading: false)
            defer { Task { await hostile.close() } }
            try await hostile.send(watch)
            #expect(await eventually { server.handler.metrics.render().contains("apiserver_registered_watchers 2") })
            let before = residentBytes()
            var peak = before
            // 128 pods of 1 MiB, each created and deleted: 256 MiB of events, which the hostile
            // watcher piled up before. Four times the bound below, so that an unbounded buffer
            // or window cannot pass, with room for what a loaded machine holds in flight (request
            // bodies, their decoded copies, the reading watcher's socket buffers).
            let big = String(repeating: "x", count: 1 << 20)
            for i in 0..<128 {
                let pod = #"{"metadata":{"name":"p\#(i)"},"spec":{"containers":[{"name":"a","image":"nginx","args":["\#(big)"]}]}}"#
                let created = try await client.send(HTTPRequest(method: .POST, path: "/api/v1/namespaces/default/pods", headers: headers,
                                                                body: Data(pod.utf8)))
                #expect(created.status == .created)
                let deleted = try await client.send(HTTPRequest(method: .DELETE, path: "/api/v1/namespaces/default/pods/p\(i)",
                                                                headers: headers))
                #expect(deleted.status == .ok)
                peak = max(peak, residentBytes())
            }
            let growth = peak - before
            // Bounded by the watch buffer (4 MiB here), the watch cache's window (8 MiB of stored
            // bytes, held decoded and encoded) and the store's memtable (2 MiB).
            #expect(growth < 64 << 20, "RSS grew by \(growth >> 20) MiB while a watcher did not read")
            #expect(server.handler.watchCache.window("/registry/pods/").bytes <= 8 << 20)
            #expect(server.handler.metrics.render().contains(#"apiserver_terminated_watchers_total{resource="pods"} 1"#))
            try await hostile.startReading()
            #expect(await hostile.wait(timeout: .seconds(10)) { $0.isClosed }, "the server closed the watch of the client that does not read")
            #expect(await eventually(.seconds(20)) { good.counts.newlines >= 256 }, "the reading watcher got every event (\(good.counts))")
            #expect(!good.isClosed)
        }
    }
}

@Suite(.serialized) struct ServerBoundsTests {
    /// Watches written from their connections' event loops (`WatchFlusher`): every watcher gets
    /// every event once, in revision order, in well-formed chunks, and the response ends with
    /// its last chunk after `timeoutSeconds`.
    @Test func manyWatchesGetEveryEventInOrderAndEndWithTheLastChunk() async throws {
        try await withRunningServer { server, _ in
            let (client, headers) = adminClient(server)
            let watch = "GET /api/v1/namespaces/default/pods?watch=true&timeoutSeconds=15 HTTP/1.1\r\nHost: x\r\n"
                + "Authorization: Bearer \(server.adminToken)\r\nConnection: close\r\n\r\n"
            var watchers: [RawConnection] = []
            for _ in 0..<20 {
                let connection = try await RawConnection(port: server.port)
                try await connection.send(watch)
                watchers.append(connection)
            }
            defer { for connection in watchers { Task { await connection.close() } } }
            #expect(await eventually { server.handler.metrics.render().contains("apiserver_registered_watchers 20") })
            let pods = 40
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<4 {
                    group.addTask {
                        for i in stride(from: worker, to: pods, by: 4) {
                            let pod = #"{"metadata":{"name":"p\#(i)"},"spec":{"containers":[{"name":"a","image":"nginx"}]}}"#
                            let created = try await client.send(HTTPRequest(method: .POST, path: "/api/v1/namespaces/default/pods",
                                                                            headers: headers, body: Data(pod.utf8)))
                            #expect(created.status == .created)
                            let deleted = try await client.send(HTTPRequest(method: .DELETE, path: "/api/v1/namespaces/default/pods/p\(i)",
                                                                            headers: headers))
                            #expect(deleted.status == .ok)
                        }
                    }
                }
                try await group.waitForAll()
            }
            // Every event reaches every watcher well before the watches' 15 s are over (a
            // shorter timeout ended watches before the last writes on a loaded machine).
            for connection in watchers {
                #expect(await connection.wait(timeout: .seconds(14)) {
                    Self.dechunk($0.received).body.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) } >= 2 * pods
                }, "every event arrived in time")
            }
            for connection in watchers {
                #expect(await connection.wait(timeout: .seconds(30)) { $0.isClosed }, "the watch ended after timeoutSeconds")
                let (body, complete) = Self.dechunk(connection.received)
                #expect(complete, "the response ends with its last chunk")
                let events = body.split(separator: 0x0A).compactMap { try? JSONValue(parsing: Data($0)) }
                #expect(events.count == 2 * pods)
                let revisions = events.compactMap { $0["object"]?["metadata"]?["resourceVersion"]?.stringValue.flatMap { Int64($0) } }
                #expect(revisions.count == events.count && revisions == revisions.sorted() && Set(revisions).count == revisions.count,
                        "every event once, in revision order")
                #expect(events.filter { $0["type"]?.stringValue == "ADDED" }.count == pods)
                #expect(events.filter { $0["type"]?.stringValue == "DELETED" }.count == pods)
            }
        }
    }

    /// The body of a chunked HTTP/1.1 response (head included in `response`), and whether it
    /// ended with the last (empty) chunk.
    static func dechunk(_ response: Data) -> (body: Data, complete: Bool) {
        let bytes = [UInt8](response)
        guard let headEnd = bytes.indices.first(where: { $0 + 3 < bytes.count && bytes[$0..<$0 + 4].elementsEqual([13, 10, 13, 10]) }) else {
            return (Data(), false)
        }
        var at = headEnd + 4
        var body = Data()
        while let lineEnd = bytes[at...].indices.first(where: { $0 + 1 < bytes.count && bytes[$0] == 13 && bytes[$0 + 1] == 10 }) {
            guard let size = Int(String(decoding: bytes[at..<lineEnd], as: UTF8.self), radix: 16) else { return (body, false) }
            if size == 0 { return (body, true) }
            let start = lineEnd + 2
            guard start + size + 2 <= bytes.count else { return (body, false) }
            body.append(contentsOf: bytes[start..<start + size])
            at = start + size + 2
        }
        return (body, false)
    }

    @Test func requestsBeyondTheInflightLimitGet429() async throws {
        try await withSlowStoreFixture(maxRequestsInflight: 2, maxMutatingRequestsInflight: 1, inflightQueue: InflightQueueLimits(length: 0)) { f, store in
            store.listDelay.withLock { $0 = .seconds(2) }
            // Two slow lists by the node hold both read-only seats; with no queue, a third is
            // refused at once (queueing: PriorityAndFairnessTests). Lists of an exact revision
            // read the store; the others the watch cache.
            let slowList = "/api/v1/pods?resourceVersion=1&resourceVersionMatch=Exact"
            let first = Task { await f.request(.GET, slowList, token: HandlerFixture.nodeToken) }
            let second = Task { await f.request(.GET, slowList, token: HandlerFixture.nodeToken) }
            #expect(await eventually { f.handler.inflight.current.readOnly == 2 })
            let started = ContinuousClock.now
            let refused = await f.handler.handle(HTTPRequest(method: .GET, uri: "/api/v1/pods",
                                                             headers: ["Authorization": "Bearer \(HandlerFixture.nodeToken)"], body: Data()))
            #expect(started.duration(to: .now) < .milliseconds(500))
            #expect(refused.status == .tooManyRequests)
            #expect(refused.headers.first(name: "Retry-After") == "1")
            let status = try JSONDecoder().decode(JSONValue.self, from: refused.body)
            #expect(status["reason"] == "TooManyRequests" && status["message"] == "Too many requests, please try again later.")
            // Mutating requests have their own seats; system:masters is never limited.
            #expect(await f.request(.POST, "/api/v1/namespaces/default/events", body: #"{"metadata":{"name":"e"},"involvedObject":{"kind":"Pod","name":"x"}}"#,
                                    token: HandlerFixture.nodeToken).code != 429)
            #expect(await f.request(.GET, "/api/v1/namespaces/default/pods").code == 200)
            _ = await first.value
            _ = await second.value
            store.listDelay.withLock { $0 = .zero }
            #expect(await f.request(.GET, "/api/v1/pods", token: HandlerFixture.nodeToken).code == 200)
            #expect(f.handler.inflight.current.readOnly == 0 && f.handler.inflight.current.mutating == 0)
        }
    }

    @Test func unauthenticatedMetricsHaveOneLabelSetAndValuesAreEscaped() async throws {
        try await withFixture { f in
            for i in 0..<1000 {
                _ = await f.handler.handle(HTTPRequest(method: .GET, uri: "/api/v1/junk\(i)/x", headers: [:], body: Data()))
            }
            // A crafted path that tried to inject a metric line.
            let crafted = "/apis/x/v1/namespaces/a/pods%22%7D%201%0Afake_metric%7Ba%3D%22/b"
            _ = await f.handler.handle(HTTPRequest(method: .GET, uri: crafted, headers: [:], body: Data()))
            _ = await f.request(.GET, crafted)
            _ = await f.request(.GET, "/apis/x/v1/namespaces/a/pods\"}%0Ax/b")
            _ = await f.handler.handle(HTTPRequest(method: .RAW(value: "BREW"), uri: "/healthz", headers: [:], body: Data()))
            let text = f.handler.metrics.render()
            let series = text.split(separator: "\n").filter { $0.hasPrefix("apiserver_request_total{") }
            #expect(series.count < 10, "\(series)")
            #expect(text.contains(#"apiserver_request_total{verb="GET",resource="unauthenticated",code="401"} 1001"#))
            #expect(!text.split(separator: "\n").contains { $0.hasPrefix("fake_metric") })
            #expect(!text.contains("junk"))
            #expect(APIMetrics.escape("a\"b\\c\nd") == #"a\"b\\c\nd"#)
        }
    }

    @Test func readinessReportsTheStoresFailure() async throws {
        let health = Mutex<String?>(nil)
        let failReads = Mutex(false)
        try await withFixture(make: {
            try await HandlerFixture(wrap: { ReportingStore($0, problem: { health.withLock { $0 } }, failReads: { failReads.withLock { $0 } }) })
        }) { f in
            func get(_ path: String) async -> (UInt, String) {
                let r = await f.handler.handle(HTTPRequest(method: .GET, uri: path, headers: [:], body: Data()))
                return (r.status.code, String(decoding: r.body, as: UTF8.self))
            }
            let ready = await get("/readyz")
            #expect(ready.0 == 200 && ready.1 == "ok")
            #expect(await get("/readyz?verbose").1.contains("[+]etcd ok"))
            // The embedded store turned read-only after an EIO or ENOSPC: reads still work.
            health.withLock { $0 = "the store is read-only after a storage failure (ENOSPC); free space, then restart" }
            for path in ["/readyz", "/healthz", "/livez"] {
                let (code, body) = await get(path)
                #expect(code == 503, "\(path)")
                #expect(body.contains("[-]etcd failed: the store is read-only after a storage failure (ENOSPC)"), "\(path): \(body)")
                #expect(body.contains("\(path.dropFirst()) check failed"))
            }
            #expect(await get("/readyz/etcd").0 == 503)
            #expect(await get("/readyz/ping").1 == "ok")
            #expect(await get("/readyz?exclude=etcd").0 == 200)
            #expect(await get("/readyz/nothing").0 == 404)
            // A store that does not answer reads.
            health.withLock { $0 = nil }
            failReads.withLock { $0 = true }
            let (code, body) = await get("/readyz")
            #expect(code == 503 && body.contains("[-]etcd-readiness failed"), "\(body)")
            failReads.withLock { $0 = false }
            #expect(await get("/readyz").0 == 200)
            // Shutting down: not ready any more.
            f.handler.stopWatches()
            #expect(await get("/readyz").1.contains("[-]shutdown failed"))
        }
    }

    @Test func secretsArePrivateAndAnOpenTokenFileIsRefused() async throws {
        try await withRunningServer { server, _ in
            let dir = server.options.dataDir
            let modes = try [dir, dir + "/pki", dir + "/pki/admin.token", dir + "/admin.kubeconfig"].map {
                try FileManager.default.attributesOfItem(atPath: $0)[.posixPermissions] as? Int
            }
            #expect(modes == [0o700, 0o700, 0o600, 0o600])
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tokens-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "t,u,1\n".write(toFile: dir + "/tokens.csv", atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: dir + "/tokens.csv")
        #expect { try TokenAuthenticator.load(file: dir + "/tokens.csv") } throws: { "\($0)".contains("chmod 600 \(dir)/tokens.csv") }
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: dir + "/tokens.csv")
        #expect(try TokenAuthenticator.load(file: dir + "/tokens.csv").authenticate("t")?.name == "u")
    }

    @Test func anUnauthenticatedBodyIsRefusedBeforeItIsRead() async throws {
        try await withRunningServer { server, _ in
            let c = try await RawConnection(port: server.port)
            defer { Task { await c.close() } }
            // 3 MiB announced, nothing sent, no credentials: 401 from the head alone.
            try await c.send("POST /api/v1/namespaces/default/pods HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 3000000\r\n\r\n")
            #expect(await c.wait(timeout: .seconds(2)) { $0.receivedText.contains("\r\n\r\n{") }, "\(c.receivedText)")
            #expect(c.receivedText.hasPrefix("HTTP/1.1 401") && c.receivedText.contains(#""reason":"Unauthorized""#))
            // An admin's body over the limit: 413 with a Status, from the Content-Length.
            let big = try await RawConnection(port: server.port)
            defer { Task { await big.close() } }
            try await big.send("POST /api/v1/namespaces/default/pods HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(server.adminToken)\r\nContent-Length: 4000000\r\n\r\n")
            #expect(await big.wait(timeout: .seconds(2)) { $0.receivedText.contains(#""code":413"#) }, "\(big.receivedText)")
            let (client, headers) = adminClient(server)
            let ok = try await client.send(HTTPRequest(method: .GET, path: "/api/v1/namespaces/default", headers: headers))
            #expect(ok.status == .ok)
        }
    }
}

/// Polls `condition` for up to `timeout`.
func eventually(_ timeout: Duration = .seconds(5), _ condition: () async -> Bool) async -> Bool {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return await condition()
}

/// A store whose lists take `listDelay` (requests that hold their seat).
final class SlowStore: KeyValueStore, Sendable {
    let base: MVCCStore
    let listDelay = Mutex<Duration>(.zero)
    init(_ base: MVCCStore) { self.base = base }

    func get(_ key: [UInt8]) async throws -> (kv: KeyValue?, revision: Int64) { try await base.get(key) }
    func list(prefix: [UInt8], limit: Int64, continueAfter: [UInt8]?, revision: Int64) async throws -> ListResult {
        let delay = listDelay.withLock { $0 }
        if delay > .zero { try await Task.sleep(for: delay) }
        return try await base.list(prefix: prefix, limit: limit, continueAfter: continueAfter, revision: revision)
    }
    func create(_ key: [UInt8], value: [UInt8], lease: Int64) async throws -> Int64 { try await base.create(key, value: value, lease: lease) }
    func update(_ key: [UInt8], value: [UInt8], expectedModRevision: Int64, lease: Int64) async throws -> ConditionalResult {
        try await base.update(key, value: value, expectedModRevision: expectedModRevision, lease: lease)
    }
    func delete(_ key: [UInt8], expectedModRevision: Int64?) async throws -> ConditionalResult {
        try await base.delete(key, expectedModRevision: expectedModRevision)
    }
    func watch(prefix: [UInt8], fromRevision: Int64) async throws -> AsyncThrowingStream<WatchUpdate, any Error> {
        try await base.watch(prefix: prefix, fromRevision: fromRevision)
    }
    func count(prefix: [UInt8]) async throws -> Int64 { try await base.count(prefix: prefix) }
    func compact(_ revision: Int64) async throws { try await base.compact(revision) }
    func currentRevision() async throws -> Int64 { try await base.currentRevision() }
    func grantLease(ttl: Int64) async throws -> Int64 { try await base.grantLease(ttl: ttl) }
}

/// A store that reports its own health (as the embedded store does after EIO/ENOSPC) and
/// whose revision reads can be made to fail.
final class ReportingStore: KeyValueStore, StoreHealthReporting, Sendable {
    let base: MVCCStore
    let problem: @Sendable () -> String?
    let failReads: @Sendable () -> Bool
    init(_ base: MVCCStore, problem: @escaping @Sendable () -> String?, failReads: @escaping @Sendable () -> Bool) {
        self.base = base
        self.problem = problem
        self.failReads = failReads
    }

    func healthProblem() async -> String? { problem() }

    func get(_ key: [UInt8]) async throws -> (kv: KeyValue?, revision: Int64) { try await base.get(key) }
    func list(prefix: [UInt8], limit: Int64, continueAfter: [UInt8]?, revision: Int64) async throws -> ListResult {
        try await base.list(prefix: prefix, limit: limit, continueAfter: continueAfter, revision: revision)
    }
    func create(_ key: [UInt8], value: [UInt8], lease: Int64) async throws -> Int64 { try await base.create(key, value: value, lease: lease) }
    func update(_ key: [UInt8], value: [UInt8], expectedModRevision: Int64, lease: Int64) async throws -> ConditionalResult {
        try await base.update(key, value: value, expectedModRevision: expectedModRevision, lease: lease)
    }
    func delete(_ key: [UInt8], expectedModRevision: Int64?) async throws -> ConditionalResult {
        try await base.delete(key, expectedModRevision: expectedModRevision)
    }
    func watch(prefix: [UInt8], fromRevision: Int64) async throws -> AsyncThrowingStream<WatchUpdate, any Error> {
        try await base.watch(prefix: prefix, fromRevision: fromRevision)
    }
    func count(prefix: [UInt8]) async throws -> Int64 { try await base.count(prefix: prefix) }
    func compact(_ revision: Int64) async throws { try await base.compact(revision) }
    func currentRevision() async throws -> Int64 {
        if failReads() { throw MVCCError.compacted }
        return try await base.currentRevision()
    }
    func grantLease(ttl: Int64) async throws -> Int64 { try await base.grantLease(ttl: ttl) }
}
