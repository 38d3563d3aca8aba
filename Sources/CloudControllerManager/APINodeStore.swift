// `NodeStore` over the API server.
import APIClient
import ClusterAPI

public struct APINodeStore: NodeStore {
    public let client: KubeClient

    public init(client: KubeClient) { self.client = client }

    public func listNodes() async throws -> [Node] {
        try await client.list(Node.self).items
    }

    public func updateNode(_ node: Node) async throws -> Node {
        try await mapped { try await client.update(node) }
    }

    public func updateNodeStatus(_ node: Node) async throws -> Node {
        try await mapped { try await client.updateStatus(node) }
    }

    public func deleteNode(name: String) async throws {
        try await mapped { try await client.delete(Node.self, name: name) }
    }

    private func mapped<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as APIError where error.isConflict {
            throw NodeStoreError.conflict(error.description)
        } catch let error as APIError where error.isNotFound {
            throw NodeStoreError.notFound(error.description)
        }
    }
}
