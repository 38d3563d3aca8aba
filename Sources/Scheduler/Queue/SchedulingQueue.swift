// kube-scheduler's scheduling queue: three places a pending pod can be.
//
//   activeQ ──pop──> in flight ──(no node fits)──> unschedulable ──(a cluster event that may
//      ^                 │                               │          help, or 5 min)──┐
//      │                 └──(error, or an event arrived   │                          v
//      └──(backoff over)── backoffQ <── during the cycle)─┴──(still backing off)── backoffQ
//
// Backoff is per pod: 1 s doubling with each attempt up to 10 s (upstream's defaults). A pod
// that failed while a cluster event arrived goes to backoff rather than unschedulable, since
// the event may be the one that helps it (upstream's `moveRequestCycle`). Timers are tasks the
// queue owns; `shutDown` cancels them all.
import Synchronization

actor SchedulingQueue {
    enum Place: Sendable { case active, backoff, unschedulable, inFlight }

    private struct Entry {
        var place: Place
        var attempts = 0
        var lastFailure: ContinuousClock.Instant?
        var unschedulableSince: ContinuousClock.Instant?
        /// The pod itself changed while it was in flight.
        var touchedInFlight = false
        /// `moves` when it was popped: a cluster event arrived in flight if it differs now.
        var movesAtPop = 0
        /// Its last failure was the first for an object the caches did not show yet: it is
        /// retried after `objectWait`, not the backoff, and the attempt does not count.
        var waitingForObject = false
        var objectWaits = 0
    }

    let initialBackoff: Duration
    let maxBackoff: Duration
    private var entries: [String: Entry] = [:]
    /// The keys in the unschedulable place and in flight, so that a cluster event (many per
    /// second under load) touches only them, not every pending pod.
    private var unschedulableKeys: Set<String> = []
    /// Cluster events so far (upstream's `moveRequestCycle`): compared with each pod's count at
    /// pop, so an event marks every pod in flight without visiting them (with WaitForFirstConsumer
    /// pods waiting in PreBind there can be thousands, and every claim event is one).
    private var moves = 0
    private var active: [String] = []
    private var head = 0
    private var waiters: [CheckedContinuation<String?, Never>] = []
    private var timers: [String: Task<Void, Never>] = [:]
    private var closed = false

    /// How soon a pod whose claim (or class) the caches did not show yet is tried again, once:
    /// the claim and the pod are usually created together, and the claim's watch may simply
    /// lag the pod's. A second such failure backs off as any other.
    let objectWait: Duration

    init(initialBackoff: Duration = .seconds(1), maxBackoff: Duration = .seconds(10), objectWait: Duration = .milliseconds(100)) {
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
        self.objectWait = objectWait
    }

    /// Pods waiting in each place (for tests and logs).
    var counts: (active: Int, backoff: Int, unschedulable: Int, inFlight: Int) {
        var result = (0, 0, 0, 0)
        for entry in entries.values {
            switch entry.place {
            case .active: result.0 += 1
            case .backoff: result.1 += 1
            case .unschedulable: result.2 += 1
            case .inFlight: result.3 += 1
            }
        }
        return result
    }

    /// A pending pod appeared or changed: new pods go to activeQ; an unschedulable one is
    /// moved (its change may help it).
    func add(_ key: String) {
        guard !closed else { return }
        guard let entry = entries[key] else {
            entries[key] = Entry(place: .active)
            push(key)
            return
        }
        switch entry.place {
        case .unschedulable: requeue(key)
        case .inFlight: entries[key]?.touchedInFlight = true
        case .active, .backoff: break
        }
    }

    /// The pod is gone or bound: forget it.
    func remove(_ key: String) {
        entries[key] = nil
        unschedulableKeys.remove(key)
        timers.removeValue(forKey: key)?.cancel()
    }

    /// The next pod to schedule; nil once shut down.
    func pop() async -> String? {
        while true {
            if closed { return nil }
            while head < active.count {
                let key = active[head]
                head += 1
                if head > 1024 && head * 2 > active.count {
                    active.removeFirst(head)
                    head = 0
                }
                guard var entry = entries[key], entry.place == .active else { continue }
                entry.place = .inFlight
                entry.attempts += 1
                entry.touchedInFlight = false
                entry.movesAtPop = moves
                entries[key] = entry
                return key
            }
            let key = await withCheckedContinuation { waiters.append($0) }
            if let key { return key }
            if closed { return nil }
        }
    }

    /// No node fits: wait for an event that may help (or backoff, when one came meanwhile).
    /// `waitingForObject`: it failed only because an object it needs is missing from the caches.
    func unschedulable(_ key: String, waitingForObject: Bool = false) {
        guard var entry = entries[key], entry.place == .inFlight else { return }
        entry.lastFailure = .now
        entry.waitingForObject = waitingForObject && entry.objectWaits == 0
        if entry.waitingForObject {
            entry.objectWaits += 1
            entry.attempts -= 1
        }
        if entry.touchedInFlight || entry.movesAtPop != moves || entry.waitingForObject {
            entries[key] = entry
            toBackoff(key)
        } else {
            entry.place = .unschedulable
            entry.unschedulableSince = .now
            entries[key] = entry
            unschedulableKeys.insert(key)
        }
    }

    /// The cycle failed with an error: retry after the backoff.
    func failed(_ key: String) {
        guard entries[key]?.place == .inFlight else { return }
        entries[key]?.lastFailure = .now
        toBackoff(key)
    }

    /// A cluster event that may make unschedulable pods fit: every one moves on, to activeQ or
    /// to backoffQ while its backoff runs; pods in flight will go to backoff if they fail.
    func moveAll() {
        moves += 1
        for key in unschedulableKeys { requeue(key) }
    }

    /// Moves the pods unschedulable for longer than `age` (upstream's 5-minute flush).
    func flushUnschedulable(olderThan age: Duration) {
        let now = ContinuousClock.now
        for key in unschedulableKeys {
            if let since = entries[key]?.unschedulableSince, now - since >= age { requeue(key) }
        }
    }

    func shutDown() {
        closed = true
        for timer in timers.values { timer.cancel() }
        timers.removeAll()
        for waiter in waiters { waiter.resume(returning: nil) }
        waiters.removeAll()
    }

    /// The backoff after `attempts` failed attempts: initial × 2^(attempts−1), at most max.
    func backoff(attempts: Int) -> Duration {
        var delay = initialBackoff
        for _ in 1..<max(attempts, 1) {
            delay *= 2
            if delay >= maxBackoff { return maxBackoff }
        }
        return min(delay, maxBackoff)
    }

    // MARK: Internals

    /// How long after its last failure the pod waits.
    private func delay(_ entry: Entry) -> Duration {
        entry.waitingForObject ? objectWait : backoff(attempts: entry.attempts)
    }

    private func requeue(_ key: String) {
        unschedulableKeys.remove(key)
        guard let entry = entries[key] else { return }
        if let last = entry.lastFailure, last + delay(entry) > .now {
            toBackoff(key)
        } else {
            entries[key]?.place = .active
            push(key)
        }
    }

    private func toBackoff(_ key: String) {
        guard let entry = entries[key] else { return }
        let until = (entry.lastFailure ?? .now) + delay(entry)
        entries[key]?.place = .backoff
        timers[key]?.cancel()
        timers[key] = Task { [weak self] in
            try? await Task.sleep(until: until, clock: .continuous)
            if Task.isCancelled { return }
            await self?.backoffOver(key)
        }
    }

    private func backoffOver(_ key: String) {
        timers[key] = nil
        guard entries[key]?.place == .backoff else { return }
        entries[key]?.place = .active
        push(key)
    }

    private func push(_ key: String) {
        if !waiters.isEmpty {
            let waiter = waiters.removeFirst()
            var entry = entries[key]!
            entry.place = .inFlight
            entry.attempts += 1
            entry.touchedInFlight = false
            entry.movesAtPop = moves
            entries[key] = entry
            waiter.resume(returning: key)
            return
        }
        active.append(key)
    }
}
