// Events about pods and the node, as the kubelet writes them (source component `kubelet`,
// host = the node), through client-go's recorder (APIClient's `EventRecorder`): recording
// never waits for the API server — a pod's worker does not hold its container's start for an
// event — repeats become count patches, and events are written one at a time, once no pod is
// being synced (or two seconds after they were recorded).
import APIClient
import ClusterAPI
import Logging

struct KubeletEvents: Sendable {
    let recorder: EventRecorder
    let nodeName: String

    /// `busy`: whether pod syncs are in progress (`PodSyncActivity`); events recorded meanwhile
    /// wait until none is, at most `hold`.
    init(client: KubeClient, nodeName: String, logger: Logger, busy: (@Sendable () -> Bool)? = nil, hold: Duration = .seconds(2)) {
        // One write at a time, as client-go's recorder writes the upstream kubelet's: a node
        // records a few events per pod, and none is on a pod's way to Running. With the eight
        // in flight the scheduler needs for its bursts, a burst of pod starts had up to eight
        // event writes (and connections) beside its status writes at the API server at once
        // (`bench kubelet`: the events were a third of the API server's CPU per pod).
        var options = EventRecorder.Options()
        options.concurrentWrites = 1
        // And not while pods are being synced, for up to `hold`: a burst's three events per pod
        // (Pulled, Created, Started) took ~2.9 ms of CPU per pod (the kubelet's and the API
        // server's) from the pods' starts (docs/kubelet-bench.md, "2026-12-07 night"); held,
        // they are written once the burst's pods run.
        options.holdWhileBusy = hold
        recorder = EventRecorder(client: client, component: "kubelet", host: nodeName, options: options, logger: logger, busy: busy)
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
