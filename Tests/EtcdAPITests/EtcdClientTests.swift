import EtcdAPI
import Foundation
import MVCCStore
import Testing
import TestSupport

/// The same scenario against any KeyValueStore: what the API server relies on.
func exercise(_ kv: any KeyValueStore) async throws {
    let p = "/registry/pods/ns/"
    let r1 = try await kv.create(b(p + "a"), value: b("1"), lease: 0)
    await #expect(throws: KeyValueStoreError.alreadyExists(key: b(p + "a"))) { try await kv.create(b(p + "a"), value: b("x"), lease: 0) }
    guard case .conflict(let cur) = try await kv.update(b(p + "a"), value: b("2"), expectedModRevision: r1 - 1, lease: 0) else {
        Issue.record("a stale update succeeded"); return
    }
    #expect(cur?.value == b("1") && cur?.modRevision == r1)
    guard case .succeeded(let r2) = try await kv.update(b(p + "a"), value: b("2"), expectedModRevision: r1, lease: 0) else {
        Issue.record("the update failed"); return
    }
    #expect(r2 == r1 + 1)
    for i in 0..<5 { _ = try await kv.create(b(p + "p\(i)"), value: b("{}"), lease: 0) }
    let page1 = try await kv.list(prefix: b(p), limit: 4, continueAfter: nil, revision: 0)
    #expect(page1.kvs.count == 4 && page1.more && page1.count == 6)
    let page2 = try await kv.list(prefix: b(p), limit: 4, continueAfter: page1.kvs.last!.key, revision: page1.revision)
    #expect(page2.kvs.map { s($0.key) } == [p + "p3", p + "p4"] && !page2.more)
    #expect(try await kv.count(prefix: b(p)) == 6)
    // Watch from the past: history, then live, in order, with previous values.
    let stream = try await kv.watch(prefix: b(p), fromRevision: r2)
    _ = try await kv.delete(b(p + "a"), expectedModRevision: nil)
    var seen: [Event] = []
    for try await update in stream {
        guard case .events(let e) = update else { break }
        seen.append(contentsOf: e)
        if seen.count >= 7 { break }
    }
    #expect(seen.map(\.kv.modRevision) == Array(r2...(r2 + 6)))
    #expect(seen.first?.prevKV?.value == b("1") && seen.last?.type == .delete && seen.last?.prevKV?.value == b("2"))
    // Compaction: older history is gone, a watch from before it ends with .compacted.
    let now = try await kv.currentRevision()
    try await kv.compact(now)
    await #expect(throws: MVCCError.compacted) { try await kv.list(prefix: b(p), limit: 0, continueAfter: nil, revision: now - 1) }
    let old = try await kv.watch(prefix: b(p), fromRevision: r1)
    var compacted: Int64?
    for try await update in old {
        if case .compacted(let c) = update { compacted = c; break }
    }
    #expect(compacted == now)
    let lease = try await kv.grantLease(ttl: 30)
    #expect(lease != 0)
}

func b(_ s: String) -> [UInt8] { Array(s.utf8) }
func s(_ b: [UInt8]) -> String { String(decoding: b, as: UTF8.self) }

@Suite(.serialized)
struct EtcdClientTests {
    @Test(.enabled("etcd is not installed: make test installs Debian's etcd-server") { await EtcdProcess.isInstalled() })
    func againstRealEtcd() async throws {
        let etcd = try await EtcdProcess.start()
        defer { etcd.stop() }
        // etcd fsyncs every write: beside the rest of the suite's disk load a call can take seconds.
        let client = try EtcdClient(endpoints: [etcd.endpoint], timeout: .seconds(60))
        defer { client.close() }
        try await exercise(client)
    }

    @Test func againstBallastStoreServe() async throws {
        let server = try await StoreServer.start()
        let client = try EtcdClient(endpoints: [server.endpoint])
        defer { client.close() }
        try await exercise(client)
    }

    @Test func embeddedStoreBehavesTheSame() async throws {
        let dir = FileManager.default.temporaryDirectory.path + "/ballast-embedded-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var options = MVCCOptions()
        options.engine.syncMode = .none
        let store = try MVCCStore.open(path: dir, options: options)
        try await exercise(store)
        try await store.close()
    }

    /// The server is SIGKILLed and restarted under a live watch: the client
    /// reconnects and the watch resumes with no gap and no duplicate.
    @Test func watchResumesAcrossServerRestart() async throws {
        let server = try await StoreServer.start()
        let client = try EtcdClient(endpoints: [server.endpoint])
        defer { client.close() }
        for i in 0..<5 { _ = try await client.create(b("/r/k\(i)"), value: b("v"), lease: 0) }  // revs 2...6
        let stream = try await client.watch(prefix: b("/r/"), fromRevision: 2)
        var iterator = stream.makeAsyncIterator()
        var revisions: [Int64] = []
        while revisions.count < 5, case .events(let e)? = try await iterator.next() { revisions += e.map(\.kv.modRevision) }
        await server.stop(signal: SIGKILL)
        try await server.start()
        for i in 5..<10 {
            // The client reconnects on its own; retry while it does.
            for attempt in 0..<50 {
                do { _ = try await client.create(b("/r/k\(i)"), value: b("v"), lease: 0); break } catch {
                    if attempt == 49 { throw error }
                    try await Task.sleep(for: .milliseconds(100))
                }
            }
        }
        while revisions.count < 10, case .events(let e)? = try await iterator.next() { revisions += e.map(\.kv.modRevision) }
        #expect(revisions == Array(2...11))
    }
}
