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

    @Option(help: "kubeconfig of the API server (ballast apiserver writes DATA_DIR/admin.kubeconfig).")
    var kubeconfig: String = ".ballast/admin.kubeconfig"

    @Option(help: "URL of the cloud's API.")
    var cloudUrl: String = "http://127.0.0.1:7070"

    @Option(help: "File holding the cloud API key.")
    var cloudKeyFile: String = ".ballast/cloud/admin.key"

    @Option(help: "How often every node is checked against its instance (e.g. 10s, 500ms).")
    var nodeMonitorPeriod: String = "10s"

    func validate() throws {
        guard SimulatorConfiguration.parseDuration(nodeMonitorPeriod).map({ $0 > .zero }) == true else {
            throw ValidationError("--node-monitor-period \(nodeMonitorPeriod): expected a duration like 10s or 500ms")
        }
    }

    func run() async throws {
        var logger = Logger(label: "ballast.cloud-controller-manager")
        logger.logLevel = .info
        let client: KubeClient
        let cloud: CloudClient
        do {
            client = try KubeClient(try Connection.kubeconfig(at: kubeconfig))
            cloud = try CloudClient(url: cloudUrl, keyFile: cloudKeyFile)
        } catch {
            throw ValidationError("\(error)")
        }
        let manager = CloudControllerManager(cloud: cloud, client: client,
                                             monitorPeriod: SimulatorConfiguration.parseDuration(nodeMonitorPeriod)!, logger: logger)
        let running = Task { await manager.run() }
        let signals = StopSignals(logger: logger) { running.cancel() }
        defer { signals.cancel() }
        logger.info("running", metadata: ["server": "\(client.connection.server)", "cloud": "\(cloudUrl)"])
        await running.value
        logger.info("stopped")
    }
}
