// What the kubelet's cluster tests ask of a `ProcessCluster`: apply YAML with kubectl, wait for a
// pod to reach a state (failing with its status, events and the processes' logs), read a
// container's status.
import APIClient
import ClusterAPI
import ClusterTesting
import Foundation
import Testing
import TestSupport

/// Root, loop devices, runc, busybox and the built binary.
let clusterTestsCanRun = processTestsCanRun && runtimeAvailable

extension ProcessCluster {
    func apply(_ manifest: String) async throws {
        let result = try await kubectl(["apply", "-f", "-"], input: manifest)
        guard result.status == 0 else { throw TestFailure("kubectl apply failed: \(result.stderr)\n\(manifest)") }
    }

    func pod(_ name: String) async throws -> Pod {
        try await client.get(Pod.self, name: name, namespace: "default")
    }

    /// Waits until pod `name` satisfies `condition`; the pod that does.
    @discardableResult
    func waitForPod(_ name: String, _ what: String, timeout: Duration = .seconds(60),
                    _ condition: @escaping (Pod) -> Bool) async throws -> Pod {
        var last: Pod?
        let reached = await waitUntil(timeout: timeout, interval: .milliseconds(200)) {
            guard let pod = try? await self.pod(name) else { return false }
            last = pod
            return condition(pod)
        }
        if reached, let last { return last }
        let described = (try? await kubectl("describe", "pod", name))?.stdout ?? ""
        throw TestFailure("pod \(name): not \(what) within \(timeout)\n\(described)\n\(logs)")
    }

    /// The events of object `name`, as "Reason: message" lines.
    func events(of name: String) async throws -> [String] {
        let events = try await client.list(Event.self, namespace: "default", fieldSelector: "involvedObject.name=\(name)")
        return events.items.map { "\($0.reason ?? ""): \($0.message ?? "")" }
    }

    /// Whether object `name` gets an event matching `matches` within `timeout`: the kubelet's
    /// events are background writes that can land after the status they explain.
    func hasEvent(of name: String, timeout: Duration = .seconds(15), _ matches: @escaping @Sendable (String) -> Bool) async -> Bool {
        await waitUntil(timeout: timeout) { (try? await self.events(of: name))?.contains(where: matches) ?? false }
    }
}

extension Pod {
    /// The status of container `name` (app or init), raw.
    func containerStatus(_ name: String) -> JSONValue? {
        ((status.containerStatuses ?? []) + (status.initContainerStatuses ?? [])).first { $0["name"]?.stringValue == name }
    }

    func waitingReason(_ container: String) -> String? { containerStatus(container)?["state"]?["waiting"]?["reason"]?.stringValue }
    func terminatedReason(_ container: String) -> String? { containerStatus(container)?["state"]?["terminated"]?["reason"]?.stringValue }
    func isRunning(_ container: String) -> Bool { containerStatus(container)?["state"]?["running"] != nil }
    func restartCount(_ container: String) -> Int64 { containerStatus(container)?["restartCount"]?.int64Value ?? 0 }
    func containerID(_ container: String) -> String? { containerStatus(container)?["containerID"]?.stringValue }
    var isReady: Bool { status.conditions?.contains { $0.type == "Ready" && $0.status == "True" } ?? false }
}
