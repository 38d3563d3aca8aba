// What the scheduler reads of a Pod, taken straight from the API server's JSON: its pod informer
// decodes this projection instead of the whole generated model (`ProjectedSource`). A pod is
// seen at least twice (created, then bound), and decoding every field of each (with the unknown
// ones kept) was a fifth of the scheduler process's CPU in `bench scheduler`.
//
// The projection is a `Pod` with only these fields set; every other field is absent:
//
//   metadata  name, namespace, uid, resourceVersion, labels, deletionTimestamp
//   spec      nodeName, schedulerName, schedulingGates, priority, nodeSelector, affinity,
//             tolerations, overhead, volumes (name, persistentVolumeClaim, ephemeral),
//             containers and initContainers (name, resources.requests, ports)
//   status    phase; conditions only while the pod has no node (the scheduler writes its
//             PodScheduled condition only on pods it has not placed)
//
// Whatever the scheduler comes to read of a pod must be added here (`PodProjectionTests` checks
// that the filters and the cache see the same pod through the projection as through the full
// decoding). Nothing the scheduler writes is built from a projected pod: its writes are the
// binding (by name and uid), a merge patch of the PodScheduled condition, and events.
import APIClient
import ClusterAPI

/// A field of a pod's JSON that does not have the type the API gives it.
struct ProjectionError: Error, CustomStringConvertible {
    let description: String
}

extension Pod {
    /// The scheduler's projection of the pod `json` (above). Throws when a field it reads has
    /// the wrong JSON type.
    init(schedulingView json: JSONValue) throws {
        let reader = FieldReader(json, path: "")
        self.init()
        apiVersion = try reader.string("apiVersion")
        kind = try reader.string("kind")
        let meta = try reader.object("metadata")
        metadata.name = try meta.string("name")
        metadata.namespace = try meta.string("namespace")
        metadata.uid = try meta.string("uid")
        metadata.resourceVersion = try meta.string("resourceVersion")
        metadata.labels = try meta.stringMap("labels")
        metadata.deletionTimestamp = try meta.decoded("deletionTimestamp", Time.self)

        let spec = try reader.object("spec")
        self.spec.nodeName = try spec.string("nodeName")
        self.spec.schedulerName = try spec.string("schedulerName")
        self.spec.schedulingGates = try spec.array("schedulingGates")?.map(\.value)
        self.spec.priority = try spec.decoded("priority", Int32.self)
        self.spec.nodeSelector = try spec.stringMap("nodeSelector")
        self.spec.affinity = spec.raw("affinity")
        self.spec.tolerations = try spec.decoded("tolerations", [Toleration].self)
        self.spec.overhead = try spec.quantities("overhead")
        self.spec.volumes = try spec.array("volumes")?.map { entry in
            let volume = entry
            var projected = Volume(name: try volume.string("name") ?? "")
            projected.persistentVolumeClaim = try volume.decoded("persistentVolumeClaim", PersistentVolumeClaimVolumeSource.self)
            projected.ephemeral = volume.raw("ephemeral")
            return projected
        }
        self.spec.containers = try spec.array("containers").map { try $0.map(Self.container) } ?? []
        self.spec.initContainers = try spec.array("initContainers")?.map(Self.container)

        let status = try reader.object("status")
        self.status.phase = try status.string("phase")
        if (self.spec.nodeName ?? "").isEmpty {
            self.status.conditions = try status.decoded("conditions", [PodCondition].self)
        }
    }

    private static func container(_ entry: FieldReader) throws -> Container {
        let reader = entry
        var container = Container(name: try reader.string("name") ?? "")
        let resources = try reader.object("resources")
        if let requests = try resources.quantities("requests") { container.resources = ResourceRequirements(requests: requests) }
        container.ports = try reader.decoded("ports", [ContainerPort].self)
        return container
    }
}

/// Reads the members of one JSON object (absent or null: nil), naming the field in its errors.
struct FieldReader {
    let value: JSONValue
    private let members: [String: JSONValue]
    let path: String

    init(_ value: JSONValue, path: String) {
        self.value = value
        self.path = path
        members = value.objectValue ?? [:]
    }

    private func present(_ key: String) -> JSONValue? {
        guard let member = members[key], !member.isNull else { return nil }
        return member
    }

    private func field(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    private func mismatch(_ key: String, _ expected: String) -> ProjectionError {
        ProjectionError(description: "\(field(key)): expected \(expected)")
    }

    func raw(_ key: String) -> JSONValue? { present(key) }

    func string(_ key: String) throws -> String? {
        guard let member = present(key) else { return nil }
        guard let text = member.stringValue else { throw mismatch(key, "a string") }
        return text
    }

    /// The member `key` as an object's reader (an empty one when absent).
    func object(_ key: String) throws -> FieldReader {
        guard let member = present(key) else { return FieldReader(.object([:]), path: field(key)) }
        guard member.objectValue != nil else { throw mismatch(key, "an object") }
        return FieldReader(member, path: field(key))
    }

    func array(_ key: String) throws -> [FieldReader]? {
        guard let member = present(key) else { return nil }
        guard let elements = member.arrayValue else { throw mismatch(key, "an array") }
        return elements.enumerated().map { FieldReader($0.element, path: "\(field(key))[\($0.offset)]") }
    }

    func stringMap(_ key: String) throws -> [String: String]? {
        guard let member = present(key) else { return nil }
        guard let entries = member.objectValue else { throw mismatch(key, "an object of strings") }
        var map: [String: String] = [:]
        map.reserveCapacity(entries.count)
        for (name, value) in entries {
            guard let text = value.stringValue else { throw mismatch("\(key).\(name)", "a string") }
            map[name] = text
        }
        return map
    }

    /// A resource list: quantities by name, a string parsed directly (the common case), any
    /// other form as the generated model decodes it.
    func quantities(_ key: String) throws -> [String: Quantity]? {
        guard let member = present(key) else { return nil }
        guard let entries = member.objectValue else { throw mismatch(key, "an object of quantities") }
        var map: [String: Quantity] = [:]
        map.reserveCapacity(entries.count)
        for (name, value) in entries {
            do {
                if let text = value.stringValue {
                    map[name] = try Quantity(text)
                } else {
                    map[name] = try JSONValueDecoder().decode(Quantity.self, from: value)
                }
            } catch {
                throw ProjectionError(description: "\(field(key)).\(name): \(error)")
            }
        }
        return map
    }

    /// A member decoded whole by the generated model (small, and mostly absent).
    func decoded<T: Decodable>(_ key: String, _ type: T.Type) throws -> T? {
        guard let member = present(key) else { return nil }
        do {
            return try JSONValueDecoder().decode(T.self, from: member)
        } catch {
            throw ProjectionError(description: "\(field(key)): \(error)")
        }
    }
}
