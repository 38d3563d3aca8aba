import ClusterAPI

/// The `kubernetes` Service in `default` that points at the API server (kube-apiserver's
/// bootstrap controller, `pkg/controlplane/controller/kubernetesservice`): ClusterIP the
/// first address of the Service range, port 443 (`https`) to the API server's port, and
/// its Endpoints and EndpointSlice listing the API server's address. Kept at start and on
/// every repair run.
enum KubernetesService {
    static let name = "kubernetes"
    static let namespace = "default"

    /// Creates or corrects the Service, its Endpoints and its EndpointSlice.
    static func ensure(_ handler: APIHandler, address: String, port: Int) async throws(APIError) {
        try await ensureService(handler, port: port)
        try await ensureEndpoints(handler, address: address, port: port)
        try await ensureEndpointSlice(handler, address: address, port: port)
    }

    static func ensureService(_ handler: APIHandler, port: Int) async throws(APIError) {
        guard let info = handler.registry.lookup(group: "", version: "v1", resource: "services") else { return }
        let key = info.key(namespace: namespace, name: name)
        let ports: JSONValue = [["name": "https", "port": 443, "protocol": "TCP", "targetPort": .integer(Int64(port))]]
        if let stored = try await handler.store.get(key) {
            guard stored.object["spec"]?["ports"] != ports else { return }
            var service = stored.object
            service["spec"]?["ports"] = ports
            let updated = try Mutation.prepareUpdate(service, old: stored.object, info: info, subresource: "")
            _ = try await handler.store.update(key, updated, expected: stored.modRevision)
            return
        }
        let body: JSONValue = [
            "apiVersion": "v1", "kind": "Service",
            "metadata": ["name": .string(name), "namespace": .string(namespace), "labels": ["component": "apiserver", "provider": "kubernetes"]],
            "spec": ["type": "ClusterIP", "clusterIP": .string(handler.services.network.kubernetesServiceIP), "ports": ports,
                     "sessionAffinity": "None"],
        ]
        var service = try Mutation.prepareCreate(body, info: info, namespace: namespace)
        let allocated = try await handler.services.allocate(&service, info: info, dryRun: false)
        do {
            _ = try await handler.store.create(key, service, alreadyExists: APIError.alreadyExists(info, name))
        } catch {
            await handler.services.release(allocated)
            if error.code != .alreadyExists { throw error }
        }
    }

    static func ensureEndpoints(_ handler: APIHandler, address: String, port: Int) async throws(APIError) {
        guard let info = handler.registry.lookup(group: "", version: "v1", resource: "endpoints") else { return }
        let subsets: JSONValue = [["addresses": [["ip": .string(address)]], "ports": [["name": "https", "port": .integer(Int64(port)), "protocol": "TCP"]]]]
        try await put(handler, info: info, body: [
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": ["name": .string(name), "namespace": .string(namespace), "labels": ["endpointslice.kubernetes.io/skip-mirror": "true"]],
            "subsets": subsets,
        ], content: ["subsets"])
    }

    static func ensureEndpointSlice(_ handler: APIHandler, address: String, port: Int) async throws(APIError) {
        guard let info = handler.registry.lookup(group: "discovery.k8s.io", version: "v1", resource: "endpointslices") else { return }
        try await put(handler, info: info, body: [
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": ["name": .string(name), "namespace": .string(namespace), "labels": ["kubernetes.io/service-name": .string(name)]],
            "addressType": "IPv4",
            "endpoints": [["addresses": [.string(address)], "conditions": ["ready": true]]],
            "ports": [["name": "https", "port": .integer(Int64(port)), "protocol": "TCP"]],
        ], content: ["addressType", "endpoints", "ports"])
    }

    /// Creates `body`, or replaces the `content` fields of the stored object when they differ.
    static func put(_ handler: APIHandler, info: ResourceInfo, body: JSONValue, content: [String]) async throws(APIError) {
        let key = info.key(namespace: namespace, name: name)
        if let stored = try await handler.store.get(key) {
            guard content.contains(where: { stored.object[$0] != body[$0] }) else { return }
            var object = stored.object
            for field in content { object[field] = body[field] }
            let updated = try Mutation.prepareUpdate(object, old: stored.object, info: info, subresource: "")
            _ = try await handler.store.update(key, updated, expected: stored.modRevision)
            return
        }
        let object = try Mutation.prepareCreate(body, info: info, namespace: namespace)
        do {
            _ = try await handler.store.create(key, object, alreadyExists: APIError.alreadyExists(info, name))
        } catch {
            if error.code != .alreadyExists { throw error }
        }
    }
}
