// A controller's view of one resource: the informer's cache, overlaid with the objects this
// controller wrote itself until the informer catches up (pv_controller.go keeps such a cache:
// binding writes four objects, and without it the next sync would see its own stale state and
// fight its own writes with conflicts).
import APIClient
import ClusterAPI
import Synchronization

final class ObjectStore<Object: APIObject>: Sendable {
    let informer: Informer<Object>
    private let written = Mutex<[String: Object]>([:])

    init(_ informer: Informer<Object>) { self.informer = informer }

    static func key(_ object: Object) -> String { Informer<Object>.key(object) }

    /// The newest of the informer's copy and this controller's own last write; nil when the
    /// informer no longer has the object (deleted).
    func get(_ key: String) async -> Object? {
        let base = await informer.get(key)
        return written.withLock { written in
            guard let base else {
                written[key] = nil
                return nil
            }
            guard let mine = written[key] else { return base }
            if Self.version(mine) > Self.version(base) { return mine }
            written[key] = nil
            return base
        }
    }

    func get(name: String, namespace: String? = nil) async -> Object? {
        await get(Informer<Object>.key(name: name, namespace: namespace))
    }

    /// Every object, each in its newest known version.
    func list() async -> [Object] {
        let base = await informer.list()
        return written.withLock { written in
            base.map { object in
                if let mine = written[Self.key(object)], Self.version(mine) > Self.version(object) { return mine }
                return object
            }
        }
    }

    /// The objects of the informer's index `name` holding `value`, each in its newest known version.
    func byIndex(_ name: String, _ value: String) async -> [Object] {
        let base = await informer.byIndex(name, value)
        return written.withLock { written in
            base.map { object in
                if let mine = written[Self.key(object)], Self.version(mine) > Self.version(object) { return mine }
                return object
            }
        }
    }

    /// Remembers an object this controller just wrote.
    func record(_ object: Object) {
        written.withLock { $0[Self.key(object)] = object }
    }

    static func version(_ object: Object) -> Int64 { Int64(object.metadata.resourceVersion ?? "") ?? 0 }
}
