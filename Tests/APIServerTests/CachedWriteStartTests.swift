import ClusterAPI
import MVCCStore
import Testing
@testable import APIServer

/// Updates, patches and deletes start from the watch cache's version of the object, which may be
/// behind the store: a version the cache has not applied yet must never decide the answer.
@Suite struct CachedWriteStartTests {
    static let key = "/registry/configmaps/default/c"

    /// The stored value of ConfigMap `c` with `v` (what the API server would store).
    static func stored(_ v: String) -> [UInt8] {
        Array(#"{"apiVersion":"v1","data":{"v":"\#(v)"},"kind":"ConfigMap","metadata":{"creationTimestamp":"2026-01-01T00:00:00Z","name":"c","namespace":"default","uid":"u-1"}}"#.utf8)
    }

    @Test func aVersionTheCacheHasNotAppliedNeverDecidesAWrite() async throws {
        try await withFixture { f in
            let created = await f.request(.POST, "/api/v1/namespaces/default/configmaps",
                                          body: #"{"metadata":{"name":"c"},"data":{"v":"0"}}"#)
            #expect(created.code == 201)
            for round in 1...30 {
                // A write straight to the store (another API server's, say): this server's cache
                // applies it a moment later, so the patch below may start from the version before.
                let put = try await f.store.put(PutRequest(key: Array(Self.key.utf8), value: Self.stored("s\(round)")))
                // Its resourceVersion as a precondition: the store's version matches it, so the
                // patch succeeds, whatever the cache held.
                let patched = await f.request(.PATCH, "/api/v1/namespaces/default/configmaps/c",
                                              body: #"{"metadata":{"resourceVersion":"\#(put.revision)"},"data":{"w":"\#(round)"}}"#,
                                              contentType: "application/merge-patch+json")
                #expect(patched.code == 200, "round \(round): \(patched.body)")
                #expect(patched.body["data"]?["v"]?.stringValue == "s\(round)", "the patch applied to the store's version")
                // A patch that changes nothing, after another direct write: the answer is the
                // store's version, not the cache's older one.
                let again = try await f.store.put(PutRequest(key: Array(Self.key.utf8), value: Self.stored("t\(round)")))
                let unchanged = await f.request(.PATCH, "/api/v1/namespaces/default/configmaps/c", body: #"{}"#,
                                                contentType: "application/merge-patch+json")
                #expect(unchanged.code == 200)
                #expect(unchanged.body["metadata"]?["resourceVersion"]?.stringValue == String(again.revision),
                        "round \(round): answered \(unchanged.body["metadata"]?["resourceVersion"] ?? .null), stored \(again.revision)")
            }
            // A stale precondition is still refused, from the store's version.
            let refused = await f.request(.PATCH, "/api/v1/namespaces/default/configmaps/c",
                                          body: #"{"metadata":{"resourceVersion":"1"},"data":{"w":"x"}}"#,
                                          contentType: "application/merge-patch+json")
            #expect(refused.code == 409)
            // A delete preconditioned on a version written straight to the store just before.
            let last = try await f.store.put(PutRequest(key: Array(Self.key.utf8), value: Self.stored("last")))
            let deleted = await f.request(.DELETE, "/api/v1/namespaces/default/configmaps/c",
                                          body: #"{"preconditions":{"resourceVersion":"\#(last.revision)"}}"#)
            #expect(deleted.code == 200, "\(deleted.body)")
            #expect(try await f.store.get(Array(Self.key.utf8)).kv == nil)
        }
    }
}
