// The cloud controller manager: the node controllers driven by a watch on Nodes (a new node is
// initialised as soon as it registers) and by a periodic pass (instances that stopped or went
// away in the cloud).
import APIClient
import ClusterAPI
import CloudProvider
import Logging
import ServiceLifecycle

public struct CloudControllerManagerServer: ServiceLifecycle.Service {
    public let controller: NodeController
    public let client: KubeClient
    public let monitorPeriod: Duration
    let logger: Logger

    public init(cloud: any CloudProvider, client: KubeClient, monitorPeriod: Duration = .seconds(10), logger: Logger) {
        self.controller = NodeController(cloud: cloud, nodes: APINodeStore(client: client), logger: logger)
        self.client = client
        self.monitorPeriod = monitorPeriod
        self.logger = logger
    }

    /// Runs until the task is cancelled or the `ServiceGroup` it runs in shuts down: the
    /// node controller on the shared controller runner (a Node informer enqueues node names,
    /// one worker initialises them), and the periodic lifecycle pass beside it.
    public func run() async {
        await cancelWhenGracefulShutdown { await self.runControllers() }
    }

    private func runControllers() async {
        let informers = SharedInformers(client: client, resync: .seconds(60), logger: logger)
        let nodes = await informers.informer(Node.self)
        let controller = self.controller
        let region = RegionCache(cloud: controller.cloud)
        let initializer = Controller<String>(name: "cloud-node", logger: logger) { name in
            guard let node = await nodes.get(name: name) else { return .done }
            let outcome = try await controller.reconcile(node, region: try await region.get())
            return outcome == .waitingForInstance ? .retry : .done
        }
        await initializer.enqueue(from: nodes) { event in
            if case .deleted = event { return [] }
            return [event.object.metadata.name ?? ""]
        }
        initializer.addTask { [monitorPeriod] in await controller.run(every: monitorPeriod) }
        await informers.start()
        await initializer.run()
        await informers.stop()
    }
}

/// The cloud's region, asked once and kept (it never changes while the cloud runs).
actor RegionCache {
    private let cloud: any CloudProvider
    private var region: String?

    init(cloud: any CloudProvider) { self.cloud = cloud }

    func get() async throws -> String {
        if let region { return region }
        let fetched = try await cloud.describeRegion().region
        region = fetched
        return fetched
    }
}
