// The cloud controller manager: the node controllers driven by a watch on Nodes (a new node is
// initialised as soon as it registers) and by a periodic pass (instances that stopped or went
// away in the cloud).
import APIClient
import ClusterAPI
import CloudProvider
import Logging

public struct CloudControllerManager: Sendable {
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

    /// Runs until the task is cancelled.
    public func run() async {
        let informer = Informer<Node>(ResourceSource(client, Node.self), resync: .seconds(60), logger: logger)
        let events = await informer.events()
        let queue = WorkQueue<String>()
        await withTaskGroup(of: Void.self) { tasks in
            tasks.addTask { await informer.run() }
            tasks.addTask {
                for await event in events {
                    if case .deleted = event { continue }
                    await queue.add(event.object.metadata.name ?? "")
                }
            }
            tasks.addTask { await controller.run(every: monitorPeriod) }
            tasks.addTask {
                while let name = await queue.next() {
                    await process(name, informer: informer, queue: queue)
                }
            }
            await withTaskCancellationHandler {
                await tasks.next()
            } onCancel: {
                Task { await queue.shutDown() }
            }
            tasks.cancelAll()
        }
    }

    private func process(_ name: String, informer: Informer<Node>, queue: WorkQueue<String>) async {
        await reconcile(name, informer: informer, queue: queue)
        await queue.done(name)
    }

    private func reconcile(_ name: String, informer: Informer<Node>, queue: WorkQueue<String>) async {
        guard let node = await informer.get(name: name) else { return }
        do {
            let region = try await controller.cloud.describeRegion().region
            let outcome = try await controller.reconcile(node, region: region)
            if outcome == .waitingForInstance {
                await queue.addRateLimited(name)
            } else {
                await queue.forget(name)
            }
        } catch {
            logger.warning("cannot reconcile node; retrying", metadata: ["node": "\(name)", "error": "\(error)"])
            await queue.addRateLimited(name)
        }
    }
}
