// A blocking system call (waitpid, accept, poll) made on a thread of its own, so that the
// cooperative pool never waits on the kernel.
import Foundation

/// Runs `body` on a new thread and returns its result to the awaiting task.
public func onOwnThread<T: Sendable>(named name: String, _ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        let thread = Thread { continuation.resume(returning: body()) }
        thread.name = name
        thread.start()
    }
}
