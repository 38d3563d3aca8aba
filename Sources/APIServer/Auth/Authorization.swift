import ClusterAPI

/// The outcome of an authorization check.
public enum AuthorizationDecision: Sendable, Equatable {
    case allow
    /// Denied, with an optional reason appended to the 403 message.
    case deny(String?)
    /// Allowed when the object is related to the requesting node (Kubernetes' node authorizer
    /// graph: node → its pods → their claims → the claims' volumes; attachments to the node).
    /// `APIHandler` settles it by reading the store (`NodeGraph`).
    case allowIfRelated(node: String, NodeRelation)
}

/// An object a node may read only when its pods use it.
public enum NodeRelation: Sendable, Equatable {
    case claim(namespace: String, name: String)
    case volume(name: String)
    case attachment(name: String)
    /// A secret or config map a pod of the node refers to (volumes, env, imagePullSecrets).
    case podReference(resource: String, namespace: String, name: String)
}

/// Ballast's authorizer: `system:masters` may do anything; a kubelet
/// (`system:node:<name>` in `system:nodes`) gets what Kubernetes' Node authorizer and the
/// `system:node` rules give it (the object checks are in `NodeRestriction`); any other
/// authenticated user may only read discovery, version and health endpoints.
public struct Authorizer: Sendable {
    public init() {}

    public static let nodeLeaseNamespace = "kube-node-lease"

    /// Non-resource paths every authenticated user may GET.
    static func isPublicPath(_ path: String) -> Bool {
        let trimmed = path.hasSuffix("/") && path.count > 1 ? String(path.dropLast()) : path
        if ["/version", "/healthz", "/readyz", "/livez", "/api", "/apis", "/openapi/v2"].contains(trimmed) { return true }
        return trimmed.hasPrefix("/api/") || trimmed.hasPrefix("/apis/") || trimmed.hasPrefix("/openapi/")
            || trimmed.hasPrefix("/healthz/") || trimmed.hasPrefix("/readyz/") || trimmed.hasPrefix("/livez/")
    }

    /// The node name of a kubelet's user, or nil when `user` is not a node.
    public static func nodeName(of user: UserInfo) -> String? {
        guard user.groups.contains("system:nodes"), user.name.hasPrefix("system:node:") else { return nil }
        let name = String(user.name.dropFirst("system:node:".count))
        return name.isEmpty ? nil : name
    }

    public func authorize(_ user: UserInfo, _ a: RequestAttributes) -> AuthorizationDecision {
        if user.groups.contains("system:masters") { return .allow }
        if !a.isResourceRequest {
            return ["get", "head"].contains(a.verb) && Self.isPublicPath(a.path) ? .allow : .deny(nil)
        }
        guard let node = Self.nodeName(of: user) else { return .deny(nil) }
        return authorizeNode(node, a)
    }

    /// Kubernetes' `authorizeGet`: one object by name, no subresource, related to the node.
    private func relatedGet(_ node: String, _ a: RequestAttributes, _ relation: NodeRelation) -> AuthorizationDecision {
        if a.verb != "get" { return .deny("can only get individual resources of this type") }
        if !a.subresource.isEmpty { return .deny("cannot get subresource") }
        if a.name.isEmpty { return .deny("No Object name found") }
        return .allowIfRelated(node: node, relation)
    }

    private func authorizeNode(_ node: String, _ a: RequestAttributes) -> AuthorizationDecision {
        let read = ["get", "list", "watch"].contains(a.verb)
        let own = a.name == node
        switch (a.group, a.resource) {
        case ("", "nodes"):
            if read && a.subresource.isEmpty || a.subresource == "status" && a.verb == "get" { return .allow }
            if a.verb == "create" && a.subresource.isEmpty { return .allow }  // the body's name is checked on admission
            if ["update", "patch", "delete"].contains(a.verb) && (a.subresource.isEmpty || a.subresource == "status") {
                return own ? .allow : .deny("node '\(node)' cannot modify node '\(a.name)'")
            }
            return .deny(nil)
        case ("", "pods"):
            if read && a.subresource.isEmpty { return .allow }
            if a.subresource == "status" && ["get", "update", "patch"].contains(a.verb) { return .allow }  // bound pods only: admission
            if a.verb == "delete" && a.subresource.isEmpty { return .allow }  // bound pods only: admission
            return .deny(a.verb == "create" ? "node '\(node)' cannot create pods" : nil)
        case ("", "persistentvolumeclaims"):
            if a.subresource == "status" {
                // Expansion: a node reports a claim's new capacity (NodeRestriction limits what changes).
                guard ["update", "patch"].contains(a.verb) else { return .deny("can only get/update/patch this type") }
                if a.name.isEmpty { return .deny("No Object name found") }
                return .allowIfRelated(node: node, .claim(namespace: a.namespace ?? "", name: a.name))
            }
            return relatedGet(node, a, .claim(namespace: a.namespace ?? "", name: a.name))
        case ("", "persistentvolumes"):
            return relatedGet(node, a, .volume(name: a.name))
        case ("storage.k8s.io", "volumeattachments"):
            return relatedGet(node, a, .attachment(name: a.name))
        case ("", "secrets"), ("", "configmaps"):
            return relatedGet(node, a, .podReference(resource: a.resource, namespace: a.namespace ?? "", name: a.name))
        case ("", "events"):
            return ["create", "update", "patch"].contains(a.verb) ? .allow : .deny(nil)
        case ("", "services"):
            return read && a.subresource.isEmpty ? .allow : .deny(nil)
        case ("", "endpoints"):
            return a.verb == "get" && a.subresource.isEmpty ? .allow : .deny(nil)
        case ("discovery.k8s.io", "endpointslices"):
            // What kube-proxy, running with its node's identity, reads (system:node-proxier).
            return read && a.subresource.isEmpty ? .allow : .deny(nil)
        case ("storage.k8s.io", "csidrivers"):
            return read && a.subresource.isEmpty ? .allow : .deny(nil)
        case ("coordination.k8s.io", "leases"):
            guard ["get", "create", "update", "patch", "delete"].contains(a.verb) else {
                return .deny("can only get, create, update, patch, or delete a node lease")
            }
            guard a.namespace == Self.nodeLeaseNamespace else {
                return .deny("can only access leases in the \"\(Self.nodeLeaseNamespace)\" system namespace")
            }
            // The name of a created lease is checked on admission.
            if a.verb != "create" && !own { return .deny("can only access node lease with the same name as the requesting node") }
            return .allow
        case ("storage.k8s.io", "csinodes"):
            guard ["get", "create", "update", "patch", "delete"].contains(a.verb) else {
                return .deny("can only get, create, update, patch, or delete a CSINode")
            }
            if !a.subresource.isEmpty { return .deny("cannot authorize CSINode subresources") }
            if a.verb != "create" && !own { return .deny("can only access CSINode with the same name as the requesting node") }
            return .allow
        default:
            return .deny(nil)
        }
    }
}

/// Kubernetes' NodeRestriction admission: the object checks behind the node rules
/// (a kubelet may create only its own Node, Lease and CSINode, and write only the
/// pods bound to it).
struct NodeRestriction {
    /// Checks a write by `user` of `new` (nil for deletes) replacing `old` (nil for creates).
    static func admit(user: UserInfo, attributes a: RequestAttributes, resource: ResourceInfo,
                      old: JSONValue?, new: JSONValue?) throws(APIError) {
        guard !user.groups.contains("system:masters"), let node = Authorizer.nodeName(of: user) else { return }
        let name = new?["metadata"]?["name"]?.stringValue ?? old?["metadata"]?["name"]?.stringValue ?? a.name
        func deny(_ reason: String) -> APIError {
            var attributes = a
            attributes.name = name
            return APIError.forbidden(attributes, user: user, reason: reason)
        }
        switch (resource.group, resource.resource) {
        case ("", "nodes"):
            if name != node { throw deny("node '\(node)' cannot modify node '\(name)'") }
        case ("coordination.k8s.io", "leases"):
            if name != node { throw deny("can only access node lease with the same name as the requesting node") }
        case ("storage.k8s.io", "csinodes"):
            if name != node { throw deny("node '\(node)' cannot modify CSINode '\(name)'") }
        case ("", "pods"):
            let bound = old?["spec"]?["nodeName"]?.stringValue ?? new?["spec"]?["nodeName"]?.stringValue ?? ""
            if bound != node {
                throw deny("node '\(node)' can only modify pods bound to it, and pod '\(name)' is bound to '\(bound.isEmpty ? "no node" : bound)'")
            }
            if let new, let old, new["spec"] != old["spec"] {
                throw deny("node '\(node)' cannot change the spec of pod '\(name)'")
            }
            // Through pods/status a node changes status; it may not relabel the pod (owner
            // references are kept by the status strategy for everyone, see Mutation).
            if let new, let old, a.subresource == "status", new["metadata"]?["labels"] != old["metadata"]?["labels"] {
                throw deny("node \"\(node)\" cannot update labels through pod status")
            }
        case ("", "persistentvolumeclaims"):
            // A node may report expansion (status.capacity, status.conditions) and nothing else.
            if let new, let old {
                func rest(_ claim: JSONValue) -> JSONValue {
                    var c = claim
                    c["metadata"]?["resourceVersion"] = nil
                    c["status"]?["capacity"] = nil
                    c["status"]?["conditions"] = nil
                    c["status"]?["allocatedResourceStatuses"] = nil
                    c["status"]?["allocatedResources"] = nil
                    return c
                }
                if rest(new) != rest(old) {
                    throw deny("node \"\(node)\" is not allowed to update fields other than status.capacity and status.conditions")
                }
            }
        default:
            break
        }
    }
}
