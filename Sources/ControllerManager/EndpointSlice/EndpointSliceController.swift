// The EndpointSlice controller (kube-controller-manager's pkg/controller/endpointslice): every
// Service with a selector gets discovery.k8s.io/v1 EndpointSlices listing the pods it selects —
// labelled `kubernetes.io/service-name` and `endpointslice.kubernetes.io/managed-by:
// endpointslice-controller.k8s.io`, owned by the Service.
//
// | event                                   | enqueued                                    |
// |-----------------------------------------|---------------------------------------------|
// | Service added, changed, deleted         | the Service                                 |
// | pod added, changed, deleted             | the Services of its namespace selecting it (old or new labels) |
// | managed slice changed or deleted        | its Service (someone else's edit is undone) |
// | node's zone label changed               | the Services of the pods on it              |
//
// sync(Service): its desired endpoints from the pod cache (`DesiredEndpoints`), the plan against
// its managed slices (`SliceReconciler`), then deletes, updates and creates. A Service without
// a selector, of type ExternalName, or gone keeps no managed slices.
import APIClient
import ClusterAPI
import Foundation
import Logging
import Synchronization

final class EndpointSliceController: Sendable {
    struct Informers: Sendable {
        let services: Informer<Service>
        let pods: Informer<Pod>
        let slices: Informer<EndpointSlice>
        let nodes: Informer<Node>
    }

    static let zoneLabel = "topology.kubernetes.io/zone"

    typealias Work = ServiceWork

    let client: KubeClient
    let informers: Informers
    let maxEndpointsPerSlice: Int
    let logger: Logger
    let controller: Controller<Work>
    /// The slices this controller wrote, per Service, that its cache may not show yet (the
    /// endpointSliceTracker): name → the resource version written, or nil for a delete. A
    /// sync on a cache that lags them would plan from the past — creating a second slice for
    /// endpoints already placed — so it waits for the cache instead.
    /// An entry the cache never shows (the slice deleted by someone else at once) is dropped
    /// after `writeExpiry`.
    private let written = Mutex<[String: [String: Written]]>([:])
    private struct Written {
        var version: Int64?
        var at: ContinuousClock.Instant
    }
    static let writeExpiry: Duration = .seconds(10)

    init(client: KubeClient, informers: Informers, workers: Int, maxEndpointsPerSlice: Int, logger: Logger) async {
        self.client = client
        self.informers = informers
        self.maxEndpointsPerSlice = maxEndpointsPerSlice
        self.logger = logger
        let box = LateBound<EndpointSliceController>()
        controller = Controller(name: "endpointslice", workers: workers, logger: logger) { work in
            guard let controller = box.value else { return .done }
            return try await controller.process(work)
        }
        box.value = self
        await informers.slices.addIndex("service") { slice in Self.serviceKey(of: slice).map { [$0] } ?? [] }
        await ServiceWork.enqueue(controller, services: informers.services, pods: informers.pods)
        await controller.enqueue(from: informers.slices) { event in
            if case .added = event { return [] }
            return Self.serviceKey(of: event.object).map { [.service($0)] } ?? []
        }
        await controller.enqueue(from: informers.nodes) { event in
            guard case .updated(let old, let new) = event,
                  old.metadata.labels?[Self.zoneLabel] != new.metadata.labels?[Self.zoneLabel] else { return [] }
            return [.node(new.metadata.name ?? "")]
        }
    }

    func run() async { await controller.run() }

    /// The managed slice's Service key (`namespace/name`); nil for a slice not managed here.
    static func serviceKey(of slice: EndpointSlice) -> String? {
        guard slice.metadata.labels?[EndpointSlice.managedByLabel] == EndpointSlice.controllerName,
              let service = slice.metadata.labels?[EndpointSlice.serviceNameLabel] else { return nil }
        return (slice.metadata.namespace ?? "") + "/" + service
    }

    func process(_ work: Work) async throws -> SyncResult {
        if case .service(let key) = work { return try await sync(key) }
        for key in await work.services(services: informers.services, pods: informers.pods) { await controller.queue.add(.service(key)) }
        return .done
    }

    func sync(_ key: String) async throws -> SyncResult {
        let existing = await informers.slices.byIndex("service", key)
        if isStale(key, existing) { return .requeue(after: .milliseconds(50)) }
        guard let service = await informers.services.get(key), service.metadata.deletionTimestamp == nil,
              DesiredEndpoints.isManaged(service) else {
            for slice in existing {
                try await delete(slice)
                record(key, slice.metadata.name ?? "", nil)
            }
            return .done
        }
        let pods = await informers.pods.byIndex("namespace", service.metadata.namespace ?? "")
        var zones: [String: String] = [:]
        for node in Set(pods.compactMap(\.spec.nodeName)) {
            zones[node] = await informers.nodes.get(name: node)?.metadata.labels?[Self.zoneLabel]
        }
        let desired = DesiredEndpoints.compute(service, pods: pods) { zones[$0] }
        let plan = SliceReconciler.plan(desired: desired, existing: existing, maxEndpointsPerSlice: maxEndpointsPerSlice,
                                        template: { ports in Self.newSlice(service, ports: ports) },
                                        labelsAndOwner: { slice in Self.setLabelsAndOwner(&slice, service) })
        if plan.isEmpty { return .done }
        logger.debug("syncing endpoint slices", metadata: ["service": "\(key)", "create": "\(plan.create.count)",
                                                           "update": "\(plan.update.count)", "delete": "\(plan.delete.count)"])
        // Deletes first: their endpoints may move into the slices created or updated next.
        for slice in plan.delete {
            try await delete(slice)
            record(key, slice.metadata.name ?? "", nil)
        }
        var stale = false
        for slice in plan.update {
            do {
                let updated = try await client.update(slice)
                record(key, updated.metadata.name ?? "", Int64(updated.metadata.resourceVersion ?? ""))
            } catch let error as APIError where error.isConflict || error.isNotFound {
                stale = true
            }
        }
        for slice in plan.create {
            do {
                let created = try await client.create(slice)
                record(key, created.metadata.name ?? "", Int64(created.metadata.resourceVersion ?? ""))
            } catch let error as APIError where error.code == 403 {
                return .done  // the namespace is being deleted
            }
        }
        // A stale cache: again once the informer has caught up.
        return stale ? .retry : .done
    }

    private func record(_ service: String, _ slice: String, _ version: Int64?) {
        written.withLock { $0[service, default: [:]][slice] = Written(version: version, at: .now) }
    }

    /// Whether the cache lags a write of ours for `service`; forgets the writes it shows.
    private func isStale(_ service: String, _ cached: [EndpointSlice]) -> Bool {
        written.withLock { all in
            guard var pending = all[service] else { return false }
            let now = ContinuousClock.now
            for (name, write) in pending {
                let seen = cached.first { $0.metadata.name == name }
                if now - write.at > Self.writeExpiry {
                    pending[name] = nil
                } else if let version = write.version {
                    if let seen, let cachedRV = Int64(seen.metadata.resourceVersion ?? ""), cachedRV >= version { pending[name] = nil }
                } else if seen == nil {
                    pending[name] = nil
                }
            }
            all[service] = pending.isEmpty ? nil : pending
            return !pending.isEmpty
        }
    }

    private func delete(_ slice: EndpointSlice) async throws {
        do {
            try await client.delete(EndpointSlice.self, name: slice.metadata.name ?? "", namespace: slice.metadata.namespace)
        } catch let error as APIError where error.isNotFound {}
    }

    /// A new slice for `service` (`newEndpointSlice`): `<service>-` plus a generated suffix.
    static func newSlice(_ service: Service, ports: [EndpointPort]) -> EndpointSlice {
        var slice = EndpointSlice(metadata: ObjectMeta(generateName: slicePrefix(service.metadata.name ?? ""), namespace: service.metadata.namespace),
                                  addressType: "IPv4", endpoints: [], ports: ports)
        setLabelsAndOwner(&slice, service)
        return slice
    }

    /// `getEndpointSlicePrefix`: the Service's name and a dash, shortened to leave room for the suffix.
    static func slicePrefix(_ name: String) -> String {
        let prefix = name + "-"
        return prefix.utf8.count > 58 ? String(prefix.prefix(58)) : prefix
    }

    /// `setEndpointSliceLabels` and the owner reference: the Service's labels (but the
    /// reserved ones), `kubernetes.io/service-name`, `managed-by`, `service.kubernetes.io/headless`
    /// for a headless Service; owned (controller, blocking) by the Service.
    static func setLabelsAndOwner(_ slice: inout EndpointSlice, _ service: Service) {
        var labels: [String: String] = [:]
        for (key, value) in service.metadata.labels ?? [:]
            where key != EndpointSlice.serviceNameLabel && key != EndpointSlice.managedByLabel && key != headlessLabel {
            labels[key] = value
        }
        labels[EndpointSlice.serviceNameLabel] = service.metadata.name ?? ""
        labels[EndpointSlice.managedByLabel] = EndpointSlice.controllerName
        if service.spec?["clusterIP"]?.stringValue == "None" { labels[headlessLabel] = "" }
        slice.metadata.labels = labels
        slice.metadata.ownerReferences = [OwnerReference(apiVersion: "v1", kind: "Service", name: service.metadata.name ?? "",
                                                         uid: service.metadata.uid ?? "", controller: true, blockOwnerDeletion: true)]
    }

    static let headlessLabel = "service.kubernetes.io/headless"
}
