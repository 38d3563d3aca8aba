// The API client's parts that need no API server: kubeconfig reading, REST paths, the work
// queue's semantics, the informer's cache over a scripted source, and the client's decoding of
// answers, watches and errors from a small HTTP server.
import APIClient
import ClusterAPI
import Foundation
import HTTPKit
import Logging
import NIOHTTP1
import Testing

@Suite struct ConnectionTests {
    @Test func readsTheCurrentContextOfAKubeconfig() throws {
        let path = NSTemporaryDirectory() + "kubeconfig-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let ca = Data("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".utf8).base64EncodedString()
        try """
        apiVersion: v1
        kind: Config
        clusters:
        - name: other
          cluster:
            server: https://10.0.0.1:6443
        - name: ballast
          cluster:
            certificate-authority-data: \(ca)
            server: https://127.0.0.1:6443
        contexts:
        - name: admin@ballast
          context:
            cluster: ballast
            user: admin
        current-context: admin@ballast
        users:
        - name: admin
          user:
            token: "s3cr3t-token"
        """.write(toFile: path, atomically: true, encoding: .utf8)
        let connection = try Connection.kubeconfig(at: path)
        #expect(connection.server.absoluteString == "https://127.0.0.1:6443")
        #expect(connection.token == "s3cr3t-token")
        #expect(connection.certificateAuthorityPEM.map { String(decoding: $0, as: UTF8.self) }?.hasPrefix("-----BEGIN CERTIFICATE-----") == true)

        try #"{"current-context":"c","contexts":[{"name":"c","context":{"cluster":"k","user":"u"}}],"clusters":[{"name":"k","cluster":{"server":"http://127.0.0.1:8080"}}],"users":[{"name":"u","user":{"token":"t"}}]}"#
            .write(toFile: path, atomically: true, encoding: .utf8)
        let json = try Connection.kubeconfig(at: path)
        #expect(json.server.absoluteString == "http://127.0.0.1:8080")
        #expect(json.token == "t")
        #expect(throws: APIError.self) { try Connection.kubeconfig(at: path + ".missing") }
    }

    /// What kubectl's `config set-*` commands write: more fields, flow style, a tokenFile.
    @Test func readsKubeconfigsAsKubectlWritesThem() throws {
        let dir = NSTemporaryDirectory() + "kubeconfig-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "from-a-file\n".write(toFile: dir + "/token", atomically: true, encoding: .utf8)
        try """
        apiVersion: v1
        kind: Config
        preferences: {}
        clusters:
        - cluster: {server: 'https://[::1]:6443', insecure-skip-tls-verify: true}
          name: local   # a comment
        contexts:
        - context:
            cluster: local
            namespace: kube-system
            user: reader
          name: ctx
        current-context: ctx
        users:
        - name: reader
          user:
            tokenFile: \(dir)/token
        """.write(toFile: dir + "/config", atomically: true, encoding: .utf8)
        let connection = try Connection.kubeconfig(at: dir + "/config")
        #expect(connection.server.absoluteString == "https://[::1]:6443")
        #expect(connection.token == "from-a-file")

        try "clusters: [unclosed".write(toFile: dir + "/broken", atomically: true, encoding: .utf8)
        let error = #expect(throws: APIError.self) { try Connection.kubeconfig(at: dir + "/broken") }
        #expect("\(error!)".contains("is not a kubeconfig"), "names what is wrong: \(error!)")
    }

    /// The kubeconfig the API server writes (JSON) reads back to the same connection.
    @Test func roundTripsTheKubeconfigModel() throws {
        let path = NSTemporaryDirectory() + "kubeconfig-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let ca = Data("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".utf8)
        let config = Kubeconfig.single(server: "https://127.0.0.1:6443", certificateAuthorityData: ca.base64EncodedString(), token: "tok")
        try JSONEncoder().encode(config).write(to: URL(fileURLWithPath: path))
        let connection = try Connection.kubeconfig(at: path)
        #expect(connection.server.absoluteString == "https://127.0.0.1:6443")
        #expect(connection.token == "tok")
        #expect(connection.certificateAuthorityPEM == Array(ca))
    }

    @Test func restPaths() {
        #expect(ResourcePath.collection(Pod.self, namespace: "default") == "/api/v1/namespaces/default/pods")
        #expect(ResourcePath.collection(Pod.self, namespace: nil) == "/api/v1/pods")
        #expect(ResourcePath.object(Node.self, name: "n1", namespace: "ignored") == "/api/v1/nodes/n1")
        #expect(ResourcePath.collection(StorageClass.self, namespace: nil) == "/apis/storage.k8s.io/v1/storageclasses")
        #expect(ResourcePath.collection(Endpoints.self, namespace: "x") == "/api/v1/namespaces/x/endpoints")
        #expect(ResourcePath.object(Lease.self, name: "n1", namespace: "kube-node-lease") == "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1")
        #expect(ResourcePath.collection(PersistentVolumeClaim.self, namespace: "a") == "/api/v1/namespaces/a/persistentvolumeclaims")
        #expect(ResourcePath.object(Pod.self, name: "a/b", namespace: "x") == "/api/v1/namespaces/x/pods/a%2Fb")
    }
}

@Suite struct WorkQueueTests {
    @Test func keysAreDeduplicatedAndNotHandedOutTwice() async {
        let queue = WorkQueue<String>()
        await queue.add("a")
        await queue.add("b")
        await queue.add("a")
        #expect(await queue.count == 2)
        let first = await queue.next()
        #expect(first == "a")
        await queue.add("a")  // while processing: queued again only after done
        #expect(await queue.next() == "b")
        #expect(await queue.count == 0)
        await queue.done("a")
        #expect(await queue.next() == "a")
        await queue.done("a")
        await queue.done("b")
        #expect(await queue.count == 0)
    }

    @Test func waitersGetKeysAndShutdownReleasesThem() async {
        let queue = WorkQueue<Int>()
        async let waiting = queue.next()
        try? await Task.sleep(for: .milliseconds(20))
        await queue.add(7)
        #expect(await waiting == 7)
        async let released = queue.next()
        try? await Task.sleep(for: .milliseconds(20))
        await queue.shutDown()
        #expect(await released == nil)
    }

    @Test func failuresBackOffExponentiallyUntilForgotten() async {
        let queue = WorkQueue<String>(baseDelay: .milliseconds(10), maxDelay: .milliseconds(80))
        #expect(await queue.delay(afterFailures: 0) == .milliseconds(10))
        #expect(await queue.delay(afterFailures: 2) == .milliseconds(40))
        #expect(await queue.delay(afterFailures: 10) == .milliseconds(80))
        await queue.addRateLimited("k")
        #expect(await queue.count == 0, "a rate-limited key waits its delay")
        // It comes back after its delay (waited for without a wall-clock bound that a loaded
        // machine could miss; a minute at most, then the queue is shut down).
        let returned = await withTaskGroup(of: String?.self) { group in
            group.addTask { await queue.next() }
            group.addTask {
                try? await Task.sleep(for: .seconds(60))
                await queue.shutDown()
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        #expect(returned == "k")
        #expect(await queue.failureCount("k") == 1)
        await queue.forget("k")
        #expect(await queue.failureCount("k") == 0)
    }
}

/// A watch that says nothing at all (a half-open connection: no event, not even a bookmark) is
/// given up after the informer's idle limit, and watched again from the same resourceVersion.
@Suite struct InformerIdleWatchTests {
    @Test func aSilentWatchIsWatchedAgain() async throws {
        let source = ScriptedSource(lists: [list("7", [])], watches: [])
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let informer = Informer<Pod>(source, resync: .seconds(3600), idleLimit: .milliseconds(200), logger: logger)
        let running = Task { await informer.run() }
        defer { running.cancel() }
        await informer.waitForSync()
        var watched: [String] = []
        for _ in 0..<100 {
            watched = await source.history()
            if watched.count >= 2 { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(watched.count >= 2 && watched.allSatisfy { $0 == "7" }, "watched again, from the same version: \(watched)")
    }
}

/// A watch refused as "too large resource version" (the API server's store was restored from an
/// older state) makes the informer list again rather than retry the same version for good.
@Suite struct InformerTooLargeTests {
    actor TooLargeOnce: ListWatchSource {
        typealias Object = Pod
        var lists = 0
        var watches = 0
        func list() async throws -> List<Pod> {
            lists += 1
            return List(items: [], metadata: ListMeta(resourceVersion: lists == 1 ? "900" : "40"))
        }
        func watch(from resourceVersion: String) async throws -> AsyncThrowingStream<WatchEvent<Pod>, any Error> {
            watches += 1
            if watches == 1 {
                var status = Status()
                status.code = 504
                status.reason = "Timeout"
                status.details = StatusDetails(causes: [StatusCause(reason: "ResourceVersionTooLarge")])
                throw APIError.status(code: 504, status: status)
            }
            return AsyncThrowingStream { _ in }   // stays open
        }
        func counts() -> (Int, Int) { (lists, watches) }
    }

    @Test func aTooLargeResourceVersionListsAgain() async throws {
        let source = TooLargeOnce()
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let informer = Informer<Pod>(source, resync: .seconds(3600), logger: logger)
        let running = Task { await informer.run() }
        defer { running.cancel() }
        var counts = (0, 0)
        for _ in 0..<100 {
            counts = await source.counts()
            if counts.0 >= 2 && counts.1 >= 2 { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(counts.0 == 2 && counts.1 == 2, "listed again at once, then watched: \(counts)")
    }
}

/// A source that answers lists and watches from a script.
actor ScriptedSource: ListWatchSource {
    typealias Object = Pod
    var lists: [List<Pod>]
    var watches: [[WatchEvent<Pod>]]
    var watchedFrom: [String] = []

    init(lists: [List<Pod>], watches: [[WatchEvent<Pod>]]) {
        self.lists = lists
        self.watches = watches
    }

    func list() async throws -> List<Pod> { lists.count > 1 ? lists.removeFirst() : lists[0] }

    func watch(from resourceVersion: String) async throws -> AsyncThrowingStream<WatchEvent<Pod>, any Error> {
        watchedFrom.append(resourceVersion)
        let events = watches.isEmpty ? nil : watches.removeFirst()
        return AsyncThrowingStream { continuation in
            guard let events else { return }  // no more script: stay open
            for event in events { continuation.yield(event) }
            continuation.finish()
        }
    }

    func history() -> [String] { watchedFrom }
}

private func pod(_ name: String, _ version: String, node: String? = nil) -> Pod {
    var pod = Pod(metadata: ObjectMeta(name: name, namespace: "default", resourceVersion: version))
    pod.spec.nodeName = node
    return pod
}

private func list(_ version: String, _ pods: [Pod]) -> List<Pod> {
    List(items: pods, metadata: ListMeta(resourceVersion: version))
}

@Suite struct InformerTests {
    @Test func listsWatchesResumesAndRelistsOnGone() async throws {
        let gone = Status(status: "Failure", message: "too old resource version: 5 (9)", reason: "Expired", code: 410)
        let source = ScriptedSource(
            lists: [list("5", [pod("a", "4", node: "n1"), pod("b", "5")]), list("9", [pod("a", "8", node: "n1"), pod("c", "9")])],
            watches: [
                [WatchEvent(kind: .modified, object: pod("b", "6", node: "n2")), WatchEvent(kind: .added, object: pod("d", "7"))],
                [WatchEvent(kind: .deleted, object: pod("d", "8")), WatchEvent(kind: .error, object: nil, status: gone)],
            ])
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let informer = Informer<Pod>(source, resync: .seconds(3600), logger: logger)
        await informer.addIndex("node") { [$0.spec.nodeName ?? ""] }
        let events = await informer.events()
        let running = Task { await informer.run() }
        defer { running.cancel() }
        await informer.waitForSync()

        var seen: [String] = []
        for await event in events {
            switch event {
            case .added(let p): seen.append("+\(p.metadata.name!)@\(p.metadata.resourceVersion!)")
            case .updated(_, let p): seen.append("~\(p.metadata.name!)@\(p.metadata.resourceVersion!)")
            case .deleted(let p): seen.append("-\(p.metadata.name!)")
            case .resync: break
            }
            if seen.count == 8 { break }
        }
        #expect(seen == ["+a@4", "+b@5", "~b@6", "+d@7", "-d", "-b", "~a@8", "+c@9"])
        #expect(await informer.list().map { $0.metadata.name! } == ["a", "c"])
        #expect(await informer.get(name: "a", namespace: "default")?.metadata.resourceVersion == "8")
        #expect(await informer.byIndex("node", "n1").map { $0.metadata.name! } == ["a"])
        // b moved to n2, then went with the relist: the index follows every event.
        #expect(await informer.byIndex("node", "n2").isEmpty)
        #expect(await informer.byIndex("node", "").map { $0.metadata.name! } == ["c"])
        #expect(await informer.byIndex("no such index", "n1").isEmpty)
        // Watched from the first list's version, resumed from the last event's, then from the new list's.
        try await Task.sleep(for: .milliseconds(50))
        #expect(await source.history().prefix(3) == ["5", "7", "9"])
    }

    @Test func resyncReplaysTheCache() async throws {
        let source = ScriptedSource(lists: [list("1", [pod("a", "1")])], watches: [])
        let informer = Informer<Pod>(source, resync: .milliseconds(50), logger: Logger(label: "test"))
        let events = await informer.events()
        let running = Task { await informer.run() }
        defer { running.cancel() }
        var resyncs = 0
        for await event in events {
            if case .resync(let p) = event, p.metadata.name == "a" { resyncs += 1 }
            if resyncs == 2 { break }
        }
        #expect(resyncs == 2)
    }
}

@Suite struct KubeClientTests {
    /// A server that answers from a table of path → (status, body).
    private func withServer(_ answers: [String: (HTTPResponseStatus, String)], _ body: (KubeClient) async throws -> Void) async throws {
        let server = try await HTTPServer(host: "127.0.0.1", port: 0, logger: Logger(label: "test")) { request in
            #expect(request.headers.first(name: "Authorization") == "Bearer token-1")
            let key = request.method.rawValue + " " + request.path + (request.query["watch"] == "true" ? "?watch" : "")
            guard let (status, text) = answers[key] else { return .text("no answer for \(key)", status: .notImplemented) }
            return HTTPResponse(status: status, headers: ["Content-Type": "application/json"], body: Data(text.utf8))
        }
        let serving = Task { try await server.run() }
        defer {
            server.close()
            serving.cancel()
        }
        try await body(try KubeClient(Connection(server: URL(string: "http://127.0.0.1:\(server.port)")!, token: "token-1")))
    }

    @Test func decodesObjectsWatchesAndStatuses() async throws {
        let conflict = #"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Operation cannot be fulfilled on pods \"a\": the object has been modified; please apply your changes to the latest version and try again","reason":"Conflict","details":{"name":"a","kind":"pods"},"code":409}"#
        let watch = """
        {"type":"ADDED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"a","namespace":"default","resourceVersion":"3"},"spec":{"nodeName":"n1","containers":[]}}}
        {"type":"BOOKMARK","object":{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"4"}}}
        {"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version","reason":"Expired","code":410}}

        """
        try await withServer([
            "GET /api/v1/namespaces/default/pods/a": (.ok, #"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"a","namespace":"default","resourceVersion":"3"},"spec":{"containers":[]},"futureField":{"kept":true}}"#),
            "PUT /api/v1/namespaces/default/pods/a": (.conflict, conflict),
            "GET /api/v1/nodes/missing": (.notFound, #"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404,"message":"nodes \"missing\" not found"}"#),
            "GET /api/v1/namespaces/default/pods?watch": (.ok, watch),
        ]) { client in
            let pod = try await client.get(Pod.self, name: "a", namespace: "default")
            #expect(pod.metadata.resourceVersion == "3")
            #expect(pod.unknownFields["futureField"] != nil, "fields the model lacks are kept")
            do {
                _ = try await client.update(pod)
                Issue.record("a stale update must fail")
            } catch let error as APIError {
                #expect(error.isConflict)
                #expect(error.description.contains("the object has been modified"))
            }
            do {
                _ = try await client.get(Node.self, name: "missing")
                Issue.record("a missing node must fail")
            } catch let error as APIError {
                #expect(error.isNotFound)
            }
            var kinds: [WatchEvent<Pod>.Kind] = []
            for try await event in try await client.watch(Pod.self, namespace: "default", resourceVersion: "2") {
                kinds.append(event.kind)
                if event.kind == .error { #expect(event.status?.code == 410) }
            }
            #expect(kinds == [.added, .bookmark, .error])
        }
    }
}
