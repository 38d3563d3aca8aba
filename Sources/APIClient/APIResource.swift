// The resources a server serves, as its discovery documents list them (`/api/v1`, `/apis`,
// `/apis/<group>/<version>`): what a client that handles every resource alike needs to build
// paths and to map an ownerReference's apiVersion and kind to a resource (client-go's
// discovery client and REST mapper, in small).
import ClusterAPI
import Foundation

/// One resource of a group/version, as an `APIResourceList` entry describes it.
public struct APIResource: Sendable, Hashable, CustomStringConvertible {
    /// The API group; empty for the core group.
    public var group: String
    public var version: String
    /// The plural name in paths: `pods`, `replicasets`.
    public var name: String
    public var kind: String
    public var namespaced: Bool
    public var verbs: Set<String>

    public init(group: String, version: String, name: String, kind: String, namespaced: Bool, verbs: Set<String>) {
        self.group = group
        self.version = version
        self.name = name
        self.kind = kind
        self.namespaced = namespaced
        self.verbs = verbs
    }

    /// `v1` or `apps/v1`: an object's `apiVersion`.
    public var groupVersion: String { group.isEmpty ? version : "\(group)/\(version)" }

    /// `pods` or `replicasets.apps`, as kubectl and Kubernetes' messages name a resource.
    public var description: String { group.isEmpty ? name : "\(name).\(group)" }

    /// The collection's path, in `namespace` for a namespaced resource (all namespaces when nil).
    public func collectionPath(namespace: String?) -> String {
        let prefix = group.isEmpty ? "/api/\(version)" : "/apis/\(group)/\(version)"
        if namespaced, let namespace, !namespace.isEmpty { return "\(prefix)/namespaces/\(Self.escape(namespace))/\(name)" }
        return "\(prefix)/\(name)"
    }

    /// One object's path.
    public func objectPath(name object: String, namespace: String?) -> String {
        collectionPath(namespace: namespace) + "/" + Self.escape(object)
    }

    private static func escape(_ segment: String) -> String {
        segment.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? segment
    }
}

/// What discovery found: the resources of every group's preferred version, and the
/// group/versions whose document could not be read (their resources are missing from
/// `resources`, which is then incomplete — client-go's `ErrGroupDiscoveryFailed`).
public struct DiscoveredResources: Sendable {
    public var resources: [APIResource]
    /// group/version → why it could not be read.
    public var failedGroups: [String: String]

    public var isComplete: Bool { failedGroups.isEmpty }
}

extension KubeClient {
    /// The resources (no subresources) of the core group's `v1` and of every other group's
    /// preferred version (client-go's `ServerPreferredResources`). Throws only when `/api` or
    /// `/apis` cannot be read; a group/version that fails is reported in `failedGroups`.
    public func serverPreferredResources() async throws -> DiscoveredResources {
        var groupVersions: [(group: String, version: String)] = []
        let core = try await document("/api")
        for version in core["versions"]?.arrayValue ?? [] {
            if let version = version.stringValue { groupVersions.append(("", version)) }
        }
        let groups = try await document("/apis")
        for group in groups["groups"]?.arrayValue ?? [] {
            guard let name = group["name"]?.stringValue else { continue }
            let preferred = group["preferredVersion"]?["version"]?.stringValue
                ?? group["versions"]?[0]?["version"]?.stringValue
            if let preferred { groupVersions.append((name, preferred)) }
        }
        var result = DiscoveredResources(resources: [], failedGroups: [:])
        for (group, version) in groupVersions {
            let path = group.isEmpty ? "/api/\(version)" : "/apis/\(group)/\(version)"
            do {
                let list = try await document(path)
                for entry in list["resources"]?.arrayValue ?? [] {
                    guard let name = entry["name"]?.stringValue, !name.contains("/"), let kind = entry["kind"]?.stringValue else { continue }
                    let verbs = Set((entry["verbs"]?.arrayValue ?? []).compactMap(\.stringValue))
                    result.resources.append(APIResource(group: group, version: version, name: name, kind: kind,
                                                        namespaced: entry["namespaced"]?.boolValue ?? false, verbs: verbs))
                }
            } catch {
                result.failedGroups[group.isEmpty ? version : "\(group)/\(version)"] = "\(error)"
            }
        }
        return result
    }

    private func document(_ path: String) async throws -> JSONValue {
        let response = try await send(.GET, path)
        guard (200..<300).contains(response.status.code) else { throw Self.apiError(Int(response.status.code), response.body) }
        do {
            return try JSONValue(parsing: response.body)
        } catch {
            throw APIError.transport("GET \(path): the answer is not JSON: \(error)")
        }
    }
}
