import ClusterAPI
import Foundation
import HTTPKit
import NIOHTTP1
import Synchronization
import Testing
@testable import APIServer

/// Collects the lines a streamed response writes.
final class LineCollector: Sendable {
    private let lines = Mutex<[JSONValue]>([])

    var writer: HTTPBodyWriter {
        HTTPBodyWriter { data in
            for line in data.split(separator: 0x0A) {
                let value = try JSONDecoder().decode(JSONValue.self, from: Data(line))
                self.lines.withLock { $0.append(value) }
            }
        }
    }

    var all: [JSONValue] { lines.withLock { $0 } }

    /// Waits until `count` lines arrived (or 10 s).
    func wait(for count: Int) async -> [JSONValue] {
        for _ in 0..<200 {
            if all.count >= count { break }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return all
    }
}

@Suite struct APIWatchTests {
    func startWatch(_ f: HandlerFixture, _ uri: String, accept: String = "application/json") async throws -> (LineCollector, Task<Void, any Error>) {
        let response = await f.handler.handle(HTTPRequest(method: .GET, uri: uri,
                                                          headers: ["Authorization": "Bearer \(HandlerFixture.adminToken)", "Accept": accept],
                                                          body: Data()))
        let stream = try #require(response.stream, "a watch streams (status \(response.status))")
        let collector = LineCollector()
        let task = Task { try await stream(collector.writer) }
        return (collector, task)
    }

    @Test func replaysThenStreamsAndAppliesSelectors() async throws {
        try await withFixture { f in
            _ = await f.request(.POST, "/api/v1/namespaces/default/persistentvolumeclaims", body: pvcJSON)
            let (all, allTask) = try await startWatch(f, "/api/v1/namespaces/default/persistentvolumeclaims?watch=true")
            let (named, namedTask) = try await startWatch(f, "/api/v1/persistentvolumeclaims?watch=true&labelSelector=app%3Ddb&resourceVersion=0",
                                                          accept: "application/json;as=Table;v=v1;g=meta.k8s.io")
            defer { allTask.cancel(); namedTask.cancel() }
            _ = await all.wait(for: 1)
            _ = await named.wait(for: 1)
            _ = await f.request(.PATCH, "/api/v1/namespaces/default/persistentvolumeclaims/data",
                                body: #"{"metadata":{"labels":{"app":"other"}}}"#, contentType: "application/merge-patch+json")
            _ = await f.request(.DELETE, "/api/v1/namespaces/default/persistentvolumeclaims/data")
            let events = await all.wait(for: 3)
            #expect(events.map { $0["type"] } == ["ADDED", "MODIFIED", "DELETED"])
            #expect(events[1]["object"]?["metadata"]?["labels"]?["app"] == "other")
            let rvs = events.compactMap { $0["object"]?["metadata"]?["resourceVersion"]?.stringValue.flatMap(Int64.init) }
            #expect(rvs == rvs.sorted() && Set(rvs).count == 3, "resource versions increase: \(rvs)")
            // The selector stops matching: that watcher sees a DELETED, then nothing.
            let selected = await named.wait(for: 2)
            #expect(selected.map { $0["type"] } == ["ADDED", "DELETED"])
            #expect(selected.first?["object"]?["kind"] == "Table")
        }
    }

    @Test func resumesFromAResourceVersionAndExpiresBeyondTheWindow() async throws {
        var cache = WatchCacheOptions()
        cache.sizes = ["persistentvolumeclaims": 1]  // the window holds the last change only
        try await withFixture(make: { try await HandlerFixture(watchCache: cache) }) { f in
            let created = await f.request(.POST, "/api/v1/namespaces/default/persistentvolumeclaims", body: pvcJSON)
            let rv = try #require(created.body["metadata"]?["resourceVersion"]?.stringValue)
            let labeled = await f.request(.PATCH, "/api/v1/namespaces/default/persistentvolumeclaims/data",
                                          body: #"{"metadata":{"labels":{"step":"1"}}}"#, contentType: "application/merge-patch+json")
            let (resumed, resumedTask) = try await startWatch(f, "/api/v1/namespaces/default/persistentvolumeclaims?watch=true&resourceVersion=\(rv)")
            let events = await resumed.wait(for: 1)
            resumedTask.cancel()
            #expect(events.first?["type"] == "MODIFIED")
            #expect(events.first?["object"]?["metadata"]?["resourceVersion"] == labeled.body["metadata"]?["resourceVersion"])

            // A second change pushes the first out of the window: resuming before it is 410.
            _ = await f.request(.PATCH, "/api/v1/namespaces/default/persistentvolumeclaims/data",
                                body: #"{"metadata":{"labels":{"step":"2"}}}"#, contentType: "application/merge-patch+json")
            // A consistent list waits until the cache has applied the store's current revision:
            // until then the window may still hold the first change, and resuming from `rv`
            // would rightly be served, not refused.
            _ = await f.request(.GET, "/api/v1/namespaces/default/persistentvolumeclaims")
            let (expired, expiredTask) = try await startWatch(f, "/api/v1/namespaces/default/persistentvolumeclaims?watch=true&resourceVersion=\(rv)")
            let error = await expired.wait(for: 1)
            // The refused stream ends by itself; one that was served would not, so it is cancelled.
            if error.first?["type"] != "ERROR" { expiredTask.cancel() }
            _ = try? await expiredTask.value
            #expect(error.first?["type"] == "ERROR")
            #expect(error.first?["object"]?["code"] == 410)
            #expect(error.first?["object"]?["reason"] == "Expired")
            #expect(error.first?["object"]?["message"]?.stringValue?.hasPrefix("too old resource version: \(rv)") == true)
        }
    }

    @Test func timeoutSecondsEndsTheStream() async throws {
        try await withFixture { f in
            let started = ContinuousClock.now
            let (_, task) = try await startWatch(f, "/api/v1/pods?watch=true&timeoutSeconds=1")
            try await task.value
            // Without timeoutSeconds a watch lasts 30-60 min; the bound leaves room for a loaded
            // machine (6 s was seen while the process suites ran beside it).
            let took = started.duration(to: .now)
            #expect(took >= .milliseconds(900) && took < .seconds(30), "\(took)")
        }
    }
}
