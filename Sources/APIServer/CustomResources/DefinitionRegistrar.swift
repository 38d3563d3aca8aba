// CustomResourceDefinitions coming and going (apiextensions-apiserver's establishing, naming
// and finalizing controllers, in one loop per API server): the registry the handler routes by is
// the built-in one plus a resource for every served version of every definition whose names
// are free; each definition's status says so (NamesAccepted, Established, acceptedNames,
// storedVersions); a deleted definition's objects are deleted before the definition goes.
//
// It follows the definitions through the watch cache (one registration on their prefix), so
// every API server of a cluster on one etcd serves the same resources, each on its own.
import ClusterAPI
import Foundation
import Logging
import Synchronization

/// The registry the handler routes by, replaced whole when the definitions change.
final class RegistryBox: Sendable {
    private let state: Mutex<ResourceRegistry>
    init(_ registry: ResourceRegistry) { state = Mutex(registry) }
    var current: ResourceRegistry { state.withLock { $0 } }
    func replace(_ registry: ResourceRegistry) { state.withLock { $0 = registry } }
}

final class DefinitionRegistrar: Sendable {
    static let cleanupFinalizer = "customresourcecleanup.apiextensions.k8s.io"
    let base: ResourceRegistry
    let box: RegistryBox
    let cache: WatchCache
    let store: ObjectStore
    let logger: Logger
    let definitions: ResourceInfo

    init(base: ResourceRegistry, box: RegistryBox, cache: WatchCache, store: ObjectStore, logger: Logger) {
        self.base = base
        self.box = box
        self.cache = cache
        self.store = store
        self.logger = logger
        definitions = base.lookup(group: "apiextensions.k8s.io", version: "v1", resource: "customresourcedefinitions")!
    }

    /// Follows the definitions until the cache stops (the handler shuts down) or the task is cancelled.
    func run() async {
        let prefix = definitions.keyPrefix
        while !Task.isCancelled {
            do {
                try await cache.awaitReady(timeout: .seconds(30))
                let queue = WatchQueue<WatchItem>(limits: WatchBufferLimits(events: 100_000, bytes: 256 << 20))
                let selection = try Selection(resource: definitions, labelSelector: nil, fieldSelector: nil)
                let registration = try cache.register(keyPrefix: prefix, prefix: prefix, selection: selection, start: .current, queue: queue)
                await refresh()
                while !Task.isCancelled {
                    let batch = await queue.nextBatch(max: 1024)
                    if batch.isEmpty { break }
                    if batch.contains(where: { if case .event = $0 { true } else { false } }) { await refresh() }
                    if batch.contains(where: { if case .end = $0 { true } else if case .failed = $0 { true } else { false } }) { break }
                }
                cache.unregister(registration.watcher)
            } catch {
                if error.code == .serviceUnavailable && error.message.contains("shutting down") { return }
                logger.warning("following CustomResourceDefinitions failed; retrying", metadata: ["error": "\(error.message)"])
            }
            try? await Task.sleep(for: .milliseconds(200))
        }
    }

    /// Rebuilds the registry from the cached definitions and brings their status up to date.
    func refresh() async {
        let (items, _, _) = cache.list(keyPrefix: definitions.keyPrefix, prefix: definitions.keyPrefix,
                                       selection: (try? Selection(resource: definitions, labelSelector: nil, fieldSelector: nil))!, limit: 0)
        var served: [ResourceInfo] = []
        var verdicts: [(JSONValue, CustomResourceDefinition, String?)] = []
        var taken = Set(base.resources.map { "\($0.group)/\($0.resource)" })
        var kinds = Set(base.resources.map { "\($0.group)/\($0.kind)" })
        for cached in items.sorted(by: { ($0.object["metadata"]?["creationTimestamp"]?.stringValue ?? "") < ($1.object["metadata"]?["creationTimestamp"]?.stringValue ?? "") }) {
            guard let crd = try? cached.object.decode(as: CustomResourceDefinition.self) else { continue }
            let group = crd.spec.group, names = crd.spec.names
            var conflict: String?
            if taken.contains("\(group)/\(names.plural)") {
                conflict = "\"\(names.plural)\" is already in use"
            } else if kinds.contains("\(group)/\(names.kind)") {
                conflict = "\"\(names.kind)\" is already in use"
            }
            if conflict == nil {
                taken.insert("\(group)/\(names.plural)")
                kinds.insert("\(group)/\(names.kind)")
                served += Self.resources(of: crd)
            }
            verdicts.append((cached.object, crd, conflict))
        }
        box.replace(ResourceRegistry(resources: base.resources + served))
        for (object, crd, conflict) in verdicts {
            if crd.metadata.deletionTimestamp != nil {
                await finalize(object, crd)
            } else {
                await updateStatus(object, crd, conflict: conflict)
            }
        }
    }

    /// One resource per served version.
    static func resources(of crd: CustomResourceDefinition) -> [ResourceInfo] {
        let names = crd.spec.names
        let storage = "/registry/\(names.plural).\(crd.spec.group)/"
        let storageVersion = crd.spec.versions.first { $0.storage }?.name ?? crd.spec.versions.first?.name ?? ""
        return crd.spec.versions.filter(\.served).compactMap { version in
            guard let json = version.schema?.openAPIV3Schema, let schema = StructuralSchema.parse(json, path: "").0 else { return nil }
            var subresources: [String] = []
            if version.subresources?.status != nil { subresources.append("status") }
            var info = ResourceInfo(group: crd.spec.group, version: version.name, resource: names.plural,
                                    singularName: names.singular ?? names.kind.lowercased(), kind: names.kind,
                                    namespaced: crd.spec.scope == "Namespaced", shortNames: names.shortNames ?? [],
                                    verbs: ResourceRegistry.allVerbs, categories: names.categories ?? [], subresources: subresources,
                                    selectableFields: [], strategy: .custom(schema: schema, namespaced: crd.spec.scope == "Namespaced",
                                                                        storageGroupVersion: "\(crd.spec.group)/\(storageVersion)"))
            info.storagePrefix = storage
            info.printerColumns = version.additionalPrinterColumns ?? []
            info.schema = schema
            info.openAPIV3Schema = json
            return info
        }
    }

    /// NamesAccepted, Established, acceptedNames and storedVersions, written when they differ.
    func updateStatus(_ object: JSONValue, _ crd: CustomResourceDefinition, conflict: String?) async {
        var status = crd.status
        let now = Time.now()
        func set(_ type: String, _ value: Bool, _ reason: String, _ message: String) {
            var conditions = status.conditions ?? []
            let wanted = value ? "True" : "False"
            if let index = conditions.firstIndex(where: { $0.type == type }) {
                if conditions[index].status == wanted && conditions[index].reason == reason { return }
                conditions[index] = CustomResourceDefinitionCondition(type: type, status: wanted, lastTransitionTime: now, reason: reason, message: message)
            } else {
                conditions.append(CustomResourceDefinitionCondition(type: type, status: wanted, lastTransitionTime: now, reason: reason, message: message))
            }
            status.conditions = conditions
        }
        if let conflict {
            set("NamesAccepted", false, "NameConflict", conflict)
            set("Established", false, "NotAccepted", "not all names are accepted")
        } else {
            set("NamesAccepted", true, "NoConflicts", "no conflicts found")
            set("Established", true, "InitialNamesAccepted", "the initial names have been accepted")
            status.acceptedNames = crd.spec.names
            if let storage = crd.storageVersion, !(status.storedVersions ?? []).contains(storage) {
                status.storedVersions = (status.storedVersions ?? []) + [storage]
            }
        }
        guard status != crd.status else { return }
        var updated = object
        do {
            updated["status"] = try JSONValue(encoding: status)
        } catch {
            return
        }
        await write(updated, crd)
    }

    /// A definition being deleted: every object of its resource is deleted, then the
    /// finalizer goes and with it the definition.
    func finalize(_ object: JSONValue, _ crd: CustomResourceDefinition) async {
        guard (crd.metadata.finalizers ?? []).contains(Self.cleanupFinalizer) else { return }
        let prefix = "/registry/\(crd.spec.names.plural).\(crd.spec.group)/"
        do {
            while true {
                let page = try await store.list(prefix: prefix, limit: 500, continueAfter: nil, revision: 0) { _ in true }
                if page.items.isEmpty { break }
                for item in page.items {
                    let namespace = item["metadata"]?["namespace"]?.stringValue
                    let name = item["metadata"]?["name"]?.stringValue ?? ""
                    let key = namespace.map { prefix + $0 + "/" + name } ?? prefix + name
                    _ = try await store.delete(key, expected: nil)
                }
            }
        } catch {
            logger.warning("deleting the objects of a CustomResourceDefinition being deleted failed; retrying",
                           metadata: ["crd": "\(crd.metadata.name ?? "")", "error": "\(error.message)"])
            return
        }
        var updated = object
        updated["metadata"]?["finalizers"] = .array((crd.metadata.finalizers ?? []).filter { $0 != Self.cleanupFinalizer }.map(JSONValue.string))
        await write(updated, crd)
    }

    /// Writes `updated` over the stored definition if it did not change meanwhile (another
    /// API server may have written the same); removes it when no finalizer is left on a deleted one.
    func write(_ updated: JSONValue, _ crd: CustomResourceDefinition) async {
        let key = definitions.key(namespace: nil, name: crd.metadata.name ?? "")
        do {
            guard let stored = try await store.get(key),
                  stored.object["metadata"]?["resourceVersion"] == updated["metadata"]?["resourceVersion"] else { return }
            if APIHandler.readyToRemove(updated) {
                _ = try await store.delete(key, expected: stored.modRevision)
                logger.info("CustomResourceDefinition removed with its objects", metadata: ["crd": "\(crd.metadata.name ?? "")"])
            } else {
                _ = try await store.update(key, updated, expected: stored.modRevision)
            }
        } catch {
            logger.warning("updating a CustomResourceDefinition failed", metadata: ["crd": "\(crd.metadata.name ?? "")", "error": "\(error.message)"])
        }
    }
}
