// Two parts of a Job's status the model keeps as raw JSON or text: `uncountedTerminatedPods`
// (the uids of finished pods counted into `succeeded`/`failed` once their finalizer is gone)
// and `completedIndexes` ("1,3-5,7", an Indexed Job's succeeded indexes).
import ClusterAPI

/// `status.uncountedTerminatedPods`: `{"succeeded": [uid…], "failed": [uid…]}`.
struct UncountedTerminatedPods: Sendable, Equatable {
    var succeeded: [String] = []
    var failed: [String] = []

    init(succeeded: [String] = [], failed: [String] = []) {
        self.succeeded = succeeded
        self.failed = failed
    }

    init(_ json: JSONValue?) {
        succeeded = (json?["succeeded"]?.arrayValue ?? []).compactMap(\.stringValue)
        failed = (json?["failed"]?.arrayValue ?? []).compactMap(\.stringValue)
    }

    var isEmpty: Bool { succeeded.isEmpty && failed.isEmpty }

    /// `{}` when empty, as the controller writes it; empty lists are omitted.
    var json: JSONValue {
        var object: [String: JSONValue] = [:]
        if !succeeded.isEmpty { object["succeeded"] = .array(succeeded.map { .string($0) }) }
        if !failed.isEmpty { object["failed"] = .array(failed.map { .string($0) }) }
        return .object(object)
    }
}

/// A sorted set of indexes kept as intervals (`orderedIntervals`), printed as Kubernetes prints
/// `completedIndexes`: "0,2-4,7".
struct CompletedIndexes: Sendable, Equatable, CustomStringConvertible {
    /// Closed intervals, sorted, neither overlapping nor adjacent.
    private(set) var intervals: [ClosedRange<Int>] = []

    init() {}

    /// `parseIndexesFromString`: the indexes below `completions`; malformed parts are skipped.
    init(parsing text: String?, completions: Int) {
        var indexes: [Int] = []
        for part in (text ?? "").split(separator: ",") {
            let bounds = part.split(separator: "-", maxSplits: 1).map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard let first = bounds.first ?? nil, first >= 0 else { continue }
            let last = bounds.count == 2 ? (bounds[1] ?? -1) : first
            guard last >= first else { continue }
            let upper = min(last, completions - 1)
            if first <= upper { indexes.append(contentsOf: first...upper) }
        }
        self = CompletedIndexes().adding(indexes)
    }

    /// `withOrderedIndexes`: these intervals and `indexes`.
    func adding<S: Sequence<Int>>(_ indexes: S) -> CompletedIndexes {
        var all = intervals
        for index in indexes { all.append(index...index) }
        all.sort { $0.lowerBound < $1.lowerBound }
        var merged: [ClosedRange<Int>] = []
        for interval in all {
            if let last = merged.last, interval.lowerBound <= last.upperBound + 1 {
                merged[merged.count - 1] = last.lowerBound...max(last.upperBound, interval.upperBound)
            } else {
                merged.append(interval)
            }
        }
        var result = CompletedIndexes()
        result.intervals = merged
        return result
    }

    func contains(_ index: Int) -> Bool {
        intervals.contains { $0.contains(index) }
    }

    /// How many indexes.
    var total: Int { intervals.reduce(0) { $0 + $1.count } }

    var description: String {
        intervals.map { $0.count == 1 ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound)" }.joined(separator: ",")
    }
}
