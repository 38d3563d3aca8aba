/// The `apiVersion`/`kind` pair every Kubernetes object carries (metav1 `TypeMeta`).
///
/// Decoding a whole object as `TypeMeta` reads its type and keeps everything else in
/// `unknownFields`.
public struct TypeMeta: Sendable, Hashable, Codable, PreservesUnknownFields {
    /// `apiVersion`, e.g. `v1` or `apps/v1`.
    public var apiVersion: String?
    /// `kind`, e.g. `Pod`.
    public var kind: String?
    /// Members not modelled above.
    public var unknownFields: [String: JSONValue]

    /// Creates a type header.
    public init(apiVersion: String? = nil, kind: String? = nil) {
        self.apiVersion = apiVersion
        self.kind = kind
        self.unknownFields = [:]
    }

    private static let knownKeys: Set<String> = ["apiVersion", "kind"]

    /// Decodes, keeping unknown members.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: JSONKey.self)
        apiVersion = try container.decodeIfPresent(String.self, forKey: "apiVersion")
        kind = try container.decodeIfPresent(String.self, forKey: "kind")
        unknownFields = try container.unknownFields(excluding: Self.knownKeys)
    }

    /// Encodes non-nil fields plus unknown members.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: JSONKey.self)
        try container.encodeUnknownFields(unknownFields, excluding: Self.knownKeys)
        try container.encodeIfPresent(apiVersion, forKey: "apiVersion")
        try container.encodeIfPresent(kind, forKey: "kind")
    }
}

/// A reference from an object to its owner (metav1 `OwnerReference`).
public struct OwnerReference: Sendable, Hashable, Codable, PreservesUnknownFields {
    /// The owner's `apiVersion`.
    public var apiVersion: String
    /// The owner's `kind`.
    public var kind: String
    /// The owner's `name`.
    public var name: String
    /// The owner's `uid`.
    public var uid: String
    /// Whether the owner is the managing controller (`controller`).
    public var controller: Bool?
    /// Whether the owner's deletion waits for this object (`blockOwnerDeletion`).
    public var blockOwnerDeletion: Bool?
    /// Members not modelled above.
    public var unknownFields: [String: JSONValue]

    /// Creates an owner reference.
    public init(
        apiVersion: String, kind: String, name: String, uid: String,
        controller: Bool? = nil, blockOwnerDeletion: Bool? = nil
    ) {
        self.apiVersion = apiVersion
        self.kind = kind
        self.name = name
        self.uid = uid
        self.controller = controller
        self.blockOwnerDeletion = blockOwnerDeletion
        self.unknownFields = [:]
    }

    private static let knownKeys: Set<String> = [
        "apiVersion", "kind", "name", "uid", "controller", "blockOwnerDeletion",
    ]

    /// Decodes, keeping unknown members; missing required strings become `""`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: JSONKey.self)
        apiVersion = try container.decodeIfPresent(String.self, forKey: "apiVersion") ?? ""
        kind = try container.decodeIfPresent(String.self, forKey: "kind") ?? ""
        name = try container.decodeIfPresent(String.self, forKey: "name") ?? ""
        uid = try container.decodeIfPresent(String.self, forKey: "uid") ?? ""
        controller = try container.decodeIfPresent(Bool.self, forKey: "controller")
        blockOwnerDeletion = try container.decodeIfPresent(Bool.self, forKey: "blockOwnerDeletion")
        unknownFields = try container.unknownFields(excluding: Self.knownKeys)
    }

    /// Encodes the four required strings always, the flags when set, plus unknown members.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: JSONKey.self)
        try container.encodeUnknownFields(unknownFields, excluding: Self.knownKeys)
        try container.encode(apiVersion, forKey: "apiVersion")
        try container.encode(kind, forKey: "kind")
        try container.encode(name, forKey: "name")
        try container.encode(uid, forKey: "uid")
        try container.encodeIfPresent(controller, forKey: "controller")
        try container.encodeIfPresent(blockOwnerDeletion, forKey: "blockOwnerDeletion")
    }
}

/// Standard object metadata (metav1 `ObjectMeta`). Only non-nil fields are encoded.
public struct ObjectMeta: Sendable, Hashable, Codable, PreservesUnknownFields {
    /// `name`.
    public var name: String?
    /// `generateName`: prefix for a server-generated name.
    public var generateName: String?
    /// `namespace`.
    public var namespace: String?
    /// `uid`.
    public var uid: String?
    /// `resourceVersion`: opaque concurrency token.
    public var resourceVersion: String?
    /// `generation`: sequence number of spec changes.
    public var generation: Int64?
    /// `creationTimestamp`.
    public var creationTimestamp: Time?
    /// `deletionTimestamp`: when graceful deletion was requested.
    public var deletionTimestamp: Time?
    /// `deletionGracePeriodSeconds`.
    public var deletionGracePeriodSeconds: Int64?
    /// `labels`.
    public var labels: [String: String]?
    /// `annotations`.
    public var annotations: [String: String]?
    /// `ownerReferences`.
    public var ownerReferences: [OwnerReference]?
    /// `finalizers`.
    public var finalizers: [String]?
    /// `managedFields`, kept as raw JSON.
    public var managedFields: [JSONValue]?
    /// Members not modelled above (e.g. `selfLink`).
    public var unknownFields: [String: JSONValue]

    /// Creates metadata; every field defaults to absent.
    public init(
        name: String? = nil, generateName: String? = nil, namespace: String? = nil,
        uid: String? = nil, resourceVersion: String? = nil, generation: Int64? = nil,
        creationTimestamp: Time? = nil, deletionTimestamp: Time? = nil,
        deletionGracePeriodSeconds: Int64? = nil, labels: [String: String]? = nil,
        annotations: [String: String]? = nil, ownerReferences: [OwnerReference]? = nil,
        finalizers: [String]? = nil, managedFields: [JSONValue]? = nil
    ) {
        self.name = name
        self.generateName = generateName
        self.namespace = namespace
        self.uid = uid
        self.resourceVersion = resourceVersion
        self.generation = generation
        self.creationTimestamp = creationTimestamp
        self.deletionTimestamp = deletionTimestamp
        self.deletionGracePeriodSeconds = deletionGracePeriodSeconds
        self.labels = labels
        self.annotations = annotations
        self.ownerReferences = ownerReferences
        self.finalizers = finalizers
        self.managedFields = managedFields
        self.unknownFields = [:]
    }

    private static let knownKeys: Set<String> = [
        "name", "generateName", "namespace", "uid", "resourceVersion", "generation",
        "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
        "annotations", "ownerReferences", "finalizers", "managedFields",
    ]

    /// Decodes, keeping unknown members; `null` fields decode as absent.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: JSONKey.self)
        name = try container.decodeIfPresent(String.self, forKey: "name")
        generateName = try container.decodeIfPresent(String.self, forKey: "generateName")
        namespace = try container.decodeIfPresent(String.self, forKey: "namespace")
        uid = try container.decodeIfPresent(String.self, forKey: "uid")
        resourceVersion = try container.decodeIfPresent(String.self, forKey: "resourceVersion")
        generation = try container.decodeIfPresent(Int64.self, forKey: "generation")
        creationTimestamp = try container.decodeIfPresent(Time.self, forKey: "creationTimestamp")
        deletionTimestamp = try container.decodeIfPresent(Time.self, forKey: "deletionTimestamp")
        deletionGracePeriodSeconds = try container.decodeIfPresent(Int64.self, forKey: "deletionGracePeriodSeconds")
        labels = try container.decodeIfPresent([String: String].self, forKey: "labels")
        annotations = try container.decodeIfPresent([String: String].self, forKey: "annotations")
        ownerReferences = try container.decodeIfPresent([OwnerReference].self, forKey: "ownerReferences")
        finalizers = try container.decodeIfPresent([String].self, forKey: "finalizers")
        managedFields = try container.decodeIfPresent([JSONValue].self, forKey: "managedFields")
        unknownFields = try container.unknownFields(excluding: Self.knownKeys)
    }

    /// Encodes non-nil fields plus unknown members.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: JSONKey.self)
        try container.encodeUnknownFields(unknownFields, excluding: Self.knownKeys)
        try container.encodeIfPresent(name, forKey: "name")
        try container.encodeIfPresent(generateName, forKey: "generateName")
        try container.encodeIfPresent(namespace, forKey: "namespace")
        try container.encodeIfPresent(uid, forKey: "uid")
        try container.encodeIfPresent(resourceVersion, forKey: "resourceVersion")
        try container.encodeIfPresent(generation, forKey: "generation")
        try container.encodeIfPresent(creationTimestamp, forKey: "creationTimestamp")
        try container.encodeIfPresent(deletionTimestamp, forKey: "deletionTimestamp")
        try container.encodeIfPresent(deletionGracePeriodSeconds, forKey: "deletionGracePeriodSeconds")
        try container.encodeIfPresent(labels, forKey: "labels")
        try container.encodeIfPresent(annotations, forKey: "annotations")
        try container.encodeIfPresent(ownerReferences, forKey: "ownerReferences")
        try container.encodeIfPresent(finalizers, forKey: "finalizers")
        try container.encodeIfPresent(managedFields, forKey: "managedFields")
    }
}

/// List metadata (metav1 `ListMeta`). Only non-nil fields are encoded.
public struct ListMeta: Sendable, Hashable, Codable, PreservesUnknownFields {
    /// `resourceVersion` of the list.
    public var resourceVersion: String?
    /// The `continue` token for fetching the next page.
    public var continueToken: String?
    /// `remainingItemCount`: approximate items left after this page.
    public var remainingItemCount: Int64?
    /// Members not modelled above (e.g. `selfLink`).
    public var unknownFields: [String: JSONValue]

    /// Creates list metadata.
    public init(resourceVersion: String? = nil, continueToken: String? = nil, remainingItemCount: Int64? = nil) {
        self.resourceVersion = resourceVersion
        self.continueToken = continueToken
        self.remainingItemCount = remainingItemCount
        self.unknownFields = [:]
    }

    private static let knownKeys: Set<String> = ["resourceVersion", "continue", "remainingItemCount"]

    /// Decodes, keeping unknown members.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: JSONKey.self)
        resourceVersion = try container.decodeIfPresent(String.self, forKey: "resourceVersion")
        continueToken = try container.decodeIfPresent(String.self, forKey: "continue")
        remainingItemCount = try container.decodeIfPresent(Int64.self, forKey: "remainingItemCount")
        unknownFields = try container.unknownFields(excluding: Self.knownKeys)
    }

    /// Encodes non-nil fields plus unknown members.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: JSONKey.self)
        try container.encodeUnknownFields(unknownFields, excluding: Self.knownKeys)
        try container.encodeIfPresent(resourceVersion, forKey: "resourceVersion")
        try container.encodeIfPresent(continueToken, forKey: "continue")
        try container.encodeIfPresent(remainingItemCount, forKey: "remainingItemCount")
    }
}
