import Synchronization
import EtcdAPI
import Foundation
import MVCCStore
import Testing
import TestSupport

/// SIGKILL `ballast store serve` while several clients run transactions,
/// restart it, and check that every acknowledged write is there at the
/// revision it was acknowledged with, and that revisions only go forward.
/// BALLAST_STORE_CRASH_CYCLES sets the number of cycles (default 4).
@Suite(.serialized)
struct StoreCrashTests {
    final class Acks: Sendable {
        private let writes = Mutex<[String: Int64]>([:])
        func add(_ key: String, _ rev: Int64) { writes.withLock { $0[key] = rev } }
        var snapshot: [String: Int64] { writes.withLock { $0 } }
    }

    @Test func acknowledgedTransactionsSurviveSIGKILL() async throws {
        let cycles = Int(ProcessInfo.processInfo.environment["BALLAST_STORE_CRASH_CYCLES"] ?? "") ?? 4
        let server = try await StoreServer.start()
        let acks = Acks()
        var lastRevision: Int64 = 0
        for cycle in 0..<cycles {
            let client = try EtcdClient(endpoints: [server.endpoint], timeout: .seconds(5))
            // Four writers: create-if-absent transactions on their own keys, until the server dies.
            let writers = Task {
                await withTaskGroup(of: Void.self) { group in
                    for w in 0..<4 {
                        group.addTask {
                            var i = 0
                            while !Task.isCancelled {
                                let key = "/crash/c\(cycle)/w\(w)/\(i)"
                                i += 1
                                guard let rev = try? await client.create(Array(key.utf8), value: Array("v\(i)".utf8), lease: 0) else { return }
                                acks.add(key, rev)
                            }
                        }
                    }
                }
            }
            try await Task.sleep(for: .milliseconds(300 + 150 * cycle))
            await server.stop(signal: SIGKILL)
            await writers.value
            client.close()
            try await server.start()
            let check = try EtcdClient(endpoints: [server.endpoint], timeout: .seconds(10))
            defer { check.close() }
            let revision = try await check.currentRevision()
            #expect(revision >= lastRevision, "cycle \(cycle): the revision went back from \(lastRevision) to \(revision)")
            let acked = acks.snapshot
            let maxAcked = acked.values.max() ?? 0
            #expect(revision >= maxAcked, "cycle \(cycle): revision \(revision) is behind an acknowledged write at \(maxAcked)")
            let listed = try await check.list(prefix: Array("/crash/".utf8), limit: 0, continueAfter: nil, revision: 0)
            let stored = Dictionary(uniqueKeysWithValues: listed.kvs.map { (String(decoding: $0.key, as: UTF8.self), $0.modRevision) })
            for (key, rev) in acked {
                #expect(stored[key] == rev, "cycle \(cycle): acknowledged \(key) at revision \(rev), found \(stored[key].map(String.init) ?? "nothing")")
            }
            lastRevision = revision
        }
        #expect(acks.snapshot.count > cycles * 10, "too few acknowledged writes to test anything: \(acks.snapshot.count)")
        print("store crash test: \(cycles) SIGKILL cycles, \(acks.snapshot.count) acknowledged transactions checked")
    }
}
