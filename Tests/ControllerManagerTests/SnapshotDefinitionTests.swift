// The snapshot CRDs: what the binary embeds is what fixtures/crds/ holds, and the real kubectl
// applies them (in the shapes upstream publishes its manifests in: `creationTimestamp: null`, a
// `status` block, `oneOf`, CEL rules, a deprecated second version), prints their columns and
// sees an object that violates a schema refused with the field's path.
import ClusterAPI
import ControllerManager
import Foundation
import Testing
import TestSupport

@Suite("Snapshot CRDs", .serialized, .timeLimit(.minutes(3)))
struct SnapshotDefinitionTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../fixtures/crds").standardized.path

    @Test func theEmbeddedManifestsAreTheFixtures() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.directory).filter { $0.hasSuffix(".yaml") }.sorted()
        #expect(SnapshotDefinitions.manifests.map(\.file) == files, "run python3 scripts/embed-snapshot-crds.py")
        for (file, yaml) in SnapshotDefinitions.manifests {
            let text = try String(contentsOfFile: Self.directory + "/" + file, encoding: .utf8)
            #expect(yaml == text.trimmingCharacters(in: .newlines), "\(file) differs from its embedded copy: run python3 scripts/embed-snapshot-crds.py")
        }
        let definitions = try SnapshotDefinitions.definitions()
        #expect(definitions.map { $0.metadata.name ?? "" }.sorted() == [
            "volumesnapshotclasses.snapshot.storage.k8s.io", "volumesnapshotcontents.snapshot.storage.k8s.io",
            "volumesnapshots.snapshot.storage.k8s.io"])
        let snapshotClass = try SnapshotDefinitions.defaultClass()
        #expect(snapshotClass.metadata.name == "ballast-snapshots")
        #expect(snapshotClass.driver == "loop.csi.ballast.dev")
        #expect(snapshotClass.deletionPolicy == "Delete")
        #expect(snapshotClass.isDefault)
    }

    @Test func kubectlAppliesTheDefinitionsAndTheSchemasRefuseBadObjects() async throws {
        let server = try await ServerProcess.start()
        defer { server.stop() }
        let crds = ["volumesnapshotclasses", "volumesnapshotcontents", "volumesnapshots"].map { Self.directory + "/snapshot.storage.k8s.io_\($0).yaml" }
        for file in crds { _ = try await server.ok("apply", "-f", file) }
        _ = try await server.ok("wait", "--for", "condition=established", "--timeout=60s",
                                "crd/volumesnapshotclasses.snapshot.storage.k8s.io", "crd/volumesnapshotcontents.snapshot.storage.k8s.io",
                                "crd/volumesnapshots.snapshot.storage.k8s.io")
        // Served a moment after Established: the class is applied once discovery lists it.
        let served = await waitUntil(timeout: .seconds(30), interval: .milliseconds(200)) {
            (try? await server.kubectl(["apply", "-f", Self.directory + "/volumesnapshotclass-ballast.yaml"]))?.status == 0
        }
        #expect(served)
        // Applied again unchanged: nothing to do.
        let again = try await server.ok("apply", "-f", Self.directory)
        #expect(again.contains("unchanged"), "\(again)")
        // The schemas are published in /openapi/v3: kubectl explain reads them.
        let explained = try await server.ok("explain", "volumesnapshot.spec")
        #expect(explained.contains("volumeSnapshotClassName") && explained.contains("source"), "\(explained)")
        let table = try await server.ok("get", "vsclass")
        #expect(table.contains("DRIVER") && table.contains("DELETIONPOLICY"), "\(table)")
        #expect(table.contains("ballast-snapshots") && table.contains("loop.csi.ballast.dev") && table.contains("Delete"), "\(table)")

        let badClass = #"{"apiVersion":"snapshot.storage.k8s.io/v1","kind":"VolumeSnapshotClass","metadata":{"name":"bad"},"driver":"d","deletionPolicy":"Keep"}"#
        let refused = try await server.kubectl(["create", "-f", "-"], input: badClass)
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("deletionPolicy: Unsupported value: \"Keep\""), "\(refused.stderr)")
        let badContent = #"{"apiVersion":"snapshot.storage.k8s.io/v1","kind":"VolumeSnapshotContent","metadata":{"name":"bad"},"spec":{"deletionPolicy":"Delete","source":{"snapshotHandle":"snap-1"},"volumeSnapshotRef":{"name":"s","namespace":"default"}}}"#
        let missing = try await server.kubectl(["create", "-f", "-"], input: badContent)
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("spec.driver: Required value"), "\(missing.stderr)")
        let badSize = #"{"apiVersion":"snapshot.storage.k8s.io/v1","kind":"VolumeSnapshotContent","metadata":{"name":"bad"},"spec":{"deletionPolicy":"Delete","driver":"d","source":{"snapshotHandle":"snap-1"},"volumeSnapshotRef":{"name":"s","namespace":"default"}}}"#
        _ = try await server.ok("create", "-f", "-", input: badSize)
        let status = try await server.kubectl(["patch", "volumesnapshotcontent", "bad", "--subresource=status", "--type=merge", "-p", #"{"status":{"restoreSize":-1}}"#])
        #expect(status.status != 0)
        #expect(status.stderr.contains("status.restoreSize"), "\(status.stderr)")

        // A definition with a deprecated second version, as upstream's older manifests have.
        let twoVersions = """
        apiVersion: apiextensions.k8s.io/v1
        kind: CustomResourceDefinition
        metadata:
          creationTimestamp: null
          name: volumebackups.example.ballast.dev
        spec:
          group: example.ballast.dev
          names: {kind: VolumeBackup, listKind: VolumeBackupList, plural: volumebackups, singular: volumebackup}
          scope: Namespaced
          versions:
          - name: v1
            served: true
            storage: true
            schema: {openAPIV3Schema: {type: object, properties: {spec: {type: object, oneOf: [{required: [a]}, {required: [b]}], properties: {a: {type: string}, b: {type: string}}}}}}
            subresources: {status: {}}
          - name: v1beta1
            served: true
            storage: false
            deprecated: true
            deprecationWarning: "example.ballast.dev/v1beta1 VolumeBackup is deprecated; use example.ballast.dev/v1 VolumeBackup"
            schema: {openAPIV3Schema: {type: object, properties: {spec: {type: object, properties: {a: {type: string}, b: {type: string}}}}}}
        status:
          acceptedNames: {kind: "", plural: ""}
          conditions: []
          storedVersions: []
        """
        _ = try await server.ok("apply", "-f", "-", input: twoVersions)
        _ = try await server.ok("wait", "--for", "condition=established", "--timeout=60s", "crd/volumebackups.example.ballast.dev")
    }
}
