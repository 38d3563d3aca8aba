import Foundation
import LSMTree
import Testing
import TestSupport
@testable import MVCCStore

/// A full disk (finding 9): the store turns read-only and says so through
/// `health()`, keeps nothing of the writes it refused (leases included), and
/// a reopen once space is back recovers every acknowledged write.
@Suite(.enabled(if: Tmpfs.available, "mounting a tmpfs needs root"))
struct StorageFailureTests {
    @Test func aFullDiskMakesTheStoreUnhealthyAndAReopenRecovers() async throws {
        let fs = try Tmpfs(size: "3m")
        let dir = fs.path + "/store"
        var options = testOptions(sync: .always)
        options.engine.compression = false
        let store = try MVCCStore.open(path: dir, options: options)
        #expect(store.currentHealth == .healthy)
        let kept = try await store.leaseGrant(id: 7, ttl: 100)
        try await store.put("leased", "v", lease: kept.id)
        var acknowledged: [String: [UInt8]] = [:]
        var failure: (any Error)?
        var rng = SystemRandomNumberGenerator()
        for i in 0..<400 {
            let value = (0..<(16 << 10)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            do {
                try await store.put(PutRequest(key: b("k\(i)"), value: value))
                acknowledged["k\(i)"] = value
            } catch {
                failure = error
                break
            }
        }
        let error = try #require(failure, "3 MiB of tmpfs took 400 puts of 16 KiB")
        #expect((error as? MVCCError)?.code == .storage, "\(error)")
        let health = store.currentHealth
        #expect(!health.isHealthy)
        #expect(health.reason?.contains("read-only") == true && health.reason?.contains("No space left on device") == true,
                "the reason names the state and the cause: \(health)")
        #expect(await (store as any KeyValueStore).health() == health, "KeyValueStore users see the same")
        // Writes that fail leave nothing behind in memory: no phantom lease, no attachment, no revocation.
        let leasesBefore = store.leases()
        await #expect(throws: MVCCError.self) { try await store.leaseGrant(id: 8, ttl: 100) }
        #expect(store.leases() == leasesBefore && store.leaseTimeToLive(8) == nil, "a failed grant left a lease")
        await #expect(throws: MVCCError.self) { try await store.put("k0", "x", lease: kept.id) }
        #expect(store.leaseTimeToLive(kept.id)?.keys == [b("leased")], "a failed put left its key attached")
        await #expect(throws: MVCCError.self) { try await store.leaseRevoke(kept.id) }
        #expect(store.leaseTimeToLive(kept.id) != nil, "a failed revoke removed the lease")
        // Reads still work.
        #expect(try store.get("leased")?.value == b("v"))
        try? await store.close()

        // Space comes back. Enough of it: a reopen replays the log into an
        // SSTable and may compact, and how much of the data was still in the
        // log when the disk filled depends on the flush thread's timing.
        try fs.resize(to: "32m")
        let reopened = try MVCCStore.open(path: dir, options: options)
        #expect(reopened.currentHealth == .healthy)
        for (k, v) in acknowledged { #expect(try reopened.get(k)?.value == v, "acknowledged \(k) survives") }
        #expect(reopened.leaseTimeToLive(kept.id)?.keys == [b("leased")] && reopened.leaseTimeToLive(8) == nil)
        try await reopened.put("after", "ok")
        #expect(try reopened.get("after")?.value == b("ok"))
        try await reopened.close()
    }
}
