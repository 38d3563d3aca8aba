import ClusterAPI
import Foundation
import HTTPKit
import Logging
import MVCCStore
import NIOHTTP1
import Synchronization
import Testing
@testable import APIServer

/// An API handler over a fresh embedded store in a temporary directory, driven in process.
final class HandlerFixture: Sendable {
    let directory: String
    let store: MVCCStore
    let handler: APIHandler
    static let adminToken = "admin-token"
    static let nodeToken = "node-a-token"

    /// `wrap` puts a test double around the store (slow, failing, reporting its health).
    init(wrap: (MVCCStore) -> any KeyValueStore = { $0 }, watchBuffer: WatchBufferLimits = WatchBufferLimits(),
         maxRequestsInflight: Int = 400, maxMutatingRequestsInflight: Int = 200,
         inflightQueue: InflightQueueLimits = InflightQueueLimits(), watchCache: WatchCacheOptions = WatchCacheOptions()) async throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("apiserver-test-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        store = try MVCCStore.open(path: directory)
        var auth = TokenAuthenticator()
        auth.add(token: Self.adminToken, user: UserInfo(name: "admin", groups: ["system:masters"]))
        auth.add(token: Self.nodeToken, user: UserInfo(name: "system:node:node-a", groups: ["system:nodes"]))
        auth.add(token: Self.userToken, user: UserInfo(name: "alice", groups: ["devs"]))
        handler = APIHandler(store: ObjectStore(wrap(store)), serverAddress: "127.0.0.1:0", authenticator: auth,
                             logger: Logger(label: "test"), watchBuffer: watchBuffer, maxRequestsInflight: maxRequestsInflight,
                             maxMutatingRequestsInflight: maxMutatingRequestsInflight, inflightQueue: inflightQueue,
                             disabledAdmissionPlugins: ["StorageObjectInUseProtection"], watchCache: watchCache)
        try await APIServer.bootstrap(handler)
        try await handler.startWatchCache()
    }

    static let userToken = "alice-token"

    func close() async {
        try? await store.close()
        try? FileManager.default.removeItem(atPath: directory)
    }

    func request(_ method: HTTPMethod, _ uri: String, body: String? = nil, contentType: String = "application/json",
                 token: String = adminToken, accept: String = "application/json") async -> (code: UInt, body: JSONValue) {
        var headers: HTTPHeaders = ["Authorization": "Bearer \(token)", "Accept": accept]
        if body != nil { headers.add(name: "Content-Type", value: contentType) }
        let response = await handler.handle(HTTPRequest(method: method, uri: uri, headers: headers, body: Data((body ?? "").utf8)))
        let value = (try? JSONDecoder().decode(JSONValue.self, from: response.body)) ?? .string(String(decoding: response.body, as: UTF8.self))
        return (response.status.code, value)
    }
}

func withFixture(_ body: (HandlerFixture) async throws -> Void) async throws {
    try await withFixture(make: { try await HandlerFixture() }, body)
}

/// A fixture made by `make` (with options), always closed.
func withFixture(make: () async throws -> HandlerFixture, _ body: (HandlerFixture) async throws -> Void) async throws {
    let f = try await make()
    do {
        try await body(f)
    } catch {
        await f.close()
        throw error
    }
    await f.close()
}

/// A fixture whose store is wrapped in a `SlowStore` (the limits as `HandlerFixture` takes them),
/// handed to `body` with it; always closed.
func withSlowStoreFixture(maxRequestsInflight: Int = 400, maxMutatingRequestsInflight: Int = 200,
                          inflightQueue: InflightQueueLimits = InflightQueueLimits(),
                          _ body: (HandlerFixture, SlowStore) async throws -> Void) async throws {
    let slow = Mutex<SlowStore?>(nil)
    try await withFixture(make: {
        try await HandlerFixture(wrap: { base in
            let s = SlowStore(base)
            slow.withLock { $0 = s }
            return s
        }, maxRequestsInflight: maxRequestsInflight, maxMutatingRequestsInflight: maxMutatingRequestsInflight, inflightQueue: inflightQueue)
    }) { f in
        try await body(f, try #require(slow.withLock { $0 }))
    }
}

let pvcJSON = """
    {"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"name":"data","labels":{"app":"db"}},
     "spec":{"accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"1Gi"}}}}
    """

@Suite struct HandlerTests {
    @Test func createGetConflictAndErrors() async throws {
        try await withFixture { f in
            let created = await f.request(.POST, "/api/v1/namespaces/default/persistentvolumeclaims", body: pvcJSON)
            #expect(created.code == 201)
            let rv = created.body["metadata"]?["resourceVersion"]?.stringValue
            #expect(rv.flatMap(Int64.init) != nil, "resourceVersion is a numeric string")
            #expect(created.body["metadata"]?["uid"]?.stringValue?.count == 36)
            #expect(created.body["status"]?["phase"] == "Pending")
            #expect(created.body["spec"]?["volumeMode"] == "Filesystem")

            let again = await f.request(.POST, "/api/v1/namespaces/default/persistentvolumeclaims", body: pvcJSON)
            #expect(again.code == 409)
            #expect(again.body["reason"] == "AlreadyExists")
            #expect(again.body["message"] == #"persistentvolumeclaims "data" already exists"#)

            let missing = await f.request(.GET, "/api/v1/namespaces/default/persistentvolumeclaims/nope")
            #expect(missing.code == 404)
            #expect(missing.body["message"] == #"persistentvolumeclaims "nope" not found"#)
            #expect(missing.body["kind"] == "Status")

            var stale = created.body
            stale["metadata"]?["resourceVersion"] = "1"
            stale["metadata"]?["labels"] = ["app": "other"]
            let conflict = await f.request(.PUT, "/api/v1/namespaces/default/persistentvolumeclaims/data",
                                           body: String(decoding: APIHandler.encode(stale), as: UTF8.self))
            #expect(conflict.code == 409)
            #expect(conflict.body["message"] == #"Operation cannot be fulfilled on persistentvolumeclaims "data": the object has been modified; please apply your changes to the latest version and try again"#)

            let invalid = await f.request(.POST, "/api/v1/namespaces/default/pods", body: #"{"metadata":{"name":"bad"},"spec":{}}"#)
            #expect(invalid.code == 422)
            #expect(invalid.body["details"]?["causes"]?[0]?["field"] == "spec.containers")

            let noNamespace = await f.request(.POST, "/api/v1/namespaces/nowhere/persistentvolumeclaims", body: pvcJSON)
            #expect(noNamespace.code == 404)
            #expect(noNamespace.body["message"] == #"namespaces "nowhere" not found"#)

            let unknown = await f.request(.GET, "/api/v1/namespaces/default/widgets")
            #expect(unknown.code == 404)
            #expect(unknown.body["message"] == "the server could not find the requested resource")
        }
    }

    @Test func patchesAndNoOpKeepResourceVersion() async throws {
        try await withFixture { f in
            let created = await f.request(.POST, "/api/v1/namespaces/default/persistentvolumeclaims", body: pvcJSON)
            let rv = created.body["metadata"]?["resourceVersion"]
            let merge = await f.request(.PATCH, "/api/v1/namespaces/default/persistentvolumeclaims/data",
                                        body: #"{"metadata":{"labels":{"tier":"gold"}}}"#, contentType: "application/merge-patch+json")
            #expect(merge.code == 200)
            #expect(merge.body["metadata"]?["labels"] == ["app": "db", "tier": "gold"])
            #expect(merge.body["metadata"]?["resourceVersion"] != rv)
            let rv2 = merge.body["metadata"]?["resourceVersion"]
            let same = await f.request(.PATCH, "/api/v1/namespaces/default/persistentvolumeclaims/data",
                                       body: #"{"metadata":{"labels":{"tier":"gold"}}}"#, contentType: "application/strategic-merge-patch+json")
            #expect(same.code == 200)
            #expect(same.body["metadata"]?["resourceVersion"] == rv2, "a no-op patch keeps the resource version")
            let jsonPatch = await f.request(.PATCH, "/api/v1/namespaces/default/persistentvolumeclaims/data",
                                            body: #"[{"op":"remove","path":"/metadata/labels/app"}]"#, contentType: "application/json-patch+json")
            #expect(jsonPatch.body["metadata"]?["labels"] == ["tier": "gold"])
            let dry = await f.request(.PATCH, "/api/v1/namespaces/default/persistentvolumeclaims/data?dryRun=All",
                                      body: #"{"metadata":{"labels":{"dry":"yes"}}}"#, contentType: "application/merge-patch+json")
            #expect(dry.body["metadata"]?["labels"]?["dry"] == "yes")
            let after = await f.request(.GET, "/api/v1/namespaces/default/persistentvolumeclaims/data")
            #expect(after.body["metadata"]?["labels"]?["dry"] == nil, "dryRun=All persists nothing")
            #expect(after.body["metadata"]?["resourceVersion"] == jsonPatch.body["metadata"]?["resourceVersion"])
            // Main-resource writes keep the status; /status writes keep the spec.
            let status = await f.request(.PATCH, "/api/v1/namespaces/default/persistentvolumeclaims/data/status",
                                         body: #"{"status":{"phase":"Bound"},"spec":{"volumeName":"ignored"}}"#,
                                         contentType: "application/merge-patch+json")
            #expect(status.body["status"]?["phase"] == "Bound")
            #expect(status.body["spec"]?["volumeName"] == nil)
            let mainStatus = await f.request(.PATCH, "/api/v1/namespaces/default/persistentvolumeclaims/data",
                                             body: #"{"status":{"phase":"Lost"}}"#, contentType: "application/merge-patch+json")
            #expect(mainStatus.body["status"]?["phase"] == "Bound")
        }
    }

    @Test func serverSideApplyCreatesThenMerges() async throws {
        try await withFixture { f in
            let pod = #"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"app","namespace":"default"},"spec":{"containers":[{"name":"main","image":"nginx:1.26","volumeMounts":[{"name":"d","mountPath":"/d"}]}],"volumes":[{"name":"d","emptyDir":{}}]}}"#
            let first = await f.request(.PATCH, "/api/v1/namespaces/default/pods/app?fieldManager=kubectl", body: pod,
                                        contentType: "application/apply-patch+yaml")
            #expect(first.code == 201)
            #expect(first.body["metadata"]?["generation"] == 1)
            let second = await f.request(.PATCH, "/api/v1/namespaces/default/pods/app?fieldManager=kubectl", body: pod,
                                         contentType: "application/apply-patch+yaml")
            #expect(second.code == 200)
            #expect(second.body["metadata"]?["resourceVersion"] == first.body["metadata"]?["resourceVersion"])
            // kubectl's second "last-applied" apply carries only metadata: it must not wipe the spec.
            let annotate = await f.request(.PATCH, "/api/v1/namespaces/default/pods/app?fieldManager=kubectl-last-applied",
                                           body: #"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"app","annotations":{"x":"y"}}}"#,
                                           contentType: "application/apply-patch+yaml")
            #expect(annotate.body["spec"]?["containers"]?[0]?["volumeMounts"]?.arrayValue?.count == 1)
            #expect(annotate.body["metadata"]?["annotations"]?["x"] == "y")
        }
    }

    @Test func finalizersHoldDeletion() async throws {
        try await withFixture { f in
            let withFinalizer = #"{"metadata":{"name":"held","finalizers":["example.com/hold"]},"spec":{"accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"1Gi"}}}}"#
            _ = await f.request(.POST, "/api/v1/namespaces/default/persistentvolumeclaims", body: withFinalizer)
            let deleted = await f.request(.DELETE, "/api/v1/namespaces/default/persistentvolumeclaims/held")
            #expect(deleted.code == 200)
            #expect(deleted.body["metadata"]?["deletionTimestamp"]?.stringValue != nil)
            #expect(await f.request(.GET, "/api/v1/namespaces/default/persistentvolumeclaims/held").code == 200)
            let added = await f.request(.PATCH, "/api/v1/namespaces/default/persistentvolumeclaims/held",
                                        body: #"{"metadata":{"finalizers":["example.com/hold","new/one"]}}"#,
                                        contentType: "application/merge-patch+json")
            #expect(added.code == 422, "no new finalizers on an object being deleted")
            let released = await f.request(.PATCH, "/api/v1/namespaces/default/persistentvolumeclaims/held",
                                           body: #"{"metadata":{"finalizers":null}}"#, contentType: "application/merge-patch+json")
            #expect(released.code == 200)
            #expect(await f.request(.GET, "/api/v1/namespaces/default/persistentvolumeclaims/held").code == 404)
        }
    }

    @Test func listsSelectAndPage() async throws {
        try await withFixture { f in
            for i in 0..<5 {
                let body = pvcJSON.replacingOccurrences(of: #""name":"data""#, with: #""name":"data-\#(i)""#)
                    .replacingOccurrences(of: #""app":"db""#, with: #""app":"\#(i % 2 == 0 ? "even" : "odd")""#)
                #expect(await f.request(.POST, "/api/v1/namespaces/default/persistentvolumeclaims", body: body).code == 201)
            }
            let even = await f.request(.GET, "/api/v1/persistentvolumeclaims?labelSelector=app%3Deven")
            #expect(even.body["kind"] == "PersistentVolumeClaimList")
            #expect(even.body["items"]?.arrayValue?.count == 3)
            let page1 = await f.request(.GET, "/api/v1/namespaces/default/persistentvolumeclaims?limit=2")
            #expect(page1.body["items"]?.arrayValue?.count == 2)
            let token = try #require(page1.body["metadata"]?["continue"]?.stringValue)
            let page2 = await f.request(.GET, "/api/v1/namespaces/default/persistentvolumeclaims?limit=2&continue=\(token.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)")
            #expect(page2.body["items"]?[0]?["metadata"]?["name"] == "data-2")
            #expect(page2.body["metadata"]?["resourceVersion"] == page1.body["metadata"]?["resourceVersion"])
            let escaped = token.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            // A continued list is read at its first page's revision: asking for another is refused.
            let withVersion = await f.request(.GET, "/api/v1/namespaces/default/persistentvolumeclaims?limit=2&resourceVersion=1&continue=\(escaped)")
            #expect(withVersion.code == 400 && withVersion.body["message"] == "specifying resource version is not allowed when using continue")
            let withMatch = await f.request(.GET, "/api/v1/namespaces/default/persistentvolumeclaims?limit=2&resourceVersion=1&resourceVersionMatch=NotOlderThan&continue=\(escaped)")
            #expect(withMatch.code == 400 && withMatch.body["message"] == "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden when continue is provided")
            let table = await f.request(.GET, "/api/v1/namespaces/default/persistentvolumeclaims",
                                        accept: "application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
            #expect(table.body["kind"] == "Table")
            #expect(table.body["rows"]?.arrayValue?.count == 5)
            #expect(table.body["columnDefinitions"]?[1]?["name"] == "Status")
            let badField = await f.request(.GET, "/api/v1/persistentvolumeclaims?fieldSelector=spec.nodeName%3Dx")
            #expect(badField.code == 400)
            // Once its revision is compacted: 410, with a token that goes on at the current revision.
            #expect(await f.request(.POST, "/api/v1/namespaces/default/persistentvolumeclaims",
                                    body: pvcJSON.replacingOccurrences(of: #""name":"data""#, with: #""name":"data-5""#)).code == 201)
            try await f.store.compact(try await f.store.currentRevision())
            let expired = await f.request(.GET, "/api/v1/namespaces/default/persistentvolumeclaims?limit=2&continue=\(escaped)")
            #expect(expired.code == 410 && expired.body["reason"] == "Expired")
            let fresh = try #require(expired.body["metadata"]?["continue"]?.stringValue, "\(expired.body)")
            let rest = await f.request(.GET, "/api/v1/namespaces/default/persistentvolumeclaims?continue=\(fresh.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)")
            #expect(rest.code == 200)
            #expect(rest.body["items"]?.arrayValue?.compactMap { $0["metadata"]?["name"]?.stringValue } == ["data-2", "data-3", "data-4", "data-5"])
        }
    }

    @Test func authenticationAndNodeAuthorization() async throws {
        try await withFixture { f in
            let anonymous = await f.request(.GET, "/api/v1/pods", token: "wrong")
            #expect(anonymous.code == 401)
            #expect(await f.request(.GET, "/version", token: "wrong").code == 401)
            #expect(await f.request(.POST, "/api/v1/nodes", body: #"{"metadata":{"name":"node-b"}}"#, token: HandlerFixture.nodeToken).code == 403)
            #expect(await f.request(.POST, "/api/v1/nodes", body: #"{"metadata":{"name":"node-a"}}"#, token: HandlerFixture.nodeToken).code == 201)
            #expect(await f.request(.POST, "/api/v1/nodes", body: #"{"metadata":{"name":"node-b"}}"#).code == 201)
            let other = await f.request(.PATCH, "/api/v1/nodes/node-b", body: #"{"metadata":{"labels":{"x":"y"}}}"#,
                                        contentType: "application/merge-patch+json", token: HandlerFixture.nodeToken)
            #expect(other.code == 403)
            #expect(other.body["reason"] == "Forbidden")
            #expect(other.body["message"]?.stringValue?.contains(#"User "system:node:node-a" cannot patch resource "nodes""#) == true)
            let own = await f.request(.PATCH, "/api/v1/nodes/node-a/status", body: #"{"status":{"conditions":[{"type":"Ready","status":"True"}]}}"#,
                                      contentType: "application/strategic-merge-patch+json", token: HandlerFixture.nodeToken)
            #expect(own.code == 200)
        }
    }

    @Test func bindingAndLog() async throws {
        try await withFixture { f in
            _ = await f.request(.POST, "/api/v1/namespaces/default/pods", body: #"{"metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"busybox"}]}}"#)
            let log1 = await f.request(.GET, "/api/v1/namespaces/default/pods/p/log")
            #expect(log1.code == 400)
            let bound = await f.request(.POST, "/api/v1/namespaces/default/pods/p/binding",
                                        body: #"{"apiVersion":"v1","kind":"Binding","metadata":{"name":"p"},"target":{"kind":"Node","name":"node-a"}}"#)
            #expect(bound.code == 201)
            #expect(await f.request(.GET, "/api/v1/namespaces/default/pods/p").body["spec"]?["nodeName"] == "node-a")
            let twice = await f.request(.POST, "/api/v1/namespaces/default/pods/p/binding",
                                        body: #"{"metadata":{"name":"p"},"target":{"kind":"Node","name":"node-b"}}"#)
            #expect(twice.code == 409)
            let log2 = await f.request(.GET, "/api/v1/namespaces/default/pods/p/log")
            #expect(log2.code == 503)
            // A bound pod is deleted gracefully: it stays, Terminating, until its kubelet confirms.
            let graceful = await f.request(.DELETE, "/api/v1/namespaces/default/pods/p")
            #expect(graceful.body["metadata"]?["deletionGracePeriodSeconds"] == 30)
            let now = await f.request(.DELETE, "/api/v1/namespaces/default/pods/p", body: #"{"gracePeriodSeconds":0}"#)
            #expect(now.code == 200)
            #expect(await f.request(.GET, "/api/v1/namespaces/default/pods/p").code == 404)
        }
    }

    @Test func namespaceDeletionRemovesContent() async throws {
        try await withFixture { f in
            #expect(await f.request(.POST, "/api/v1/namespaces", body: #"{"metadata":{"name":"scratch"}}"#).code == 201)
            #expect(await f.request(.POST, "/api/v1/namespaces/scratch/persistentvolumeclaims", body: pvcJSON).code == 201)
            let deleted = await f.request(.DELETE, "/api/v1/namespaces/scratch")
            #expect(deleted.body["status"]?["phase"] == "Terminating")
            #expect(await f.request(.GET, "/api/v1/namespaces/scratch").code == 404)
            #expect(await f.request(.GET, "/api/v1/namespaces/scratch/persistentvolumeclaims/data").code == 404)
            #expect(await f.request(.DELETE, "/api/v1/namespaces/default").code == 403)
        }
    }

    /// The namespace check of a create reads the watch cache only when it is as new as the
    /// store: content is refused in a namespace the moment its deletion has been answered, and
    /// accepted in one the moment its creation has, however far the cache lags.
    @Test func contentFollowsItsNamespaceAtOnce() async throws {
        try await withFixture { f in
            let held = #"{"metadata":{"name":"held","finalizers":["example.com/hold"]}}"#
            for round in 0..<20 {
                let ns = "ns-\(round)"
                #expect(await f.request(.POST, "/api/v1/namespaces", body: #"{"metadata":{"name":"\#(ns)"}}"#).code == 201)
                let created = await f.request(.POST, "/api/v1/namespaces/\(ns)/configmaps", body: held)
                #expect(created.code == 201, "round \(round): \(created.body)")
                // The finalizer keeps the config map, and so the namespace, Terminating.
                #expect(await f.request(.DELETE, "/api/v1/namespaces/\(ns)").body["status"]?["phase"] == "Terminating")
                let refused = await f.request(.POST, "/api/v1/namespaces/\(ns)/configmaps", body: #"{"metadata":{"name":"late"}}"#)
                #expect(refused.code == 403, "round \(round): \(refused.body)")
                #expect(refused.body["message"]?.stringValue?.contains("because it is being terminated") == true)
            }
            let missing = await f.request(.POST, "/api/v1/namespaces/nowhere/configmaps", body: #"{"metadata":{"name":"c"}}"#)
            #expect(missing.code == 404 && missing.body["message"] == #"namespaces "nowhere" not found"#, "\(missing.body)")
        }
    }

    @Test func discoveryAndVersion() async throws {
        try await withFixture { f in
            let version = await f.request(.GET, "/version")
            #expect(version.body["minor"] == "32")
            let core = await f.request(.GET, "/api/v1")
            let names = core.body["resources"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
            #expect(names.contains("pods/status") && names.contains("persistentvolumeclaims"))
            let pvc = core.body["resources"]?.arrayValue?.first { $0["name"] == "persistentvolumeclaims" }
            #expect(pvc?["shortNames"] == ["pvc"] && pvc?["kind"] == "PersistentVolumeClaim")
            let groups = await f.request(.GET, "/apis")
            #expect(groups.body["groups"]?.arrayValue?.compactMap { $0["name"]?.stringValue } == ["apiextensions.k8s.io", "apps", "batch", "coordination.k8s.io", "discovery.k8s.io", "storage.k8s.io"])
            let index = await f.request(.GET, "/openapi/v3")
            let url = try #require(index.body["paths"]?["api/v1"]?["serverRelativeURL"]?.stringValue)
            let doc = await f.request(.GET, url)
            let podPatch = doc.body["paths"]?["/api/v1/namespaces/{namespace}/pods/{name}"]?["patch"]
            #expect(podPatch?["parameters"]?.arrayValue?.contains { $0["name"] == "fieldValidation" } == true)
            #expect(await f.request(.GET, "/openapi/v2").code == 404)
        }
    }

    @Test func pythonClientShapesAndEventLeases() async throws {
        try await withFixture { f in
            // The Python client sends no Content-Type and omits apiVersion/kind.
            let response = await f.handler.handle(HTTPRequest(
                method: .POST, uri: "/api/v1/namespaces/default/pods",
                headers: ["Authorization": "Bearer \(HandlerFixture.adminToken)"],
                body: Data(#"{"metadata":{"name":"py1"},"spec":{"containers":[{"name":"c","image":"busybox"}]}}"#.utf8)))
            #expect(response.status == .created)
            let created = try JSONDecoder().decode(JSONValue.self, from: response.body)
            #expect(created["kind"] == "Pod" && created["apiVersion"] == "v1")
            #expect(created["metadata"]?["namespace"] == "default")
            // generateName
            let generated = await f.request(.POST, "/api/v1/namespaces/default/pods",
                                            body: #"{"metadata":{"generateName":"web-"},"spec":{"containers":[{"name":"c","image":"busybox"}]}}"#)
            let name = generated.body["metadata"]?["name"]?.stringValue ?? ""
            #expect(name.hasPrefix("web-") && name.count == 9)
            // Events live under a store lease (they expire after an hour).
            let event = await f.request(.POST, "/api/v1/namespaces/default/events",
                                        body: #"{"metadata":{"name":"e1"},"involvedObject":{"kind":"Pod","name":"py1","namespace":"default"},"reason":"Test","message":"m"}"#)
            #expect(event.code == 201)
            let stored = try await f.store.get(Array("/registry/events/default/e1".utf8))
            #expect((stored.kv?.lease ?? 0) != 0)
            #expect(stored.kv.map { String(decoding: $0.value, as: UTF8.self).contains("resourceVersion") } == false,
                    "the stored JSON has no resourceVersion: the mod revision is the version")
            // The delete returns the object, not a Status (the Python client parses it as a Pod).
            let deleted = await f.request(.DELETE, "/api/v1/namespaces/default/pods/py1")
            #expect(deleted.body["kind"] == "Pod")
        }
    }
}
