// The real thing: `ballast apiserver` and `ballast scheduler` as processes, kubectl reading what
// the scheduler wrote, and a scheduler killed with SIGKILL mid-way and restarted that binds
// every pod once and over-commits no node.
import APIClient
import ClusterAPI
import Foundation
import Scheduler
import Testing
import TestSupport

private func startScheduler(_ server: ServerProcess, log: String) throws -> TestProcess {
    try TestProcess([ballastBinary(), "scheduler", "--kubeconfig", server.kubeconfig, "--leader-elect=false", "--log-level", "warning"],
                    logPath: log)
}

private func client(_ server: ServerProcess) throws -> KubeClient {
    try KubeClient(try Connection.kubeconfig(at: server.kubeconfig))
}

private func addNode(_ client: KubeClient, _ node: Node) async throws {
    var created = try await client.create(node)
    created.status = node.status
    _ = try await client.updateStatus(created)
}

@Suite("ballast scheduler as a process", .timeLimit(.minutes(3)))
struct ProcessTests {
    @Test("kubectl sees the binding, the Scheduled event and an unschedulable pod's reason")
    func kubectlDescribe() async throws {
        let server = try await ServerProcess.start()
        defer { server.stop() }
        let scheduler = try startScheduler(server, log: server.directory + "/scheduler.log")
        defer { scheduler.kill() }
        let client = try client(server)
        try await addNode(client, makeNode("n1", cpu: "1"))
        _ = try await server.ok("run", "small", "--image=busybox", "--restart=Never", "--overrides",
                                #"{"spec":{"containers":[{"name":"small","image":"busybox","resources":{"requests":{"cpu":"100m"}}}]}}"#)
        _ = try await server.ok("run", "huge", "--image=busybox", "--restart=Never", "--overrides",
                                #"{"spec":{"containers":[{"name":"huge","image":"busybox","resources":{"requests":{"cpu":"8"}}}]}}"#)
        let bound = await waitUntil(timeout: .seconds(30)) {
            (try? await server.ok("get", "pod", "small", "-o", "jsonpath={.spec.nodeName}")) == "n1"
        }
        #expect(bound, "\(scheduler.log)")
        let reported = await waitUntil(timeout: .seconds(30)) {
            let out = (try? await server.ok("describe", "pod", "huge")) ?? ""
            return out.contains("0/1 nodes are available: 1 Insufficient cpu.") && out.contains("FailedScheduling")
        }
        let described = (try? await server.ok("describe", "pod", "huge")) ?? ""
        #expect(reported, "\(described)")
        let events = try await server.ok("get", "events", "--field-selector", "involvedObject.name=small", "-o", "jsonpath={.items[*].message}")
        #expect(events.contains("Successfully assigned default/small to n1"))
    }

    @Test("Killed with SIGKILL mid-way and restarted: every pod bound once, no node over-committed")
    func killedMidway() async throws {
        let server = try await ServerProcess.start()
        defer { server.stop() }
        let client = try client(server)
        // 6 nodes × 1000m, 60 pods of 100m: exactly full.
        for index in 0..<6 { try await addNode(client, makeNode("n\(index)", cpu: "1", memory: "64Gi")) }
        for index in 0..<60 { _ = try await client.create(makePod("p\(index)", cpu: "100m")) }
        let log = server.directory + "/scheduler.log"
        let first = try startScheduler(server, log: log)
        defer { first.kill() }
        let some = await waitUntil(timeout: .seconds(60), interval: .milliseconds(10)) {
            let pods = (try? await client.list(Pod.self, namespace: "default").items) ?? []
            return pods.contains { !($0.spec.nodeName ?? "").isEmpty }
        }
        #expect(some, "\(first.log)")
        first.kill()
        _ = await first.waitForExit(timeout: .seconds(30))
        let second = try startScheduler(server, log: log)
        defer { second.kill() }
        let all = await waitUntil(timeout: .seconds(90)) {
            let pods = (try? await client.list(Pod.self, namespace: "default").items) ?? []
            return pods.count == 60 && pods.allSatisfy { !($0.spec.nodeName ?? "").isEmpty }
        }
        #expect(all, "\(second.log)")
        let pods = try await client.list(Pod.self, namespace: "default").items
        var perNode: [String: Int] = [:]
        for pod in pods { perNode[pod.spec.nodeName ?? "", default: 0] += 1 }
        #expect(perNode.values.allSatisfy { $0 <= 10 }, "\(perNode)")
        #expect(perNode.values.reduce(0, +) == 60)
    }
}
