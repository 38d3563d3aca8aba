import Synchronization

/// How long the queue of each priority level and request kind is, and how long a request
/// may wait in it (Kubernetes' APF defaults: queues of 50, a wait of at most 15 s).
public struct InflightQueueLimits: Sendable {
    /// Requests waiting at once per level and kind; one more is refused at once.
    public var length: Int
    /// Longest wait for a seat (or the request's own timeout, when shorter).
    public var wait: Duration

    public init(length: Int = 50, wait: Duration = .seconds(15)) {
        self.length = length
        self.wait = wait
    }
}

/// Kubernetes' `--max-requests-inflight` and `--max-mutating-requests-inflight`, shared out
/// among priority levels as a small API Priority and Fairness does:
///
///     --max-requests-inflight 400 (read-only seats; mutating seats likewise)
///     ├── system    134 seats kept for it (a third, rounded up), and any free workload seat
///     └── workload  266 seats, never more: a bulk client cannot take the system's third
///     each level and kind: a FIFO queue of ≤ 50 requests, each waiting ≤ 15 s
///
/// A request that finds no seat for its level waits in its level's queue and is served, in
/// order, as seats free (the system queue first). It is refused (429, `Retry-After: 1`) only
/// when that queue is full (`queue-full`), its wait runs out (`time-out`) or its task is
/// cancelled meanwhile (`cancelled`). Waiting suspends on a continuation and holds no thread.
/// Long-running requests (watches, followed logs) and `exempt` requests (`system:masters`)
/// take no seat, as in Kubernetes. A limit of 0 means no limit (and no queueing) for its kind.
final class InflightLimiter: Sendable {
    enum Kind: String, Sendable, CaseIterable {
        case readOnly
        case mutating
    }

    /// Why a request got no seat: the `reason` of `apiserver_flowcontrol_rejected_requests_total`.
    enum Rejection: String, Error, Sendable, CaseIterable {
        case queueFull = "queue-full"
        case timeOut = "time-out"
        case cancelled
    }

    /// A seat held by one request; give it back with `release` exactly once.
    struct Seat: Sendable, Hashable {
        let kind: Kind
        let level: PriorityLevel
    }

    /// The levels that take seats and queue, in the order freed seats are offered to them.
    static let queuedLevels: [PriorityLevel] = [.system, .workload]

    let readOnlyLimit: Int
    let mutatingLimit: Int
    let queue: InflightQueueLimits
    private let state = Mutex(State())

    init(readOnly: Int, mutating: Int, queue: InflightQueueLimits = InflightQueueLimits()) {
        self.readOnlyLimit = readOnly
        self.mutatingLimit = mutating
        self.queue = queue
    }

    /// Kubernetes counts get, list and watch as read-only; everything else mutates.
    static func kind(verb: String) -> Kind {
        ["get", "list", "watch", "head"].contains(verb) ? .readOnly : .mutating
    }

    func limit(_ kind: Kind) -> Int { kind == .readOnly ? readOnlyLimit : mutatingLimit }

    /// Seats of `limit` that only the system level may take: a third, rounded up, leaving
    /// the workload at least one.
    static func reserved(_ limit: Int) -> Int { limit <= 1 ? 0 : min(limit - 1, (limit + 2) / 3) }

    /// The seats a level may count on: the system's reserved third, the workload's rest.
    func nominalSeats(_ level: PriorityLevel, _ kind: Kind) -> Int {
        let limit = limit(kind)
        switch level {
        case .exempt: return 0
        case .system: return Self.reserved(limit)
        case .workload: return limit - Self.reserved(limit)
        }
    }

    /// Takes a seat of `kind` for `level`, waiting in the level's queue (at most the queue's
    /// wait, or `timeout` when shorter) when none is free or others wait already.
    func acquire(_ kind: Kind, _ level: PriorityLevel, timeout: Duration? = nil) async throws(Rejection) -> Seat {
        let seat = Seat(kind: kind, level: level)
        if state.withLock({ $0.takeIfFree(seat, limit: limit(kind)) }) { return seat }
        let wait = min(queue.wait, timeout ?? queue.wait)
        let id = state.withLock { s in
            s.nextID += 1
            return s.nextID
        }
        let refusal: Rejection? = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Rejection?, Never>) in
                let answer: Rejection?? = state.withLock { s in
                    // A seat may have freed since the first look.
                    if s.takeIfFree(seat, limit: limit(kind)) { return .some(nil) }
                    guard (s.lanes[seat]?.queue.count ?? 0) < queue.length else {
                        s.rejected[RejectionKey(seat: seat, reason: .queueFull), default: 0] += 1
                        return .some(.queueFull)
                    }
                    let timer = Task {
                        try? await Task.sleep(for: wait)
                        if !Task.isCancelled { self.leaveQueue(id, seat, .timeOut) }
                    }
                    s.lanes[seat, default: Lane()].queue.append(Waiter(id: id, continuation: continuation, timer: timer))
                    return nil
                }
                if let answer {
                    continuation.resume(returning: answer)
                } else if Task.isCancelled {
                    // Cancelled before the handler below could see the waiter in the queue.
                    leaveQueue(id, seat, .cancelled)
                }
            }
        } onCancel: {
            leaveQueue(id, seat, .cancelled)
        }
        if let refusal { throw refusal }
        return seat
    }

    /// Gives `seat` back and serves the waiters that can now have one, system first.
    func release(_ seat: Seat) {
        let served: [Waiter] = state.withLock { s in
            s.lanes[seat, default: Lane()].executing -= 1
            var served: [Waiter] = []
            for level in Self.queuedLevels {
                let lane = Seat(kind: seat.kind, level: level)
                while let first = s.lanes[lane]?.queue.first, s.mayTake(lane, limit: limit(seat.kind)) {
                    s.lanes[lane]?.queue.removeFirst()
                    s.lanes[lane]?.executing += 1
                    served.append(first)
                }
            }
            return served
        }
        for waiter in served {
            waiter.timer.cancel()
            waiter.continuation.resume(returning: nil)
        }
    }

    /// Takes waiter `id` out of its queue, refused for `reason`; nothing when it has left
    /// already (served, timed out or cancelled: whichever came first wins).
    private func leaveQueue(_ id: UInt64, _ seat: Seat, _ reason: Rejection) {
        let waiter: Waiter? = state.withLock { s in
            guard let index = s.lanes[seat]?.queue.firstIndex(where: { $0.id == id }) else { return nil }
            s.rejected[RejectionKey(seat: seat, reason: reason), default: 0] += 1
            return s.lanes[seat]?.queue.remove(at: index)
        }
        guard let waiter else { return }
        if reason != .timeOut { waiter.timer.cancel() }
        waiter.continuation.resume(returning: reason)
    }

    /// Seats taken now, by kind (the exempt level takes none).
    var current: (readOnly: Int, mutating: Int) {
        state.withLock { s in (s.executing(.readOnly), s.executing(.mutating)) }
    }

    /// Requests waiting now in `level`'s queues.
    func waiting(_ level: PriorityLevel) -> Int {
        state.withLock { s in Kind.allCases.reduce(0) { $0 + (s.lanes[Seat(kind: $1, level: level)]?.queue.count ?? 0) } }
    }

    // MARK: State

    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Rejection?, Never>
        /// Refuses the waiter when its wait runs out; cancelled once it leaves otherwise.
        let timer: Task<Void, Never>
    }

    private struct Lane {
        var executing = 0
        var queue: [Waiter] = []
    }

    struct RejectionKey: Hashable {
        let seat: Seat
        let reason: Rejection
    }

    private struct State {
        var lanes: [Seat: Lane] = [:]
        var rejected: [RejectionKey: Int] = [:]
        var nextID: UInt64 = 0

        func executing(_ kind: Kind) -> Int {
            InflightLimiter.queuedLevels.reduce(0) { $0 + (lanes[Seat(kind: kind, level: $1)]?.executing ?? 0) }
        }

        /// Whether `seat` may be taken now, queues aside: within the kind's limit and, for the
        /// workload, outside the system's reserved seats.
        func mayTake(_ seat: Seat, limit: Int) -> Bool {
            guard limit > 0, seat.level != .exempt else { return true }
            guard executing(seat.kind) < limit else { return false }
            return seat.level == .system || (lanes[seat]?.executing ?? 0) < limit - InflightLimiter.reserved(limit)
        }

        /// Takes `seat` when it may be taken and nobody of its level and kind waits before it.
        mutating func takeIfFree(_ seat: Seat, limit: Int) -> Bool {
            guard lanes[seat]?.queue.isEmpty ?? true, mayTake(seat, limit: limit) else { return false }
            lanes[seat, default: Lane()].executing += 1
            return true
        }
    }

    // MARK: Metrics

    /// Prometheus text of the seats, queues and refusals (every label from a closed set):
    /// `apiserver_current_inflight_requests{request_kind}`, `apiserver_dropped_requests_total{request_kind}`,
    /// and APF's `apiserver_flowcontrol_nominal_limit_seats`, `…_current_executing_requests`,
    /// `…_current_inqueue_requests` by `priority_level`, `…_rejected_requests_total` by
    /// `priority_level` and `reason`.
    func metricsText() -> String {
        let (lanes, rejected) = state.withLock { s in (s.lanes.mapValues { ($0.executing, $0.queue.count) }, s.rejected) }
        func sum(_ seats: [Seat], _ value: (Seat) -> Int) -> Int { seats.reduce(0) { $0 + value($1) } }
        func seats(kind: Kind) -> [Seat] { Self.queuedLevels.map { Seat(kind: kind, level: $0) } }
        func seats(level: PriorityLevel) -> [Seat] { Kind.allCases.map { Seat(kind: $0, level: level) } }
        func refused(_ seat: Seat) -> Int { Rejection.allCases.reduce(0) { $0 + (rejected[RejectionKey(seat: seat, reason: $1)] ?? 0) } }

        var out = "# HELP apiserver_current_inflight_requests Requests being served, by kind (--max-requests-inflight, --max-mutating-requests-inflight).\n# TYPE apiserver_current_inflight_requests gauge\n"
        for kind in [Kind.mutating, .readOnly] {
            out += "apiserver_current_inflight_requests{request_kind=\"\(kind.rawValue)\"} \(sum(seats(kind: kind)) { lanes[$0]?.0 ?? 0 })\n"
        }
        out += "# HELP apiserver_dropped_requests_total Requests refused with 429 because their level had no seat free in time.\n# TYPE apiserver_dropped_requests_total counter\n"
        for kind in [Kind.mutating, .readOnly] {
            out += "apiserver_dropped_requests_total{request_kind=\"\(kind.rawValue)\"} \(sum(seats(kind: kind), refused))\n"
        }
        out += "# HELP apiserver_flowcontrol_nominal_limit_seats Seats a priority level may count on (read-only and mutating).\n# TYPE apiserver_flowcontrol_nominal_limit_seats gauge\n"
        for level in Self.queuedLevels {
            out += "apiserver_flowcontrol_nominal_limit_seats{priority_level=\"\(level.rawValue)\"} \(Kind.allCases.reduce(0) { $0 + nominalSeats(level, $1) })\n"
        }
        out += "# HELP apiserver_flowcontrol_current_executing_requests Requests holding a seat, by priority level.\n# TYPE apiserver_flowcontrol_current_executing_requests gauge\n"
        for level in Self.queuedLevels {
            out += "apiserver_flowcontrol_current_executing_requests{priority_level=\"\(level.rawValue)\"} \(sum(seats(level: level)) { lanes[$0]?.0 ?? 0 })\n"
        }
        out += "# HELP apiserver_flowcontrol_current_inqueue_requests Requests waiting for a seat, by priority level.\n# TYPE apiserver_flowcontrol_current_inqueue_requests gauge\n"
        for level in Self.queuedLevels {
            out += "apiserver_flowcontrol_current_inqueue_requests{priority_level=\"\(level.rawValue)\"} \(sum(seats(level: level)) { lanes[$0]?.1 ?? 0 })\n"
        }
        out += "# HELP apiserver_flowcontrol_rejected_requests_total Requests refused with 429, by priority level and reason.\n# TYPE apiserver_flowcontrol_rejected_requests_total counter\n"
        for level in Self.queuedLevels {
            for reason in Rejection.allCases {
                let count = sum(seats(level: level)) { rejected[RejectionKey(seat: $0, reason: reason)] ?? 0 }
                out += "apiserver_flowcontrol_rejected_requests_total{priority_level=\"\(level.rawValue)\",reason=\"\(reason.rawValue)\"} \(count)\n"
            }
        }
        return out
    }
}
