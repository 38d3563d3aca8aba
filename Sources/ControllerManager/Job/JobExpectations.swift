// What the Job controller expects its informers to show next (pkg/controller's
// ControllerExpectations and the Job controller's uidTrackingExpectations). The pod cache lags
// behind the controller's own writes; without these, a sync that runs before the cache shows
// the pods it just created would create them again, and one that runs before the cache shows a
// finalizer removed would count that pod again.
//
//   sync: expectCreations(job, 3) ─ POST ×3 ─────────────── satisfied? no: manage nothing
//   pod informer: ADDED ×3 ─ creationObserved ×3 ─ enqueue ─ satisfied? yes: manage again
//
// Expectations older than 5 minutes are taken as satisfied (a lost event must not wedge a Job).
import Foundation
import Synchronization

final class PodExpectations: Sendable {
    static let ttl: Duration = .seconds(300)

    private struct Record {
        var add: Int
        var del: Int
        var uid: String
        var set: ContinuousClock.Instant
    }

    /// Job key → what is still expected of it.
    private let records = Mutex<[String: Record]>([:])

    /// Whether the cache has shown every create and delete expected for `key` (or the
    /// expectations expired, or there are none).
    func satisfied(_ key: String) -> Bool {
        records.withLock { records in
            guard let record = records[key] else { return true }
            if record.add <= 0 && record.del <= 0 { return true }
            return ContinuousClock.now - record.set > Self.ttl
        }
    }

    func expectCreations(_ key: String, uid: String, _ count: Int) {
        records.withLock { $0[key] = Record(add: count, del: 0, uid: uid, set: .now) }
    }

    func expectDeletions(_ key: String, uid: String, _ count: Int) {
        records.withLock { $0[key] = Record(add: 0, del: count, uid: uid, set: .now) }
    }

    /// A pod of the Job with `uid` appeared (or a create failed and never will).
    func creationObserved(_ key: String, uid: String) {
        records.withLock { if $0[key]?.uid == uid { $0[key]?.add -= 1 } }
    }

    /// A pod of the Job with `uid` went (or a delete failed and never will).
    func deletionObserved(_ key: String, uid: String) {
        records.withLock { if $0[key]?.uid == uid { $0[key]?.del -= 1 } }
    }

    func delete(_ key: String) { _ = records.withLock { $0.removeValue(forKey: key) } }
}

/// The pods whose tracking finalizer the controller removed and whose update the cache has not
/// shown yet: they are neither counted nor looked at again until it does.
final class FinalizerRemovalExpectations: Sendable {
    private let expected = Mutex<[String: Set<String>]>([:])

    func expect(_ key: String, uids: [String]) {
        expected.withLock { $0[key, default: []].formUnion(uids) }
    }

    func observed(_ key: String, uid: String) {
        expected.withLock { expected in
            expected[key]?.remove(uid)
            if expected[key]?.isEmpty == true { expected[key] = nil }
        }
    }

    func uids(_ key: String) -> Set<String> { expected.withLock { $0[key] ?? [] } }

    func delete(_ key: String) { _ = expected.withLock { $0.removeValue(forKey: key) } }
}
