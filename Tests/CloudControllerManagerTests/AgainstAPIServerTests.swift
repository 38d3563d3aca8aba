// The cloud controller manager between the real `ballast apiserver` and the simulated cloud:
// a node registered with the uninitialized taint is initialised from its instance, tainted when
// the instance stops and deleted when it is terminated.
import APIClient
import ClusterAPI
import CloudControllerManager
import CloudProvider
import Foundation
import Logging
import Testing
import TestSupport

@Suite(.serialized) struct CloudControllerManagerAgainstAPIServerTests {
    @Test func initialisesTaintsAndDeletesNodes() async throws {
        let server = try await ServerProcess.start()
        defer { server.stop() }
        let client = try KubeClient(try Connection.kubeconfig(at: server.kubeconfig))
        let cloud = try await CloudSimulator.inMemory()
        let instance = try await cloud.registerInstance(RegisterInstanceRequest(name: "node-1", zone: "ballast-1b", type: "sim.large"))
        var logger = Logger(label: "test.ccm")
        logger.logLevel = .warning
        let manager = CloudControllerManagerServer(cloud: cloud, client: client, monitorPeriod: .milliseconds(200), logger: logger)
        let running = Task { await manager.run() }
        defer { running.cancel() }

        var node = Node(metadata: ObjectMeta(name: "node-1"))
        node.spec.taints = [Taint(key: CloudTaint.uninitialized, value: "true", effect: "NoSchedule")]
        _ = try await client.create(node)

        let initialised = try await eventually { try await client.get(Node.self, name: "node-1") } until: { $0.spec.providerID != nil }
        #expect(initialised.spec.providerID == "ballast://ballast-1b/\(instance.id)")
        #expect(initialised.metadata.labels?[CloudLabel.zone] == "ballast-1b")
        #expect(initialised.metadata.labels?[CloudLabel.region] == "ballast-1")
        #expect(initialised.metadata.labels?[CloudLabel.instanceType] == "sim.large")
        #expect(initialised.spec.taints == nil)
        let withAddresses = try await eventually { try await client.get(Node.self, name: "node-1") } until: { $0.status.addresses != nil }
        #expect(withAddresses.status.addresses?.contains { $0.type == "InternalIP" && $0.address == "127.0.0.1" } == true)
        // kubectl sees it too.
        #expect(try await server.ok("get", "node", "node-1", "-o", "jsonpath={.spec.providerID}") == "ballast://ballast-1b/\(instance.id)")

        _ = try await cloud.setInstanceState(id: instance.id, to: .stopped)
        let stopped = try await eventually { try await client.get(Node.self, name: "node-1") } until: {
            $0.spec.taints?.contains { $0.key == CloudTaint.shutdown } == true
        }
        #expect(stopped.spec.taints?.first?.effect == "NoSchedule")

        _ = try await cloud.setInstanceState(id: instance.id, to: .terminated)
        let deadline = ContinuousClock.now + .seconds(15)
        var gone = false
        while !gone && ContinuousClock.now < deadline {
            do { _ = try await client.get(Node.self, name: "node-1") } catch let error as APIError where error.isNotFound { gone = true }
            if !gone { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(gone, "a node whose instance is terminated is deleted")
    }
}

/// Polls `read` until `condition` holds (15 s at most) and returns the last value.
func eventually<T>(_ read: () async throws -> T, until condition: (T) -> Bool) async throws -> T {
    let deadline = ContinuousClock.now + .seconds(15)
    var value = try await read()
    while !condition(value) && ContinuousClock.now < deadline {
        try await Task.sleep(for: .milliseconds(100))
        value = try await read()
    }
    return value
}
