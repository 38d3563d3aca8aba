import ClusterAPI

/// Settles `AuthorizationDecision.allowIfRelated` as Kubernetes' node authorizer does with
/// its graph, by reading the store at request time: a node may read the claims its pods
/// mount, the volumes bound to those claims, and the attachments to itself.
///
///     node ── pod (spec.nodeName) ── claim (volumes[].persistentVolumeClaim.claimName,
///                                           or <pod>-<volume> for ephemeral volumes)
///                                      └── volume (the claim's spec.volumeName)
///     node ── volumeattachment (spec.nodeName)
///     node ── pod ── secret, configmap (volumes, projected sources, env, envFrom, imagePullSecrets)
struct NodeGraph: Sendable {
    let store: ObjectStore
    let registry: ResourceRegistry

    func related(node: String, _ relation: NodeRelation) async throws(APIError) -> Bool {
        switch relation {
        case .attachment(let name):
            let attachments = registry.lookup(group: "storage.k8s.io", version: "v1", resource: "volumeattachments")!
            guard let va = try await store.get(attachments.key(namespace: nil, name: name)) else { return false }
            return va.object["spec"]?["nodeName"]?.stringValue == node
        case .podReference(let resource, let namespace, let name):
            let pods = registry.lookup(group: "", version: "v1", resource: "pods")!
            let page = try await store.list(prefix: pods.listPrefix(namespace: namespace), limit: 0, continueAfter: nil, revision: 0) {
                $0["spec"]?["nodeName"]?.stringValue == node
            }
            return page.items.contains { Self.references($0["spec"] ?? .null, resource: resource).contains(name) }
        case .claim(let namespace, let name):
            return try await claims(of: node, in: namespace).contains(name)
        case .volume(let name):
            // The volume's claim (its claimRef), if that claim is bound to it and used on the node.
            let volumes = registry.lookup(group: "", version: "v1", resource: "persistentvolumes")!
            guard let pv = try await store.get(volumes.key(namespace: nil, name: name)),
                  let namespace = pv.object["spec"]?["claimRef"]?["namespace"]?.stringValue,
                  let claimName = pv.object["spec"]?["claimRef"]?["name"]?.stringValue else { return false }
            let claims = registry.lookup(group: "", version: "v1", resource: "persistentvolumeclaims")!
            guard let pvc = try await store.get(claims.key(namespace: namespace, name: claimName)),
                  pvc.object["spec"]?["volumeName"]?.stringValue == name else { return false }
            return try await self.claims(of: node, in: namespace).contains(claimName)
        }
    }

    /// The secrets (`resource` "secrets") or config maps a pod spec names.
    static func references(_ spec: JSONValue, resource: String) -> Set<String> {
        let secret = resource == "secrets"
        let volumeKey = secret ? "secret" : "configMap", nameKey = secret ? "secretName" : "name"
        let refKey = secret ? "secretKeyRef" : "configMapKeyRef", fromKey = secret ? "secretRef" : "configMapRef"
        var names: Set<String> = []
        for volume in spec["volumes"]?.arrayValue ?? [] {
            if let name = volume[volumeKey]?[nameKey]?.stringValue { names.insert(name) }
            for source in volume["projected"]?["sources"]?.arrayValue ?? [] {
                if let name = source[volumeKey]?["name"]?.stringValue { names.insert(name) }
            }
        }
        let containers = (spec["containers"]?.arrayValue ?? []) + (spec["initContainers"]?.arrayValue ?? [])
            + (spec["ephemeralContainers"]?.arrayValue ?? [])
        for container in containers {
            for variable in container["env"]?.arrayValue ?? [] {
                if let name = variable["valueFrom"]?[refKey]?["name"]?.stringValue { names.insert(name) }
            }
            for source in container["envFrom"]?.arrayValue ?? [] {
                if let name = source[fromKey]?["name"]?.stringValue { names.insert(name) }
            }
        }
        if secret {
            for reference in spec["imagePullSecrets"]?.arrayValue ?? [] {
                if let name = reference["name"]?.stringValue { names.insert(name) }
            }
        }
        return names
    }

    /// The claims that pods bound to `node` in `namespace` mount.
    func claims(of node: String, in namespace: String) async throws(APIError) -> Set<String> {
        let pods = registry.lookup(group: "", version: "v1", resource: "pods")!
        let page = try await store.list(prefix: pods.listPrefix(namespace: namespace), limit: 0, continueAfter: nil, revision: 0) {
            $0["spec"]?["nodeName"]?.stringValue == node
        }
        var names: Set<String> = []
        for pod in page.items {
            let podName = pod["metadata"]?["name"]?.stringValue ?? ""
            for volume in pod["spec"]?["volumes"]?.arrayValue ?? [] {
                if let claim = volume["persistentVolumeClaim"]?["claimName"]?.stringValue { names.insert(claim) }
                if volume["ephemeral"] != nil, let volumeName = volume["name"]?.stringValue { names.insert(podName + "-" + volumeName) }
            }
        }
        return names
    }
}
