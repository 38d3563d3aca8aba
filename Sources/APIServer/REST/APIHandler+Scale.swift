import ClusterAPI
import HTTPKit

// The `scale` subresource of StatefulSets, Deployments and ReplicaSets (autoscaling/v1
// `Scale`), which `kubectl scale` patches: a view of `spec.replicas`, `status.replicas` and the
// pods' selector. Writing it changes only the workload's `spec.replicas`.
extension APIHandler {
    func getScale(_ c: RequestContext, _ info: ResourceInfo) async throws -> HTTPResponse {
        let key = info.key(namespace: c.attributes.namespace, name: c.attributes.name)
        guard let stored = try await store.get(key) else { throw APIError.notFound(info, c.attributes.name) }
        return Self.json(try Self.scale(of: stored.object))
    }

    /// PUT (a whole Scale) or PATCH (any patch type, applied to the current Scale).
    func updateScale(_ c: RequestContext, _ info: ResourceInfo) async throws -> HTTPResponse {
        let scaleInfo = ResourceInfo(group: "autoscaling", version: "v1", resource: info.resource, singularName: "", kind: "Scale",
                                     namespaced: true, shortNames: [], verbs: [], categories: [], subresources: [],
                                     selectableFields: [], strategy: .typed(Scale.self))
        let body: JSONValue
        let transform: (JSONValue) throws(APIError) -> JSONValue
        if c.attributes.verb == "patch" {
            do { body = try JSONValue(parsing: c.request.body) } catch {
                throw APIError.badRequest("the patch is not valid JSON: \(describeDecodingError(error))")
            }
            let contentType = (c.request.headers.first(name: "Content-Type") ?? "").lowercased()
            transform = { current throws(APIError) in
                if contentType.hasPrefix("application/json-patch+json") {
                    do throws(JSONPatch.Failure) { return try JSONPatch.apply(body, to: current) } catch {
                        throw APIError(.invalid, "the JSON patch could not be applied: \(error)")
                    }
                }
                // Merge, strategic merge and apply patches mean the same on a Scale (no lists).
                return JSONMergePatch.apply(body, to: current)
            }
        } else {
            body = try bodyObject(c)
            transform = { _ in body }
        }
        let precondition = body["metadata"]?["resourceVersion"]?.stringValue
        let result = try await guaranteedUpdate(info, namespace: c.attributes.namespace, name: c.attributes.name, c: c,
                                                precondition: precondition) { current throws(APIError) in
            let wanted = try transform(try Self.scale(of: current))
            let scale: Scale = try ObjectStrategy.decodeTyped(wanted, scaleInfo)
            let errors = scale.validate()
            if !errors.isEmpty { throw APIError.invalid(scaleInfo, current["metadata"]?["name"]?.stringValue ?? "", errors) }
            var updated = current
            updated["spec"]?["replicas"] = .integer(Int64(scale.spec.replicas ?? 0))
            return updated
        }
        return Self.json(try Self.scale(of: result))
    }

    /// The Scale view of a workload.
    static func scale(of object: JSONValue) throws(APIError) -> JSONValue {
        var meta: [String: JSONValue] = [:]
        for field in ["name", "namespace", "uid", "resourceVersion", "creationTimestamp"] {
            meta[field] = object["metadata"]?[field]
        }
        var selectorText = ""
        if let spec = object["spec"]?["selector"] {
            do {
                selectorText = try LabelSelector(try spec.decode(as: LabelSelectorSpec.self)).description
            } catch {
                selectorText = ""
            }
        }
        return ["kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": .object(meta),
                "spec": ["replicas": .integer(object["spec"]?["replicas"]?.int64Value ?? 0)],
                "status": ["replicas": .integer(object["status"]?["replicas"]?.int64Value ?? 0), "selector": .string(selectorText)]]
    }
}
