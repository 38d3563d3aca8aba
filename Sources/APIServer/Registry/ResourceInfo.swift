import ClusterAPI

/// One served resource: what discovery advertises and what the REST layer needs to
/// route, store, default and validate it.
public struct ResourceInfo: Sendable {
    /// API group, "" for core.
    public let group: String
    public let version: String
    /// The plural, lowercase resource name used in URLs and storage keys (`pods`).
    public let resource: String
    public let singularName: String
    public let kind: String
    public let namespaced: Bool
    public let shortNames: [String]
    public let verbs: [String]
    public let categories: [String]
    /// Subresources served beside the main resource (`status`, `binding`, `log`).
    public let subresources: [String]
    /// Field selector labels beyond metadata.name/metadata.namespace.
    public let selectableFields: [String]
    /// Defaulting and validation through the typed model of ClusterAPI.
    let strategy: ObjectStrategy
    /// Where a custom resource's objects are stored (`/registry/<plural>.<group>/`); nil for
    /// the built-in resources (`/registry/<resource>/`).
    public var storagePrefix: String? = nil
    /// A custom resource's `additionalPrinterColumns`; nil: Kubernetes' built-in printer.
    public var printerColumns: [CustomResourceColumnDefinition]? = nil
    /// A custom resource's structural schema (its version's); nil for the built-in resources.
    public var schema: StructuralSchema? = nil
    /// The same schema as the definition wrote it (`openAPIV3Schema`), published in `/openapi/v3`.
    public var openAPIV3Schema: JSONValue? = nil

    /// `v1` or `storage.k8s.io/v1`.
    public var groupVersion: String { group.isEmpty ? version : group + "/" + version }
    /// `pods` or `storageclasses.storage.k8s.io`, as in Kubernetes' messages.
    public var qualifiedResource: String { group.isEmpty ? resource : resource + "." + group }
    /// Whether writes to the main resource keep the stored status (it has a status subresource).
    public var hasStatus: Bool { subresources.contains("status") }

    /// The storage key prefix of every object of this resource: `/registry/pods/`.
    public var keyPrefix: String { storagePrefix ?? "/registry/\(resource)/" }

    /// The storage key of one object.
    public func key(namespace: String?, name: String) -> String {
        if namespaced { return keyPrefix + (namespace ?? "") + "/" + name }
        return keyPrefix + name
    }

    /// The prefix of a list: one namespace, or all of them.
    public func listPrefix(namespace: String?) -> String {
        if namespaced, let namespace, !namespace.isEmpty { return keyPrefix + namespace + "/" }
        return keyPrefix
    }
}

/// The typed hooks of one kind, bridged from JSON: decode the JSON tree as the ClusterAPI
/// type, apply defaults, validate, and encode back (unknown fields survive the trip).
struct ObjectStrategy: Sendable {
    /// Defaults and validates a new object; returns the defaulted JSON.
    let prepareCreate: @Sendable (JSONValue, ResourceInfo) throws(APIError) -> JSONValue
    /// Defaults and validates `new` against `old`; returns the defaulted JSON.
    let prepareUpdate: @Sendable (_ new: JSONValue, _ old: JSONValue, ResourceInfo) throws(APIError) -> JSONValue

    static func typed<T: APIObject>(_ type: T.Type) -> ObjectStrategy {
        ObjectStrategy(
            prepareCreate: { json, info throws(APIError) in
                var object: T = try decodeTyped(json, info)
                object.applyDefaults()
                let errors = object.validate()
                if !errors.isEmpty { throw APIError.invalid(info, object.metadata.name ?? object.metadata.generateName ?? "", errors) }
                return try encodeTyped(object)
            },
            prepareUpdate: { json, oldJSON, info throws(APIError) in
                var object: T = try decodeTyped(json, info)
                var old: T = try decodeTyped(oldJSON, info)
                object.applyDefaults()
                old.applyDefaults()
                let errors = object.validateUpdate(old: old)
                if !errors.isEmpty { throw APIError.invalid(info, object.metadata.name ?? "", errors) }
                return try encodeTyped(object)
            })
    }

    /// A custom resource's: pruned, defaulted and validated by its version's structural schema,
    /// and stored at the definition's storage version (`storageGroupVersion`): with Kubernetes'
    /// `None` conversion only `apiVersion` differs between versions, and reads through another
    /// served version set it back (`APIHandler.served`).
    static func custom(schema: StructuralSchema, namespaced: Bool, storageGroupVersion: String) -> ObjectStrategy {
        @Sendable func prepare(_ json: JSONValue, old: JSONValue?, _ info: ResourceInfo) throws(APIError) -> JSONValue {
            guard case .object = json else { throw APIError.badRequest("the body must be a JSON object describing one \(info.kind)") }
            var (object, errors, _) = CustomResourceObjects.prepare(json, old: old, schema: schema, namespaced: namespaced)
            if !errors.isEmpty {
                throw APIError.invalid(info, object["metadata"]?["name"]?.stringValue ?? object["metadata"]?["generateName"]?.stringValue ?? "", errors)
            }
            object["apiVersion"] = .string(storageGroupVersion)
            return object
        }
        return ObjectStrategy(prepareCreate: { json, info throws(APIError) in try prepare(json, old: nil, info) },
                              prepareUpdate: { json, old, info throws(APIError) in try prepare(json, old: old, info) })
    }

    static func decodeTyped<T: APIObject>(_ json: JSONValue, _ info: ResourceInfo) throws(APIError) -> T {
        do {
            return try json.decode(as: T.self)
        } catch {
            throw APIError.badRequest("\(info.kind) in version \"\(info.version)\" cannot be handled as a \(info.kind): \(describeDecodingError(error))")
        }
    }

    static func encodeTyped<T: APIObject>(_ object: T) throws(APIError) -> JSONValue {
        do {
            return try JSONValue(encoding: object)
        } catch {
            throw APIError.internalError("cannot encode \(T.defaultKind): \(error)")
        }
    }
}

/// A decoding error as one line naming the field: `spec.containers[0].ports[0].containerPort: expected Int32, found a string`.
func describeDecodingError(_ error: any Error) -> String {
    guard let error = error as? DecodingError else { return "\(error)" }
    func path(_ context: DecodingError.Context) -> String {
        var text = ""
        for key in context.codingPath {
            if let index = key.intValue { text += "[\(index)]" } else { text += (text.isEmpty ? "" : ".") + key.stringValue }
        }
        return text.isEmpty ? "the object" : text
    }
    switch error {
    case .typeMismatch(let type, let context):
        return "\(path(context)): expected \(type): \(context.debugDescription)"
    case .valueNotFound(let type, let context):
        return "\(path(context)): missing \(type) value"
    case .keyNotFound(let key, let context):
        return "\(path(context)): missing field \"\(key.stringValue)\""
    case .dataCorrupted(let context):
        return "\(path(context)): \(context.debugDescription)"
    @unknown default:
        return "\(error)"
    }
}
