import Testing
import LSMTree
@testable import MVCCStore

/// Compaction reclaims space through the engine's compaction filter, with no
/// stop-the-world defragmentation (checklist 22–23).
@Suite struct CompactionTests {
    @Test func compactedHistoryLeavesTheDisk() async throws {
        try await withStore { store, _ in
            let value = String(repeating: "x", count: 200)
            for round in 0..<10 {
                for k in 0..<200 { try await store.put("key\(k)", "\(round)-\(value)") }
            }
            try await store.compactStorage()
            let before = store.sizeBytes
            _ = try await store.compact(store.revision)
            try await store.compactStorage()
            let after = store.sizeBytes
            print("compaction: \(before) bytes -> \(after) bytes")
            #expect(Double(after) < Double(before) * 0.35, "10 versions per key compacted to 1 should shrink the store")
            // The latest state is intact and readable at the compact revision.
            #expect(try store.keys(prefix: "key").count == 200)
            #expect(try store.get("key7")?.value == b("9-\(value)"))
            #expect(try store.get("key7", rev: store.compactedRevision)?.value == b("9-\(value)"))
            // Deleted keys and their tombstones go too.
            _ = try await store.del("key", end: "kez")
            _ = try await store.compact(store.revision)
            try await store.compactStorage()
            // What stays: the revision log of the compact revision itself (etcd keeps it too) and metadata.
            #expect(store.sizeBytes < after)
            #expect(try store.keys(prefix: "key").isEmpty)
        }
    }

    @Test func quotaRaisesNoSpaceButAllowsReadsDeletesAndCompaction() async throws {
        var options = testOptions()
        options.quotaBytes = 64 << 10
        try await withStore(options) { store, _ in
            let big = String(repeating: "y", count: 4000)
            var failed = false
            for i in 0..<200 {
                do { try await store.put("k\(i)", big) } catch let e as MVCCError {
                    #expect(e == .noSpace)
                    failed = true
                    break
                }
            }
            #expect(failed && store.activeAlarms == [.noSpace])
            await #expect(throws: MVCCError.noSpace) { try await store.put("more", "x") }
            #expect(try store.get("k0") != nil)
            _ = try await store.del("k", end: "l")
            _ = try await store.compact(store.revision)
            try await store.disarm(.noSpace)
            #expect(store.activeAlarms.isEmpty)
        }
    }
}
