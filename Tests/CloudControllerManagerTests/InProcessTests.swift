// The cloud controller manager on the shared controller runner, against the real API handler
// on an embedded store (in process) and the in-memory cloud: fast enough to cover the retry
// path — a node that registers before its instance exists waits, then initialises.
import APIClient
import APIServerTesting
import ClusterAPI
import CloudControllerManager
import CloudProvider
import Foundation
import Logging
import Testing

@Suite struct CloudControllerManagerInProcessTests {
    @Test func initialisesNodesIncludingOneWhoseInstanceComesLater() async throws {
        try await InProcessAPIServer.with { server in
            let client = server.client()
            let cloud = try await CloudSimulator.inMemory()
            let early = try await cloud.registerInstance(RegisterInstanceRequest(name: "node-a", zone: "ballast-1a", type: "sim.small"))
            var logger = Logger(label: "test.ccm")
            logger.logLevel = .critical
            let manager = CloudControllerManagerServer(cloud: cloud, client: client, monitorPeriod: .seconds(30), logger: logger)
            let running = Task { await manager.run() }
            defer { running.cancel() }

            for name in ["node-a", "node-b"] {
                var node = Node(metadata: ObjectMeta(name: name))
                node.spec.taints = [Taint(key: CloudTaint.uninitialized, value: "true", effect: "NoSchedule")]
                _ = try await client.create(node)
            }
            let a = try await eventually { try await client.get(Node.self, name: "node-a") } until: { $0.spec.providerID != nil }
            #expect(a.spec.providerID == "ballast://ballast-1a/\(early.id)")
            #expect(a.spec.taints == nil)
            let waiting = try await client.get(Node.self, name: "node-b")
            #expect(waiting.spec.taints?.first?.key == CloudTaint.uninitialized, "no instance yet: left tainted")

            // The instance appears; the controller's back-off retry (not the 30 s pass) finds it.
            let late = try await cloud.registerInstance(RegisterInstanceRequest(name: "node-b", zone: "ballast-1b", type: "sim.small"))
            let b = try await eventually { try await client.get(Node.self, name: "node-b") } until: { $0.spec.providerID != nil }
            #expect(b.spec.providerID == "ballast://ballast-1b/\(late.id)")
            #expect(b.metadata.labels?[CloudLabel.zone] == "ballast-1b")
            running.cancel()
            await running.value
        }
    }
}
