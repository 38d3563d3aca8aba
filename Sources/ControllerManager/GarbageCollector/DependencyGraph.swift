// The garbage collector's view of ownership (kube-controller-manager's GraphBuilder, in
// pkg/controller/garbagecollector/graph_builder.go): every object the monitors observe, by uid,
// with its ownerReferences, and the reverse index owner uid → dependents. It only records and
// says what to look at; every decision to delete or patch is taken by a worker after live GETs.
//
//   monitors (one informer per resource) ──observe(event)──> graph ──GraphChanges──> queues
//
//   owner uid ──dependents──> { dependent uids }        built from the dependents' own
//                                                       ownerReferences, whether or not the
//                                                       owner itself was ever observed
//
// An owner that has not been observed (upstream's "virtual" node) is simply a uid in the
// reverse index without a node: its dependents are verified one by one, each by its own
// references, in its own namespace — so a wrong reference (another namespace, another kind)
// never decides the fate of another dependent.
import APIClient
import ClusterAPI
import Synchronization

/// An object's coordinates as an ownerReference names them, and its namespace ("" when
/// cluster-scoped): upstream's `objectReference`.
struct ObjectIdentity: Hashable, Sendable, CustomStringConvertible {
    var apiVersion: String
    var kind: String
    var name: String
    var uid: String
    var namespace: String

    /// What an ownerReference names, looked for in `namespace`.
    init(_ reference: OwnerReference, namespace: String) {
        self.init(apiVersion: reference.apiVersion, kind: reference.kind, name: reference.name, uid: reference.uid, namespace: namespace)
    }

    init(apiVersion: String, kind: String, name: String, uid: String, namespace: String) {
        self.apiVersion = apiVersion
        self.kind = kind
        self.name = name
        self.uid = uid
        self.namespace = namespace
    }

    /// The API group of `apiVersion` ("" for the core group).
    var group: String { Self.group(of: apiVersion) }

    static func group(of apiVersion: String) -> String {
        guard let slash = apiVersion.firstIndex(of: "/") else { return "" }
        return String(apiVersion[..<slash])
    }

    /// `[apps/v1/ReplicaSet, namespace: default, name: web, uid: …]`, as upstream prints it.
    var description: String { "[\(apiVersion)/\(kind), namespace: \(namespace), name: \(name), uid: \(uid)]" }

    /// `default/web`, for logs.
    var key: String { namespace.isEmpty ? name : "\(namespace)/\(name)" }
}

/// One observed object.
struct GraphNode: Sendable, Equatable {
    var identity: ObjectIdentity
    var owners: [OwnerReference]
    /// It has a deletion timestamp (once set, never unset).
    var beingDeleted: Bool
    /// Being deleted with `foregroundDeletion`: it waits for its blocking dependents.
    var deletingDependents: Bool

    /// Whether its reference to `owner` has `blockOwnerDeletion: true`.
    func blocks(_ owner: String) -> Bool {
        owners.contains { $0.uid == owner && $0.blockOwnerDeletion == true }
    }
}

/// What an observed change asks the workers to look at.
struct GraphChanges: Sendable, Equatable {
    /// uids for attemptToDelete: dependents whose owners may be gone or going, owners waiting
    /// for their dependents, owners never observed (to be verified).
    var attemptToDelete: [String] = []
    /// uids for attemptToOrphan: owners deleted with the `orphan` finalizer.
    var attemptToOrphan: [String] = []
    /// Owners known to be gone (their identity as the object was observed).
    var absent: [ObjectIdentity] = []
    /// Dependents whose reference names an owner observed in another namespace.
    var invalidNamespace: [(dependent: ObjectIdentity, owner: OwnerReference)] = []

    var isEmpty: Bool { attemptToDelete.isEmpty && attemptToOrphan.isEmpty && absent.isEmpty && invalidNamespace.isEmpty }

    static func == (a: GraphChanges, b: GraphChanges) -> Bool {
        a.attemptToDelete == b.attemptToDelete && a.attemptToOrphan == b.attemptToOrphan && a.absent == b.absent
            && a.invalidNamespace.map(\.dependent) == b.invalidNamespace.map(\.dependent)
            && a.invalidNamespace.map(\.owner) == b.invalidNamespace.map(\.owner)
    }
}

final class DependencyGraph: Sendable {
    private struct State {
        /// Observed objects by uid.
        var nodes: [String: GraphNode] = [:]
        /// owner uid → the uids of observed objects whose ownerReferences name it.
        var dependents: [String: Set<String>] = [:]
    }

    private let state = Mutex(State())

    /// Observed objects.
    var count: Int { state.withLock { $0.nodes.count } }

    func node(_ uid: String) -> GraphNode? { state.withLock { $0.nodes[uid] } }

    /// The observed objects that name `owner` in their ownerReferences.
    func dependents(of owner: String) -> [GraphNode] {
        state.withLock { s in (s.dependents[owner] ?? []).sorted().compactMap { s.nodes[$0] } }
    }

    /// The dependents whose reference to `owner` blocks its foreground deletion.
    func blockingDependents(of owner: String) -> [GraphNode] {
        dependents(of: owner).filter { $0.blocks(owner) }
    }

    /// Applies one informer event of `resource`'s monitor.
    func observe(_ event: InformerEvent<PartialObjectMetadata>, resource: APIResource) -> GraphChanges {
        let object = event.object
        guard let uid = object.metadata.uid, !uid.isEmpty else { return GraphChanges() }
        let identity = ObjectIdentity(apiVersion: resource.groupVersion, kind: resource.kind, name: object.metadata.name ?? "",
                                      uid: uid, namespace: resource.namespaced ? object.metadata.namespace ?? "" : "")
        return state.withLock { s in
            switch event {
            case .deleted: return Self.remove(uid, identity: identity, &s)
            case .added: return Self.upsert(identity, object, old: nil, resync: false, &s)
            case .updated(let old, _): return Self.upsert(identity, object, old: old, resync: false, &s)
            case .resync: return Self.upsert(identity, object, old: object, resync: true, &s)
            }
        }
    }

    // MARK: Changes

    private static func upsert(_ identity: ObjectIdentity, _ object: PartialObjectMetadata, old: PartialObjectMetadata?,
                               resync: Bool, _ s: inout State) -> GraphChanges {
        var changes = GraphChanges()
        let uid = identity.uid
        let owners = object.metadata.ownerReferences ?? []
        let beingDeleted = object.metadata.deletionTimestamp != nil
        let foreground = beingDeleted && (object.metadata.finalizers ?? []).contains(GarbageCollector.foregroundDeletion)
        if let existing = s.nodes[uid] {
            let (added, removed, changed) = referenceDiffs(existing.owners, owners)
            // A dependent that stopped blocking (reference removed, or no longer blocking) may
            // let an owner waiting in the foreground go.
            for reference in removed where reference.blockOwnerDeletion == true {
                if s.nodes[reference.uid]?.deletingDependents == true { changes.attemptToDelete.append(reference.uid) }
            }
            for (before, after) in changed where before.blockOwnerDeletion == true && after.blockOwnerDeletion != true {
                if s.nodes[after.uid]?.deletingDependents == true { changes.attemptToDelete.append(after.uid) }
            }
            for reference in removed {
                s.dependents[reference.uid]?.remove(uid)
                if s.dependents[reference.uid]?.isEmpty == true { s.dependents[reference.uid] = nil }
            }
            s.nodes[uid] = GraphNode(identity: identity, owners: owners, beingDeleted: existing.beingDeleted || beingDeleted,
                                     deletingDependents: foreground)
            addDependent(s.nodes[uid]!, to: added, &s, &changes)
        } else {
            let node = GraphNode(identity: identity, owners: owners, beingDeleted: beingDeleted, deletingDependents: foreground)
            s.nodes[uid] = node
            // Dependents that named this uid before it was observed, from another namespace:
            // their reference is wrong (upstream: the virtual node replaced by the observed one).
            if !identity.namespace.isEmpty {
                for dependent in (s.dependents[uid] ?? []).sorted() {
                    guard let d = s.nodes[dependent], d.identity.namespace != identity.namespace,
                          let reference = d.owners.first(where: { $0.uid == uid }) else { continue }
                    changes.invalidNamespace.append((d.identity, reference))
                    changes.attemptToDelete.append(dependent)
                }
            }
            addDependent(node, to: owners, &s, &changes)
        }
        transitions(identity, object, old: old, resync: resync, s, &changes)
        return changes
    }

    /// Upstream's processTransitions: an owner that starts waiting for its dependents to be
    /// orphaned or deleted. A resync of one still waiting asks again (a missed step repaired).
    private static func transitions(_ identity: ObjectIdentity, _ object: PartialObjectMetadata, old: PartialObjectMetadata?,
                                    resync: Bool, _ s: State, _ changes: inout GraphChanges) {
        func starts(_ finalizer: String) -> Bool {
            guard object.metadata.deletionTimestamp != nil, (object.metadata.finalizers ?? []).contains(finalizer) else { return false }
            if resync { return true }
            guard let old else { return true }
            return old.metadata.deletionTimestamp == nil || !(old.metadata.finalizers ?? []).contains(finalizer)
        }
        if starts(GarbageCollector.orphan) {
            changes.attemptToOrphan.append(identity.uid)
            return
        }
        if starts(GarbageCollector.foregroundDeletion) {
            changes.attemptToDelete.append(contentsOf: (s.dependents[identity.uid] ?? []).sorted())
            changes.attemptToDelete.append(identity.uid)
        }
    }

    /// Records `node` as a dependent of each of `references`' owners; owners never observed
    /// are to be verified, and references that disagree with the owner as observed (another
    /// namespace, another kind or name) put the dependent up for verification.
    private static func addDependent(_ node: GraphNode, to references: [OwnerReference], _ s: inout State,
                                     _ changes: inout GraphChanges) {
        var potentiallyInvalid = false
        for reference in references {
            s.dependents[reference.uid, default: []].insert(node.identity.uid)
            guard let owner = s.nodes[reference.uid] else {
                changes.attemptToDelete.append(reference.uid)
                continue
            }
            if !owner.identity.namespace.isEmpty && owner.identity.namespace != node.identity.namespace {
                changes.invalidNamespace.append((node.identity, reference))
                potentiallyInvalid = true
            } else if !matches(reference, owner.identity) {
                potentiallyInvalid = true
            }
        }
        if potentiallyInvalid { changes.attemptToDelete.append(node.identity.uid) }
    }

    private static func remove(_ uid: String, identity: ObjectIdentity, _ s: inout State) -> GraphChanges {
        var changes = GraphChanges()
        guard let node = s.nodes.removeValue(forKey: uid) else { return changes }
        for reference in node.owners {
            s.dependents[reference.uid]?.remove(uid)
            if s.dependents[reference.uid]?.isEmpty == true { s.dependents[reference.uid] = nil }
        }
        let dependents = (s.dependents[uid] ?? []).sorted()
        if !dependents.isEmpty { changes.absent.append(node.identity) }
        changes.attemptToDelete.append(contentsOf: dependents)
        // Owners waiting in the foreground may be able to go now.
        for reference in node.owners where s.nodes[reference.uid]?.deletingDependents == true {
            changes.attemptToDelete.append(reference.uid)
        }
        return changes
    }

    // MARK: Helpers

    /// upstream's ownerReferenceMatchesCoordinates: uid, name, kind and API group (any version).
    static func matches(_ reference: OwnerReference, _ identity: ObjectIdentity) -> Bool {
        reference.uid == identity.uid && reference.name == identity.name && reference.kind == identity.kind
            && ObjectIdentity.group(of: reference.apiVersion) == identity.group
    }

    /// References added, removed and changed (by uid) from `old` to `new`.
    static func referenceDiffs(_ old: [OwnerReference], _ new: [OwnerReference])
        -> (added: [OwnerReference], removed: [OwnerReference], changed: [(OwnerReference, OwnerReference)]) {
        var oldByUID: [String: OwnerReference] = [:]
        for reference in old { oldByUID[reference.uid] = reference }
        var added: [OwnerReference] = []
        var changed: [(OwnerReference, OwnerReference)] = []
        for reference in new {
            if let before = oldByUID.removeValue(forKey: reference.uid) {
                if before != reference { changed.append((before, reference)) }
            } else {
                added.append(reference)
            }
        }
        let removed = old.filter { oldByUID[$0.uid] != nil }
        return (added, removed, changed)
    }
}
