// `pods/{name}/binding`: how a scheduler assigns a pod to a node (core/v1 Binding).
import ClusterAPI
import Foundation

extension KubeClient {
    /// Binds the pod `name` (with `uid`, so that a re-created namesake is never bound) to `node`.
    /// The server refuses (409) a pod that already has a node or is being deleted.
    public func bind(pod name: String, namespace: String, uid: String?, to node: String) async throws {
        var metadata: [String: JSONValue] = ["name": .string(name), "namespace": .string(namespace)]
        if let uid, !uid.isEmpty { metadata["uid"] = .string(uid) }
        let binding: JSONValue = [
            "apiVersion": "v1", "kind": "Binding", "metadata": .object(metadata),
            "target": ["apiVersion": "v1", "kind": "Node", "name": .string(node)],
        ]
        let path = ResourcePath.object(Pod.self, name: name, namespace: namespace) + "/binding"
        let response = try await send(.POST, path, json: binding.jsonData)
        guard (200..<300).contains(response.status.code) else { throw Self.apiError(Int(response.status.code), response.body) }
    }
}
