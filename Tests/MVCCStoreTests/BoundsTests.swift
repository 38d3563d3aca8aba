import Foundation
import Testing
import TestSupport
@testable import MVCCStore

/// Threads of this process now.
func threadCount() -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count) ?? 0
}

/// What a slow or hostile consumer of the store can make it hold (finding 10),
/// and the store's own threads (findings 16, 20).
@Suite(.timeLimit(.minutes(2))) struct BoundsTests {
    /// However many watchers are slow, the events they hold together stay under the total.
    @Test func manySlowWatchersShareATotalBuffer() async throws {
        var options = testOptions()
        options.watcherBufferEvents = 100
        options.watcherBufferEventsTotal = 250
        try await withStore(options) { store, _ in
            let watches = try (0..<20).map { _ in try store.watch(WatchRequest(key: [0], rangeEnd: [0])) }
            for i in 0..<50 { try await store.put("k\(i)", "v") }
            #expect(store.hub.buffered <= 250, "\(store.hub.buffered) events buffered")
            // Every watcher still sees all 50 events, the ones past the total read back from history.
            for w in watches {
                let events = try await collect(w, events: 50)
                #expect(events.map(\.kv.modRevision) == Array(2...51))
                w.cancel()
            }
            #expect(store.hub.buffered == 0)
        }
    }

    /// Big events count by their bytes too: a watcher holds a few megabytes, not 1,024 large values.
    @Test func aWatchersBufferIsBoundedInBytes() async throws {
        var options = testOptions()
        options.watcherBufferBytes = 100 << 10
        try await withStore(options) { store, _ in
            let w = try store.watch(WatchRequest(key: [0], rangeEnd: [0]))
            for i in 0..<20 { try await store.put(PutRequest(key: b("k\(i)"), value: [UInt8](repeating: 1, count: 32 << 10))) }
            #expect(store.hub.bufferedBytes <= 100 << 10, "\(store.hub.bufferedBytes) bytes buffered")
            let events = try await collect(w, events: 20)
            #expect(events.map(\.kv.modRevision) == Array(2...21))
            w.cancel()
        }
    }

    /// A watcher catching up from history reads about a megabyte at a time, whole revisions, not 1,000 revisions at once.
    @Test func historyIsReadInBoundedBatches() async throws {
        try await withStore { store, _ in
            for i in 0..<50 { try await store.put(PutRequest(key: b("k\(i)"), value: [UInt8](repeating: 2, count: 64 << 10))) }
            let w = try store.watch(WatchRequest(key: [0], rangeEnd: [0], startRevision: 2))
            guard case .events(let first)? = try await w.next() else { Issue.record("no events"); return }
            #expect(first.count < 50 && first.count * (64 << 10) <= (1 << 20) + (64 << 10), "\(first.count) events in one batch")
            let rest = try await collect(w, events: 50 - first.count)
            #expect((first + rest).map(\.kv.modRevision) == Array(2...51))
            w.cancel()
        }
    }

    @Test func watchersBeyondTheLimitAreRefused() async throws {
        var options = testOptions()
        options.maxWatchers = 3
        try await withStore(options) { store, _ in
            var watches = try (0..<3).map { _ in try store.watch(WatchRequest(key: b("a"))) }
            #expect(throws: MVCCError.self) { try store.watch(WatchRequest(key: b("a"))) }
            watches.removeLast().cancel()
            let again = try store.watch(WatchRequest(key: b("a")))
            again.cancel()
            watches.removeAll()  // dropped watches leave the hub too
            #expect(store.watcherCount == 0)
        }
    }

    /// Concurrent Defragments (full compactions) share one maintenance
    /// thread: none starts a thread of its own (finding 20).
    ///
    /// Threads are counted for the whole test process, where other suites
    /// open stores and servers at the same time; so a round that sees 16
    /// threads more is tried again, up to three times. A Defragment that
    /// started a thread would show about 48 more in every round.
    @Test func concurrentDefragmentsStartNoThreads() async throws {
        try await withStore { store, _ in
            for i in 0..<200 { try await store.put("k\(i)", String(repeating: "v", count: 100)) }
            var extra: [Int] = []
            for _ in 0..<3 {
                let before = threadCount()
                let peak = await withTaskGroup(of: Int.self) { group in
                    for _ in 0..<48 { group.addTask { try? await store.compactStorage(); return 0 } }
                    group.addTask {
                        var peak = 0
                        for _ in 0..<20 {
                            peak = max(peak, threadCount())
                            try? await Task.sleep(for: .milliseconds(5))
                        }
                        return peak
                    }
                    var peak = 0
                    for await p in group { peak = max(peak, p) }
                    return peak
                }
                extra.append(peak - before)
                if peak - before < 16 { break }
            }
            #expect(extra.contains { $0 < 16 }, "threads more during 48 Defragments, per round: \(extra)")
            #expect(try store.get("k199") != nil)
        }
    }

    /// The `KeyValueStore` reads run on the store's reader threads, not on the cooperative pool (finding 16).
    @Test func keyValueStoreReadsRunOnTheStoresThreads() async throws {
        try await withStore { store, _ in
            try await store.put("a", "1")
            let readers = store.readers
            #expect(try await store.offload { readers.isPoolThread }, "offloaded work runs on the store's reader threads")
            #expect(!readers.isPoolThread)
            let kv: any KeyValueStore = store
            #expect(try await kv.get(b("a")).kv?.value == b("1"))
            #expect(try await kv.count(prefix: b("")) == 1)
        }
    }
}

/// Measures this process's memory, so it runs alone (see `residentBytes`).
@Suite(.timeLimit(.minutes(2))) struct WatchMemoryBoundTests {
    /// A `KeyValueStore` watch whose consumer does not read: the events stay
    /// in the store (the watch reads them back when asked), not in memory.
    @Test func aWatchNobodyReadsHoldsABoundedBuffer() async throws {
        var options = testOptions()
        options.watcherBufferEvents = 16
        // An engine that keeps little in memory itself, so that the watch's share shows.
        options.engine.writeBufferSize = 4 << 20
        options.engine.blockCacheCapacity = 1 << 20
        options.engine.levelBaseBytes = 64 << 20
        try await withStore(options) { store, _ in
            let kv: any KeyValueStore = store
            let stream = try await kv.watch(prefix: b("w/"), fromRevision: 0)
            let before = residentBytes()
            var peak = before
            // 64 MiB of events (each value its own buffer) while nobody reads the watch.
            for i in 0..<2048 {
                var value = [UInt8](repeating: 0x5A, count: 32 << 10)
                value[0] = UInt8(truncatingIfNeeded: i)
                try await store.put(PutRequest(key: b("w/\(i % 64)"), value: value))
                if i % 256 == 0 { peak = max(peak, residentBytes()) }
            }
            peak = max(peak, residentBytes())
            print("unread watch: RSS grew by \((peak - before) >> 20) MiB while 64 MiB of events went by")
            #expect(peak - before < 32 << 20, "RSS grew by \((peak - before) >> 20) MiB for an unread watch")
            #expect(store.hub.buffered <= 16)
            // The consumer, once it reads, still gets every event in order.
            var revisions: [Int64] = []
            for try await update in stream {
                guard case .events(let events) = update else { break }
                revisions += events.map(\.kv.modRevision)
                if revisions.count >= 2048 { break }
            }
            #expect(revisions == Array(2...2049))
        }
    }
}
