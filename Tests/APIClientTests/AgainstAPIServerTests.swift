// The API client against the real `ballast apiserver` binary, over HTTPS with its generated CA
// and admin token, read from the admin.kubeconfig it writes.
import APIClient
import ClusterAPI
import Foundation
import Logging
import NIOPosix
import Synchronization
import Testing
import TestSupport

@Suite(.serialized) struct AgainstAPIServerTests {
    @Test func typedCallsWatchAndErrors() async throws {
        let server = try await ServerProcess.start()
        defer { server.stop() }
        let client = try KubeClient(try Connection.kubeconfig(at: server.kubeconfig))
        #expect(client.connection.server.scheme == "https")

        var claim = PersistentVolumeClaim(metadata: ObjectMeta(name: "data", namespace: "default", labels: ["app": "db"]))
        claim.spec.accessModes = ["ReadWriteOnce"]
        claim.spec.resources = VolumeResourceRequirements(requests: ["storage": try Quantity("1Gi")])
        let created = try await client.create(claim)
        #expect(created.metadata.uid != nil)
        #expect(created.status.phase == "Pending", "defaulted by the server")

        let fetched = try await client.get(PersistentVolumeClaim.self, name: "data", namespace: "default")
        #expect(fetched.metadata.resourceVersion == created.metadata.resourceVersion)
        let matching = try await client.list(PersistentVolumeClaim.self, namespace: "default", labelSelector: "app=db")
        #expect(matching.items.count == 1)
        let other = try await client.list(PersistentVolumeClaim.self, namespace: "default", labelSelector: "app=web")
        #expect(other.items.isEmpty)

        var labelled = fetched
        labelled.metadata.labels?["tier"] = "storage"
        let updated = try await client.update(labelled)
        #expect(updated.metadata.resourceVersion != fetched.metadata.resourceVersion)
        do {
            _ = try await client.update(labelled)
            Issue.record("a stale update must be refused")
        } catch let error as APIError {
            #expect(error.isConflict, "\(error)")
        }
        var bound = updated
        bound.status.phase = "Bound"
        let statusUpdated = try await client.updateStatus(bound)
        #expect(statusUpdated.status.phase == "Bound")
        let patched = try await client.mergePatch(PersistentVolumeClaim.self, name: "data", namespace: "default",
                                                  patch: ["metadata": ["annotations": ["note": "patched"]]])
        #expect(patched.metadata.annotations?["note"] == "patched")

        let watch = try await client.watch(PersistentVolumeClaim.self, namespace: "default", resourceVersion: patched.metadata.resourceVersion)
        try await client.delete(PersistentVolumeClaim.self, name: "data", namespace: "default")
        var deleted = false
        for try await event in watch where event.kind == .deleted {
            deleted = event.object?.metadata.name == "data"
            break
        }
        #expect(deleted)
        do {
            _ = try await client.get(PersistentVolumeClaim.self, name: "data", namespace: "default")
            Issue.record("a deleted claim must be gone")
        } catch let error as APIError {
            #expect(error.isNotFound)
        }

        var wrong = try Connection.kubeconfig(at: server.kubeconfig)
        wrong.token = "not-a-token"
        do {
            _ = try await KubeClient(wrong).list(Node.self)
            Issue.record("a bad token must be refused")
        } catch let error as APIError {
            #expect(error.code == 401)
        }
    }

    /// A watch read in place over TLS: every event's line arrives whole and in order, a refused
    /// watch is thrown as its API error, and a cancelled one ends.
    @Test func watchReadInPlace() async throws {
        let server = try await ServerProcess.start()
        defer { server.stop() }
        let client = try KubeClient(try Connection.kubeconfig(at: server.kubeconfig))
        let start = try await client.list(ConfigMap.self, namespace: "default").metadata.resourceVersion
        let (lines, arriving) = AsyncStream<String>.makeStream()
        // Over a real connection the lines are handed over on its event loop (HTTPClient's own
        // reading), not through the transport's default reader task.
        let offLoop = Mutex(0)
        let reading = try await client.watchLinesInPlace(ConfigMap.self, namespace: "default", resourceVersion: start,
                                                         bookmarks: false) { whole in
            if MultiThreadedEventLoopGroup.currentEventLoop == nil { offLoop.withLock { $0 += 1 } }
            whole.forEachLine { arriving.yield(String(decoding: $0, as: UTF8.self)) }
        }
        let count = 200
        for index in 0..<count {
            // Large enough that lines span TLS records and reads.
            _ = try await client.create(ConfigMap(metadata: ObjectMeta(name: "cm-\(index)", namespace: "default"),
                                                  data: ["filler": String(repeating: "x", count: 700 + index * 37)]))
        }
        var names: [String] = []
        for await line in lines {
            let event = try JSONValue(parsing: Data(line.utf8))
            #expect(event["type"]?.stringValue == "ADDED")
            names.append(event["object"]?["metadata"]?["name"]?.stringValue ?? "?")
            if names.count == count { break }
        }
        #expect(names == (0..<count).map { "cm-\($0)" })
        #expect(offLoop.withLock { $0 } == 0, "chunks handed over off the event loop: HTTPClient.readStream was not used")
        reading.cancel()
        try await reading.finished()

        do {
            _ = try await client.watchLinesInPlace(ConfigMap.self, namespace: "default", resourceVersion: "not-a-version") { _ in }
            Issue.record("a malformed resourceVersion must be refused")
        } catch let error as APIError {
            #expect(error.code == 400, "\(error)")
        }
    }

    @Test func informerFollowsTheServer() async throws {
        let server = try await ServerProcess.start()
        defer { server.stop() }
        let client = try KubeClient(try Connection.kubeconfig(at: server.kubeconfig))
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        _ = try await client.create(Node(metadata: ObjectMeta(name: "early")))
        let informer = Informer<Node>(ResourceSource(client, Node.self), resync: .seconds(3600), logger: logger)
        let events = await informer.events()
        let running = Task { await informer.run() }
        defer { running.cancel() }
        await informer.waitForSync()
        #expect(await informer.get(name: "early") != nil)
        _ = try await client.create(Node(metadata: ObjectMeta(name: "late")))
        try await client.delete(Node.self, name: "early")
        var seen: [String] = []
        for await event in events {
            switch event {
            case .added(let node): seen.append("+" + (node.metadata.name ?? ""))
            case .deleted(let node): seen.append("-" + (node.metadata.name ?? ""))
            case .updated, .resync: break
            }
            if seen.contains("+late") && seen.contains("-early") { break }
        }
        #expect(seen == ["+early", "+late", "-early"])
        let names = await informer.list().map { $0.metadata.name ?? "" }
        #expect(names == ["late"])
    }
}
