import Foundation
import Testing

@testable import ClusterAPI

@Suite("Object model round trips")
struct ModelRoundTripTests {
    /// Decodes the manifest as the type its `kind` names, re-encodes it and compares JSON trees.
    static func roundTrip(_ text: String) throws -> JSONValue {
        let kind = try decode(TypeMeta.self, text).kind ?? ""
        func encoded<T: Codable>(_ type: T.Type) throws -> JSONValue { try jsonTree(of: decode(T.self, text)) }
        switch kind {
        case "Pod": return try encoded(Pod.self)
        case "Namespace": return try encoded(Namespace.self)
        case "Node": return try encoded(Node.self)
        case "PersistentVolume": return try encoded(PersistentVolume.self)
        case "PersistentVolumeClaim": return try encoded(PersistentVolumeClaim.self)
        case "Event": return try encoded(Event.self)
        case "Service": return try encoded(Service.self)
        case "Endpoints": return try encoded(Endpoints.self)
        case "StorageClass": return try encoded(StorageClass.self)
        case "VolumeAttachment": return try encoded(VolumeAttachment.self)
        case "CSIDriver": return try encoded(CSIDriver.self)
        case "CSINode": return try encoded(CSINode.self)
        case "Lease": return try encoded(Lease.self)
        case "PodList": return try encoded(ClusterAPI.List<Pod>.self)
        default: throw CocoaError(.coderInvalidValue)
        }
    }

    @Test(arguments: [
        Manifests.pod, Manifests.namespace, Manifests.node, Manifests.persistentVolume,
        Manifests.persistentVolumeClaim, Manifests.event, Manifests.service, Manifests.endpoints,
        Manifests.storageClass, Manifests.volumeAttachment, Manifests.csiDriver, Manifests.csiNode,
        Manifests.lease, Manifests.podList,
    ])
    func roundTripsVerbatim(manifest: String) throws {
        #expect(try Self.roundTrip(manifest) == jsonTree(manifest))
    }

    @Test func podKeepsUnknownFieldsAtEveryLevel() throws {
        let pod = try decode(Pod.self, Manifests.pod)
        #expect(pod.unknownFields["x-top-level-extra"] == ["kept": true])
        #expect(pod.spec.unknownFields["futureSpecField"] == "x")
        #expect(pod.spec.containers[0].unknownFields["futureContainerField"] == ["level": 3])
        let shared = try #require(pod.spec.volumes?[2])
        #expect(shared.unknownFields["nfs"]?["server"] == "nfs.example.com")
        #expect(shared.unknownFields["futureVolumeField"] == 1)
        #expect(shared.sourceNames == ["nfs"])
        #expect(pod.spec.volumes?[0].persistentVolumeClaim?.claimName == "web-data")
        #expect(pod.spec.containers[0].resources?.requests?["memory"] == (try Quantity("128Mi")))
        #expect(pod.spec.tolerations?[0].operator == "Equal")
    }

    @Test func typedFieldsDecode() throws {
        let pv = try decode(PersistentVolume.self, Manifests.persistentVolume)
        #expect(pv.spec.csi?.volumeHandle == "vol-1")
        #expect(pv.spec.csi?.unknownFields["futureCSIField"] == "kept")
        #expect(pv.spec.claimRef?.name == "web-data")
        #expect(pv.spec.capacity?["storage"] == (try Quantity("10Gi")))
        let node = try decode(Node.self, Manifests.node)
        #expect(node.status.allocatable?["cpu"] == (try Quantity("3.8")))
        #expect(node.status.nodeInfo?.kubeletVersion == "v1.32.0")
        #expect(node.status.unknownFields["runtimeHandlers"] != nil)
        let lease = try decode(Lease.self, Manifests.lease)
        #expect(lease.spec.renewTime?.microseconds == 123_456)
        #expect(lease.spec.renewTime?.rfc3339 == "2026-01-01T00:00:10.123456Z")
        let list = try decode(ClusterAPI.List<Pod>.self, Manifests.podList)
        #expect(list.items.count == 1)
        #expect(list.metadata.continueToken == "abc")
        let attachment = try decode(VolumeAttachment.self, Manifests.volumeAttachment)
        #expect(attachment.spec.source.unknownFields["futureSource"] == 1)
        #expect(attachment.status?.attached == true)
    }

    @Test func emptySpecAndStatusAreOmitted() throws {
        let pvc = PersistentVolumeClaim(metadata: ObjectMeta(name: "a", namespace: "b"))
        #expect(try jsonTree(of: pvc) == ["apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": ["name": "a", "namespace": "b"]])
    }

    @Test func listHeader() throws {
        let list = ClusterAPI.List<StorageClass>(items: [StorageClass(metadata: ObjectMeta(name: "fast"), provisioner: "p")])
        let tree = try jsonTree(of: list)
        #expect(tree["apiVersion"] == "storage.k8s.io/v1")
        #expect(tree["kind"] == "StorageClassList")
        #expect(tree["metadata"] == [:])
        #expect(tree["items"]?[0]?["provisioner"] == "p")
        #expect(StorageClass.apiGroup == "storage.k8s.io")
        #expect(Pod.apiGroup == "")
    }

    @Test(arguments: [
        ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00.000000Z"),
        ("2026-01-01T00:00:00.5Z", "2026-01-01T00:00:00.500000Z"),
        ("2026-01-01T01:00:00.1234567+01:00", "2026-01-01T00:00:00.123456Z"),
    ])
    func microTimeNormalises(input: String, output: String) throws {
        #expect(try MicroTime(rfc3339: input).rfc3339 == output)
    }
}
