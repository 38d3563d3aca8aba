// The work queue's delayed adds: the earliest time wins per key, and shutting the queue down
// cancels them, so a stopped controller leaves no task sleeping out a back-off of minutes.
import APIClient
import Testing
import TestSupport

@Suite("Work queue: delayed adds", .timeLimit(.minutes(1)))
struct WorkQueueDelayedAddTests {
    final class WeakQueue {
        weak var queue: WorkQueue<String>?
    }

    @Test("shutDown cancels the delayed adds: nothing keeps the queue alive for their back-off")
    func delayedAddsEndAtShutdown() async throws {
        let holder = WeakQueue()
        do {
            let queue = WorkQueue<String>()
            holder.queue = queue
            await queue.add("requeued", after: .seconds(300))
            await queue.addRateLimited("failed")
            await queue.shutDown()
        }
        // Before the fix the 5-minute sleep held the queue (and its controller's key) until it ended.
        let released = await waitUntil(timeout: .seconds(5), interval: .milliseconds(20)) { holder.queue == nil }
        #expect(released, "a delayed add still holds the queue after shutDown")
    }

    @Test("A delayed add fires once, at the earliest time asked for")
    func earliestWins() async throws {
        let queue = WorkQueue<String>()
        await queue.add("key", after: .seconds(300))
        await queue.add("key", after: .milliseconds(30))
        await queue.add("key", after: .seconds(200))
        #expect(await queue.delayedCount == 1)
        let started = ContinuousClock.now
        let key = await queue.next()
        #expect(key == "key")
        #expect(ContinuousClock.now - started < .seconds(10))
        await queue.done("key")
        #expect(await queue.delayedCount == 0)
        #expect(await queue.count == 0)
        await queue.shutDown()
        #expect(await queue.next() == nil)
    }

    @Test("Nothing is added after shutDown, delayed or not")
    func nothingAfterShutdown() async throws {
        let queue = WorkQueue<String>()
        await queue.shutDown()
        await queue.add("late", after: .milliseconds(10))
        await queue.add("now")
        #expect(await queue.delayedCount == 0)
        #expect(await queue.count == 0)
    }
}
