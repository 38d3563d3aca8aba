// The node controllers against the in-memory cloud and an in-memory node store that enforces
// resourceVersion like the API server does.
import ClusterAPI
import CloudControllerManager
import CloudProvider
import Foundation
import Logging
import Testing

/// Nodes in memory, with optimistic concurrency on resourceVersion.
actor MemoryNodeStore: NodeStore {
    private var nodes: [String: Node] = [:]
    private var version = 0

    func add(_ name: String, taints: [Taint] = [Taint(key: CloudTaint.uninitialized, value: "true", effect: "NoSchedule")],
             annotations: [String: String]? = nil) -> Node {
        version += 1
        var node = Node(metadata: ObjectMeta(name: name, resourceVersion: String(version), annotations: annotations))
        node.spec.taints = taints
        nodes[name] = node
        return node
    }

    func node(_ name: String) -> Node? { nodes[name] }

    func listNodes() async throws -> [Node] { nodes.values.sorted { ($0.metadata.name ?? "") < ($1.metadata.name ?? "") } }

    func updateNode(_ node: Node) async throws -> Node {
        try store(node) { stored in
            var next = node
            next.status = stored.status
            return next
        }
    }

    func updateNodeStatus(_ node: Node) async throws -> Node {
        try store(node) { stored in
            var next = stored
            next.status = node.status
            return next
        }
    }

    func deleteNode(name: String) async throws {
        guard nodes.removeValue(forKey: name) != nil else { throw NodeStoreError.notFound(name) }
    }

    private func store(_ node: Node, _ merge: (Node) -> Node) throws -> Node {
        let name = node.metadata.name ?? ""
        guard let stored = nodes[name] else { throw NodeStoreError.notFound(name) }
        guard stored.metadata.resourceVersion == node.metadata.resourceVersion else { throw NodeStoreError.conflict(name) }
        version += 1
        var next = merge(stored)
        next.metadata.resourceVersion = String(version)
        nodes[name] = next
        return next
    }
}

private func controller() async throws -> (NodeController, CloudSimulator, MemoryNodeStore) {
    let cloud = try await CloudSimulator.inMemory()
    let store = MemoryNodeStore()
    var logger = Logger(label: "test.ccm")
    logger.logLevel = .warning
    return (NodeController(cloud: cloud, nodes: store, logger: logger), cloud, store)
}

@Suite struct NodeControllerTests {
    @Test func initialisesANodeFromItsInstance() async throws {
        let (ccm, cloud, store) = try await controller()
        let instance = try await cloud.registerInstance(RegisterInstanceRequest(name: "node-a", zone: "ballast-1b", type: "sim.large"))
        _ = await store.add("node-a", taints: [Taint(key: CloudTaint.uninitialized, value: "true", effect: "NoSchedule"),
                                                Taint(key: "dedicated", value: "storage", effect: "NoSchedule")])
        let outcomes = try await ccm.reconcileAll()
        #expect(try outcomes["node-a"]?.get() == .initialized(instanceID: instance.id))
        let node = try #require(await store.node("node-a"))
        #expect(node.spec.providerID == "ballast://ballast-1b/\(instance.id)")
        #expect(node.metadata.labels?[CloudLabel.region] == "ballast-1")
        #expect(node.metadata.labels?[CloudLabel.zone] == "ballast-1b")
        #expect(node.metadata.labels?[CloudLabel.instanceType] == "sim.large")
        #expect(node.spec.taints?.map(\.key) == ["dedicated"], "only the cloud's taint goes")
        #expect(node.status.addresses?.map(\.type) == ["InternalIP", "Hostname"])
        #expect(node.status.addresses?.last?.address == "node-a")
        // A second pass changes nothing.
        let version = node.metadata.resourceVersion
        #expect(try await ccm.reconcileAll()["node-a"]?.get() == .unchanged)
        #expect(await store.node("node-a")?.metadata.resourceVersion == version)
    }

    @Test("a kubelet's --node-ip (provided-node-ip) is the node's InternalIP, whether or not the cloud knows it")
    func providedNodeIP() async throws {
        let (ccm, cloud, store) = try await controller()
        _ = try await cloud.registerInstance(RegisterInstanceRequest(name: "known", zone: "ballast-1a", addresses: [
            InstanceAddress(type: "InternalIP", address: "127.0.1.9"), InstanceAddress(type: "InternalIP", address: "127.0.1.5")]))
        _ = try await cloud.registerInstance(RegisterInstanceRequest(name: "unknown", zone: "ballast-1a"))
        _ = await store.add("known", annotations: [CloudAnnotation.providedNodeIP: "127.0.1.5"])
        _ = await store.add("unknown", annotations: [CloudAnnotation.providedNodeIP: "127.0.1.7"])
        _ = try await ccm.reconcileAll()
        let known = try #require(await store.node("known"))
        #expect(known.status.addresses?.filter { $0.type == "InternalIP" }.map(\.address) == ["127.0.1.5"])
        let unknown = try #require(await store.node("unknown"))
        #expect(unknown.status.addresses?.first == NodeAddress(type: "InternalIP", address: "127.0.1.7"))
        #expect(unknown.status.addresses?.filter { $0.type == "InternalIP" }.count == 1)
    }

    @Test func aNodeWithoutAnInstanceWaits() async throws {
        let (ccm, cloud, store) = try await controller()
        _ = await store.add("node-x")
        #expect(try await ccm.reconcileAll()["node-x"]?.get() == .waitingForInstance)
        #expect(await store.node("node-x")?.spec.taints?.first?.key == CloudTaint.uninitialized)
        _ = try await cloud.registerInstance(RegisterInstanceRequest(name: "node-x"))
        if case .initialized = try await ccm.reconcileAll()["node-x"]?.get() {} else { Issue.record("the node should initialise once its instance exists") }
    }

    @Test func stoppedInstancesTaintAndTerminatedOnesDelete() async throws {
        let (ccm, cloud, store) = try await controller()
        let instance = try await cloud.registerInstance(RegisterInstanceRequest(name: "node-a"))
        _ = await store.add("node-a")
        _ = try await ccm.reconcileAll()
        _ = try await cloud.setInstanceState(id: instance.id, to: .stopped)
        #expect(try await ccm.reconcileAll()["node-a"]?.get() == .taintedShutdown)
        #expect(await store.node("node-a")?.spec.taints?.map(\.key) == [CloudTaint.shutdown])
        #expect(try await ccm.reconcileAll()["node-a"]?.get() == .unchanged)
        _ = try await cloud.setInstanceState(id: instance.id, to: .running)
        #expect(try await ccm.reconcileAll()["node-a"]?.get() == .untaintedShutdown)
        #expect(await store.node("node-a")?.spec.taints == nil)
        _ = try await cloud.setInstanceState(id: instance.id, to: .terminated)
        if case .deleted = try await ccm.reconcileAll()["node-a"]?.get() {} else { Issue.record("a node whose instance is terminated is deleted") }
        #expect(await store.node("node-a") == nil)
    }

    @Test func aStaleNodeIsAConflictAndTheNextPassSucceeds() async throws {
        let (ccm, cloud, store) = try await controller()
        _ = try await cloud.registerInstance(RegisterInstanceRequest(name: "node-a"))
        let stale = await store.add("node-a")
        _ = try await store.updateNode(stale)  // someone else wrote it meanwhile
        await #expect(throws: NodeStoreError.conflict("node-a")) { _ = try await ccm.reconcile(stale, region: "ballast-1") }
        if case .initialized = try await ccm.reconcileAll()["node-a"]?.get() {} else { Issue.record("the next pass reads the node again") }
    }

    @Test func providerIDsRoundTrip() throws {
        #expect(ProviderID.instanceID("ballast://ballast-1a/i-0123456789abcdef0") == "i-0123456789abcdef0")
        #expect(ProviderID.instanceID("aws:///us-east-1a/i-0123") == nil)
        #expect(ProviderID.instanceID("ballast://ballast-1a/../../etc") == nil)
    }
}
