// Events about pods and the node, as the kubelet writes them (source component `kubelet`,
// host = the node), through client-go's recorder (APIClient's `EventRecorder`): recording
// never waits for the API server — a pod's worker does not hold its container's start for an
// event — and repeats become count patches.
import APIClient
import ClusterAPI
import Logging

struct KubeletEvents: Sendable {
    let recorder: EventRecorder
    let nodeName: String

    init(client: KubeClient, nodeName: String, logger: Logger) {
        recorder = EventRecorder(client: client, component: "kubelet", host: nodeName, logger: logger)
        self.nodeName = nodeName
    }

    /// Records an event about `pod` (the field path names a container: `spec.containers{app}`).
    func pod(_ pod: Pod, type: String = "Normal", reason: String, message: String, fieldPath: String? = nil) {
        let reference = ObjectReference(kind: "Pod", namespace: pod.metadata.namespace, name: pod.metadata.name, uid: pod.metadata.uid,
                                        apiVersion: "v1", resourceVersion: nil, fieldPath: fieldPath)
        recorder.event(reference: reference, EventType(rawValue: type) ?? .normal, reason, message)
    }

    /// Records an event about the node.
    func node(type: String = "Normal", reason: String, message: String) {
        let reference = ObjectReference(kind: "Node", namespace: nil, name: nodeName, uid: nodeName, apiVersion: "v1")
        recorder.event(reference: reference, EventType(rawValue: type) ?? .normal, reason, message)
    }
}
