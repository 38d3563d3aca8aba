import Synchronization

/// Kubernetes' `--max-requests-inflight` and `--max-mutating-requests-inflight` (the filter
/// kube-apiserver uses without API Priority and Fairness): at most so many read-only and so
/// many mutating requests are served at once; one more is refused with 429 and
/// `Retry-After: 1` at once, never queued. Long-running requests (watches, followed logs)
/// and `system:masters` are not counted, as in Kubernetes. A limit of 0 means no limit.
final class InflightLimiter: Sendable {
    enum Kind: String, Sendable {
        case readOnly
        case mutating
    }

    let readOnlyLimit: Int
    let mutatingLimit: Int
    private let counts = Mutex((readOnly: 0, mutating: 0))

    init(readOnly: Int, mutating: Int) {
        self.readOnlyLimit = readOnly
        self.mutatingLimit = mutating
    }

    /// Kubernetes counts get, list and watch as read-only; everything else mutates.
    static func kind(verb: String) -> Kind {
        ["get", "list", "watch", "head"].contains(verb) ? .readOnly : .mutating
    }

    /// Takes a seat of `kind`; false when all are taken.
    func acquire(_ kind: Kind) -> Bool {
        counts.withLock { c in
            switch kind {
            case .readOnly:
                if readOnlyLimit > 0 && c.readOnly >= readOnlyLimit { return false }
                c.readOnly += 1
            case .mutating:
                if mutatingLimit > 0 && c.mutating >= mutatingLimit { return false }
                c.mutating += 1
            }
            return true
        }
    }

    func release(_ kind: Kind) {
        counts.withLock { c in
            switch kind {
            case .readOnly: c.readOnly -= 1
            case .mutating: c.mutating -= 1
            }
        }
    }

    var current: (readOnly: Int, mutating: Int) { counts.withLock { $0 } }
}
