// Events about pods and the node, as the kubelet writes them (source component `kubelet`,
// host = the node), through client-go's recorder (APIClient's `EventRecorder`): recording
// never waits for the API server — a pod's worker does not hold its container's start for an
// event — repeats become count patches, and events are written one at a time.
import APIClient
import ClusterAPI
import Logging

struct KubeletEvents: Sendable {
    let recorder: EventRecorder
    let nodeName: String

    init(client: KubeClient, nodeName: String, logger: Logger) {
        // One write at a time, as client-go's recorder writes the upstream kubelet's: a node
        // records a few events per pod, and none is on a pod's way to Running. With the eight
        // in flight the scheduler needs for its bursts, a burst of pod starts had up to eight
        // event writes (and connections) beside its status writes at the API server at once
        // (`bench kubelet`: the events were a third of the API server's CPU per pod).
        var options = EventRecorder.Options()
        options.concurrentWrites = 1
        recorder = EventRecorder(client: client, component: "kubelet", host: nodeName, options: options, logger: logger)
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
