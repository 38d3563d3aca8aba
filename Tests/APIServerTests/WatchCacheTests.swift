import ClusterAPI
import Foundation
import HTTPKit
import MVCCStore
import NIOHTTP1
import Logging
import Primitives
import Testing
@testable import APIServer

/// The watch cache against the store it caches: the same answers at every revision, watches
/// resumed from its window and from bookmarks, streaming lists, and a rebuild after a restart.
@Suite struct WatchCacheTests {
    func startWatch(_ f: HandlerFixture, _ uri: String) async throws -> (LineCollector, Task<Void, any Error>) {
        try await APIWatchTests().startWatch(f, uri)
    }

    static func configMap(_ name: String, namespace: String, labels: [String: String], data: String) -> String {
        let labelText = labels.map { "\"\($0.key)\":\"\($0.value)\"" }.joined(separator: ",")
        return #"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"\#(name)","namespace":"\#(namespace)","labels":{\#(labelText)}},"data":{"v":"\#(data)"}}"#
    }

    /// What a list answered, for comparison: the items, whole.
    static func items(_ response: (code: UInt, body: JSONValue)) -> [JSONValue] {
        response.body["items"]?.arrayValue ?? []
    }

    /// A random history of creates, updates, deletes and compactions over two namespaces. After
    /// every step, lists from the cache (consistent, `0` once caught up, `NotOlderThan`, with
    /// selectors, per namespace, paged) equal the same lists read from the store at that exact
    /// revision; at the end, a watch resumed from every revision the window covers replays
    /// exactly the changes after it.
    @Test(arguments: [UInt64(1), 2, 3])
    func cacheAnswersEqualStoreAnswersThroughARandomHistory(seed: UInt64) async throws {
        var cache = WatchCacheOptions()
        cache.sizes = ["configmaps": 1000]
        try await withFixture(make: { try await HandlerFixture(watchCache: cache) }) { f in
            var rng = SplitMix64(seed: seed)
            var live: [String: (namespace: String, name: String)] = [:]
            // Every change: its revision, type, namespace and name.
            var history: [(rev: Int64, type: String, namespace: String, name: String)] = []
            let start = try await f.store.currentRevision()
            var compacted: Int64 = 0
            for step in 0..<120 {
                let namespace = Bool.random(using: &rng) ? "default" : "kube-system"
                let labels = ["app": ["web", "db", "cache"].randomElement(using: &rng)!]
                switch Int.random(in: 0..<10, using: &rng) {
                case 0..<4, _ where live.isEmpty:
                    let name = "cm-\(step)"
                    let r = await f.request(.POST, "/api/v1/namespaces/\(namespace)/configmaps",
                                            body: Self.configMap(name, namespace: namespace, labels: labels, data: "\(step)"))
                    #expect(r.code == 201, "\(r.body)")
                    live["\(namespace)/\(name)"] = (namespace, name)
                    history.append((try await f.store.currentRevision(), "ADDED", namespace, name))
                case 4..<7:
                    let (_, target) = live.randomElement(using: &rng)!
                    let r = await f.request(.PATCH, "/api/v1/namespaces/\(target.namespace)/configmaps/\(target.name)",
                                            body: #"{"metadata":{"labels":{"app":"\#(labels["app"]!)"}},"data":{"v":"s\#(step)"}}"#,
                                            contentType: "application/merge-patch+json")
                    #expect(r.code == 200, "\(r.body)")
                    history.append((try await f.store.currentRevision(), "MODIFIED", target.namespace, target.name))
                case 7..<9:
                    let (key, target) = live.randomElement(using: &rng)!
                    let r = await f.request(.DELETE, "/api/v1/namespaces/\(target.namespace)/configmaps/\(target.name)")
                    #expect(r.code == 200, "\(r.body)")
                    live[key] = nil
                    history.append((try await f.store.currentRevision(), "DELETED", target.namespace, target.name))
                default:
                    let now = try await f.store.currentRevision()
                    if now > compacted {  // compacting where it already is: etcd refuses
                        try await f.store.compact(now)
                        compacted = now
                    }
                }
                let now = try await f.store.currentRevision()
                for path in ["/api/v1/configmaps", "/api/v1/namespaces/default/configmaps", "/api/v1/configmaps?labelSelector=app%3Ddb",
                             "/api/v1/namespaces/kube-system/configmaps?labelSelector=app%21%3Dweb"] {
                    let separator = path.contains("?") ? "&" : "?"
                    let fromStore = await f.request(.GET, path + separator + "resourceVersion=\(now)&resourceVersionMatch=Exact")
                    #expect(fromStore.code == 200, "\(fromStore.body)")
                    let consistent = await f.request(.GET, path)
                    #expect(Self.items(consistent) == Self.items(fromStore), "step \(step): \(path) consistent")
                    #expect(consistent.body["metadata"]?["resourceVersion"]?.stringValue.flatMap(Int64.init).map { $0 >= now } == true)
                    let notOlder = await f.request(.GET, path + separator + "resourceVersion=\(now)&resourceVersionMatch=NotOlderThan")
                    #expect(Self.items(notOlder) == Self.items(fromStore), "step \(step): \(path) NotOlderThan")
                    let any = await f.request(.GET, path + separator + "resourceVersion=0")
                    #expect(Self.items(any) == Self.items(fromStore), "step \(step): \(path) resourceVersion=0 once caught up")
                }
                // A paged list: the first page from the cache, the rest from the store at its revision.
                var paged: [JSONValue] = []
                var token = ""
                repeat {
                    let page = await f.request(.GET, "/api/v1/configmaps?limit=7" + (token.isEmpty ? "" : "&continue=\(token)"))
                    #expect(page.code == 200, "\(page.body)")
                    paged += Self.items(page)
                    token = page.body["metadata"]?["continue"]?.stringValue ?? ""
                } while !token.isEmpty
                #expect(paged == Self.items(await f.request(.GET, "/api/v1/configmaps?resourceVersion=\(now)&resourceVersionMatch=Exact")),
                        "step \(step): paged")
            }
            // Resumed watches replay exactly what came after their revision.
            let end = try await f.store.currentRevision()
            for from in stride(from: start, through: end, by: 9) {
                let expected = history.filter { $0.rev > from }.map { "\($0.type) \($0.namespace)/\($0.name) \($0.rev)" }
                let (lines, task) = try await startWatch(f, "/api/v1/configmaps?watch=true&resourceVersion=\(from)")
                let got = await lines.wait(for: expected.count)
                task.cancel()
                let seen = got.map { line in
                    let meta = line["object"]?["metadata"]
                    return "\(line["type"]?.stringValue ?? "") \(meta?["namespace"]?.stringValue ?? "")/\(meta?["name"]?.stringValue ?? "") \(meta?["resourceVersion"]?.stringValue ?? "")"
                }
                #expect(seen == expected, "watch from \(from)")
            }
        }
    }

    /// A start the window no longer covers is 410 Expired; the client re-lists (a consistent
    /// list) and watches from the list's revision, missing nothing.
    @Test func aWatchBeyondTheWindowIsExpiredAndTheReListIsCorrect() async throws {
        var cache = WatchCacheOptions()
        cache.sizes = ["configmaps": 3]
        try await withFixture(make: { try await HandlerFixture(watchCache: cache) }) { f in
            let first = await f.request(.POST, "/api/v1/namespaces/default/configmaps",
                                        body: Self.configMap("c0", namespace: "default", labels: ["app": "a"], data: "0"))
            let old = try #require(first.body["metadata"]?["resourceVersion"]?.stringValue)
            for i in 1...5 {
                _ = await f.request(.POST, "/api/v1/namespaces/default/configmaps",
                                    body: Self.configMap("c\(i)", namespace: "default", labels: ["app": "a"], data: "\(i)"))
            }
            try await f.store.compact(try await f.store.currentRevision())
            let (expired, expiredTask) = try await startWatch(f, "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=\(old)")
            let error = await expired.wait(for: 1)
            _ = try? await expiredTask.value
            #expect(error.first?["type"] == "ERROR")
            #expect(error.first?["object"]?["code"] == 410)
            let list = await f.request(.GET, "/api/v1/namespaces/default/configmaps")
            #expect(Self.items(list).compactMap { $0["metadata"]?["name"]?.stringValue } == ["c0", "c1", "c2", "c3", "c4", "c5"])
            let rv = try #require(list.body["metadata"]?["resourceVersion"]?.stringValue)
            let (lines, task) = try await startWatch(f, "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=\(rv)")
            defer { task.cancel() }
            _ = await f.request(.DELETE, "/api/v1/namespaces/default/configmaps/c3")
            let events = await lines.wait(for: 1)
            #expect(events.map { $0["type"] } == ["DELETED"])
            #expect(events.first?["object"]?["metadata"]?["name"] == "c3")
        }
    }

    /// Bookmarks carry the cache's revision, which moves with writes to other resources too; a
    /// watch resumed from a bookmark gets what came after it and nothing before.
    @Test func watchesResumeFromBookmarks() async throws {
        var cache = WatchCacheOptions()
        cache.bookmarkInterval = .milliseconds(100)
        try await withFixture(make: { try await HandlerFixture(watchCache: cache) }) { f in
            _ = await f.request(.POST, "/api/v1/namespaces/default/configmaps",
                                body: Self.configMap("before", namespace: "default", labels: ["app": "a"], data: "0"))
            let listed = await f.request(.GET, "/api/v1/namespaces/default/configmaps")
            let rv = try #require(listed.body["metadata"]?["resourceVersion"]?.stringValue)
            let (lines, task) = try await startWatch(f, "/api/v1/namespaces/default/configmaps?watch=true&allowWatchBookmarks=true&resourceVersion=\(rv)")
            // A write elsewhere moves the revision on.
            let other = await f.request(.POST, "/api/v1/namespaces/default/persistentvolumeclaims", body: pvcJSON)
            let otherRV = try #require(other.body["metadata"]?["resourceVersion"]?.stringValue.flatMap(Int64.init))
            var bookmark: Int64 = 0
            for _ in 0..<100 where bookmark < otherRV {
                try await Task.sleep(for: .milliseconds(50))
                bookmark = lines.all.filter { $0["type"] == "BOOKMARK" }
                    .compactMap { $0["object"]?["metadata"]?["resourceVersion"]?.stringValue.flatMap(Int64.init) }.max() ?? 0
            }
            task.cancel()
            #expect(bookmark >= otherRV, "a bookmark at or after the other resource's write: \(lines.all)")
            #expect(lines.all.allSatisfy { $0["type"] == "BOOKMARK" && $0["object"]?["kind"] == "ConfigMap" })
            let (resumed, resumedTask) = try await startWatch(f, "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=\(bookmark)")
            defer { resumedTask.cancel() }
            _ = await f.request(.POST, "/api/v1/namespaces/default/configmaps",
                                body: Self.configMap("after", namespace: "default", labels: ["app": "a"], data: "1"))
            let events = await resumed.wait(for: 1)
            try await Task.sleep(for: .milliseconds(200))
            #expect(resumed.all.map { "\($0["type"]?.stringValue ?? "") \($0["object"]?["metadata"]?["name"]?.stringValue ?? "")" } == ["ADDED after"],
                    "\(events)")
        }
    }

    /// `sendInitialEvents=true`: the current objects, a BOOKMARK annotated
    /// `k8s.io/initial-events-end`, then the changes; the options checked as Kubernetes checks them.
    @Test func streamingListsSendInitialEventsThenABookmark() async throws {
        try await withFixture { f in
            for name in ["a", "b"] {
                _ = await f.request(.POST, "/api/v1/namespaces/default/configmaps",
                                    body: Self.configMap(name, namespace: "default", labels: ["app": "x"], data: name))
            }
            let (lines, task) = try await startWatch(f, "/api/v1/namespaces/default/configmaps?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true")
            defer { task.cancel() }
            _ = await lines.wait(for: 3)
            _ = await f.request(.POST, "/api/v1/namespaces/default/configmaps",
                                body: Self.configMap("c", namespace: "default", labels: ["app": "x"], data: "c"))
            let events = await lines.wait(for: 4)
            #expect(events.map { $0["type"] } == ["ADDED", "ADDED", "BOOKMARK", "ADDED"])
            #expect(events.map { $0["object"]?["metadata"]?["name"] } == ["a", "b", nil, "c"])
            #expect(events[2]["object"]?["metadata"]?["annotations"]?["k8s.io/initial-events-end"] == "true")
            let end = events[2]["object"]?["metadata"]?["resourceVersion"]?.stringValue.flatMap(Int64.init) ?? 0
            let b = events[1]["object"]?["metadata"]?["resourceVersion"]?.stringValue.flatMap(Int64.init) ?? .max
            #expect(end >= b, "the bookmark's revision covers the initial events")

            let bad = [
                ("sendInitialEvents=true&allowWatchBookmarks=true", "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"),
                ("sendInitialEvents=true&resourceVersionMatch=NotOlderThan", "sendInitialEvents requires setting allowWatchBookmarks to true"),
                ("resourceVersionMatch=NotOlderThan&resourceVersion=1", "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"),
            ]
            for (query, message) in bad {
                let r = await f.request(.GET, "/api/v1/namespaces/default/configmaps?watch=true&" + query)
                #expect(r.code == 400 && r.body["message"]?.stringValue?.contains(message) == true, "\(query): \(r.body)")
            }
        }
    }

    @Test func watchCacheSizesParseAndBadOnesSayWhatToWrite() throws {
        #expect(try WatchCacheOptions.parseSizes("pods#20000,storageclasses.storage.k8s.io#500") ==
                ["pods": 20000, "storageclasses.storage.k8s.io": 500])
        #expect(try WatchCacheOptions.parseSizes("") == [:])
        for bad in ["pods", "pods#", "#5", "pods#0", "pods#-1", "pods#x", "pods#1#2"] {
            #expect(throws: APIError.self, "\(bad)") { try WatchCacheOptions.parseSizes(bad) }
        }
        do {
            _ = try WatchCacheOptions.parseSizes("pods#many")
        } catch {
            #expect(error.message.contains("write resource#events, e.g. pods#5000"))
        }
    }

    @Test func listOptionsAreCheckedAsKubernetesChecksThem() async throws {
        try await withFixture { f in
            let cases = [
                ("resourceVersionMatch=Newest&resourceVersion=1", "Unsupported value: \"Newest\""),
                ("resourceVersionMatch=Exact", "resourceVersionMatch is forbidden unless resourceVersion is provided"),
                ("resourceVersionMatch=Exact&resourceVersion=0", "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\""),
                ("resourceVersion=-3", "is not a resource version"),
            ]
            for (query, message) in cases {
                let r = await f.request(.GET, "/api/v1/configmaps?" + query)
                #expect(r.code == 400 && r.body["message"]?.stringValue?.contains(message) == true, "\(query): \(r.body)")
            }
            let future = await f.request(.GET, "/api/v1/configmaps?resourceVersion=999999")
            #expect(future.code == 504 && future.body["message"]?.stringValue?.contains("Too large resource version") == true, "\(future.body)")
            // A watch from there too (a store restored from an older state): not an open watch
            // that drops every event until the store gets that far.
            let watch = await f.request(.GET, "/api/v1/configmaps?watch=true&resourceVersion=999999")
            #expect(watch.code == 504 && watch.body["details"]?["causes"]?[0]?["reason"]?.stringValue == "ResourceVersionTooLarge", "\(watch.body)")
        }
    }

    /// A value the cache cannot read, written under /registry/ by another client of the store,
    /// takes the object it replaced out of the cache: lists do not keep a version the store no
    /// longer has.
    @Test func aValueTheCacheCannotReadLeavesTheCache() async throws {
        try await withFixture { f in
            let created = await f.request(.POST, "/api/v1/namespaces/default/configmaps", body: #"{"metadata":{"name":"odd"},"data":{"a":"b"}}"#)
            #expect(created.code == 201, "\(created.body)")
            _ = try await f.store.put(PutRequest(key: Array("/registry/configmaps/default/odd".utf8), value: Array("not json".utf8)))
            var names: [String] = ["odd"]
            for _ in 0..<100 where names.contains("odd") {
                try await Task.sleep(for: .milliseconds(20))
                let list = await f.request(.GET, "/api/v1/namespaces/default/configmaps?resourceVersion=0")
                names = list.body["items"]?.arrayValue?.compactMap { $0["metadata"]?["name"]?.stringValue } ?? []
            }
            #expect(!names.contains("odd"), "\(names)")
        }
    }

    /// Kubelets list their pods by `spec.nodeName`: the index answers as a scan would.
    @Test func theNodeNameIndexFollowsPods() async throws {
        try await withFixture { f in
            for (name, node) in [("p1", "n1"), ("p2", "n2"), ("p3", "n1"), ("p4", "")] {
                let spec = node.isEmpty ? "" : #""nodeName":"\#(node)","#
                let r = await f.request(.POST, "/api/v1/namespaces/default/pods",
                                        body: #"{"metadata":{"name":"\#(name)"},"spec":{\#(spec)"containers":[{"name":"c","image":"busybox"}]}}"#)
                #expect(r.code == 201, "\(r.body)")
            }
            _ = await f.request(.POST, "/api/v1/namespaces/default/pods/p4/binding",
                                body: #"{"apiVersion":"v1","kind":"Binding","metadata":{"name":"p4"},"target":{"kind":"Node","name":"n1"}}"#)
            _ = await f.request(.DELETE, "/api/v1/namespaces/default/pods/p1?gracePeriodSeconds=0")
            func names(_ path: String) async -> [String] {
                Self.items(await f.request(.GET, path)).compactMap { $0["metadata"]?["name"]?.stringValue }
            }
            #expect(await names("/api/v1/pods?fieldSelector=spec.nodeName%3Dn1") == ["p3", "p4"])
            #expect(await names("/api/v1/namespaces/default/pods?fieldSelector=spec.nodeName%3Dn2") == ["p2"])
            #expect(await names("/api/v1/namespaces/other/pods?fieldSelector=spec.nodeName%3Dn2") == [])
            #expect(await names("/api/v1/namespaces/default/pods?fieldSelector=metadata.name%3Dp2") == ["p2"])
            #expect(await names("/api/v1/pods?fieldSelector=spec.nodeName%21%3Dn1") == ["p2"])
        }
    }

    /// A restarted API server fills its cache from the store again: the objects are there, and a
    /// watch from before the restart is 410 (the client re-lists), as after a kube-apiserver restart.
    @Test func theCacheIsRebuiltAfterARestart() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("watch-cache-restart-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var auth = TokenAuthenticator()
        auth.add(token: HandlerFixture.adminToken, user: UserInfo(name: "admin", groups: ["system:masters"]))
        func serve(_ body: (APIHandler) async throws -> Void) async throws {
            let store = try MVCCStore.open(path: directory)
            let handler = APIHandler(store: ObjectStore(store), serverAddress: "127.0.0.1:0", authenticator: auth, logger: Logger(label: "test"))
            try await APIServer.bootstrap(handler)
            try await handler.startWatchCache()
            do {
                try await body(handler)
            } catch {
                handler.stopWatches()
                try? await store.close()
                throw error
            }
            handler.stopWatches()
            try await store.close()
        }
        func request(_ handler: APIHandler, _ method: HTTPMethod, _ uri: String, body: String = "") async -> HTTPResponse {
            await handler.handle(HTTPRequest(method: method, uri: uri, headers: ["Authorization": "Bearer \(HandlerFixture.adminToken)",
                                                                                "Content-Type": "application/json"], body: Data(body.utf8)))
        }
        var before = ""
        try await serve { handler in
            for name in ["a", "b"] {
                let r = await request(handler, .POST, "/api/v1/namespaces/default/configmaps",
                                      body: Self.configMap(name, namespace: "default", labels: ["app": "x"], data: name))
                #expect(r.status == .created)
            }
            let list = try JSONValue(parsing: await request(handler, .GET, "/api/v1/namespaces/default/configmaps").body)
            before = list["metadata"]?["resourceVersion"]?.stringValue ?? ""
        }
        try await serve { handler in
            let list = try JSONValue(parsing: await request(handler, .GET, "/api/v1/namespaces/default/configmaps?resourceVersion=0").body)
            #expect(list["items"]?.arrayValue?.compactMap { $0["metadata"]?["name"]?.stringValue } == ["a", "b"])
            _ = await request(handler, .POST, "/api/v1/namespaces/default/configmaps",
                              body: Self.configMap("c", namespace: "default", labels: ["app": "x"], data: "c"))
            let watch = await request(handler, .GET, "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=\(Int64(before)! - 1)")
            let stream = try #require(watch.stream)
            let lines = LineCollector()
            try await stream(lines.writer)
            #expect(lines.all.first?["object"]?["code"] == 410, "\(lines.all)")
        }
    }
}
