// A resource read through a projection: the list and the watch as `ResourceSource` makes them,
// but each object made by the caller's `decode` from its JSON instead of by the generated
// model's full `Decodable`. For an informer that reads a few fields of large objects: the
// scheduler reads about twenty of a Pod's hundreds, and decoding every field of every pod event
// was its largest cost after the decisions themselves.
import ClusterAPI
import Foundation

public struct ProjectedSource<Object: APIObject>: ListWatchSource {
    public let client: KubeClient
    public var namespace: String?
    public var labelSelector: String?
    public var fieldSelector: String?
    /// Makes an object from one item's (or one watch event's object's) JSON. It must accept a
    /// bookmark's object (only `metadata.resourceVersion` set) and should throw on a field it
    /// reads that has the wrong type, as the full decoding would.
    public let decode: @Sendable (JSONValue) throws -> Object

    public init(_ client: KubeClient, _ type: Object.Type, namespace: String? = nil, labelSelector: String? = nil,
                fieldSelector: String? = nil, decode: @escaping @Sendable (JSONValue) throws -> Object) {
        self.client = client
        self.namespace = namespace
        self.labelSelector = labelSelector
        self.fieldSelector = fieldSelector
        self.decode = decode
    }

    public func list() async throws -> List<Object> {
        var query: [String: String] = [:]
        query["labelSelector"] = labelSelector
        query["fieldSelector"] = fieldSelector
        let path = ResourcePath.collection(Object.self, namespace: namespace)
        let response = try await client.send(.GET, path, query: query)
        guard (200..<300).contains(response.status.code) else { throw KubeClient.apiError(Int(response.status.code), response.body) }
        do {
            let document = try JSONValue(parsing: response.body)
            var list = List<Object>()
            if let metadata = document["metadata"], !metadata.isNull { list.metadata = try JSONValueDecoder().decode(ListMeta.self, from: metadata) }
            if let items = document["items"], !items.isNull {
                guard let elements = items.arrayValue else { throw APIError.transport("items is not an array") }
                list.items = try elements.map(decode)
            }
            return list
        } catch let error as APIError {
            throw error
        } catch {
            throw APIError.transport("GET \(path): the answer is not a \(Object.defaultKind)List: \(error)")
        }
    }

    public func watch(from resourceVersion: String) async throws -> AsyncThrowingStream<WatchEvent<Object>, any Error> {
        let lines = try await client.watchLines(Object.self, namespace: namespace, labelSelector: labelSelector, fieldSelector: fieldSelector,
                                                resourceVersion: resourceVersion.isEmpty ? nil : resourceVersion, timeoutSeconds: 1800)
        let decode = decode
        return AsyncThrowingStream { continuation in
            let reader = Task {
                do {
                    for try await line in lines { continuation.yield(try KubeClient.event(line, decode: decode)) }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in reader.cancel() }
        }
    }
}
