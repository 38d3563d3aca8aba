// `ProjectedSource` (a list and a watch whose objects the caller's projection makes from their
// JSON), `createDiscardingResult`, and the path escaping fast path, against the real API handler.
import APIClient
import APIServerTesting
import ClusterAPI
import Foundation
import Logging
import Testing

@Suite struct ProjectedSourceTests {
    /// Keeps a claim's name, namespace, resourceVersion and requested storage only.
    static let project: @Sendable (JSONValue) throws -> PersistentVolumeClaim = { json in
        var claim = PersistentVolumeClaim()
        claim.metadata.name = json["metadata"]?["name"]?.stringValue
        claim.metadata.namespace = json["metadata"]?["namespace"]?.stringValue
        claim.metadata.resourceVersion = json["metadata"]?["resourceVersion"]?.stringValue
        if let storage = json["spec"]?["resources"]?["requests"]?["storage"]?.stringValue {
            claim.spec.resources = VolumeResourceRequirements(requests: ["storage": try Quantity(storage)])
        }
        return claim
    }

    static func claim(_ name: String, size: String = "1Gi") throws -> PersistentVolumeClaim {
        var claim = PersistentVolumeClaim(metadata: ObjectMeta(name: name, namespace: "default", labels: ["app": "db"]))
        claim.spec.accessModes = ["ReadWriteOnce"]
        claim.spec.resources = VolumeResourceRequirements(requests: ["storage": try Quantity(size)])
        return claim
    }

    @Test func listsAndWatchesThroughTheProjection() async throws {
        let api = try await InProcessAPIServer.start()
        let client = api.client()
        _ = try await client.create(try Self.claim("a"))
        _ = try await client.create(try Self.claim("b", size: "2Gi"))
        let source = ProjectedSource(client, PersistentVolumeClaim.self, namespace: "default", labelSelector: "app=db", decode: Self.project)
        let list = try await source.list()
        #expect(list.items.map(\.metadata.name) == ["a", "b"])
        #expect(list.items.map { $0.spec.resources?.requests?["storage"] } == [try Quantity("1Gi"), try Quantity("2Gi")])
        #expect(list.items.allSatisfy { $0.spec.accessModes == nil && $0.metadata.labels == nil }, "only what the projection keeps")
        #expect(list.metadata.resourceVersion != nil)

        let events = try await source.watch(from: list.metadata.resourceVersion ?? "")
        _ = try await client.create(try Self.claim("c", size: "3Gi"))
        _ = try await client.mergePatch(PersistentVolumeClaim.self, name: "a", namespace: "default",
                                        patch: ["metadata": ["annotations": ["note": "changed"]]])
        var seen: [String] = []
        for try await event in events where event.kind != .bookmark {
            seen.append("\(event.kind.rawValue) \(event.object?.metadata.name ?? "") \(event.object?.spec.resources?.requests?["storage"]?.description ?? "")")
            if seen.count == 2 { break }
        }
        #expect(seen == ["ADDED c 3Gi", "MODIFIED a 1Gi"])

        // An informer over it syncs with the projected objects.
        let informer = Informer<PersistentVolumeClaim>(source, logger: Logger(label: "test"))
        let running = Task { await informer.run() }
        await informer.waitForSync()
        #expect(await informer.list().map(\.metadata.name) == ["a", "b", "c"])
        running.cancel()
        await running.value
        await api.close()
    }

    @Test func refusalsAndProjectionErrorsAreThrown() async throws {
        let api = try await InProcessAPIServer.start()
        let client = api.client()
        let badSelector = ProjectedSource(client, PersistentVolumeClaim.self, namespace: "default", fieldSelector: "spec.nothing=x",
                                          decode: Self.project)
        do {
            _ = try await badSelector.list()
            Issue.record("an unknown field selector must be refused")
        } catch let error as APIError {
            #expect(error.code == 400, "\(error)")
        }
        _ = try await client.create(try Self.claim("a"))
        let failing = ProjectedSource(client, PersistentVolumeClaim.self, namespace: "default") { _ in
            throw APIError.configuration("projection failed")
        }
        do {
            _ = try await failing.list()
            Issue.record("a projection's error must fail the list")
        } catch let error as APIError {
            #expect("\(error)".contains("projection failed"), "\(error)")
        }
        await api.close()
    }

    @Test func createDiscardingResultStoresAndReportsRefusals() async throws {
        let api = try await InProcessAPIServer.start()
        let client = api.client()
        try await client.createDiscardingResult(try Self.claim("kept"))
        let stored = try await client.get(PersistentVolumeClaim.self, name: "kept", namespace: "default")
        #expect(stored.metadata.uid != nil)
        do {
            try await client.createDiscardingResult(try Self.claim("kept"))
            Issue.record("a second create of the same name must be refused")
        } catch let error as APIError {
            #expect(error.isAlreadyExists, "\(error)")
        }
        await api.close()
    }

    @Test func pathsEscapeOnlyWhatNeedsIt() {
        #expect(ResourcePath.object(Pod.self, name: "web-0.a_b~c", namespace: "default") == "/api/v1/namespaces/default/pods/web-0.a_b~c")
        #expect(ResourcePath.object(Pod.self, name: "a b/c", namespace: "ns") == "/api/v1/namespaces/ns/pods/a%20b%2Fc")
        #expect(ResourcePath.object(Pod.self, name: "", namespace: "ns") == "/api/v1/namespaces/ns/pods/")
    }
}
