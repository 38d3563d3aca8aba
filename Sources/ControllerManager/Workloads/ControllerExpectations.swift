// kube-controller-manager's ControllerExpectations (pkg/controller/controller_utils.go), in its
// UID-tracking form: what a workload controller is still waiting to see in its informer after
// creating or deleting pods. The informer lags behind the writes; a sync that counted pods while
// its own creations were still invisible would create them again. So a controller that wrote
// records what it expects, the pod informer's events count it down, and the controller changes
// nothing for that key until every expected creation and deletion was observed — or until the
// record is older than `timeout` (a lost event must not wedge the key forever).
//
//   sync: diff = 3 too few → expectCreations(rs, 3) → POST ×3
//   informer: ADDED ×3     → creationObserved ×3 → satisfied → the next sync may act again
//
// Records live in memory only: a restarted controller starts without any and counts from its
// first list, which already holds everything written before the restart.
import Synchronization

final class ControllerExpectations: Sendable {
    /// What one controller (a key "namespace/name" with its uid) still expects.
    struct Record: Sendable {
        /// The owner's uid: events about another object of the same name are not counted.
        var uid: String
        var creations: Int
        /// Keys ("namespace/name") of the pods whose deletion is expected.
        var deletions: Set<String>
        var since: ContinuousClock.Instant
    }

    /// How long a record holds a key back (upstream's ExpectationsTimeout, 5 minutes).
    let timeout: Duration
    private let records = Mutex<[String: Record]>([:])

    init(timeout: Duration = .seconds(300)) { self.timeout = timeout }

    /// Whether `key` (whose object has `uid`) may act: nothing expected any longer, the record
    /// expired, it belongs to an earlier object of that name, or there is none.
    func satisfied(_ key: String, uid: String) -> Bool {
        records.withLock { records in
            guard let record = records[key] else { return true }
            if record.uid != uid { return true }
            if record.creations <= 0 && record.deletions.isEmpty { return true }
            return ContinuousClock.now - record.since > timeout
        }
    }

    /// Expects `count` creations (replacing what was expected: only called once satisfied).
    func expectCreations(_ key: String, uid: String, count: Int) {
        records.withLock { $0[key] = Record(uid: uid, creations: count, deletions: [], since: .now) }
    }

    /// Expects the deletion of each of `pods` (keys "namespace/name").
    func expectDeletions(_ key: String, uid: String, pods: [String]) {
        records.withLock { $0[key] = Record(uid: uid, creations: 0, deletions: Set(pods), since: .now) }
    }

    /// One creation seen (or one that will never be seen: it failed or was not attempted).
    func creationObserved(_ key: String, uid: String) {
        records.withLock { records in
            guard records[key]?.uid == uid else { return }
            records[key]!.creations -= 1
        }
    }

    /// The deletion of `pod` seen (its deletion timestamp or its removal), or given up on.
    /// Counted once per pod, whichever comes first.
    func deletionObserved(_ key: String, uid: String, pod: String) {
        records.withLock { records in
            guard records[key]?.uid == uid else { return }
            records[key]!.deletions.remove(pod)
        }
    }

    /// Forgets `key` (its object was deleted).
    func delete(_ key: String) {
        _ = records.withLock { $0.removeValue(forKey: key) }
    }

    /// The record of `key`, for tests and logs.
    func record(_ key: String) -> Record? { records.withLock { $0[key] } }
}
