import Testing
@testable import MVCCStore

/// Range semantics, corner cases as etcd (reference §1.3, checklist 10).
@Suite struct RangeTests {
    func seeded(_ body: (MVCCStore) async throws -> Void) async throws {
        try await withStore { store, _ in
            for k in ["a", "b", "b1", "b2", "c", "d"] { try await store.put(k, "val-\(k)") }  // revs 2...7
            try await store.put("b1", "val-b1-again")  // rev 8: b1 version 2
            try await body(store)
        }
    }

    @Test func bounds() async throws {
        try await seeded { (store: MVCCStore) async throws in
            #expect(try store.range(RangeRequest(key: b("b"))).kvs.map { s($0.key) } == ["b"])
            #expect(try store.range(RangeRequest(key: b("b"), rangeEnd: b("c"))).kvs.map { s($0.key) } == ["b", "b1", "b2"])
            #expect(try store.keys(prefix: "b") == ["b", "b1", "b2"])
            #expect(try store.range(RangeRequest(key: b("c"), rangeEnd: [0])).kvs.map { s($0.key) } == ["c", "d"])
            #expect(try store.range(RangeRequest(key: [0], rangeEnd: [0])).kvs.count == 6)
            #expect(prefixRangeEnd([0x61, 0xFF]) == [0x62])
            #expect(prefixRangeEnd([0xFF, 0xFF]) == [0])
        }
    }

    @Test func limitMoreCountKeysOnlyCountOnly() async throws {
        try await seeded { (store: MVCCStore) async throws in
            var r = RangeRequest(key: [0], rangeEnd: [0], limit: 2)
            var resp = try store.range(r)
            #expect(resp.kvs.map { s($0.key) } == ["a", "b"] && resp.more && resp.count == 6)
            r.limit = 6
            resp = try store.range(r)
            #expect(!resp.more && resp.kvs.count == 6)
            r.keysOnly = true
            #expect(try store.range(r).kvs.allSatisfy { $0.value.isEmpty })
            r.countOnly = true
            resp = try store.range(r)
            #expect(resp.kvs.isEmpty && resp.count == 6)
        }
    }

    @Test func sortAndFilters() async throws {
        try await seeded { (store: MVCCStore) async throws in
            var r = RangeRequest(key: [0], rangeEnd: [0])
            r.sortOrder = .descend
            #expect(try store.range(r).kvs.map { s($0.key) } == ["d", "c", "b2", "b1", "b", "a"])
            r.sortTarget = .mod
            r.sortOrder = .descend
            #expect(try store.range(r).kvs.first.map { s($0.key) } == "b1")
            r.sortTarget = .version
            r.sortOrder = .none  // a non-key target with NONE sorts ascending
            #expect(try store.range(r).kvs.last.map { s($0.key) } == "b1")
            r = RangeRequest(key: [0], rangeEnd: [0], limit: 1)
            r.minModRevision = 5
            let resp = try store.range(r)
            // Filters apply before the limit; count ignores both.
            #expect(resp.kvs.map { s($0.key) } == ["b1"] && resp.more && resp.count == 6)  // b1@8, b2@5, c@6, d@7 pass
            r = RangeRequest(key: [0], rangeEnd: [0])
            r.maxCreateRevision = 3
            #expect(try store.range(r).kvs.map { s($0.key) } == ["a", "b"])
        }
    }

    @Test func rangeAtOlderRevision() async throws {
        try await seeded { (store: MVCCStore) async throws in
            let r = try store.range(RangeRequest(key: [0], rangeEnd: [0], revision: 4))
            #expect(r.kvs.map { s($0.key) } == ["a", "b", "b1"] && r.revision == 8)
            #expect(try store.get("b1", rev: 7)?.value == b("val-b1"))
        }
    }

    /// A limited or count-only range reads only what it returns in full and counts
    /// the rest: at every revision of a history with overwrites and deletes, it
    /// must agree with the unlimited range cut to the limit.
    @Test func limitedAndCountOnlyRangesAgreeWithTheFullRangeAtEveryRevision() async throws {
        try await withStore { store, _ in
            var generator = SystemRandomNumberGenerator()
            let keys = (0..<12).map { "k\($0 < 10 ? "0" : "")\($0)" }
            for step in 0..<80 {
                let key = keys.randomElement(using: &generator)!
                if step % 5 == 4 {
                    _ = try await store.deleteRange(DeleteRangeRequest(key: b(key)))
                } else {
                    try await store.put(key, "v\(step)")
                }
            }
            let latest = try store.range(RangeRequest(key: [0], rangeEnd: [0])).revision
            for rev in stride(from: Int64(2), through: latest, by: 3) {
                let full = try store.range(RangeRequest(key: b("k"), rangeEnd: b("l"), revision: rev))
                #expect(full.count == Int64(full.kvs.count))
                for limit in [1, 3, 7, 20] {
                    let page = try store.range(RangeRequest(key: b("k"), rangeEnd: b("l"), limit: Int64(limit), revision: rev))
                    #expect(page.kvs == Array(full.kvs.prefix(limit)), "rev \(rev) limit \(limit)")
                    #expect(page.count == full.count && page.more == (full.kvs.count > limit), "rev \(rev) limit \(limit)")
                }
                var countOnly = RangeRequest(key: b("k"), rangeEnd: b("l"), revision: rev)
                countOnly.countOnly = true
                #expect(try store.range(countOnly).count == full.count, "rev \(rev)")
            }
        }
    }
}
