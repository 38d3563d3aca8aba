/// Any object, seen through its type and metadata only (metav1 `PartialObjectMetadata`): what
/// a client that handles every resource alike — the garbage collector — reads. Decoding keeps
/// `apiVersion`, `kind` and `metadata` and drops everything else (a pod's spec and status are
/// not held in memory); encoding writes those three back.
public struct PartialObjectMetadata: APIObject {
    /// The type's own name; an object decoded from a resource keeps that resource's `apiVersion`.
    public static let defaultAPIVersion = "meta.k8s.io/v1"
    public static let defaultKind = "PartialObjectMetadata"
    /// Not meaningful for this type: the resource it was read from says.
    public static let isNamespaced = true

    public var apiVersion: String?
    public var kind: String?
    public var metadata: ObjectMeta

    /// Always empty: the rest of the object is dropped on purpose.
    public var unknownFields: [String: JSONValue] {
        get { [:] }
        set {}
    }

    public init(apiVersion: String? = nil, kind: String? = nil, metadata: ObjectMeta = ObjectMeta()) {
        self.apiVersion = apiVersion
        self.kind = kind
        self.metadata = metadata
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: JSONKey.self)
        apiVersion = try container.decodeIfPresent(String.self, forKey: "apiVersion")
        kind = try container.decodeIfPresent(String.self, forKey: "kind")
        metadata = try container.decodeIfPresent(ObjectMeta.self, forKey: "metadata") ?? ObjectMeta()
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: JSONKey.self)
        try container.encodeIfPresent(apiVersion, forKey: "apiVersion")
        try container.encodeIfPresent(kind, forKey: "kind")
        try container.encode(metadata, forKey: "metadata")
    }

    public mutating func applyDefaults() {}
    public func validate() -> [FieldError] { [] }
    public func validateUpdate(old: PartialObjectMetadata) -> [FieldError] { [] }
}
