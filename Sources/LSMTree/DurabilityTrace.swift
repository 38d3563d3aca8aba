import Atomics
import Synchronization

/// The file-system steps that make data durable, as `FileIO` takes them: a
/// test records the steps under its store directory and checks their order
/// ("a table's directory entry is synced before the MANIFEST names it"),
/// which a crash test alone can seldom catch on a machine that does not lose
/// power. Costs one relaxed atomic load per step when nobody records.
enum DurabilityTrace {
    enum Step: Equatable, Sendable {
        /// `open` with O_CREAT (the file may have existed).
        case created(String)
        /// fsync or fdatasync of a file.
        case synced(String)
        case directorySynced(String)
        case renamed(String, String)
        case unlinked(String)

        var path: String {
            switch self {
            case .created(let p), .synced(let p), .directorySynced(let p), .unlinked(let p): return p
            case .renamed(_, let to): return to
            }
        }
    }

    /// A recording of the steps on paths under `prefix`, from `start` until `stop`.
    final class Recording: Sendable {
        let prefix: String
        private let recorded = Mutex<[Step]>([])

        fileprivate init(prefix: String) { self.prefix = prefix }

        fileprivate func add(_ step: Step) { recorded.withLock { $0.append(step) } }

        var steps: [Step] { recorded.withLock { $0 } }

        func stop() { DurabilityTrace.remove(self) }
    }

    private static let active = ManagedAtomic<Int>(0)
    private static let recordings = Mutex<[Recording]>([])

    static func start(under prefix: String) -> Recording {
        let r = Recording(prefix: prefix)
        recordings.withLock { $0.append(r) }
        active.wrappingIncrement(ordering: .relaxed)
        return r
    }

    private static func remove(_ r: Recording) {
        let removed = recordings.withLock { list -> Bool in
            guard let i = list.firstIndex(where: { $0 === r }) else { return false }
            list.remove(at: i)
            return true
        }
        if removed { active.wrappingDecrement(ordering: .relaxed) }
    }

    @inline(__always)
    static func record(_ step: Step) {
        guard active.load(ordering: .relaxed) > 0 else { return }
        let path = step.path
        for r in recordings.withLock({ $0 }) where path.hasPrefix(r.prefix) { r.add(step) }
    }
}
