import ClusterAPI

/// The outcome of an authorization check.
public enum AuthorizationDecision: Sendable, Equatable {
    case allow
    /// Denied, with an optional reason appended to the 403 message.
    case deny(String?)
}

/// Ballast's authorizer: `system:masters` may do anything; a kubelet
/// (`system:node:<name>` in `system:nodes`) may read what it needs and write its own
/// Node, Lease, CSINode, events, and the pods bound to it (the object checks are in
/// `NodeRestriction`); any other authenticated user may only read discovery, version and
/// health endpoints.
public struct Authorizer: Sendable {
    public init() {}

    public static let nodeLeaseNamespace = "kube-node-lease"

    /// Resources a kubelet reads (get, list, watch).
    static let nodeReadable: Set<String> = [
        "nodes", "pods", "services", "endpoints", "persistentvolumes", "persistentvolumeclaims", "namespaces",
        "storageclasses", "volumeattachments", "csidrivers", "csinodes", "leases", "events",
    ]

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
        case ("", "events"):
            return read || ["create", "update", "patch"].contains(a.verb) ? .allow : .deny(nil)
        case ("coordination.k8s.io", "leases"):
            guard a.namespace == Self.nodeLeaseNamespace else {
                return .deny("a node may only use leases in the \(Self.nodeLeaseNamespace) namespace")
            }
            if a.verb == "create" { return .allow }  // the body's name is checked on admission
            if ["get", "update", "patch", "delete"].contains(a.verb) {
                return own ? .allow : .deny("node '\(node)' cannot access the lease of node '\(a.name)'")
            }
            return .deny(nil)
        case ("storage.k8s.io", "csinodes"):
            if read { return .allow }
            if a.verb == "create" { return .allow }
            if ["update", "patch", "delete"].contains(a.verb) {
                return own ? .allow : .deny("node '\(node)' cannot modify CSINode '\(a.name)'")
            }
            return .deny(nil)
        default:
            if read && a.subresource.isEmpty && Self.nodeReadable.contains(a.resource) { return .allow }
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
            if name != node { throw deny("node '\(node)' cannot access the lease of node '\(name)'") }
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
        default:
            break
        }
    }
}
