// A remote etcd's connection can drop under a call (grpc-swift drops its connection to
// etcd 3.4 every ~100 calls; the kubectl suite over a real etcd hit it as
// `Error from server (ServiceUnavailable): … the storage backend is unavailable:
// unavailable: "Stream unexpectedly closed."`). Reads are retried; a write whose answer was
// lost is resolved by reading the key back, so it is neither reported failed nor applied twice.
import ClusterAPI
import Foundation
import HTTPKit
import Logging
import MVCCStore
import NIOHTTP1
import Synchronization
import Testing
@testable import APIServer

/// The transport failure as EtcdClient raises it (any error that is not the store's own).
struct StreamClosed: Error, CustomStringConvertible {
    var description: String { #"unavailable: "Stream unexpectedly closed.""# }
}

/// A KeyValueStore over MVCCStore whose next calls fail: `.beforeSending` fails without
/// touching the store, `.answerLost` performs the call and then fails.
final class FlakyStore: KeyValueStore, Sendable {
    enum Failure: Sendable { case beforeSending, answerLost }
    let base: MVCCStore
    private let failures = Mutex<[Failure]>([])
    private let calls = Mutex(0)

    init(_ base: MVCCStore) { self.base = base }

    func failNext(_ f: Failure...) { failures.withLock { $0 = f } }
    var callCount: Int { calls.withLock { $0 } }

    private func perform<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        calls.withLock { $0 += 1 }
        let failure = failures.withLock { $0.isEmpty ? nil : $0.removeFirst() }
        switch failure {
        case nil: return try await body()
        case .beforeSending: throw StreamClosed()
        case .answerLost:
            _ = try await body()
            throw StreamClosed()
        }
    }

    func get(_ key: [UInt8]) async throws -> (kv: KeyValue?, revision: Int64) {
        let r = try await perform { let r = try await base.get(key); return Pair(kv: r.kv, revision: r.revision) }
        return (r.kv, r.revision)
    }
    func list(prefix: [UInt8], limit: Int64, continueAfter: [UInt8]?, revision: Int64) async throws -> ListResult {
        try await perform { try await base.list(prefix: prefix, limit: limit, continueAfter: continueAfter, revision: revision) }
    }
    func create(_ key: [UInt8], value: [UInt8], lease: Int64) async throws -> Int64 {
        try await perform { try await base.create(key, value: value, lease: lease) }
    }
    func update(_ key: [UInt8], value: [UInt8], expectedModRevision: Int64, lease: Int64) async throws -> ConditionalResult {
        try await perform { try await base.update(key, value: value, expectedModRevision: expectedModRevision, lease: lease) }
    }
    func delete(_ key: [UInt8], expectedModRevision: Int64?) async throws -> ConditionalResult {
        try await perform { try await base.delete(key, expectedModRevision: expectedModRevision) }
    }
    func watch(prefix: [UInt8], fromRevision: Int64) async throws -> AsyncThrowingStream<WatchUpdate, any Error> {
        try await base.watch(prefix: prefix, fromRevision: fromRevision)
    }
    func count(prefix: [UInt8]) async throws -> Int64 { try await perform { try await base.count(prefix: prefix) } }
    func compact(_ revision: Int64) async throws { try await base.compact(revision) }
    func currentRevision() async throws -> Int64 { try await perform { try await base.currentRevision() } }
    func grantLease(ttl: Int64) async throws -> Int64 { try await base.grantLease(ttl: ttl) }
}

private struct Pair: Sendable {
    var kv: KeyValue?
    var revision: Int64
}

private func withFlakyStore(_ body: (FlakyStore, ObjectStore) async throws -> Void) async throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("apiserver-flaky-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let base = try MVCCStore.open(path: directory)
    let flaky = FlakyStore(base)
    do {
        try await body(flaky, ObjectStore(flaky))
    } catch {
        try? await base.close()
        try? FileManager.default.removeItem(atPath: directory)
        throw error
    }
    try? await base.close()
    try? FileManager.default.removeItem(atPath: directory)
}

@Suite struct TransientStoreFailureTests {
    let object: JSONValue = ["apiVersion": "v1", "kind": "ConfigMap", "metadata": ["name": "a", "uid": "u-1"], "data": ["k": "1"]]

    @Test func readsAreRetried() async throws {
        try await withFlakyStore { flaky, store in
            _ = try await store.create("/registry/x/a", object, alreadyExists: APIError(.alreadyExists, "exists"))
            flaky.failNext(.beforeSending, .answerLost)
            let got = try await store.get("/registry/x/a")
            #expect(got?.object["data"]?["k"] == "1")
            flaky.failNext(.beforeSending)
            let listed = try await store.list(prefix: "/registry/x/", limit: 0, continueAfter: nil, revision: 0) { _ in true }
            #expect(listed.items.count == 1)
            flaky.failNext(.beforeSending)
            #expect(try await store.currentRevision() > 0)
        }
    }

    @Test func aCreateWhoseAnswerWasLostSucceedsOnce() async throws {
        try await withFlakyStore { flaky, store in
            flaky.failNext(.answerLost)
            let created = try await store.create("/registry/x/a", object, alreadyExists: APIError(.alreadyExists, "exists"))
            let stored = try #require(try await store.get("/registry/x/a"))
            #expect(created["metadata"]?["resourceVersion"]?.stringValue == String(stored.modRevision))
            // Not sent at all: simply sent again.
            flaky.failNext(.beforeSending)
            _ = try await store.create("/registry/x/b", object, alreadyExists: APIError(.alreadyExists, "exists"))
            #expect(try await store.get("/registry/x/b") != nil)
            // Someone else's object at the key is still AlreadyExists.
            flaky.failNext(.beforeSending)
            var other = object
            other["metadata"]?["uid"] = "u-2"
            do {
                _ = try await store.create("/registry/x/a", other, alreadyExists: APIError(.alreadyExists, "a exists"))
                Issue.record("another object at the key must be AlreadyExists")
            } catch {
                #expect((error as? APIError)?.code == .alreadyExists)
            }
        }
    }

    @Test func anUpdateOrDeleteWhoseAnswerWasLostSucceeds() async throws {
        try await withFlakyStore { flaky, store in
            let created = try await store.create("/registry/x/a", object, alreadyExists: APIError(.alreadyExists, "exists"))
            let rv = try #require(created["metadata"]?["resourceVersion"]?.stringValue.flatMap { Int64($0) })
            var changed = object
            changed["data"]?["k"] = "2"
            flaky.failNext(.answerLost)
            let updated = try #require(try await store.update("/registry/x/a", changed, expected: rv), "the update was applied, not a conflict")
            let stored = try #require(try await store.get("/registry/x/a"))
            #expect(stored.object["data"]?["k"] == "2")
            #expect(updated["metadata"]?["resourceVersion"]?.stringValue == String(stored.modRevision))
            // Lost before it was sent: tried again and applied.
            changed["data"]?["k"] = "3"
            flaky.failNext(.beforeSending)
            #expect(try await store.update("/registry/x/a", changed, expected: stored.modRevision) != nil)
            #expect(try await store.get("/registry/x/a")?.object["data"]?["k"] == "3")
            // A stale expected revision is still a conflict.
            flaky.failNext(.beforeSending)
            #expect(try await store.update("/registry/x/a", object, expected: rv) == nil)

            let current = try #require(try await store.get("/registry/x/a"))
            flaky.failNext(.answerLost)
            let deleted = try await store.delete("/registry/x/a", expected: current.modRevision)
            #expect(deleted.map { $0 > current.modRevision } == true)
            #expect(try await store.get("/registry/x/a") == nil)
        }
    }

    @Test func transportFailuresThatLastAreServiceUnavailable() async throws {
        try await withFlakyStore { flaky, store in
            flaky.failNext(.beforeSending, .beforeSending, .beforeSending, .beforeSending, .beforeSending)
            let before = flaky.callCount
            do {
                _ = try await store.get("/registry/x/a")
                Issue.record("a store that keeps failing must fail the request")
            } catch {
                #expect((error as? APIError)?.code == .serviceUnavailable)
            }
            #expect(flaky.callCount - before == ObjectStore.transientRetries + 1, "bounded retries")
        }
    }
}
