// Calls on any resource discovery lists, by `APIResource` rather than by Swift type (client-go's
// dynamic and metadata clients): objects are decoded as the caller asks, usually
// `PartialObjectMetadata` (type and metadata only). For clients that handle every resource
// alike, such as the garbage collector.
import ClusterAPI
import Foundation
import HTTPKit

/// The patch formats of `KubeClient.patch(_:resource:…)`.
public enum PatchType: String, Sendable {
    /// RFC 7386 (`application/merge-patch+json`).
    case merge = "application/merge-patch+json"
    /// Kubernetes' strategic merge patch (`application/strategic-merge-patch+json`).
    case strategicMerge = "application/strategic-merge-patch+json"
    /// RFC 6902 (`application/json-patch+json`).
    case json = "application/json-patch+json"
}

extension KubeClient {
    /// One object of `resource`, decoded as `T`.
    public func get<T: APIObject>(_ type: T.Type, resource: APIResource, name: String, namespace: String?) async throws -> T {
        try await call(.GET, resource.objectPath(name: name, namespace: namespace))
    }

    /// The objects of `resource` (in `namespace`, or all), decoded as `T`.
    public func list<T: APIObject>(_ type: T.Type, resource: APIResource, namespace: String? = nil,
                                   resourceVersion: String? = nil) async throws -> List<T> {
        var query: [String: String] = [:]
        query["resourceVersion"] = resourceVersion
        return try await call(.GET, resource.collectionPath(namespace: namespace), query: query)
    }

    /// Changes to the objects of `resource` from `resourceVersion` on, decoded as `T` (see the
    /// typed `watch`).
    public func watch<T: APIObject>(_ type: T.Type, resource: APIResource, namespace: String? = nil, resourceVersion: String? = nil,
                                    bookmarks: Bool = true, timeoutSeconds: Int? = nil) async throws -> AsyncThrowingStream<WatchEvent<T>, any Error> {
        let lines = try await watchLines(path: resource.collectionPath(namespace: namespace), labelSelector: nil, fieldSelector: nil,
                                         resourceVersion: resourceVersion, bookmarks: bookmarks, timeoutSeconds: timeoutSeconds)
        return Self.events(lines, as: type)
    }

    /// Deletes one object of `resource` with `options`.
    public func delete(resource: APIResource, name: String, namespace: String?, options: DeleteOptions) async throws {
        let body = try JSONEncoder().encode(options.body)
        let response = try await send(.DELETE, resource.objectPath(name: name, namespace: namespace), json: body)
        guard (200..<300).contains(response.status.code) else { throw Self.apiError(Int(response.status.code), response.body) }
    }

    /// Patches one object of `resource`; returns it as it is after the patch, decoded as `T`.
    public func patch<T: APIObject>(_ type: T.Type, resource: APIResource, name: String, namespace: String?, patch: JSONValue,
                                    as patchType: PatchType) async throws -> T {
        try await call(.PATCH, resource.objectPath(name: name, namespace: namespace), body: patch.jsonData,
                       contentType: patchType.rawValue)
    }
}

/// A list-watch source for any resource: an informer of `PartialObjectMetadata` (or another
/// type) over a resource discovery found.
public struct DynamicResourceSource<Object: APIObject>: ListWatchSource {
    public let client: KubeClient
    public let resource: APIResource

    public init(_ client: KubeClient, _ resource: APIResource, as type: Object.Type = PartialObjectMetadata.self) {
        self.client = client
        self.resource = resource
    }

    public func list() async throws -> List<Object> {
        try await client.list(Object.self, resource: resource)
    }

    public func watch(from resourceVersion: String) async throws -> AsyncThrowingStream<WatchEvent<Object>, any Error> {
        try await client.watch(Object.self, resource: resource, resourceVersion: resourceVersion, timeoutSeconds: 1800)
    }
}
