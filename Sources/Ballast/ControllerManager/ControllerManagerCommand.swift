import APIClient
import ArgumentParser
import ControllerManager
import Foundation
import Logging

/// `ballast controller-manager`: the PV binder, the built-in CSI sidecars (provisioner,
/// attacher, resizer), attach/detach, protection, node lifecycle, the garbage collector and the
/// workload controllers (StatefulSet, Job, TTL after finished), between the API server (through a
/// kubeconfig) and a CSI controller plugin (through its socket).
struct ControllerManagerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "controller-manager",
        abstract: "Bind, provision, attach, resize and protect volumes; watch node health; run workloads (see docs/controllers.md)."
    )

    @OptionGroup var api: KubeconfigOptions
    @OptionGroup var logging: LoggingOptions

    @Option(help: "The CSI controller plugin's socket, unix:///path/csi.sock (needed by csi-provisioner, csi-attacher, csi-resizer).")
    var csiEndpoint: String?

    @Option(help: "Controllers to run: * for all, a name to add one, -name to remove one (\(ControllerName.allCases.map(\.rawValue).sorted().joined(separator: ", "))).")
    var controllers: String = "*"

    @Option(help: "How often every object is looked at again, missed events or not.")
    var resync: Duration = .seconds(15)

    @Option(help: "How long to wait for an unhealthy node to unmount a volume before detaching it anyway.")
    var maxWaitForUnmount: Duration = .seconds(360)

    @Option(help: "How long a node may go without renewing its Lease before it is marked Ready=Unknown.")
    var nodeMonitorGracePeriod: Duration = .seconds(40)

    @Option(help: "How often node health is checked.")
    var nodeMonitorPeriod: Duration = .seconds(5)

    @Option(help: "How long pods without their own toleration stay on an unreachable or not-ready node.")
    var podEvictionTimeout: Duration = .seconds(300)

    @Option(help: "A volume that never got a PV and whose claim is gone is deleted once older than this.")
    var orphanGracePeriod: Duration = .seconds(600)

    @Option(help: "StatefulSets synced at once.")
    var concurrentStatefulsetSyncs = 5

    @Option(help: "Objects the garbage collector processes at once (in each of its two queues).")
    var concurrentGcSyncs: Int = 20

    @Option(help: "Longest a single CSI call may take.")
    var csiTimeout: Duration = .seconds(15)

    @Option(help: "Jobs synced at once by the job controller.")
    var concurrentJobSyncs = 5

    @Option(help: "Jobs looked at at once by the ttl-after-finished controller.")
    var concurrentTtlAfterFinishedSyncs = 5

    @Option(help: "Delay before a failed Job pod is replaced, doubled for each further failure up to --job-pod-failure-backoff-max.")
    var jobPodFailureBackoff: Duration = .seconds(10)

    @Option(help: "Longest delay before a failed Job pod is replaced.")
    var jobPodFailureBackoffMax: Duration = .seconds(360)

    @Option(name: .customLong("concurrent-replicaset-syncs"), help: "ReplicaSets synced at once.")
    var concurrentReplicaSetSyncs = 5

    @Option(name: .customLong("concurrent-deployment-syncs"), help: "Deployments synced at once.")
    var concurrentDeploymentSyncs = 5

    @Option(name: .customLong("concurrent-snapshot-syncs"), help: "VolumeSnapshots and VolumeSnapshotContents synced at once, each.")
    var concurrentSnapshotSyncs = 10

    @Option(name: .customLong("concurrent-service-endpoint-syncs"), help: "Services synced at once by the endpointslice controller.")
    var concurrentServiceEndpointSyncs = 5

    @Option(name: .customLong("concurrent-endpoint-syncs"), help: "Services synced at once by the endpoint (legacy Endpoints) controller.")
    var concurrentEndpointSyncs = 5

    @Option(help: "Most endpoints in one EndpointSlice (1 to 1000); more go to further slices.")
    var maxEndpointsPerSlice = 100

    @Flag(name: .customLong("allocate-node-cidrs"), help: "Assign each node a spec.podCIDR from --cluster-cidr (the nodeipam controller).")
    var allocateNodeCidrs = false

    @Option(name: .customLong("cluster-cidr"), help: "The pods' range node CIDRs come from.")
    var clusterCidr = "198.18.0.0/16"

    @Option(help: "Prefix length of each node's CIDR.")
    var nodeCidrMaskSize = 24

    @OptionGroup var leaderElection: LeaderElectionOptions

    func validate() throws {
        do { _ = try ControllerManagerConfiguration.parseControllers(controllers) } catch { throw ValidationError("\(error)") }
        for (flag, value) in [("--resync", resync), ("--max-wait-for-unmount", maxWaitForUnmount),
                              ("--node-monitor-grace-period", nodeMonitorGracePeriod), ("--node-monitor-period", nodeMonitorPeriod),
                              ("--csi-timeout", csiTimeout), ("--job-pod-failure-backoff", jobPodFailureBackoff),
                              ("--job-pod-failure-backoff-max", jobPodFailureBackoffMax)] where value <= .zero {
            throw ValidationError("\(flag) \(value): expected a positive duration like 15s")
        }
        if !(1...64).contains(concurrentStatefulsetSyncs) {
            throw ValidationError("--concurrent-statefulset-syncs \(concurrentStatefulsetSyncs): expected 1 to 64")
        }
        if concurrentGcSyncs < 1 { throw ValidationError("--concurrent-gc-syncs \(concurrentGcSyncs): expected at least 1") }
        for (flag, value) in [("--concurrent-job-syncs", concurrentJobSyncs),
                              ("--concurrent-ttl-after-finished-syncs", concurrentTtlAfterFinishedSyncs)] where value < 1 {
            throw ValidationError("\(flag) \(value): expected at least 1")
        }
        for (flag, value) in [("--concurrent-replicaset-syncs", concurrentReplicaSetSyncs),
                              ("--concurrent-deployment-syncs", concurrentDeploymentSyncs),
                              ("--concurrent-snapshot-syncs", concurrentSnapshotSyncs),
                              ("--concurrent-service-endpoint-syncs", concurrentServiceEndpointSyncs),
                              ("--concurrent-endpoint-syncs", concurrentEndpointSyncs)] where !(1...64).contains(value) {
            throw ValidationError("\(flag) \(value): expected 1 to 64")
        }
        try validateNetwork()
    }

    /// The node IPAM flags applied to `configuration`.
    func networkConfiguration(_ configuration: ControllerManagerConfiguration) -> ControllerManagerConfiguration {
        var configuration = configuration
        configuration.allocateNodeCIDRs = allocateNodeCidrs
        configuration.clusterCIDR = clusterCidr
        configuration.nodeCIDRMaskSize = nodeCidrMaskSize
        return configuration
    }

    func validateNetwork() throws {
        if !(1...1000).contains(maxEndpointsPerSlice) {
            throw ValidationError("--max-endpoints-per-slice \(maxEndpointsPerSlice): expected 1 to 1000")
        }
        do { try networkConfiguration(ControllerManagerConfiguration()).validateNodeIPAM() } catch { throw ValidationError(error.description) }
    }

    func run() async throws {
        let logger = logging.logger("ballast.controller-manager")
        let client = try api.client()
        var configuration = ControllerManagerConfiguration()
        configuration.controllers = try ControllerManagerConfiguration.parseControllers(controllers)
        configuration.resync = resync
        configuration.maxWaitForUnmount = maxWaitForUnmount
        configuration.nodeMonitorGracePeriod = nodeMonitorGracePeriod
        configuration.nodeMonitorPeriod = nodeMonitorPeriod
        configuration.podEvictionTimeout = podEvictionTimeout
        configuration.orphanGracePeriod = orphanGracePeriod
        configuration.statefulSetWorkers = concurrentStatefulsetSyncs
        configuration.garbageCollectorWorkers = concurrentGcSyncs
        configuration.jobWorkers = concurrentJobSyncs
        configuration.ttlAfterFinishedWorkers = concurrentTtlAfterFinishedSyncs
        configuration.jobPodFailureBackoff = jobPodFailureBackoff
        configuration.jobPodFailureBackoffMax = jobPodFailureBackoffMax
        configuration.replicaSetWorkers = concurrentReplicaSetSyncs
        configuration.deploymentWorkers = concurrentDeploymentSyncs
        configuration.snapshotWorkers = concurrentSnapshotSyncs
        configuration.endpointSliceWorkers = concurrentServiceEndpointSyncs
        configuration.maxEndpointsPerSlice = maxEndpointsPerSlice
        configuration.endpointsWorkers = concurrentEndpointSyncs
        configuration = networkConfiguration(configuration)
        configuration.leaderElect = leaderElection.leaderElect
        leaderElection.apply(to: &configuration.leaderElection)
        var plugin: GRPCCSIPlugin?
        if let csiEndpoint {
            do { plugin = try GRPCCSIPlugin(endpoint: csiEndpoint, timeout: csiTimeout) } catch { throw ValidationError("\(error)") }
        } else if configuration.controllers.contains(where: \.needsCSI) {
            throw ValidationError("--csi-endpoint is needed by \(configuration.controllers.filter(\.needsCSI).map(\.rawValue).sorted().joined(separator: ", ")); give it, or leave them out with --controllers '*,-csi-provisioner,-csi-attacher,-csi-resizer'")
        }
        let server = ControllerManagerServer(client: client, csi: plugin, configuration: configuration, logger: logger)
        logger.info("running", metadata: ["server": "\(client.connection.server)", "csi": "\(csiEndpoint ?? "-")",
                                          "leaderElect": "\(leaderElection.leaderElect)"])
        try await runServices([("controller-manager", server)], logger: logger)
        plugin?.close()
        logger.info("stopped")
    }
}
