import APIClient
import ArgumentParser
import CloudControllerManager
import CloudProvider
import Foundation
import Logging

/// `ballast cloud-controller-manager`: Kubernetes' view of the cloud — node initialisation and
/// node lifecycle — between the API server (through a kubeconfig) and the cloud.
struct CloudControllerManagerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cloud-controller-manager",
        abstract: "Initialise nodes from their cloud instances and follow the instances' lifecycle."
    )

    @OptionGroup var api: KubeconfigOptions
    @OptionGroup var cloudOptions: CloudOptions
    @OptionGroup var logging: LoggingOptions

    @Option(help: "How often every node is checked against its instance (e.g. 10s, 500ms).")
    var nodeMonitorPeriod: Duration = .seconds(10)

    func validate() throws {
        guard nodeMonitorPeriod > .zero else {
            throw ValidationError("--node-monitor-period \(nodeMonitorPeriod): expected a duration like 10s or 500ms")
        }
    }

    func run() async throws {
        let logger = logging.logger("ballast.cloud-controller-manager")
        let client = try api.client()
        let cloud = try cloudOptions.client()
        let manager = CloudControllerManagerServer(cloud: cloud, client: client,
                                             monitorPeriod: nodeMonitorPeriod, logger: logger)
        logger.info("running", metadata: ["server": "\(client.connection.server)", "cloud": "\(cloudOptions.cloudUrl)"])
        try await runServices([("cloud-controller-manager", manager)], logger: logger)
        logger.info("stopped")
    }
}
