// DeleteOptions' propagationPolicy and orphanDependents, as kube-apiserver's generic registry
// applies them: the `orphan` and `foregroundDeletion` finalizers, a second delete changing them,
// the grace period of a bound pod, dry runs, collections, and bad options refused with
// Kubernetes' words and nothing changed.
import ClusterAPI
import Foundation
import Testing
@testable import APIServer

private let configMaps = "/api/v1/namespaces/default/configmaps"

private func configMap(_ name: String, finalizers: [String] = []) -> String {
    let list = finalizers.map { "\"\($0)\"" }.joined(separator: ",")
    return #"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"\#(name)","labels":{"set":"a"},"finalizers":[\#(list)]},"data":{"k":"v"}}"#
}

private func finalizers(_ value: JSONValue) -> [String] {
    (value["metadata"]?["finalizers"]?.arrayValue ?? []).compactMap(\.stringValue)
}

@Suite struct DeletePropagationTests {
    @Test("Foreground: a deletion timestamp and foregroundDeletion; the object stays")
    func foreground() async throws {
        try await withFixture { f in
            #expect(await f.request(.POST, configMaps, body: configMap("owner")).code == 201)
            let deleted = await f.request(.DELETE, "\(configMaps)/owner", body: #"{"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":"Foreground"}"#)
            #expect(deleted.code == 200)
            #expect(finalizers(deleted.body) == ["foregroundDeletion"])
            #expect(deleted.body["metadata"]?["deletionTimestamp"]?.stringValue != nil)
            #expect(deleted.body["metadata"]?["deletionGracePeriodSeconds"] == 0)
            let stored = await f.request(.GET, "\(configMaps)/owner")
            #expect(stored.code == 200)
            #expect(finalizers(stored.body) == ["foregroundDeletion"])
            // The garbage collector's part: the finalizer removed, the object goes.
            let released = await f.request(.PATCH, "\(configMaps)/owner", body: #"{"metadata":{"finalizers":[]}}"#,
                                           contentType: "application/merge-patch+json")
            #expect(released.code == 200)
            #expect(await f.request(.GET, "\(configMaps)/owner").code == 404)
        }
    }

    @Test("Orphan from the query, from the body, and orphanDependents=true")
    func orphan() async throws {
        try await withFixture { f in
            let requests: [(name: String, query: String, body: String?)] = [
                ("query", "?propagationPolicy=Orphan", nil),
                ("body", "", #"{"propagationPolicy":"Orphan"}"#),
                ("deprecated", "", #"{"orphanDependents":true}"#),
                ("deprecated-query", "?orphanDependents=true", nil),
            ]
            for request in requests {
                #expect(await f.request(.POST, configMaps, body: configMap(request.name)).code == 201)
                let deleted = await f.request(.DELETE, "\(configMaps)/\(request.name)\(request.query)", body: request.body)
                #expect(deleted.code == 200, "\(request.name)")
                #expect(finalizers(deleted.body) == ["orphan"], "\(request.name)")
                #expect(finalizers(await f.request(.GET, "\(configMaps)/\(request.name)").body) == ["orphan"], "\(request.name)")
            }
        }
    }

    @Test("Background, explicit or by default, and orphanDependents=false: gone at once")
    func background() async throws {
        try await withFixture { f in
            let requests: [(name: String, query: String, body: String?)] = [
                ("default", "", nil),
                ("explicit", "?propagationPolicy=Background", nil),
                ("body", "", #"{"propagationPolicy":"Background"}"#),
                ("deprecated", "", #"{"orphanDependents":false}"#),
            ]
            for request in requests {
                #expect(await f.request(.POST, configMaps, body: configMap(request.name)).code == 201)
                let deleted = await f.request(.DELETE, "\(configMaps)/\(request.name)\(request.query)", body: request.body)
                #expect(deleted.code == 200, "\(request.name)")
                #expect(await f.request(.GET, "\(configMaps)/\(request.name)").code == 404, "\(request.name)")
            }
            // Held by another finalizer, a cascading delete with orphanDependents=false is 202.
            #expect(await f.request(.POST, configMaps, body: configMap("held", finalizers: ["example.com/hold"])).code == 201)
            let accepted = await f.request(.DELETE, "\(configMaps)/held", body: #"{"orphanDependents":false}"#)
            #expect(accepted.code == 202)
            #expect(finalizers(accepted.body) == ["example.com/hold"])
        }
    }

    @Test("A second delete with another policy changes the finalizers as Kubernetes does")
    func secondDeleteChangesPolicy() async throws {
        try await withFixture { f in
            #expect(await f.request(.POST, configMaps, body: configMap("o", finalizers: ["example.com/hold"])).code == 201)
            let first = await f.request(.DELETE, "\(configMaps)/o?propagationPolicy=Foreground")
            #expect(finalizers(first.body) == ["example.com/hold", "foregroundDeletion"])
            let timestamp = first.body["metadata"]?["deletionTimestamp"]
            // No policy: the finalizer already there stands; nothing is written.
            let again = await f.request(.DELETE, "\(configMaps)/o")
            #expect(finalizers(again.body) == ["example.com/hold", "foregroundDeletion"])
            #expect(again.body["metadata"]?["resourceVersion"] == first.body["metadata"]?["resourceVersion"])
            // Orphan replaces foregroundDeletion; the first deletion timestamp stands.
            let orphan = await f.request(.DELETE, "\(configMaps)/o", body: #"{"propagationPolicy":"Orphan"}"#)
            #expect(finalizers(orphan.body) == ["example.com/hold", "orphan"])
            #expect(orphan.body["metadata"]?["deletionTimestamp"] == timestamp)
            // Background removes both; the other finalizer still holds the object.
            let background = await f.request(.DELETE, "\(configMaps)/o?propagationPolicy=Background")
            #expect(finalizers(background.body) == ["example.com/hold"])
            #expect(await f.request(.GET, "\(configMaps)/o").code == 200)

            // With only the GC's finalizer, Background deletes the object at once.
            #expect(await f.request(.POST, configMaps, body: configMap("p")).code == 201)
            #expect(finalizers(await f.request(.DELETE, "\(configMaps)/p?propagationPolicy=Orphan").body) == ["orphan"])
            let gone = await f.request(.DELETE, "\(configMaps)/p", body: #"{"propagationPolicy":"Background"}"#)
            #expect(gone.code == 200)
            #expect(await f.request(.GET, "\(configMaps)/p").code == 404)
        }
    }

    @Test("A bound pod: Foreground with its grace period; the policy cannot change while the grace period is pending")
    func boundPodGracePeriod() async throws {
        try await withFixture { f in
            let pods = "/api/v1/namespaces/default/pods"
            #expect(await f.request(.POST, pods, body: #"{"metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"busybox"}]}}"#).code == 201)
            #expect(await f.request(.POST, "\(pods)/p/binding", body: #"{"metadata":{"name":"p"},"target":{"kind":"Node","name":"node-a"}}"#).code == 201)
            let graceful = await f.request(.DELETE, "\(pods)/p?propagationPolicy=Foreground")
            #expect(graceful.body["metadata"]?["deletionGracePeriodSeconds"] == 30)
            #expect(finalizers(graceful.body) == ["foregroundDeletion"])
            let pending = await f.request(.DELETE, "\(pods)/p?propagationPolicy=Orphan")
            #expect(finalizers(pending.body) == ["foregroundDeletion"], "finalizers cannot change while the grace period runs")
            // The kubelet's delete (grace 0): the finalizer still holds the pod, grace 0 now.
            let killed = await f.request(.DELETE, "\(pods)/p", body: #"{"gracePeriodSeconds":0}"#)
            #expect(killed.body["metadata"]?["deletionGracePeriodSeconds"] == 0)
            #expect(await f.request(.GET, "\(pods)/p").code == 200)
            // A later delete without options does not start a new grace period.
            let later = await f.request(.DELETE, "\(pods)/p")
            #expect(later.body["metadata"]?["deletionGracePeriodSeconds"] == 0)
            #expect(await f.request(.DELETE, "\(pods)/p?propagationPolicy=Background").code == 200)
            #expect(await f.request(.GET, "\(pods)/p").code == 404)
        }
    }

    @Test("dryRun computes the finalizers and stores nothing; deletecollection applies the policy to each object")
    func dryRunAndCollection() async throws {
        try await withFixture { f in
            for name in ["a", "b"] { #expect(await f.request(.POST, configMaps, body: configMap(name)).code == 201) }
            let dry = await f.request(.DELETE, "\(configMaps)/a?dryRun=All&propagationPolicy=Foreground")
            #expect(finalizers(dry.body) == ["foregroundDeletion"])
            let stored = await f.request(.GET, "\(configMaps)/a")
            #expect(finalizers(stored.body).isEmpty && stored.body["metadata"]?["deletionTimestamp"] == nil)
            let collection = await f.request(.DELETE, "\(configMaps)?labelSelector=set%3Da", body: #"{"propagationPolicy":"Orphan"}"#)
            #expect(collection.code == 200)
            #expect(collection.body["items"]?.arrayValue?.count == 2)
            for name in ["a", "b"] { #expect(finalizers(await f.request(.GET, "\(configMaps)/\(name)").body) == ["orphan"]) }
        }
    }

    @Test("Bad options: 422 or 400 in Kubernetes' words, and nothing changes",
          arguments: [
            (query: "?propagationPolicy=Sideways", body: nil as String?, code: UInt(422),
             message: #"DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "Sideways": supported values: "Foreground", "Background", "Orphan", "nil""#),
            (query: "", body: #"{"propagationPolicy":"foreground"}"#, code: 422,
             message: #"propagationPolicy: Unsupported value: "foreground": supported values: "Foreground", "Background", "Orphan""#),
            (query: "", body: #"{"propagationPolicy":"Foreground","orphanDependents":true}"#, code: 422,
             message: #"DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Invalid value: "Foreground": orphanDependents and deletionPropagation cannot be both set"#),
            (query: "?propagationPolicy=Orphan&orphanDependents=false", body: nil, code: 422,
             message: "orphanDependents and deletionPropagation cannot be both set"),
            (query: "", body: #"{"propagationPolicy":5}"#, code: 400, message: "propagationPolicy must be a string"),
            (query: "", body: #"{"orphanDependents":"yes"}"#, code: 400, message: "orphanDependents must be true or false"),
            (query: "?orphanDependents=maybe", body: nil, code: 400, message: #"parsing "maybe": invalid syntax"#),
          ])
    func badOptions(query: String, body: String?, code: UInt, message: String) async throws {
        try await withFixture { f in
            #expect(await f.request(.POST, configMaps, body: configMap("keep")).code == 201)
            let before = await f.request(.GET, "\(configMaps)/keep")
            let refused = await f.request(.DELETE, "\(configMaps)/keep\(query)", body: body)
            #expect(refused.code == code)
            #expect(refused.body["message"]?.stringValue?.contains(message) == true, "\(refused.body)")
            if code == 422 {
                #expect(refused.body["reason"] == "Invalid")
                #expect(refused.body["details"]?["kind"] == "DeleteOptions")
                #expect(refused.body["details"]?["group"] == "meta.k8s.io")
            }
            #expect(await f.request(.GET, "\(configMaps)/keep").body == before.body)
            // Checked before the object is looked up, and for collections too.
            #expect(await f.request(.DELETE, "\(configMaps)/missing\(query)", body: body).code == code)
            #expect(await f.request(.DELETE, "\(configMaps)\(query)", body: body).code == code)
            #expect(await f.request(.GET, "\(configMaps)/keep").body == before.body)
        }
    }

    @Test("The finalizer rules alone (shouldOrphanDependents, shouldDeleteDependents)")
    func finalizerRules() {
        let gc = APIHandler.garbageCollectionFinalizers
        #expect(gc([], nil) == nil)
        #expect(gc([], .background) == nil)
        #expect(gc([], .orphan) == ["orphan"])
        #expect(gc([], .foreground) == ["foregroundDeletion"])
        #expect(gc(["x/y", "orphan"], .foreground) == ["x/y", "foregroundDeletion"])
        #expect(gc(["foregroundDeletion", "x/y"], .orphan) == ["x/y", "orphan"])
        #expect(gc(["orphan"], nil) == nil)
        #expect(gc(["foregroundDeletion"], nil) == nil)
        #expect(gc(["orphan", "x/y"], .background) == ["x/y"])
        #expect(gc(["orphan"], .orphan) == nil)
    }
}
