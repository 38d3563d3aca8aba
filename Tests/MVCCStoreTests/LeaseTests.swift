import Testing
@testable import MVCCStore

/// Leases with a controllable clock (checklist 19–21).
@Suite struct LeaseTests {
    @Test func grantKeepAliveTimeToLiveAndExpiry() async throws {
        let clock = TestClock()
        try await withStore(testOptions(clock: clock)) { store, _ in
            let lease = try await store.leaseGrant(ttl: 10)
            #expect(lease.id != 0 && lease.ttl == 10)
            try await store.put("a", "1", lease: lease.id)
            try await store.put("b", "1", lease: lease.id)
            try await store.put("c", "1")
            let w = try store.watch(WatchRequest(key: [0], rangeEnd: [0]))
            clock.advance(6)
            #expect(store.leaseKeepAlive(lease.id) == 10)
            clock.advance(6)
            await store.expireLeases()
            #expect(try store.get("a") != nil, "kept alive: not expired yet")
            #expect(store.leaseTimeToLive(lease.id)?.ttl == 4)
            #expect(store.leaseTimeToLive(lease.id)?.keys == [b("a"), b("b")])
            clock.advance(5)
            let before = store.revision
            await store.expireLeases()
            // Expiry deletes every attached key in ONE revision.
            #expect(store.revision == before + 1)
            #expect(try store.get("a") == nil && store.get("b") == nil && store.get("c") != nil)
            let events = try await collect(w, events: 2)
            #expect(events.map(\.type) == [.delete, .delete] && Set(events.map(\.kv.modRevision)) == [before + 1])
            #expect(store.leaseKeepAlive(lease.id) == 0)
            #expect(store.leaseTimeToLive(lease.id) == nil)
            w.cancel()
        }
    }

    @Test func grantRules() async throws {
        try await withStore { store, _ in
            let a = try await store.leaseGrant(id: 42, ttl: 0)
            #expect(a.id == 42 && a.ttl == 1)  // raised to the minimum TTL
            await #expect(throws: MVCCError.leaseExists) { try await store.leaseGrant(id: 42, ttl: 5) }
            await #expect(throws: MVCCError.leaseTTLTooLarge) { try await store.leaseGrant(ttl: 9_000_000_001) }
            await #expect(throws: MVCCError.leaseNotFound) { try await store.leaseRevoke(7) }
            _ = try await store.leaseGrant(ttl: 5)
            #expect(store.leases().count == 2)
            _ = try await store.leaseRevoke(42)
            #expect(store.leases().count == 1)
        }
    }
}
