// The Endpoints controller (kube-controller-manager's pkg/controller/endpoint): the legacy core/v1
// Endpoints object of every Service with a selector, named as the Service, for `kubectl get
// endpoints` and older clients. Built from the same pods as the EndpointSlices: ready pods in
// `addresses`, others in `notReadyAddresses` (all in `addresses` with
// `publishNotReadyAddresses`), terminating pods left out unless the Service publishes not-ready
// addresses; one subset per set of resolved ports; at most 1000 addresses, the rest cut with
// the `endpoints.kubernetes.io/over-capacity: truncated` annotation. A Service without a
// selector keeps the Endpoints its user writes; a deleted Service's Endpoints go with it.
import APIClient
import ClusterAPI
import Foundation
import Logging

final class EndpointsController: Sendable {
    static let maxAddresses = 1000
    static let overCapacityAnnotation = "endpoints.kubernetes.io/over-capacity"

    let client: KubeClient
    let services: Informer<Service>
    let pods: Informer<Pod>
    let endpoints: Informer<Endpoints>
    let logger: Logger
    let controller: Controller<ServiceWork>

    init(client: KubeClient, services: Informer<Service>, pods: Informer<Pod>, endpoints: Informer<Endpoints>, workers: Int, logger: Logger) async {
        self.client = client
        self.services = services
        self.pods = pods
        self.endpoints = endpoints
        self.logger = logger
        let box = LateBound<EndpointsController>()
        controller = Controller(name: "endpoint", workers: workers, logger: logger) { work in
            guard let controller = box.value else { return .done }
            return try await controller.process(work)
        }
        box.value = self
        await ServiceWork.enqueue(controller, services: services, pods: pods)
        // An edit or delete of a Service's Endpoints by someone else is undone.
        await controller.enqueue(from: endpoints) { event in
            if case .added = event { return [] }
            return [.service(Informer<Endpoints>.key(event.object))]
        }
    }

    func run() async { await controller.run() }

    func process(_ work: ServiceWork) async throws -> SyncResult {
        if case .service(let key) = work { return try await sync(key) }
        for key in await work.services(services: services, pods: pods) { await controller.queue.add(.service(key)) }
        return .done
    }

    func sync(_ key: String) async throws -> SyncResult {
        let existing = await endpoints.get(key)
        guard let service = await services.get(key) else {
            // The Service is gone: so are its Endpoints (only those it had a selector for
            // would be left otherwise, and the cache cannot tell which).
            if let existing {
                do {
                    try await client.delete(Endpoints.self, name: existing.metadata.name ?? "", namespace: existing.metadata.namespace)
                } catch let error as APIError where error.isNotFound {}
            }
            return .done
        }
        guard DesiredEndpoints.isManaged(service), service.metadata.deletionTimestamp == nil else { return .done }
        let namespacePods = await pods.byIndex("namespace", service.metadata.namespace ?? "")
        var desired = Self.desired(service, pods: namespacePods)
        if var current = existing {
            guard current.subsets != desired.subsets || current.metadata.labels != desired.metadata.labels
                    || current.metadata.annotations?[Self.overCapacityAnnotation] != desired.metadata.annotations?[Self.overCapacityAnnotation]
            else { return .done }
            current.subsets = desired.subsets
            current.metadata.labels = desired.metadata.labels
            var annotations = current.metadata.annotations ?? [:]
            annotations[Self.overCapacityAnnotation] = desired.metadata.annotations?[Self.overCapacityAnnotation]
            current.metadata.annotations = annotations.isEmpty ? nil : annotations
            do {
                _ = try await client.update(current)
            } catch let error as APIError where error.isConflict || error.isNotFound {
                return .retry
            }
            return .done
        }
        desired.metadata.namespace = service.metadata.namespace
        do {
            _ = try await client.create(desired)
        } catch let error as APIError where error.isAlreadyExists {
            return .retry  // the cache has not shown it yet
        } catch let error as APIError where error.code == 403 {
            return .done  // the namespace is being deleted
        }
        return .done
    }

    /// The Endpoints `service` should have, from the pods of its namespace.
    static func desired(_ service: Service, pods: [Pod]) -> Endpoints {
        let publishNotReady = service.spec?["publishNotReadyAddresses"]?.boolValue == true
        let servicePorts = service.spec?["ports"]?.arrayValue ?? []
        // port set → (ready addresses, not-ready addresses)
        var subsets: [[JSONValue]: (ready: [JSONValue], notReady: [JSONValue])] = [:]
        var total = 0
        var truncated = false
        for pod in pods.sorted(by: { ($0.metadata.name ?? "") < ($1.metadata.name ?? "") })
            where DesiredEndpoints.selects(service, pod) && DesiredEndpoints.shouldInclude(pod) {
            if pod.metadata.deletionTimestamp != nil && !publishNotReady { continue }
            guard let ip = DesiredEndpoints.ipv4Address(pod) else { continue }
            let ports = DesiredEndpoints.ports(service, pod)
            if ports.isEmpty && !servicePorts.isEmpty { continue }  // none of its ports resolves on this pod
            if total >= maxAddresses {
                truncated = true
                continue
            }
            total += 1
            var address: JSONValue = ["ip": .string(ip), "targetRef": ["kind": "Pod", "namespace": .string(pod.metadata.namespace ?? ""),
                                                                        "name": .string(pod.metadata.name ?? ""), "uid": .string(pod.metadata.uid ?? "")]]
            if let node = pod.spec.nodeName, !node.isEmpty { address["nodeName"] = .string(node) }
            if let hostname = DesiredEndpoints.hostname(pod, service) { address["hostname"] = .string(hostname) }
            let key: [JSONValue] = ports.map { port in
                var json: JSONValue = ["port": .integer(Int64(port.port ?? 0)), "protocol": .string(port.protocol ?? "TCP")]
                if let name = port.name, !name.isEmpty { json["name"] = .string(name) }
                if let app = port.appProtocol { json["appProtocol"] = .string(app) }
                return json
            }
            if publishNotReady || (pod.isReady && pod.metadata.deletionTimestamp == nil) {
                subsets[key, default: ([], [])].ready.append(address)
            } else {
                subsets[key, default: ([], [])].notReady.append(address)
            }
        }
        func text(_ ports: [JSONValue]) -> String { ports.map { String(decoding: $0.jsonBytes, as: UTF8.self) }.joined() }
        let ordered = subsets.keys.sorted { text($0) < text($1) }
        let list: [JSONValue] = ordered.map { ports in
            let entry = subsets[ports]!
            func byIP(_ a: JSONValue, _ b: JSONValue) -> Bool { (a["ip"]?.stringValue ?? "") < (b["ip"]?.stringValue ?? "") }
            var subset: JSONValue = [:]
            if !entry.ready.isEmpty { subset["addresses"] = .array(entry.ready.sorted(by: byIP)) }
            if !entry.notReady.isEmpty { subset["notReadyAddresses"] = .array(entry.notReady.sorted(by: byIP)) }
            if !ports.isEmpty { subset["ports"] = .array(ports) }
            return subset
        }
        var labels = service.metadata.labels ?? [:]
        labels[EndpointSliceController.headlessLabel] = service.spec?["clusterIP"]?.stringValue == "None" ? "" : nil
        var endpoints = Endpoints(metadata: ObjectMeta(name: service.metadata.name, namespace: service.metadata.namespace,
                                                       labels: labels.isEmpty ? nil : labels),
                                  subsets: list.isEmpty ? nil : list)
        if truncated { endpoints.metadata.annotations = [overCapacityAnnotation: "truncated"] }
        return endpoints
    }
}
