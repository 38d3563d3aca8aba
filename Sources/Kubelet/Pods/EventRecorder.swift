// Events about pods and the node, as the kubelet writes them (source component `kubelet`,
// host = the node): a repeat of the same reason and message on the same object within ten
// minutes increments the first event's `count` instead of making a new one, as client-go's
// event correlator does.
import APIClient
import ClusterAPI
import Foundation
import Logging

public actor EventRecorder {
    private let client: KubeClient
    private let nodeName: String
    private let logger: Logger
    /// (object uid, type, reason, message) → the event written for it and its count.
    private var recent: [String: (name: String, namespace: String, count: Int32, first: Time, at: ContinuousClock.Instant)] = [:]

    public init(client: KubeClient, nodeName: String, logger: Logger) {
        self.client = client
        self.nodeName = nodeName
        self.logger = logger
    }

    /// Records an event about `pod` (the field path names a container: `spec.containers{app}`).
    public func pod(_ pod: Pod, type: String = "Normal", reason: String, message: String, fieldPath: String? = nil) async {
        let reference = ObjectReference(kind: "Pod", namespace: pod.metadata.namespace, name: pod.metadata.name, uid: pod.metadata.uid,
                                        apiVersion: "v1", resourceVersion: nil, fieldPath: fieldPath)
        await record(reference, namespace: pod.metadata.namespace ?? "default", type: type, reason: reason, message: message)
    }

    /// Records an event about the node.
    public func node(type: String = "Normal", reason: String, message: String) async {
        let reference = ObjectReference(kind: "Node", namespace: nil, name: nodeName, uid: nodeName, apiVersion: "v1")
        await record(reference, namespace: "default", type: type, reason: reason, message: message)
    }

    private func record(_ reference: ObjectReference, namespace: String, type: String, reason: String, message: String) async {
        let key = [reference.uid ?? "", reference.fieldPath ?? "", type, reason, message].joined(separator: "\u{0}")
        let now = Time.now()
        let clock = ContinuousClock.now
        recent = recent.filter { clock - $0.value.at < .seconds(600) }
        if var seen = recent[key] {
            seen.count += 1
            seen.at = clock
            recent[key] = seen
            let patch: JSONValue = ["count": .integer(Int64(seen.count)), "lastTimestamp": .string(now.rfc3339)]
            if (try? await client.mergePatch(Event.self, name: seen.name, namespace: seen.namespace, patch: patch)) != nil { return }
        }
        var event = Event()
        event.metadata.name = "\(reference.name ?? "object").\(String(format: "%016llx", UInt64.random(in: 0...UInt64.max)))"
        event.metadata.namespace = namespace
        event.involvedObject = reference
        event.reason = reason
        event.message = message
        event.type = type
        event.source = EventSource(component: "kubelet", host: nodeName)
        event.firstTimestamp = now
        event.lastTimestamp = now
        event.count = 1
        event.reportingComponent = "kubelet"
        event.reportingInstance = nodeName
        do {
            _ = try await client.create(event)
            recent[key] = (event.metadata.name ?? "", namespace, 1, now, clock)
        } catch {
            logger.debug("cannot record an event", metadata: ["reason": "\(reason)", "error": "\(error)"])
        }
    }
}
