import ClusterAPI
import Synchronization

/// One version of one object as the watch cache holds it: the decoded tree (its
/// `metadata.resourceVersion` set) and its JSON bytes, shared by every response that carries this
/// version: a write that a hundred watchers see, or that a list returns, is encoded once. The bytes
/// are made when the version enters the cache, from the stored value (`StoredJSON`: the resource
/// version inserted, nothing written again).
final class CachedObject: Sendable {
    let key: String
    let object: JSONValue
    /// The revision that wrote this version (its resourceVersion).
    let revision: Int64
    /// Its stored size: what it costs a watcher's buffer and the cache's window.
    let cost: Int
    /// The object's JSON.
    let bytes: [UInt8]

    /// `bytes` nil: encoded from `object`.
    init(key: String, object: JSONValue, revision: Int64, cost: Int, bytes: [UInt8]? = nil) {
        self.key = key
        self.object = object
        self.revision = revision
        self.cost = cost
        self.bytes = bytes ?? object.jsonBytes
    }

    /// This version with another resource version: what a watcher that the object leaves (its
    /// selector stopped matching) is sent as DELETED, stamped with the revision that changed it.
    func restamped(_ revision: Int64) -> CachedObject {
        var object = self.object
        object["metadata"]?["resourceVersion"] = .string(String(revision))
        return CachedObject(key: key, object: object, revision: revision, cost: cost)
    }
}

/// One change of one key in the cache's window of recent events.
final class CachedEvent: Sendable {
    let revision: Int64
    let key: String
    /// The new version; nil for a deletion.
    let current: CachedObject?
    /// The version before; nil for a creation.
    let previous: CachedObject?
    private let departed = Mutex<CachedObject?>(nil)

    init(revision: Int64, key: String, current: CachedObject?, previous: CachedObject?) {
        self.revision = revision
        self.key = key
        self.current = current
        self.previous = previous
    }

    var cost: Int { (current?.cost ?? 0) + (previous?.cost ?? 0) }

    /// `previous` at this event's revision, made once for every watcher that needs it.
    var previousAtRevision: CachedObject? {
        guard let previous else { return nil }
        if let done = departed.withLock({ $0 }) { return done }
        let made = previous.restamped(revision)
        departed.withLock { if $0 == nil { $0 = made } }
        return made
    }

    /// What a watcher with `selection` sees of this event: ADDED when the object starts
    /// matching, MODIFIED while it matches, DELETED when it is deleted or stops matching (with
    /// its last matching content at this revision, as Kubernetes' cacheWatcher sends it).
    func seen(by selection: Selection) -> (type: String, object: CachedObject)? {
        let everything = selection.isEverything
        let before = previous.map { everything || selection.matches($0.object) } ?? false
        guard let current else {
            return before ? ("DELETED", previousAtRevision!) : nil
        }
        let now = everything || selection.matches(current.object)
        switch (before, now) {
        case (true, true): return ("MODIFIED", current)
        case (false, true): return ("ADDED", current)
        case (true, false): return ("DELETED", previousAtRevision!)
        case (false, false): return nil
        }
    }
}
