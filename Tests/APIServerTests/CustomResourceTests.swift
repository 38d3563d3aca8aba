import ClusterAPI
import Foundation
import Testing
import TestSupport
@testable import APIServer

/// CustomResourceDefinitions served by the handler: established and discovered, their objects
/// pruned, defaulted and validated by the schema, printed by their columns, cleaned up with them.
@Suite struct CustomResourceTests {
    static func definition(name: String = "backups", kind: String = "Backup", group: String = "example.ballast.dev",
                           extraVersion: String = "") -> String {
        """
        {"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition","metadata":{"name":"\(name).\(group)"},
         "spec":{"group":"\(group)","scope":"Namespaced","names":{"plural":"\(name)","kind":"\(kind)","shortNames":["bk"]},
          "versions":[{"name":"v1","served":true,"storage":true,"subresources":{"status":{}},
            "additionalPrinterColumns":[{"name":"Source","type":"string","jsonPath":".spec.source"},
                                        {"name":"Keep","type":"integer","jsonPath":".spec.keep"},
                                        {"name":"Ready","type":"boolean","jsonPath":".status.conditions[?(@.type==\\"Ready\\")].status"}],
            "schema":{"openAPIV3Schema":{"type":"object","properties":{
              "spec":{"type":"object","required":["source"],"properties":{
                "source":{"type":"string","minLength":1,"pattern":"^[a-z0-9-]+$"},
                "keep":{"type":"integer","minimum":1,"maximum":100,"default":3},
                "policy":{"type":"string","enum":["Delete","Retain"]},
                "tags":{"type":"array","maxItems":2,"items":{"type":"string"}},
                "extra":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}},
              "status":{"type":"object","properties":{"conditions":{"type":"array","items":{"type":"object",
                "properties":{"type":{"type":"string"},"status":{"type":"string"}}}}}}}}}}\(extraVersion)]}}
        """
    }

    static func backup(_ name: String, spec: String) -> String {
        #"{"apiVersion":"example.ballast.dev/v1","kind":"Backup","metadata":{"name":"\#(name)"},"spec":\#(spec)}"#
    }

    /// Waits (bounded) until the registrar has served the group/version.
    static func served(_ f: HandlerFixture, _ path: String = "/apis/example.ballast.dev/v1") async -> Bool {
        for _ in 0..<200 {
            if await f.request(.GET, path).code == 200 { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return false
    }

    @Test func definitionServesValidatedObjects() async throws {
        try await withFixture { f in
            let created = await f.request(.POST, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", body: Self.definition())
            #expect(created.code == 201, "\(created.body)")
            #expect(created.body["spec"]?["names"]?["listKind"] == "BackupList" && created.body["spec"]?["names"]?["singular"] == "backup")
            #expect(created.body["metadata"]?["finalizers"] == ["customresourcecleanup.apiextensions.k8s.io"])
            #expect(await Self.served(f))
            // The resource is served first, then the status says so (a client that waited for
            // Established can use it at once); under load the status may come a moment later.
            var crd = await f.request(.GET, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/backups.example.ballast.dev")
            let established = await waitUntil(timeout: .seconds(10), interval: .milliseconds(20)) {
                crd = await f.request(.GET, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/backups.example.ballast.dev")
                return (crd.body["status"]?["conditions"]?.arrayValue ?? []).contains { $0["type"] == "Established" && $0["status"] == "True" }
            }
            #expect(established, "\(crd.body["status"] ?? .null)")
            #expect(crd.body["status"]?["storedVersions"] == ["v1"])
            let groups = await f.request(.GET, "/apis")
            #expect(groups.body["groups"]?.arrayValue?.contains { $0["name"] == "example.ballast.dev" } == true)

            // Defaults applied, unknown fields pruned except where the schema keeps them.
            let made = await f.request(.POST, "/apis/example.ballast.dev/v1/namespaces/default/backups",
                                       body: Self.backup("nightly", spec: #"{"source":"data-db-0","unknown":1,"extra":{"free":"form"}}"#))
            #expect(made.code == 201, "\(made.body)")
            #expect(made.body["spec"]?["keep"] == 3)
            #expect(made.body["spec"]?["unknown"] == nil)
            #expect(made.body["spec"]?["extra"]?["free"] == "form")
            // kubectl's default, fieldValidation=Strict: the same unknown field is refused, naming it.
            let strict = await f.request(.POST, "/apis/example.ballast.dev/v1/namespaces/default/backups?fieldValidation=Strict",
                                         body: Self.backup("strict", spec: #"{"source":"data-db-0","unknown":1}"#))
            #expect(strict.code == 400)
            #expect(strict.body["message"]?.stringValue?.hasSuffix(#"strict decoding error: unknown field "spec.unknown""#) == true, "\(strict.body)")
            let patched = await f.request(.PATCH, "/apis/example.ballast.dev/v1/namespaces/default/backups/nightly?fieldValidation=Strict",
                                          body: #"{"spec":{"colour":"red"}}"#, contentType: "application/merge-patch+json")
            #expect(patched.code == 400 && patched.body["message"]?.stringValue?.contains(#"unknown field "spec.colour""#) == true, "\(patched.body)")

            // Schema violations: 422, one cause per field, nothing stored.
            let bad = await f.request(.POST, "/apis/example.ballast.dev/v1/namespaces/default/backups",
                                      body: Self.backup("bad", spec: #"{"keep":0,"policy":"Keep","tags":["a","b","c"],"source":"Not_Valid"}"#))
            #expect(bad.code == 422)
            let message = bad.body["message"]?.stringValue ?? ""
            for expected in ["spec.keep: Invalid value: 0: spec.keep in body should be greater than or equal to 1",
                             #"spec.policy: Unsupported value: "Keep": supported values: "Delete", "Retain""#,
                             "spec.tags: Too many: 3: must have at most 2 items",
                             #"spec.source: Invalid value: "Not_Valid": spec.source in body should match '^[a-z0-9-]+$'"#] {
                #expect(message.contains(expected), "expected \(expected) in \(message)")
            }
            let missing = await f.request(.POST, "/apis/example.ballast.dev/v1/namespaces/default/backups", body: Self.backup("bad", spec: #"{"keep":"3"}"#))
            #expect(missing.body["message"]?.stringValue?.contains("spec.source: Required value") == true)
            #expect(missing.body["message"]?.stringValue?.contains(#"spec.keep: Invalid value: "string": spec.keep in body must be of type integer: "string""#) == true,
                    "\(missing.body)")
            #expect(await f.request(.GET, "/apis/example.ballast.dev/v1/namespaces/default/backups/bad").code == 404)

            // The status subresource: main writes keep the status, status writes keep the spec.
            let status = await f.request(.PATCH, "/apis/example.ballast.dev/v1/namespaces/default/backups/nightly/status",
                                         body: #"{"status":{"conditions":[{"type":"Ready","status":"True"}]},"spec":{"source":"ignored"}}"#,
                                         contentType: "application/merge-patch+json")
            #expect(status.code == 200, "\(status.body)")
            #expect(status.body["spec"]?["source"] == "data-db-0")
            let main = await f.request(.PATCH, "/apis/example.ballast.dev/v1/namespaces/default/backups/nightly",
                                       body: #"{"spec":{"keep":5},"status":{"conditions":[]}}"#, contentType: "application/merge-patch+json")
            #expect(main.body["spec"]?["keep"] == 5 && main.body["status"]?["conditions"]?[0]?["status"] == "True")

            // kubectl's table: the definition's columns.
            let table = await f.request(.GET, "/apis/example.ballast.dev/v1/namespaces/default/backups",
                                        accept: "application/json;as=Table;v=v1;g=meta.k8s.io")
            #expect(table.body["columnDefinitions"]?.arrayValue?.compactMap { $0["name"]?.stringValue } == ["Name", "Source", "Keep", "Ready"])
            #expect(table.body["rows"]?[0]?["cells"] == ["nightly", "data-db-0", 5, "True"])
        }
    }

    @Test func deletingTheDefinitionDeletesItsObjects() async throws {
        try await withFixture { f in
            _ = await f.request(.POST, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", body: Self.definition())
            #expect(await Self.served(f))
            for name in ["a", "b"] {
                #expect(await f.request(.POST, "/apis/example.ballast.dev/v1/namespaces/default/backups",
                                        body: Self.backup(name, spec: #"{"source":"x"}"#)).code == 201)
            }
            _ = await f.request(.DELETE, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/backups.example.ballast.dev")
            // The definition leaves the store, then the registrar (following the definitions through
            // the watch cache) stops serving its resource: as in Kubernetes, a moment later.
            var gone = false, unserved = false
            for _ in 0..<1000 where !(gone && unserved) {
                gone = await f.request(.GET, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/backups.example.ballast.dev").code == 404
                unserved = await f.request(.GET, "/apis/example.ballast.dev/v1/namespaces/default/backups").code == 404
                if !(gone && unserved) { try await Task.sleep(for: .milliseconds(10)) }
            }
            #expect(gone, "the definition goes once its objects are deleted")
            #expect(unserved, "its resource is no longer served once it is gone")
            let left = try await f.handler.store.list(prefix: "/registry/backups.example.ballast.dev/", limit: 10, continueAfter: nil,
                                                      revision: 0) { _ in true }
            #expect(left.items.isEmpty, "no object of the definition is left in the store")
        }
    }

    @Test func badDefinitionsAreRefused() async throws {
        try await withFixture { f in
            let cases: [(String, String)] = [
                (Self.definition().replacingOccurrences(of: #""name":"backups.example.ballast.dev""#, with: #""name":"other.example.ballast.dev""#),
                 #"metadata.name: Invalid value: "other.example.ballast.dev": must be spec.names.plural+"."+spec.group"#),
                (Self.definition(group: "nodots"), #"spec.group: Invalid value: "nodots": should be a domain with at least one dot"#),
                (Self.definition().replacingOccurrences(of: #""storage":true"#, with: #""storage":false"#),
                 "spec.versions: Invalid value: [v1]: must have exactly one version marked as storage version"),
                (Self.definition().replacingOccurrences(of: #""keep":{"type":"integer""#, with: #""keep":{"type":"int""#),
                 #"spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[keep].type: Unsupported value: "int""#),
                (Self.definition().replacingOccurrences(of: #""scope":"Namespaced""#, with: #""scope":"Global""#),
                 #"spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced""#),
                (Self.definition().replacingOccurrences(of: #""scope":"Namespaced","#, with: #""scope":"Namespaced","conversion":{"strategy":"Webhook"},"#),
                 #"spec.conversion.strategy: Unsupported value: "Webhook": supported values: "None""#),
            ]
            for (body, message) in cases {
                let response = await f.request(.POST, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", body: body)
                #expect(response.code == 422, "\(message): \(response.body)")
                #expect(response.body["message"]?.stringValue?.contains(message) == true, "expected \(message), got \(response.body["message"] ?? .null)")
            }
            let list = await f.request(.GET, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
            #expect(list.body["items"]?.arrayValue?.isEmpty == true)
        }
    }

    @Test func anotherServedVersionSetsItsAPIVersion() async throws {
        try await withFixture { f in
            let beta = #",{"name":"v1beta1","served":true,"storage":false,"schema":{"openAPIV3Schema":{"type":"object","properties":{"spec":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}}}}"#
            let created = await f.request(.POST, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", body: Self.definition(extraVersion: beta))
            #expect(created.code == 201, "\(created.body)")
            #expect(await Self.served(f, "/apis/example.ballast.dev/v1beta1"))
            // Written through v1beta1: answered as v1beta1, stored at the storage version v1.
            let made = await f.request(.POST, "/apis/example.ballast.dev/v1beta1/namespaces/default/backups",
                                       body: #"{"apiVersion":"example.ballast.dev/v1beta1","kind":"Backup","metadata":{"name":"weekly"},"spec":{"source":"db"}}"#)
            #expect(made.code == 201 && made.body["apiVersion"] == "example.ballast.dev/v1beta1", "\(made.body)")
            let stored = try #require(try await f.store.get(Array("/registry/backups.example.ballast.dev/default/weekly".utf8)).kv)
            #expect(try JSONValue(parsing: Data(stored.value))["apiVersion"] == "example.ballast.dev/v1")
            // Read through either version, one at a time and in lists: that version's apiVersion.
            for version in ["v1", "v1beta1"] {
                let one = await f.request(.GET, "/apis/example.ballast.dev/\(version)/namespaces/default/backups/weekly")
                #expect(one.body["apiVersion"]?.stringValue == "example.ballast.dev/\(version)", "\(one.body)")
                let list = await f.request(.GET, "/apis/example.ballast.dev/\(version)/namespaces/default/backups")
                #expect(list.body["items"]?.arrayValue?.map { $0["apiVersion"]?.stringValue } == ["example.ballast.dev/\(version)"], "\(list.body)")
            }
            let patched = await f.request(.PATCH, "/apis/example.ballast.dev/v1beta1/namespaces/default/backups/weekly",
                                          body: #"{"spec":{"keep":5}}"#, contentType: "application/merge-patch+json")
            #expect(patched.code == 200 && patched.body["apiVersion"] == "example.ballast.dev/v1beta1", "\(patched.body)")
            // Watch events too, through each version, from the same cached object.
            for version in ["v1", "v1beta1"] {
                let (lines, task) = try await APIWatchTests().startWatch(f, "/apis/example.ballast.dev/\(version)/namespaces/default/backups?watch=true&resourceVersion=0")
                let events = await lines.wait(for: 1)
                task.cancel()
                #expect(events.first?["object"]?["apiVersion"]?.stringValue == "example.ballast.dev/\(version)", "\(events)")
            }
        }
    }

    @Test func aKindAlreadyServedIsNotAccepted() async throws {
        try await withFixture { f in
            _ = await f.request(.POST, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", body: Self.definition())
            #expect(await Self.served(f))
            _ = await f.request(.POST, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", body: Self.definition(name: "copies"))
            var conditions: [JSONValue] = []
            for _ in 0..<200 {
                let crd = await f.request(.GET, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/copies.example.ballast.dev")
                conditions = crd.body["status"]?["conditions"]?.arrayValue ?? []
                if !conditions.isEmpty { break }
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(conditions.contains { $0["type"] == "NamesAccepted" && $0["status"] == "False" && $0["message"] == #""Backup" is already in use"# },
                    "\(conditions)")
            #expect(conditions.contains { $0["type"] == "Established" && $0["status"] == "False" })
            #expect(await f.request(.GET, "/apis/example.ballast.dev/v1/namespaces/default/copies").code == 404)
        }
    }
}
