// The delay before a failed Job pod is replaced (pkg/controller/job/backoff_utils.go): each
// failure since the last success doubles it from the base (10 s) up to the cap, counted from the
// time the last failed pod finished. Kept in memory only, as upstream keeps it: after a restart
// the delay starts again from the failures the new process sees.
//
//   failures since last success:  1     2     3     4     5      6 …
//   delay (base 10 s, cap 6 min): 10 s  20 s  40 s  80 s  160 s  320 s, then 360 s
import ClusterAPI
import Foundation
import Synchronization

struct JobBackoffRecord: Sendable, Equatable {
    var key: String
    var failuresAfterLastSuccess = 0
    var lastFailureTime: Date?

    /// How long until a replacement may be created, from `now` (zero: at once).
    func remaining(base: Duration, cap: Duration, now: Date) -> Duration {
        guard failuresAfterLastSuccess > 0, let lastFailureTime else { return .zero }
        var delay = base
        for _ in 1..<failuresAfterLastSuccess {
            delay = delay * 2
            if delay >= cap {
                delay = cap
                break
            }
        }
        let elapsed = Duration.seconds(now.timeIntervalSince(lastFailureTime))
        return delay < elapsed ? .zero : delay - elapsed
    }
}

final class JobBackoffStore: Sendable {
    private let records = Mutex<[String: JobBackoffRecord]>([:])

    /// `newBackoffRecord`: the stored record moved on by the pods that newly succeeded and
    /// failed. A success resets the count; failures after the last success (by finish time) add up.
    func newRecord(_ key: String, succeeded: [Pod], failed: [Pod]) -> JobBackoffRecord {
        let stored = records.withLock { $0[key] } ?? JobBackoffRecord(key: key)
        return Self.advance(stored, succeeded: succeeded.map(JobPods.finishedTime), failed: failed.map(JobPods.finishedTime))
    }

    /// The arithmetic of `newRecord` on finish times.
    static func advance(_ stored: JobBackoffRecord, succeeded: [Date], failed: [Date]) -> JobBackoffRecord {
        var record = stored
        let succeeded = succeeded.sorted(), failed = failed.sorted()
        guard let lastSuccess = succeeded.last else {
            guard let lastFailure = failed.last else { return record }
            record.failuresAfterLastSuccess += failed.count
            record.lastFailureTime = lastFailure
            return record
        }
        record.failuresAfterLastSuccess = 0
        record.lastFailureTime = nil
        for failure in failed.reversed() {
            guard failure > lastSuccess else { break }
            if record.lastFailureTime == nil { record.lastFailureTime = failure }
            record.failuresAfterLastSuccess += 1
        }
        return record
    }

    func update(_ record: JobBackoffRecord) {
        records.withLock { $0[record.key] = record }
    }

    func remove(_ key: String) { _ = records.withLock { $0.removeValue(forKey: key) } }
}
