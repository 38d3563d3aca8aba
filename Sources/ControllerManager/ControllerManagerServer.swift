// `ballast controller-manager`: the storage controllers of kube-controller-manager and the CSI
// sidecars in one process, talking to the API server only through `APIClient` and to the CSI
// controller plugin only over its socket. With leader election, it acts only while it holds the
// `kube-system/ballast-controller-manager` Lease; losing it stops every controller, and it
// campaigns again with fresh caches.
import APIClient
import ClusterAPI
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

public final class ControllerManagerServer: ServiceLifecycle.Service, Sendable {
    public let client: KubeClient
    public let configuration: ControllerManagerConfiguration
    private let csi: (any CSIPlugin)?
    private let logger: Logger
    private let elector: LeaderElector?
    private let state = Mutex(State())

    private struct State {
        var running = false
        var driver: String?
        var terms = 0
    }

    /// - Parameters:
    ///   - csi: the CSI controller plugin; needed by the provisioner, attacher and resizer.
    public init(client: KubeClient, csi: (any CSIPlugin)?, configuration: ControllerManagerConfiguration, logger: Logger) {
        self.client = client
        self.csi = csi
        self.configuration = configuration
        self.logger = logger
        elector = configuration.leaderElect ? LeaderElector(client: client, config: configuration.leaderElection, logger: logger) : nil
    }

    /// Whether the controllers are running (this instance leads, or does not elect).
    public var isRunning: Bool { state.withLock { $0.running } }
    /// How many times the controllers were started (a new term after each lost lease).
    public var terms: Int { state.withLock { $0.terms } }
    /// The CSI driver's name, once the plugin answered.
    public var driverName: String? { state.withLock { $0.driver } }

    /// Runs until the task is cancelled or the service group shuts down.
    public func run() async throws {
        await cancelWhenGracefulShutdown { await self.campaign() }
    }

    private func campaign() async {
        guard let elector else {
            await runControllers()
            return
        }
        while !Task.isCancelled {
            let lost = await elector.run { await self.runControllers() }
            if !lost { return }
            try? await Task.sleep(for: configuration.leaderElection.retryPeriod)
        }
    }

    /// Every enabled controller, on fresh informers, until cancelled.
    func runControllers() async {
        let enabled = configuration.controllers
        var driver: String?
        if enabled.contains(where: \.needsCSI) {
            guard let csi else {
                logger.error("the CSI controllers need --csi-endpoint; running the others", metadata: [
                    "controllers": "\(enabled.filter(\.needsCSI).map(\.rawValue).sorted())"])
                return await runControllers(enabled.filter { !$0.needsCSI }, driver: nil)
            }
            driver = await pluginName(csi)
            guard driver != nil else { return }
        }
        await runControllers(enabled, driver: driver)
    }

    /// The plugin's name, asked until it answers (it may start after us); nil when cancelled.
    private func pluginName(_ csi: any CSIPlugin) async -> String? {
        var delay: Duration = .milliseconds(100)
        while !Task.isCancelled {
            do {
                let name = try await csi.getPluginInfo().name
                state.withLock { $0.driver = name }
                return name
            } catch {
                logger.warning("waiting for the CSI plugin", metadata: ["error": "\(CSIError(error))"])
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            }
        }
        return nil
    }

    private func runControllers(_ enabled: Set<ControllerName>, driver: String?) async {
        let informers = SharedInformers(client: client, resync: configuration.resync, logger: logger)
        let claims = await informers.informer(PersistentVolumeClaim.self)
        let volumes = await informers.informer(PersistentVolume.self)
        let classes = await informers.informer(StorageClass.self)
        let pods = await informers.informer(Pod.self)
        let nodes = await informers.informer(Node.self)
        let attachments = await informers.informer(VolumeAttachment.self)
        let csiNodes = await informers.informer(CSINode.self)
        let csiDrivers = await informers.informer(CSIDriver.self)
        let leases = await informers.informer(Lease.self, namespace: "kube-node-lease")
        let host = ProcessInfo.processInfo.hostName
        var recorders: [EventRecorder] = []
        func recorder(_ component: String) -> EventRecorder {
            let made = EventRecorder(client: client, component: component, host: host, options: configuration.events, logger: logger)
            recorders.append(made)
            return made
        }
        var runners: [@Sendable () async -> Void] = []
        if enabled.contains(.persistentVolumeBinder) {
            let binder = await PersistentVolumeBinder(client: client, claims: claims, volumes: volumes, classes: classes,
                                                      recorder: recorder(EventSourceName.persistentVolumeController), logger: logger)
            runners.append { await binder.run() }
        }
        if let driver, let csi {
            if enabled.contains(.provisioner) {
                let identity = "\(driver)_\(host)_\(UUID().uuidString.lowercased())"
                let provisioner = await Provisioner(
                    driver: driver, client: client, csi: csi,
                    informers: .init(claims: claims, volumes: volumes, classes: classes, nodes: nodes, csiNodes: csiNodes, attachments: attachments),
                    recorder: recorder(identity), workers: configuration.provisionerWorkers,
                    orphanGracePeriod: configuration.orphanGracePeriod, sweepPeriod: configuration.orphanSweepPeriod, logger: logger)
                runners.append { await provisioner.run() }
            }
            if enabled.contains(.attacher) {
                let attacher = await Attacher(driver: driver, client: client, csi: csi, attachments: attachments, volumes: volumes,
                                              csiNodes: csiNodes, workers: configuration.attacherWorkers, logger: logger)
                runners.append { await attacher.run() }
            }
            if enabled.contains(.resizer) {
                let resizer = await Resizer(driver: driver, client: client, csi: csi, claims: claims, volumes: volumes, classes: classes,
                                            recorder: recorder("external-resizer \(driver)"), logger: logger)
                runners.append { await resizer.run() }
            }
            if enabled.contains(.snapshot) {
                let controller = SnapshotController(driver: driver, client: client, csi: csi, claims: claims, volumes: volumes,
                                                    recorder: recorder(SnapshotNames.component), workers: configuration.snapshotWorkers,
                                                    resync: configuration.resync, logger: logger)
                runners.append { await controller.run() }
            }
        }
        if enabled.contains(.attachDetach) {
            let controller = await AttachDetachController(
                client: client, informers: .init(pods: pods, nodes: nodes, claims: claims, volumes: volumes, attachments: attachments,
                                                 drivers: csiDrivers),
                recorder: recorder(EventSourceName.attachDetachController), maxWaitForUnmount: configuration.maxWaitForUnmount, logger: logger)
            runners.append { await controller.run() }
        }
        if enabled.contains(.pvcProtection) {
            let controller = await PVCProtectionController(client: client, claims: claims, pods: pods, logger: logger)
            runners.append { await controller.run() }
        }
        if enabled.contains(.pvProtection) {
            let controller = await PVProtectionController(client: client, volumes: volumes, logger: logger)
            runners.append { await controller.run() }
        }
        if enabled.contains(.nodeLifecycle) {
            let controller = await NodeLifecycleController(
                client: client, nodes: nodes, leases: leases, pods: pods, recorder: recorder(EventSourceName.nodeController),
                gracePeriod: configuration.nodeMonitorGracePeriod, monitorPeriod: configuration.nodeMonitorPeriod,
                podEvictionTimeout: configuration.podEvictionTimeout, logger: logger)
            runners.append { await controller.run() }
        }
        if enabled.contains(.statefulSet) {
            let controller = await StatefulSetController(
                client: client,
                informers: .init(sets: await informers.informer(StatefulSet.self), pods: pods, claims: claims,
                                 revisions: await informers.informer(ControllerRevision.self)),
                recorder: recorder("statefulset-controller"), workers: configuration.statefulSetWorkers, logger: logger)
            runners.append { await controller.run() }
        }
        if enabled.contains(.garbageCollector) {
            let collector = GarbageCollector(client: client, recorder: recorder(GarbageCollector.eventSource),
                                             workers: configuration.garbageCollectorWorkers, resync: configuration.resync,
                                             discoveryPeriod: configuration.garbageCollectorDiscoveryPeriod, logger: logger)
            runners.append { await collector.run() }
        }
        if enabled.contains(.job) || enabled.contains(.ttlAfterFinished) {
            let jobs = await informers.informer(Job.self)
            if enabled.contains(.job) {
                let options = JobControllerOptions(workers: configuration.jobWorkers, podFailureBackoff: configuration.jobPodFailureBackoff,
                                                   podFailureBackoffMax: configuration.jobPodFailureBackoffMax)
                let controller = await JobController(client: client, jobs: jobs, pods: pods, recorder: recorder(EventSourceName.jobController),
                                                     options: options, logger: logger)
                runners.append { await controller.run() }
            }
            if enabled.contains(.ttlAfterFinished) {
                let controller = await TTLAfterFinishedController(client: client, jobs: jobs, workers: configuration.ttlAfterFinishedWorkers,
                                                                  logger: logger)
                runners.append { await controller.run() }
            }
        }
        if enabled.contains(.replicaSet) || enabled.contains(.deployment) {
            let replicaSets = await informers.informer(ReplicaSet.self)
            if enabled.contains(.replicaSet) {
                let controller = await ReplicaSetController(
                    client: client, replicaSets: replicaSets, pods: pods, recorder: recorder(EventSourceName.replicaSetController),
                    workers: configuration.replicaSetWorkers, expectationsTimeout: configuration.replicaSetExpectationsTimeout, logger: logger)
                runners.append { await controller.run() }
            }
            if enabled.contains(.deployment) {
                let deployments = await informers.informer(Deployment.self)
                let controller = await DeploymentController(
                    client: client, deployments: deployments, replicaSets: replicaSets, pods: pods,
                    recorder: recorder(EventSourceName.deploymentController), workers: configuration.deploymentWorkers, logger: logger)
                runners.append { await controller.run() }
            }
        }
        if enabled.contains(.endpointSlice) || enabled.contains(.endpoints) {
            let services = await informers.informer(Service.self)
            if enabled.contains(.endpointSlice) {
                let controller = await EndpointSliceController(
                    client: client,
                    informers: .init(services: services, pods: pods, slices: await informers.informer(EndpointSlice.self), nodes: nodes),
                    workers: configuration.endpointSliceWorkers, maxEndpointsPerSlice: configuration.maxEndpointsPerSlice, logger: logger)
                runners.append { await controller.run() }
            }
            if enabled.contains(.endpoints) {
                let controller = await EndpointsController(client: client, services: services, pods: pods,
                                                           endpoints: await informers.informer(Endpoints.self),
                                                           workers: configuration.endpointsWorkers, logger: logger)
                runners.append { await controller.run() }
            }
        }
        if enabled.contains(.nodeIPAM) && configuration.allocateNodeCIDRs {
            do {
                let controller = await NodeIPAMController(client: client, nodes: nodes, cidrs: try configuration.nodeCIDRSet(),
                                                          recorder: recorder(EventSourceName.nodeIPAMController), logger: logger)
                runners.append { await controller.run() }
            } catch {
                logger.error("node IPAM not started: \(error)")
            }
        }
        let recorderList = recorders
        state.withLock {
            $0.running = true
            $0.terms += 1
        }
        logger.info("controllers starting", metadata: ["controllers": "\(enabled.map(\.rawValue).sorted())", "driver": "\(driver ?? "-")"])
        await informers.start()
        // Every cache listed before any controller acts: a controller that read an informer it
        // does not subscribe to (the attacher reads PVs, the binder classes) would otherwise
        // take a missing object for a deleted one.
        await informers.waitForSync()
        if Task.isCancelled {
            state.withLock { $0.running = false }
            await informers.stop()
            return
        }
        await withTaskGroup(of: Void.self) { group in
            for recorder in recorderList { group.addTask { await recorder.run() } }
            for runner in runners { group.addTask(operation: runner) }
        }
        state.withLock { $0.running = false }
        await informers.stop()
        logger.info("controllers stopped")
    }
}
