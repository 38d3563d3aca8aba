// How many container starts (a shim and its `runc run`, until the container runs) the runtime
// lets run at once: the rest wait their turn, without holding a thread. A burst of pods on a
// small node otherwise starts every runtime process at once, and each runc (a Go program with
// its own threads) then does its work on cores that are switching between all of them.
actor StartGate {
    /// At most this many starts at once; 0: no limit.
    let limit: Int
    private var running = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(limit: Int) { self.limit = limit }

    /// Waits for a turn (first come, first served).
    func acquire() async {
        guard limit > 0 else { return }
        if running < limit {
            running += 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    /// Ends a turn: the next waiting start goes.
    func release() {
        guard limit > 0 else { return }
        if waiting.isEmpty {
            running -= 1
        } else {
            waiting.removeFirst().resume()
        }
    }

}
