import Testing
@testable import MVCCStore

/// Watch: ordering, history replay, filters, slow watchers, compaction (checklist 14–18).
@Suite struct WatchTests {
    @Test func liveEventsWithPrevKV() async throws {
        try await withStore { store, _ in
            try await store.put("a", "0")
            var req = WatchRequest(key: b("a"), rangeEnd: b("b"))
            req.prevKV = true
            let w = try store.watch(req)
            try await store.put("a", "1")
            try await store.put("zz", "ignored")
            try await store.del("a")
            let events = try await collect(w, events: 2)
            #expect(events.map(\.type) == [.put, .delete])
            #expect(events[0].kv.value == b("1") && events[0].prevKV?.value == b("0"))
            #expect(events[1].kv.key == b("a") && events[1].kv.modRevision == 5 && events[1].prevKV?.value == b("1"))
            w.cancel()
            #expect(try await w.next() == nil)
        }
    }

    @Test func replayFromHistoryThenLive() async throws {
        try await withStore { store, _ in
            for i in 0..<20 { try await store.put("k\(i % 3)", "v\(i)") }  // revs 2...21
            var req = WatchRequest(key: b("k"), rangeEnd: b("l"), startRevision: 5)
            req.prevKV = true
            let w = try store.watch(req)
            try await store.put("k0", "live")  // rev 22
            let events = try await collect(w, events: 18)
            #expect(events.map(\.kv.modRevision) == Array(5...22))
            #expect(events.first?.prevKV?.modRevision == 2)  // k0@5 replaced k0@2... (i=3 → rev 5 is k0)
            #expect(events.last?.kv.value == b("live"))
            w.cancel()
        }
    }

    @Test func filtersAndStartInTheFuture() async throws {
        try await withStore { store, _ in
            var req = WatchRequest(key: b("k"), startRevision: 4)
            req.noPut = true
            let w = try store.watch(req)
            try await store.put("k", "1")  // rev 2: before start
            try await store.del("k")        // rev 3: before start
            try await store.put("k", "2")  // rev 4: a put, filtered
            try await store.del("k")        // rev 5: delivered
            let events = try await collect(w, events: 1)
            #expect(events.map(\.kv.modRevision) == [5] && events[0].type == .delete)
            w.cancel()
        }
    }

    @Test func slowWatcherNeverBlocksWritersAndMissesNothing() async throws {
        var options = testOptions()
        options.watcherBufferEvents = 8
        try await withStore(options) { store, _ in
            store.hub.bufferLimit = 8
            let w = try store.watch(WatchRequest(key: [0], rangeEnd: [0]))
            // 300 writes while nobody reads the watch: the writers must not wait.
            await withTaskGroup(of: Void.self) { g in
                for t in 0..<4 {
                    g.addTask { for i in 0..<75 { _ = try? await store.put("w\(t)-\(i)", "x") } }
                }
            }
            #expect(store.revision == 301)
            let events = try await collect(w, events: 300)
            #expect(events.map(\.kv.modRevision) == Array(2...301), "events must be ordered, unique and complete")
            w.cancel()
        }
    }

    @Test func thousandWatchers() async throws {
        try await withStore { store, _ in
            let watches = try (0..<1000).map { i in try store.watch(WatchRequest(key: b("key\(i % 10)"))) }
            for i in 0..<10 { try await store.put("key\(i)", "v") }
            for (i, w) in watches.enumerated() {
                let e = try await collect(w, events: 1)
                #expect(e.count == 1 && e[0].kv.key == b("key\(i % 10)"))
                w.cancel()
            }
            #expect(store.watcherCount == 0)
        }
    }

    @Test func compactionCancelsWatchersThatNeedCompactedHistory() async throws {
        try await withStore { store, _ in
            for i in 0..<10 { try await store.put("k", "v\(i)") }  // revs 2...11
            _ = try await store.compact(8)
            #expect(throws: MVCCError.compacted) { try store.watch(WatchRequest(key: b("k"), startRevision: 3)) }
            let fromCompact = try store.watch(WatchRequest(key: b("k"), startRevision: 8))
            #expect(try await collect(fromCompact, events: 4).map(\.kv.modRevision) == [8, 9, 10, 11])
            fromCompact.cancel()
            // A lagging watcher overtaken by compaction is canceled with the compact revision.
            store.hub.bufferLimit = 1
            let lagging = try store.watch(WatchRequest(key: b("k"), startRevision: 9))
            for i in 0..<5 { try await store.put("k", "w\(i)") }  // revs 12...16
            _ = try await store.compact(15)
            var sawCompacted = false
            while let u = try await lagging.next() {
                if case .compacted(let rev) = u { sawCompacted = rev == 15; break }
            }
            #expect(sawCompacted)
        }
    }
}
