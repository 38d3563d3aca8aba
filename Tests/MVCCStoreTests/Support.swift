import Synchronization
import Foundation
import LSMTree
@testable import MVCCStore

final class TempDir {
    let path: String
    init(_ name: String = "mvcc") {
        path = FileManager.default.temporaryDirectory.path + "/ballast-test-\(name)-\(UUID().uuidString.prefix(8))"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// A clock the test moves by hand, for lease expiry.
final class TestClock: Sendable {
    private let now = Mutex<Double>(1000)
    func advance(_ seconds: Double) { now.withLock { $0 += seconds } }
    var read: @Sendable () -> Double { { [self] in now.withLock { $0 } } }
}

func b(_ s: String) -> [UInt8] { Array(s.utf8) }
func s(_ b: [UInt8]) -> String { String(decoding: b, as: UTF8.self) }

func testOptions(clock: TestClock? = nil, sync: SyncMode = .none) -> MVCCOptions {
    var o = MVCCOptions()
    o.engine.syncMode = sync
    o.engine.writeBufferSize = 64 << 10
    o.engine.blockSize = 1024
    o.engine.levelBaseBytes = 256 << 10
    o.engine.targetFileSize = 64 << 10
    o.minLeaseTTL = 1
    o.leaseCheckInterval = .seconds(3600)  // tests expire leases explicitly
    if let clock { o.clock = clock.read }
    return o
}

/// Opens a store in a fresh directory for the duration of `body`.
func withStore<T>(_ options: MVCCOptions = testOptions(), _ body: (MVCCStore, TempDir) async throws -> T) async throws -> T {
    let dir = TempDir()
    let store = try MVCCStore.open(path: dir.path, options: options)
    do {
        let r = try await body(store, dir)
        try await store.close()
        return r
    } catch {
        try? await store.close()
        throw error
    }
}

extension MVCCStore {
    @discardableResult
    func put(_ k: String, _ v: String, lease: Int64 = 0) async throws -> Int64 {
        try await put(PutRequest(key: b(k), value: b(v), lease: lease)).revision
    }

    func get(_ k: String, rev: Int64 = 0) throws -> KeyValue? {
        try range(RangeRequest(key: b(k), revision: rev)).kvs.first
    }

    func keys(prefix: String, rev: Int64 = 0) throws -> [String] {
        try range(RangeRequest(key: b(prefix), rangeEnd: prefixRangeEnd(b(prefix)), revision: rev)).kvs.map { s($0.key) }
    }

    @discardableResult
    func del(_ k: String, end: String? = nil) async throws -> DeleteRangeResponse {
        try await deleteRange(DeleteRangeRequest(key: b(k), rangeEnd: end.map(b) ?? [], prevKV: true))
    }
}

/// Collects updates from a watch until `count` events arrived (or a timeout).
func collect(_ w: Watch, events count: Int, timeout: Double = 10) async throws -> [Event] {
    var out: [Event] = []
    let deadline = Date().addingTimeInterval(timeout)
    while out.count < count && Date() < deadline {
        let next = try await withThrowingTaskGroup(of: WatchUpdate?.self) { g in
            g.addTask { try await w.next() }
            g.addTask { try await Task.sleep(for: .seconds(max(0.01, deadline.timeIntervalSinceNow))); return nil }
            let first = try await g.next()!
            g.cancelAll()
            return first
        }
        guard case .events(let e)? = next else { break }
        out.append(contentsOf: e)
    }
    return out
}
