import ClusterAPI

/// The legacy discovery documents kubectl reads (`/api`, `/apis`, `/api/v1`,
/// `/apis/{group}/{version}`), the version document, and the OpenAPI v3 stub that lets
/// kubectl's default (strict) validation hand validation to the server.
public struct Discovery: Sendable {
    public let registry: ResourceRegistry
    /// `host:port` clients reach the server at (for `serverAddressByClientCIDRs`).
    public let serverAddress: String

    public init(registry: ResourceRegistry, serverAddress: String) {
        self.registry = registry
        self.serverAddress = serverAddress
    }

    /// Reported as Kubernetes 1.32: the gcloud kubectl dispatcher picks its kubectl by this minor.
    public static let version: JSONValue = [
        "major": "1", "minor": "32", "gitVersion": "v1.32.0-ballast", "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.23", "compiler": "gc",
        "platform": "linux/amd64",
    ]

    public var apiVersions: JSONValue {
        ["kind": "APIVersions", "versions": ["v1"],
         "serverAddressByClientCIDRs": [["clientCIDR": "0.0.0.0/0", "serverAddress": .string(serverAddress)]]]
    }

    func groupJSON(_ name: String, _ versions: [String]) -> JSONValue {
        let list: [JSONValue] = versions.map { ["groupVersion": .string(name + "/" + $0), "version": .string($0)] }
        return ["name": .string(name), "versions": .array(list), "preferredVersion": list[0]]
    }

    public var apiGroupList: JSONValue {
        ["kind": "APIGroupList", "apiVersion": "v1", "groups": .array(registry.groups.map { groupJSON($0.name, $0.versions) })]
    }

    /// `/apis/{group}`, or nil when the group is not served.
    public func apiGroup(_ name: String) -> JSONValue? {
        guard let group = registry.groups.first(where: { $0.name == name }) else { return nil }
        var doc = groupJSON(group.name, group.versions)
        doc["kind"] = "APIGroup"
        doc["apiVersion"] = "v1"
        return doc
    }

    /// The APIResourceList of one group/version, subresources included; nil when not served.
    public func resourceList(group: String, version: String) -> JSONValue? {
        guard registry.serves(group: group, version: version) else { return nil }
        var resources: [JSONValue] = []
        for r in registry.resources(group: group, version: version) {
            var entry: JSONValue = [
                "name": .string(r.resource), "singularName": .string(r.singularName), "namespaced": .bool(r.namespaced),
                "kind": .string(r.kind), "verbs": .array(r.verbs.map(JSONValue.string)),
            ]
            if !r.shortNames.isEmpty { entry["shortNames"] = .array(r.shortNames.map(JSONValue.string)) }
            if !r.categories.isEmpty { entry["categories"] = .array(r.categories.map(JSONValue.string)) }
            resources.append(entry)
            for sub in r.subresources {
                let (kind, verbs, sgroup, sversion): (String, [String], String?, String?) = switch sub {
                case "status": (r.kind, ["get", "patch", "update"], nil, nil)
                case "binding": ("Binding", ["create"], nil, nil)
                case "log": ("Pod", ["get"], nil, nil)
                case "exec": ("PodExecOptions", ["create", "get"], nil, nil)
                case "scale": ("Scale", ["get", "patch", "update"], "autoscaling", "v1")
                default: (r.kind, ["get"], nil, nil)
                }
                var subEntry: JSONValue = ["name": .string(r.resource + "/" + sub), "singularName": "",
                                           "namespaced": .bool(r.namespaced), "kind": .string(kind),
                                           "verbs": .array(verbs.map(JSONValue.string))]
                if let sgroup { subEntry["group"] = .string(sgroup) }
                if let sversion { subEntry["version"] = .string(sversion) }
                resources.append(subEntry)
            }
        }
        return ["kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": .string(group.isEmpty ? version : group + "/" + version), "resources": .array(resources)]
    }

    // MARK: OpenAPI v3 stub

    /// A hash that changes when the served resources or a custom resource's schema do (kubectl
    /// caches docs by URL).
    var openAPIHash: String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for r in registry.resources {
            let schema = r.openAPIV3Schema.map { String(decoding: $0.jsonData, as: UTF8.self) } ?? ""
            for b in (r.groupVersion + "/" + r.resource + "/" + r.kind + schema).utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        }
        return String(h, radix: 16, uppercase: true)
    }

    private func openAPIPath(group: String, version: String) -> String {
        group.isEmpty ? "api/" + version : "apis/\(group)/\(version)"
    }

    /// `/openapi/v3`: the index of per-group-version documents.
    public var openAPIIndex: JSONValue {
        var paths: [String: JSONValue] = [:]
        var groupVersions: [(String, String)] = [("", "v1")]
        for g in registry.groups { for v in g.versions { groupVersions.append((g.name, v)) } }
        for (g, v) in groupVersions {
            let p = openAPIPath(group: g, version: v)
            paths[p] = ["serverRelativeURL": .string("/openapi/v3/\(p)?hash=\(openAPIHash)")]
        }
        return ["paths": .object(paths)]
    }

    /// `/openapi/v3/api/v1` etc.: one PATCH operation per kind declaring `fieldValidation`,
    /// which is what kubectl checks before leaving validation to the server; and the schemas of
    /// custom resources, named and tagged as apiextensions-apiserver publishes them, which
    /// `kubectl explain` reads (built-in kinds have none yet).
    public func openAPIDocument(path: String) -> JSONValue? {
        var group = "", version = ""
        let parts = path.split(separator: "/").map(String.init)
        if parts.count == 2, parts[0] == "api" {
            version = parts[1]
        } else if parts.count == 3, parts[0] == "apis" {
            group = parts[1]
            version = parts[2]
        } else {
            return nil
        }
        guard registry.serves(group: group, version: version) else { return nil }
        var paths: [String: JSONValue] = [:]
        var schemas: [String: JSONValue] = [:]
        for r in registry.resources(group: group, version: version) {
            let base = "/" + openAPIPath(group: group, version: version)
            let p = r.namespaced ? "\(base)/namespaces/{namespace}/\(r.resource)/{name}" : "\(base)/\(r.resource)/{name}"
            let gvk: JSONValue = ["group": .string(group), "version": .string(version), "kind": .string(r.kind)]
            let parameters: JSONValue = [
                ["name": "fieldValidation", "in": "query", "schema": ["type": "string"]],
                ["name": "dryRun", "in": "query", "schema": ["type": "string"]],
                ["name": "fieldManager", "in": "query", "schema": ["type": "string"]],
            ]
            var operation: JSONValue = ["x-kubernetes-group-version-kind": gvk, "parameters": parameters,
                                        "responses": ["200": ["description": "OK"]]]
            if let schema = r.openAPIV3Schema, case .object = schema {
                let name = Self.openAPISchemaName(group: group, version: version, kind: r.kind)
                schemas[name] = Self.publishedSchema(schema, gvk: gvk)
                operation["responses"] = ["200": ["description": "OK",
                                                  "content": ["application/json": ["schema": ["$ref": .string("#/components/schemas/\(name)")]]]]]
            }
            paths[p] = ["patch": operation]
        }
        return ["openapi": "3.0.0", "info": ["title": "Kubernetes", "version": "v1.32.0"], "paths": .object(paths),
                "components": ["schemas": .object(schemas)]]
    }

    /// `dev.ballast.example.v1.Backup`: the group reversed, then version and kind, as Kubernetes
    /// names definitions.
    static func openAPISchemaName(group: String, version: String, kind: String) -> String {
        (group.split(separator: ".").reversed().map(String.init) + [version, kind]).joined(separator: ".")
    }

    /// A definition's schema as published: tagged with its group, version and kind, and with
    /// the members every object has (apiVersion, kind, metadata) described where the definition
    /// left them out, as apiextensions-apiserver completes them.
    static func publishedSchema(_ schema: JSONValue, gvk: JSONValue) -> JSONValue {
        var published = schema
        published["x-kubernetes-group-version-kind"] = [gvk]
        var properties = published["properties"] ?? .object([:])
        let standard: [(String, JSONValue)] = [
            ("apiVersion", ["type": "string", "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values."]),
            ("kind", ["type": "string", "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase."]),
            ("metadata", ["type": "object", "description": "Standard object's metadata."]),
        ]
        for (name, value) in standard where properties[name] == nil { properties[name] = value }
        published["properties"] = properties
        if published["type"] == nil { published["type"] = "object" }
        return published
    }
}
