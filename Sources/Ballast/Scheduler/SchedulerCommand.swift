import APIClient
import ArgumentParser
import Foundation
import Logging
import Scheduler

/// `ballast scheduler`: places the pods whose `spec.schedulerName` is its name on nodes,
/// volume-aware (VolumeBinding, NodeVolumeLimits, VolumeRestrictions), and binds them.
struct SchedulerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scheduler",
        abstract: "Place pods on nodes, volume-aware, as kube-scheduler does (see docs/scheduler.md)."
    )

    @OptionGroup var api: KubeconfigOptions
    @OptionGroup var logging: LoggingOptions

    @Option(help: "Schedule the pods whose spec.schedulerName is this (pods without one are default-scheduler's).")
    var schedulerName: String = "default-scheduler"

    @Option(help: "Scheduling cycles run at once.")
    var parallelism: Int = 16

    @Option(help: "Percentage of the nodes a cycle looks for as feasible before scoring (kube-scheduler's percentageOfNodesToScore; 0: adaptive, 50% less 1% per 125 nodes, at least 5%; never fewer than 100 nodes).")
    var percentageOfNodesToScore: Int = 0

    @Option(help: "Longest wait for a pod's volumes to be bound or provisioned before the pod is retried.")
    var bindTimeout: Duration = .seconds(600)

    @Option(help: "Seed of the tie-break between nodes of equal score (default: from the clock).")
    var seed: UInt64?

    @OptionGroup var leaderElection: LeaderElectionOptions

    func validate() throws {
        if schedulerName.isEmpty { throw ValidationError("--scheduler-name must not be empty") }
        if parallelism < 1 { throw ValidationError("--parallelism \(parallelism): expected at least 1") }
        if !(0...100).contains(percentageOfNodesToScore) {
            throw ValidationError("--percentage-of-nodes-to-score \(percentageOfNodesToScore): expected 0 (adaptive) to 100")
        }
        if bindTimeout <= .zero { throw ValidationError("--bind-timeout \(bindTimeout): expected a positive duration like 10m") }
    }

    func run() async throws {
        let logger = logging.logger("ballast.scheduler")
        let client = try api.client()
        var configuration = SchedulerConfiguration()
        configuration.schedulerName = schedulerName
        configuration.parallelism = parallelism
        configuration.bindTimeout = bindTimeout
        configuration.percentageOfNodesToScore = percentageOfNodesToScore
        configuration.seed = seed
        configuration.leaderElect = leaderElection.leaderElect
        leaderElection.apply(to: &configuration.leaderElection)
        let server = SchedulerServer(client: client, configuration: configuration, logger: logger)
        logger.info("running", metadata: ["server": "\(client.connection.server)", "name": "\(schedulerName)",
                                          "leaderElect": "\(leaderElection.leaderElect)"])
        try await runServices([("scheduler", server)], logger: logger)
        logger.info("stopped")
    }
}
