import Synchronization
import Testing
@testable import MVCCStore

/// Txn compares, branches, nesting, and the shapes Kubernetes uses (checklist 12–13).
@Suite struct TxnTests {
    @Test func comparesOnEveryTarget() async throws {
        try await withStore { store, _ in
            try await store.put("k", "v")  // rev 2
            try await store.put("k", "w")  // rev 3, version 2
            func check(_ c: Compare) async throws -> Bool {
                try await store.txn(TxnRequest(compare: [c])).succeeded
            }
            #expect(try await check(Compare(key: b("k"), .version(2), .equal)))
            #expect(try await check(Compare(key: b("k"), .createRevision(2), .equal)))
            #expect(try await check(Compare(key: b("k"), .modRevision(2), .greater)))
            #expect(try await check(Compare(key: b("k"), .modRevision(4), .less)))
            #expect(try await check(Compare(key: b("k"), .value(b("w")), .equal)))
            #expect(try await check(Compare(key: b("k"), .value(b("v")), .notEqual)))
            #expect(try await check(Compare(key: b("k"), .lease(0), .equal)))
            // A missing key compares as 0, except on value, where any compare is false.
            #expect(try await check(Compare(key: b("nope"), .version(0), .equal)))
            #expect(try await check(Compare(key: b("nope"), .modRevision(0), .equal)))
            #expect(try await !check(Compare(key: b("nope"), .value([]), .equal)))
            #expect(try await !check(Compare(key: b("nope"), .value([]), .notEqual)))
            // With range_end the compare must hold for every key in the range.
            try await store.put("k2", "w")
            #expect(try await check(Compare(key: b("k"), rangeEnd: b("l"), .value(b("w")), .equal)))
            try await store.put("k3", "z")
            #expect(try await !check(Compare(key: b("k"), rangeEnd: b("l"), .value(b("w")), .equal)))
        }
    }

    @Test func branchesNestingAndReadingOwnWrites() async throws {
        try await withStore { store, _ in
            let r = try await store.txn(TxnRequest(
                compare: [Compare(key: b("x"), .version(0), .equal)],
                success: [.put(PutRequest(key: b("x"), value: b("1"))),
                          .range(RangeRequest(key: b("x"))),
                          .txn(TxnRequest(compare: [Compare(key: b("x"), .value(b("1")), .equal)],
                                          success: [.put(PutRequest(key: b("y"), value: b("2")))]))],
                failure: [.range(RangeRequest(key: b("x")))]))
            #expect(r.succeeded && r.revision == 2)
            guard case .range(let inner) = r.responses[1], case .txn(let nested) = r.responses[2] else {
                Issue.record("unexpected responses \(r.responses)")
                return
            }
            #expect(inner.kvs.first?.value == b("1"))  // a range after a put in the same txn sees it
            #expect(nested.succeeded)
            #expect(try store.get("y")?.modRevision == 2)
            let again = try await store.txn(TxnRequest(compare: [Compare(key: b("x"), .version(0), .equal)],
                                                       success: [], failure: [.range(RangeRequest(key: b("x")))]))
            #expect(!again.succeeded && again.revision == 2)
        }
    }

    @Test func kubernetesShapes() async throws {
        try await withStore { store, _ in
            let kv: any KeyValueStore = store
            let rev = try await kv.create(b("/registry/pods/default/a"), value: b("{1}"), lease: 0)
            await #expect(throws: KeyValueStoreError.alreadyExists(key: b("/registry/pods/default/a"))) {
                try await kv.create(b("/registry/pods/default/a"), value: b("{x}"), lease: 0)
            }
            let stale = try await kv.update(b("/registry/pods/default/a"), value: b("{2}"), expectedModRevision: rev - 1, lease: 0)
            guard case .conflict(let current) = stale else { Issue.record("stale update succeeded"); return }
            #expect(current?.value == b("{1}"))
            #expect(try await kv.update(b("/registry/pods/default/a"), value: b("{2}"), expectedModRevision: rev, lease: 0)
                    == .succeeded(revision: rev + 1))
            for i in 0..<5 { _ = try await kv.create(b("/registry/pods/default/p\(i)"), value: b("{}"), lease: 0) }
            let page1 = try await kv.list(prefix: b("/registry/pods/"), limit: 4, continueAfter: nil, revision: 0)
            #expect(page1.kvs.count == 4 && page1.more && page1.count == 6)
            let page2 = try await kv.list(prefix: b("/registry/pods/"), limit: 4, continueAfter: page1.kvs.last!.key, revision: page1.revision)
            #expect(page2.kvs.count == 2 && !page2.more && page2.count == 6)
            #expect(try await kv.count(prefix: b("/registry/pods/")) == 6)
            guard case .conflict = try await kv.delete(b("/registry/pods/default/a"), expectedModRevision: 1) else {
                Issue.record("stale delete succeeded"); return
            }
            guard case .succeeded = try await kv.delete(b("/registry/pods/default/a"), expectedModRevision: rev + 1) else {
                Issue.record("delete failed"); return
            }
            #expect(try await kv.get(b("/registry/pods/default/a")).kv == nil)
        }
    }

    @Test func putOptions() async throws {
        try await withStore { store, _ in
            await #expect(throws: MVCCError.keyNotFound) {
                var p = PutRequest(key: b("k"), value: [])
                p.ignoreValue = true
                return try await store.put(p)
            }
            let lease = try await store.leaseGrant(ttl: 60)
            try await store.put("k", "v", lease: lease.id)
            var p = PutRequest(key: b("k"), value: b("ignored"))
            p.ignoreValue = true
            p.ignoreLease = true
            p.prevKV = true
            let r = try await store.put(p)
            #expect(r.prevKV?.value == b("v"))
            let kv = try #require(try store.get("k"))
            #expect(kv.value == b("v") && kv.lease == lease.id && kv.version == 2)
            await #expect(throws: MVCCError.leaseNotFound) { try await store.put("k", "v", lease: 12345) }
        }
    }
}

/// A store opened without its writer thread: writes wait in the queue until the caller runs
/// them, on its own thread, as one group; whatever is left at close is refused.
@Suite struct CallerRunWriteTests {
    @Test func queuedWritesRunOnTheCallersThreadAndLeftoversAreRefusedAtClose() async throws {
        var options = testOptions()
        options.writerThread = false
        let answers = Mutex<[Result<TxnResponse, any Error>]>([])
        try await withStore(options) { store, _ in
            for value in ["1", "2"] {
                store.txn(TxnRequest(success: [.put(PutRequest(key: b("k"), value: b(value)))])) { r in answers.withLock { $0.append(r) } }
            }
            #expect(answers.withLock { $0.count } == 0, "nothing runs before the caller asks")
            #expect(try store.get("k") == nil)
            store.runQueuedWrites()
            let revisions = try answers.withLock { try $0.map { try $0.get().revision } }
            #expect(revisions == [2, 3], "both answered, in order, as one group")
            #expect(try store.get("k").map { s($0.value) } == "2")
            store.txn(TxnRequest(success: [.put(PutRequest(key: b("late"), value: b("x")))])) { r in answers.withLock { $0.append(r) } }
        }
        // Closed with a write queued and never run: it was refused.
        let last = answers.withLock { $0.count == 3 ? $0[2] : nil }
        #expect(last.map { if case .failure = $0 { true } else { false } } == true, "the write left in the queue at close")
    }

    /// A compaction is made durable at once, before its group's writes are: it may not name a
    /// revision of its own group, which a crash or a failed commit could still take back.
    @Test func aCompactionCannotNameARevisionItsGroupIsStillWriting() async throws {
        var options = testOptions()
        options.writerThread = false
        let outcomes = Mutex<[String]>([])
        try await withStore(options) { store, _ in
            store.txn(TxnRequest(success: [.put(PutRequest(key: b("k"), value: b("1")))])) { r in
                outcomes.withLock { $0.append((try? r.get()).map { "put \($0.revision)" } ?? "put failed") }
            }
            store.queue.submit(.compact(2)) { r in
                outcomes.withLock { $0.append((try? r.get()) == nil ? "compact refused" : "compact done") }
            }
            store.runQueuedWrites()
            #expect(outcomes.withLock { $0 } == ["put 2", "compact refused"])
            #expect(store.compactedRevision == 0)
            store.queue.submit(.compact(2)) { r in
                outcomes.withLock { $0.append((try? r.get()) == nil ? "compact refused" : "compact done") }
            }
            store.runQueuedWrites()
            #expect(outcomes.withLock { $0.last } == "compact done", "once committed, the revision can be compacted")
            #expect(store.compactedRevision == 2)
        }
    }
}
