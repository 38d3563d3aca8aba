// Custom resources as apiextensions-apiserver's custom resource handler treats them on write:
// unknown fields pruned, schema defaults applied, metadata and the schema validated.

public enum CustomResourceObjects {
    /// The object to store for a create (`old` nil) or an update, or the problems that refuse
    /// it, and the paths of the fields pruned because the schema does not declare them.
    public static func prepare(_ object: JSONValue, old: JSONValue?, schema: StructuralSchema, namespaced: Bool)
        -> (object: JSONValue, errors: [FieldError], pruned: [String]) {
        var object = object
        let pruned = schema.prune(&object)
        schema.applyDefaults(&object)
        // Defaults are pruned too (a default may carry fields the schema does not declare).
        schema.prune(&object)
        var errors: [FieldError] = []
        let meta: ObjectMeta
        do {
            meta = try (object["metadata"] ?? .object([:])).decode(as: ObjectMeta.self)
        } catch {
            return (object, [.invalid("metadata", literal: compactJSON(object["metadata"] ?? .null), "must be an object meta")], pruned)
        }
        if let old, let oldMeta = try? (old["metadata"] ?? .object([:])).decode(as: ObjectMeta.self) {
            errors += Validation.objectMetaUpdate(meta, oldMeta, generic: true)
            errors += Validation.objectMetaCommon(meta, namespaced: namespaced, generic: true)
        } else {
            errors += Validation.objectMeta(meta, namespaced: namespaced, name: Validation.nameIsDNSSubdomain, generic: true)
        }
        var body = object
        for key in ["apiVersion", "kind", "metadata"] { body[key] = nil }
        errors += schema.validate(body, path: "")
        return (object, errors.deduplicated(), pruned)
    }
}
