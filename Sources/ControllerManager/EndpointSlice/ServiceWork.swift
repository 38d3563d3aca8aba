// The work queue of the controllers that follow Services and the pods they select (the
// EndpointSlice and Endpoints controllers): a Service to sync, or a change that maps to Services.
// The mapping is done in a worker, where the informers' caches can be read (an informer's event
// callback cannot await them).
import APIClient
import ClusterAPI

enum ServiceWork: Hashable, Sendable {
    case service(String)
    /// A pod of `namespace` whose labels were (or are) these.
    case pod(namespace: String, labels: [[String: String]])
    /// A node whose zone changed.
    case node(String)

    /// Feeds `controller` from Service and pod events; adds the pod indices the mapping uses.
    static func enqueue(_ controller: Controller<ServiceWork>, services: Informer<Service>, pods: Informer<Pod>) async {
        await pods.addIndex("node") { pod in pod.spec.nodeName.map { [$0] } ?? [] }
        await pods.addIndex("namespace") { pod in [pod.metadata.namespace ?? ""] }
        await controller.enqueue(from: services) { event in [.service(Informer<Service>.key(event.object))] }
        await controller.enqueue(from: pods) { event in
            var labels = [event.object.metadata.labels ?? [:]]
            if case .updated(let old, let new) = event {
                // Only what endpoints are made of matters.
                guard Relevant(old) != Relevant(new) else { return [] }
                if old.metadata.labels != new.metadata.labels { labels.append(old.metadata.labels ?? [:]) }
            }
            return [.pod(namespace: event.object.metadata.namespace ?? "", labels: labels)]
        }
    }

    /// The keys of the Services this work concerns.
    func services(services: Informer<Service>, pods: Informer<Pod>) async -> [String] {
        switch self {
        case .service(let key):
            return [key]
        case .pod(let namespace, let labelSets):
            return await services.list().filter { service in
                guard service.metadata.namespace == namespace, let selector = DesiredEndpoints.selector(service) else { return false }
                return labelSets.contains { labels in selector.allSatisfy { labels[$0.key] == $0.value } }
            }.map(Informer<Service>.key)
        case .node(let name):
            let all = await services.list()
            var keys: Set<String> = []
            for pod in await pods.byIndex("node", name) {
                for service in all where DesiredEndpoints.selects(service, pod) { keys.insert(Informer<Service>.key(service)) }
            }
            return keys.sorted()
        }
    }

    /// What of a pod its endpoints are made of (labels for selection included).
    struct Relevant: Equatable {
        var labels: [String: String]?
        var ips: [String]
        var ready: Bool
        var phase: String?
        var deleting: Bool
        var node: String?
        var hostname: String?
        var subdomain: String?
        var ports: [[ContainerPort]?]

        init(_ pod: Pod) {
            labels = pod.metadata.labels
            ips = (pod.status.podIPs ?? []).compactMap { $0["ip"]?.stringValue } + [pod.status.podIP ?? ""]
            ready = pod.isReady
            phase = pod.status.phase
            deleting = pod.metadata.deletionTimestamp != nil
            node = pod.spec.nodeName
            hostname = pod.spec.hostname
            subdomain = pod.spec.subdomain
            ports = pod.spec.containers.map(\.ports)
        }
    }
}
