// A serial executor on a thread of its own, for an actor whose work blocks: SQLite transactions
// that fsync, file syncs, reads of /sys. Swift's cooperative pool has one thread per core (two
// here); an actor on the pool that blocks in fsync stalls every other task of the process. An
// actor opts in with
//
//     private let executor = ThreadExecutor(name: "ballast-cloud")
//     nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }
//
// The thread ends when the executor is released (after its last job).
import CHostSystem
import Foundation
import Synchronization

public final class ThreadExecutor: SerialExecutor, Sendable {
    private final class Queue: @unchecked Sendable {
        struct State {
            var jobs: [UnownedJob] = []
            var stopped = false
        }
        let condition = NSCondition()
        // Guarded by `condition`.
        var state = State()
        /// The executor thread, once it runs.
        let thread = Mutex<pthread_t?>(nil)
    }

    private let queue = Queue()

    /// Starts the thread, named `name` (as `ps -L` and debuggers show it).
    public init(name: String) {
        let queue = self.queue
        // Unretained: the thread must not keep the executor alive (it ends when the executor
        // goes); every job it runs holds the executor through its actor.
        let executor = Unmanaged.passUnretained(self)
        let thread = Thread { [queue] in
            nameCurrentThread(name)
            ThreadExecutor.run(queue, executor)
        }
        thread.start()
    }

    deinit {
        queue.condition.lock()
        queue.state.stopped = true
        queue.condition.signal()
        queue.condition.unlock()
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.condition.lock()
        queue.state.jobs.append(job)
        queue.condition.signal()
        queue.condition.unlock()
    }

    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    /// Traps unless called on this executor's thread (Swift's dynamic isolation check).
    public func checkIsolated() {
        let current = pthread_self()
        guard let thread = queue.thread.withLock({ $0 }), pthread_equal(thread, current) != 0 else {
            fatalError("not on the thread of this ThreadExecutor")
        }
    }

    private static func run(_ queue: Queue, _ executor: Unmanaged<ThreadExecutor>) {
        queue.thread.withLock { $0 = pthread_self() }
        while true {
            queue.condition.lock()
            while queue.state.jobs.isEmpty && !queue.state.stopped { queue.condition.wait() }
            let jobs = queue.state.jobs
            queue.state.jobs.removeAll(keepingCapacity: true)
            let stopped = queue.state.stopped
            queue.condition.unlock()
            if jobs.isEmpty && stopped { return }
            // Jobs hold their actor, which holds the executor: while any is queued the
            // executor is alive. The last job may release it; nothing touches it after that.
            let unowned = executor.takeUnretainedValue().asUnownedSerialExecutor()
            for job in jobs { job.runSynchronously(on: unowned) }
        }
    }
}

/// Names the calling thread as `ps -L`, /proc and debuggers show it (at most 15 bytes kept).
/// Foundation's `Thread.name` set before `start()` does not reach the kernel on Linux, where a
/// new thread otherwise keeps the name of the thread that made it.
func nameCurrentThread(_ name: String) {
    _ = chs_name_thread(String(decoding: name.utf8.prefix(15), as: UTF8.self))
}

/// A task executor too: `withTaskExecutorPreference(executor) { … }` runs the closure's
/// nonisolated code on this thread, in the same task (its task-locals intact).
extension ThreadExecutor: TaskExecutor {
    public func asUnownedTaskExecutor() -> UnownedTaskExecutor {
        UnownedTaskExecutor(ordinary: self)
    }
}
