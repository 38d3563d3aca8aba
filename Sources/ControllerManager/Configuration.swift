// What `ballast controller-manager` runs and how: the controllers (kube-controller-manager's
// `--controllers` syntax), their timings and the leader election.
import APIClient
import ClusterAPI

/// The controllers, by the names `--controllers` takes.
public enum ControllerName: String, CaseIterable, Sendable, Comparable {
    case persistentVolumeBinder = "persistentvolume-binder"
    case provisioner = "csi-provisioner"
    case attachDetach = "attachdetach"
    case attacher = "csi-attacher"
    case resizer = "csi-resizer"
    case pvcProtection = "pvc-protection"
    case pvProtection = "pv-protection"
    case nodeLifecycle = "nodelifecycle"
    case statefulSet = "statefulset"
    case garbageCollector = "garbagecollector"
    case job = "job"
    case ttlAfterFinished = "ttl-after-finished"
    case replicaSet = "replicaset"
    case deployment = "deployment"
    /// external-snapshotter's snapshot-controller and csi-snapshotter sidecar, in one.
    case snapshot = "snapshot-controller"
    case endpointSlice = "endpointslice"
    case endpoints = "endpoint"
    case nodeIPAM = "nodeipam"

    public static func < (a: ControllerName, b: ControllerName) -> Bool { a.rawValue < b.rawValue }

    /// Whether it needs the CSI controller socket.
    public var needsCSI: Bool { [.provisioner, .attacher, .resizer, .snapshot].contains(self) }
}

/// A `--controllers` value could not be read.
public struct ControllerSelectionError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

public struct ControllerManagerConfiguration: Sendable {
    /// The controllers that run.
    public var controllers: Set<ControllerName> = Set(ControllerName.allCases)
    /// How often every informer replays its cache (every object is looked at again).
    public var resync: Duration = .seconds(15)
    /// How long the attach/detach controller waits for an unhealthy node to unmount before it
    /// detaches anyway.
    public var maxWaitForUnmount: Duration = .seconds(360)
    /// How long a node may stay silent before it is Ready=Unknown.
    public var nodeMonitorGracePeriod: Duration = .seconds(40)
    /// How often the node lifecycle controller looks at every node.
    public var nodeMonitorPeriod: Duration = .seconds(5)
    /// How long pods without their own toleration stay on an unreachable or not-ready node.
    public var podEvictionTimeout: Duration = .seconds(300)
    /// A disk without a PV and without a claim is swept only when older than this.
    public var orphanGracePeriod: Duration = .seconds(600)
    /// How often the orphan sweep runs.
    public var orphanSweepPeriod: Duration = .seconds(60)
    /// Concurrent provisioning calls (external-provisioner's `--worker-threads`).
    public var provisionerWorkers = 16
    /// Concurrent attach calls (external-attacher's `--worker-threads`).
    public var attacherWorkers = 10
    /// StatefulSets synced at once (`--concurrent-statefulset-syncs`).
    public var statefulSetWorkers = 5
    /// Objects the garbage collector processes at once, in each of its two queues
    /// (kube-controller-manager's `--concurrent-gc-syncs`).
    public var garbageCollectorWorkers = 20
    /// How often the garbage collector discovers the served resources again (new ones are
    /// watched from then on).
    public var garbageCollectorDiscoveryPeriod: Duration = .seconds(30)
    /// Jobs synced at once (kube-controller-manager's `--concurrent-job-syncs`).
    public var jobWorkers = 5
    /// The delay before the first replacement of a failed Job pod; doubled for each further
    /// failure since the last success, up to `jobPodFailureBackoffMax` (upstream's
    /// `DefaultJobPodFailureBackOff`; tests use milliseconds).
    public var jobPodFailureBackoff: Duration = .seconds(10)
    public var jobPodFailureBackoffMax: Duration = .seconds(360)
    /// Jobs looked at at once by the TTL-after-finished controller (`--concurrent-ttl-after-finished-syncs`).
    public var ttlAfterFinishedWorkers = 5
    /// ReplicaSets synced at once (kube-controller-manager's `--concurrent-replicaset-syncs`).
    public var replicaSetWorkers = 5
    /// Deployments synced at once (`--concurrent-deployment-syncs`).
    public var deploymentWorkers = 5
    /// How long a ReplicaSet waits for the pod informer to show its own creations and deletions
    /// before it acts again anyway (upstream's ExpectationsTimeout).
    public var replicaSetExpectationsTimeout: Duration = .seconds(300)
    /// VolumeSnapshots and VolumeSnapshotContents synced at once, each (`--concurrent-snapshot-syncs`,
    /// external-snapshotter's `--worker-threads`).
    public var snapshotWorkers = 10
    /// Services synced at once by the EndpointSlice controller (`--concurrent-service-endpoint-syncs`).
    public var endpointSliceWorkers = 5
    /// Most endpoints in one EndpointSlice (`--max-endpoints-per-slice`, 1 to 1000).
    public var maxEndpointsPerSlice = 100
    /// Services synced at once by the Endpoints controller (`--concurrent-endpoint-syncs`).
    public var endpointsWorkers = 5
    /// Node IPAM: assign `spec.podCIDR` to nodes (`--allocate-node-cidrs`); off unless asked,
    /// as in kube-controller-manager (`ballast up` asks).
    public var allocateNodeCIDRs = false
    /// The pods' range node CIDRs come from (`--cluster-cidr`).
    public var clusterCIDR = "198.18.0.0/16"
    /// The prefix length of each node's CIDR (`--node-cidr-mask-size`).
    public var nodeCIDRMaskSize = 24
    /// Hold a Lease in kube-system so that only one instance acts.
    public var leaderElect = true
    public var leaderElection = LeaderElectionConfig(name: "ballast-controller-manager")
    /// Event retry timings (client-go's by default).
    public var events = EventRecorder.Options()

    public init() {}

    /// The node CIDR set of `clusterCIDR` and `nodeCIDRMaskSize`, or what is wrong with them.
    func nodeCIDRSet() throws(NodeIPAMError) -> NodeCIDRSet {
        guard let cidr = IPv4CIDR(clusterCIDR) else {
            throw NodeIPAMError("--cluster-cidr \(clusterCIDR): expected an IPv4 CIDR such as 198.18.0.0/16 (Ballast is IPv4 single-stack)")
        }
        return try NodeCIDRSet(cluster: cidr, maskSize: nodeCIDRMaskSize)
    }

    /// Checks the node IPAM flags (when they are used).
    public func validateNodeIPAM() throws(NodeIPAMError) {
        if allocateNodeCIDRs { _ = try nodeCIDRSet() }
    }

    /// kube-controller-manager's `--controllers`: a comma-separated list where `*` means every
    /// controller, `name` adds one and `-name` removes one (`*,-nodelifecycle`).
    public static func parseControllers(_ text: String) throws -> Set<ControllerName> {
        var selected: Set<ControllerName> = []
        var removed: Set<ControllerName> = []
        for raw in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !raw.isEmpty {
            if raw == "*" {
                selected.formUnion(ControllerName.allCases)
                continue
            }
            let negated = raw.hasPrefix("-")
            let name = negated ? String(raw.dropFirst()) : raw
            guard let controller = ControllerName(rawValue: name) else {
                throw ControllerSelectionError(description: "--controllers: \"\(name)\" is not a known controller; known: \(ControllerName.allCases.map(\.rawValue).sorted().joined(separator: ", "))")
            }
            if negated { removed.insert(controller) } else { selected.insert(controller) }
        }
        return selected.subtracting(removed)
    }
}

import Foundation
