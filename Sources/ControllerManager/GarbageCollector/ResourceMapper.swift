// What the garbage collector knows of the server's resources (a REST mapper fed by discovery):
// an ownerReference's apiVersion and kind → the resource to GET it from; and which owners were
// verified absent (upstream's absentOwnerCache), so that a thousand dependents of one deleted
// owner cost one GET, not a thousand.
import APIClient
import Synchronization

/// `(group, kind)` → resource, from the last discovery. The version of a reference does not
/// matter: the object is read through the version the server prefers, by name.
final class ResourceMapper: Sendable {
    private struct Key: Hashable {
        var group: String
        var kind: String
    }

    private let byKind = Mutex<[Key: APIResource]>([:])

    func update(_ resources: [APIResource]) {
        var map: [Key: APIResource] = [:]
        for resource in resources { map[Key(group: resource.group, kind: resource.kind)] = resource }
        byKind.withLock { $0 = map }
    }

    /// Adds resources without forgetting the others (a partial discovery).
    func merge(_ resources: [APIResource]) {
        byKind.withLock { map in
            for resource in resources { map[Key(group: resource.group, kind: resource.kind)] = resource }
        }
    }

    /// The resource objects of `apiVersion`/`kind` are read from; nil when the server does not
    /// serve that kind (yet).
    func resource(apiVersion: String, kind: String) -> APIResource? {
        byKind.withLock { $0[Key(group: ObjectIdentity.group(of: apiVersion), kind: kind)] }
    }
}

/// Owners verified gone: a uid never comes back, so an entry stays true forever; the cache
/// only bounds its size (oldest out first).
final class AbsentOwnerCache: Sendable {
    private struct State {
        var members: Set<ObjectIdentity> = []
        var order: [ObjectIdentity] = []
        var head = 0
    }

    private let capacity: Int
    private let state = Mutex(State())

    init(capacity: Int = 500) { self.capacity = capacity }

    func contains(_ identity: ObjectIdentity) -> Bool { state.withLock { $0.members.contains(identity) } }

    func add(_ identity: ObjectIdentity) {
        state.withLock { s in
            guard s.members.insert(identity).inserted else { return }
            s.order.append(identity)
            if s.members.count > capacity {
                s.members.remove(s.order[s.head])
                s.head += 1
                if s.head > capacity {
                    s.order.removeFirst(s.head)
                    s.head = 0
                }
            }
        }
    }
}
