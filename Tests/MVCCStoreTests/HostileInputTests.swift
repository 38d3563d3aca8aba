import Testing
@testable import MVCCStore

/// Every Int64 a client sends, at its extremes: the store answers (with a
/// result or etcd's error) and never traps (issue 12, finding 2).
@Suite struct HostileInputTests {
    static let extremes: [Int64] = [.max, .max - 1, .min, .min + 1, -1, 0, 1]

    @Test(arguments: extremes)
    func rangeLimit(_ limit: Int64) async throws {
        try await withStore { store, _ in
            for k in ["a", "b", "c"] { try await store.put(k, "v") }
            let r = try store.range(RangeRequest(key: [0], rangeEnd: [0], limit: limit))
            // etcd: a limit <= 0 means none; any positive limit above the count returns everything.
            #expect(r.kvs.count == (limit == 1 ? 1 : 3) && r.count == 3 && r.more == (limit == 1))
            var sorted = RangeRequest(key: [0], rangeEnd: [0], limit: limit)
            sorted.sortOrder = .descend
            #expect(try store.range(sorted).kvs.first?.key == b("c"))
            // The same request inside a txn (the other path to the same code).
            let t = try await store.txn(TxnRequest(success: [.range(RangeRequest(key: [0], rangeEnd: [0], limit: limit))]))
            guard case .range(let inTxn)? = t.responses.first else { Issue.record("no range response"); return }
            #expect(inTxn.kvs.count == r.kvs.count && inTxn.more == r.more)
            // And a txn range at an older revision (read from history, not the group's view).
            let old = try await store.txn(TxnRequest(success: [.range(RangeRequest(key: [0], rangeEnd: [0], limit: limit, revision: 3))]))
            guard case .range(let atThree)? = old.responses.first else { Issue.record("no range response"); return }
            #expect(atThree.kvs.map { s($0.key) } == (limit == 1 ? ["a"] : ["a", "b"]))
        }
    }

    @Test(arguments: extremes)
    func revisionsInReadsWritesAndCompaction(_ rev: Int64) async throws {
        try await withStore { store, _ in
            try await store.put("a", "1")
            var r = RangeRequest(key: b("a"), revision: rev)
            r.minModRevision = rev
            r.maxModRevision = rev
            r.minCreateRevision = rev
            r.maxCreateRevision = rev
            do {
                _ = try store.range(r)
            } catch let e as MVCCError {
                #expect(e.code == .futureRevision || e.code == .compacted)
            }
            let t = try await store.txn(TxnRequest(compare: [Compare(key: b("a"), .modRevision(rev), .less),
                                                             Compare(key: b("a"), .version(rev), .greater),
                                                             Compare(key: b("a"), .lease(rev), .notEqual)],
                                                   success: [.put(PutRequest(key: b("a"), value: b("2")))]))
            #expect(t.revision >= 2)
            do {
                _ = try await store.compact(rev)
            } catch let e as MVCCError {
                #expect(e.code == .futureRevision || e.code == .compacted)
            }
            // Watches from any start revision: created or refused with `compacted`, never a trap.
            do {
                let w = try store.watch(WatchRequest(key: b("a"), startRevision: rev))
                w.cancel()
            } catch let e as MVCCError {
                #expect(e.code == .compacted)
            }
            try await store.put("a", "3")
            #expect(try store.get("a")?.value == b("3"))
        }
    }

    @Test(arguments: extremes)
    func leaseIDsAndTTLs(_ value: Int64) async throws {
        try await withStore { store, _ in
            do {
                let l = try await store.leaseGrant(id: value, ttl: value)
                #expect(l.ttl >= 1 && l.ttl <= 9_000_000_000)
                #expect(store.leaseTimeToLive(l.id) != nil)
                #expect(store.leaseKeepAlive(l.id) == l.ttl)
                _ = try await store.leaseRevoke(l.id)
            } catch let e as MVCCError {
                #expect(e.code == .leaseTTLTooLarge)
            }
            #expect(store.leaseKeepAlive(value) == 0)
            await #expect(throws: MVCCError.self) { try await store.put(PutRequest(key: b("k"), value: [], lease: value == 0 ? 1 : value)) }
        }
    }

    /// Stored records whose varints exceed Int64 (a damaged or foreign row) are
    /// undecodable, not a trap.
    @Test func recordsWithOutOfRangeVarintsDoNotDecode() {
        let tooBig: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]  // UInt64.max
        let small: [UInt8] = [1]
        for field in 0..<5 {
            var bytes: [UInt8] = [0]
            for i in 0..<5 { bytes += i == field ? tooBig : small }
            let decoded = Record.decode(bytes, withSuccessor: true)
            if field == 3 {
                #expect(decoded != nil, "the lease is a bit pattern: any 64 bits are an ID")
            } else {
                #expect(decoded == nil, "field \(field) above Int64.max must not decode")
            }
        }
        #expect(LogEntry.decode([0] + tooBig + b("key")) == nil)
        // A varint cut off by the end of the row, or longer than ten bytes, is damage too (it
        // used to decode as an empty key).
        #expect(LogEntry.decode([0, 0x80]) == nil)
        #expect(LogEntry.decode([1] + [UInt8](repeating: 0xFF, count: 11) + [0x01] + b("key")) == nil)
        #expect(LogEntry.decode([0, 0x05] + b("key")).map { ($0.prevModRevision, $0.key) } ?? (0, []) == (5, b("key")))
        let filter = MVCCCompactionFilter(compactRevision: .init(10))
        let key: [UInt8] = [Layout.log, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0]
        key.withUnsafeBytes { k in
            [UInt8]().withUnsafeBytes { v in
                #expect(!filter.shouldDrop(key: k, value: v))
            }
        }
    }
}
