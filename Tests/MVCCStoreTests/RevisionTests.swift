import Testing
@testable import MVCCStore

/// etcd's revision and per-key version rules (reference §1.3, checklist 7–9).
@Suite struct RevisionTests {
    @Test func eachWriteTransactionBumpsTheRevisionByOne() async throws {
        try await withStore { store, _ in
            #expect(store.revision == 1)
            #expect(try await store.put("a", "1") == 2)
            #expect(try await store.put("b", "1") == 3)
            // Several keys in one txn share one revision.
            let t = try await store.txn(TxnRequest(success: [.put(PutRequest(key: b("c"), value: b("1"))),
                                                             .put(PutRequest(key: b("d"), value: b("1")))]))
            #expect(t.revision == 4)
            #expect(try store.get("c")?.modRevision == 4 && store.get("d")?.modRevision == 4)
            // Read-only, failed and no-op transactions do not bump it.
            _ = try await store.txn(TxnRequest(success: [.range(RangeRequest(key: b("a")))]))
            _ = try await store.txn(TxnRequest(compare: [Compare(key: b("a"), .value(b("nope")), .equal)],
                                               success: [.put(PutRequest(key: b("a"), value: b("x")))]))
            let noop = try await store.del("missing")
            #expect(noop.deleted == 0)
            #expect(store.revision == 4)
        }
    }

    @Test func versionCreateAndModRevisionsFollowEtcd() async throws {
        try await withStore { store, _ in
            try await store.put("k", "v1")  // rev 2
            try await store.put("k", "v2")  // rev 3
            var kv = try #require(try store.get("k"))
            #expect(kv.createRevision == 2 && kv.modRevision == 3 && kv.version == 2)
            let d = try await store.del("k")  // rev 4
            #expect(d.deleted == 1 && d.prevKVs.first?.value == b("v2"))
            #expect(try store.get("k") == nil)
            try await store.put("k", "v3")  // rev 5: recreated
            kv = try #require(try store.get("k"))
            #expect(kv.createRevision == 5 && kv.modRevision == 5 && kv.version == 1)
            // History: every revision reads as it was.
            #expect(try store.get("k", rev: 2)?.value == b("v1"))
            #expect(try store.get("k", rev: 3)?.value == b("v2"))
            #expect(try store.get("k", rev: 4) == nil)
            #expect(try store.get("k", rev: 5)?.value == b("v3"))
            // The header carries the current revision even for historical reads.
            #expect(try store.range(RangeRequest(key: b("k"), revision: 2)).revision == 5)
        }
    }

    @Test func futureAndCompactedRevisionsAreRefused() async throws {
        try await withStore { store, _ in
            for i in 0..<5 { try await store.put("k", "v\(i)") }  // revs 2...6
            #expect(throws: MVCCError.futureRevision) { try store.range(RangeRequest(key: b("k"), revision: 7)) }
            _ = try await store.compact(4)
            #expect(throws: MVCCError.compacted) { try store.range(RangeRequest(key: b("k"), revision: 3)) }
            #expect(try store.get("k", rev: 4)?.value == b("v2"))  // reading at exactly the compact revision works
            await #expect(throws: MVCCError.compacted) { try await store.compact(4) }
            await #expect(throws: MVCCError.futureRevision) { try await store.compact(100) }
        }
    }

    @Test func emptyKeysAndOversizedTransactionsAreRefused() async throws {
        try await withStore { store, _ in
            await #expect(throws: MVCCError.emptyKey) { try await store.put("", "x") }
            let many = (0..<129).map { RequestOp.put(PutRequest(key: b("k\($0)"), value: [])) }
            await #expect(throws: MVCCError.tooManyOps) { try await store.txn(TxnRequest(success: many)) }
            await #expect(throws: MVCCError.duplicateKey) {
                try await store.txn(TxnRequest(success: [.put(PutRequest(key: b("a"), value: [])), .put(PutRequest(key: b("a"), value: []))]))
            }
            await #expect(throws: MVCCError.duplicateKey) {
                try await store.txn(TxnRequest(success: [.put(PutRequest(key: b("a1"), value: [])),
                                                         .deleteRange(DeleteRangeRequest(key: b("a"), rangeEnd: b("b")))]))
            }
            #expect(store.revision == 1)
        }
    }

    @Test func stateSurvivesRestart() async throws {
        let dir = TempDir()
        let clock = TestClock()
        do {
            let store = try MVCCStore.open(path: dir.path, options: testOptions(clock: clock, sync: .always))
            for i in 0..<50 { try await store.put("k\(i % 7)", "v\(i)") }
            _ = try await store.compact(20)
            let lease = try await store.leaseGrant(ttl: 30)
            try await store.put("leased", "x", lease: lease.id)
            try await store.close()
        }
        let store = try MVCCStore.open(path: dir.path, options: testOptions(clock: clock, sync: .always))
        #expect(store.revision == 52)  // 50 puts (2...51), the leased put (52); a grant is no revision
        #expect(store.compactedRevision == 20)
        #expect(try store.get("k1", rev: 30)?.value == b("v22"))  // k1 was last written at rev 24 (i = 22)
        #expect(store.leases().count == 1)
        #expect(store.leaseTimeToLive(store.leases()[0])?.keys == [b("leased")])
        #expect(try await store.put("next", "x") == 53)  // no reuse, no gap
        try await store.close()
    }
}
