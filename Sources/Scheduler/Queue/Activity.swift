// Pods in a scheduling or binding cycle right now. The event recorder asks it before each event
// write: while the scheduler is placing pods its `Scheduled` and `FailedScheduling` events are
// written one at a time (`EventRecorder.Options.writesWhileBusy`), so in a burst the bindings run
// ahead of the events (which trail them, as client-go's single event writer makes them trail)
// instead of sharing the API server with them on equal terms; once every pod is placed the events
// catch up `concurrentWrites` at a time.
import Synchronization

final class Activity: Sendable {
    private let count = Atomic<Int>(0)

    func begin() { count.add(1, ordering: .relaxed) }
    func end() { count.subtract(1, ordering: .relaxed) }

    /// A pod is being decided, assumed, pre-bound or bound.
    var isBusy: Bool { count.load(ordering: .relaxed) > 0 }
}
