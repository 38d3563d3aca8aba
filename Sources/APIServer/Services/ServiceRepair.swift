import ClusterAPI
import Logging
import Synchronization

/// kube-apiserver's repair controllers for the Service IP and NodePort bitmaps
/// (`pkg/registry/core/service/ipallocator/controller/repair.go`, `portallocator/controller`):
/// each run rebuilds a bitmap from the Services stored and compare-and-swaps it in. An item
/// held by a Service but missing from the bitmap is marked again; an item in the bitmap that
/// no Service holds is a leak, freed only once it has been seen leaked in `leakRuns`
/// consecutive runs (a create in flight holds its item before its Service is stored).
final class ServiceRepair: Sendable {
    let allocator: ServiceAllocator
    let logger: Logger
    let leakRuns: Int
    /// Offsets seen leaked, per bitmap key, with the number of runs they have been.
    private let leaks = Mutex<[String: [Int: Int]]>([:])

    init(allocator: ServiceAllocator, logger: Logger, leakRuns: Int = 3) {
        self.allocator = allocator
        self.logger = logger
        self.leakRuns = max(1, leakRuns)
    }

    /// What one run found, for logs and tests.
    struct Report: Sendable, Equatable {
        var marked = 0
        var freed = 0
        var leaksPending = 0
    }

    /// Repairs both bitmaps once.
    @discardableResult
    func runOnce() async throws(APIError) -> Report {
        var report = Report()
        let network = allocator.network
        for (range, offsets) in [
            (allocator.ips, { (items: ServiceAllocator.Items) in items.ips.compactMap(network.ipOffset) }),
            (allocator.ports, { (items: ServiceAllocator.Items) in
                items.ports.compactMap { network.nodePortRange.contains($0) ? $0 - network.nodePortRange.lowerBound : nil } }),
        ] {
            let one = try await repair(range, offsets: offsets)
            report.marked += one.marked
            report.freed += one.freed
            report.leaksPending += one.leaksPending
        }
        return report
    }

    private func repair(_ range: RangeAllocation, offsets: (ServiceAllocator.Items) -> [Int]) async throws(APIError) -> Report {
        let store = allocator.store
        for _ in 0..<8 {
            // The bitmap first, the Services after: an item allocated in between is either in
            // a Service listed or in flight, and a leak in flight is kept for `leakRuns` runs.
            let snapshot = try await range.read(store)
            let services = try await store.list(prefix: "/registry/services/", limit: 0, continueAfter: nil, revision: 0) { _ in true }.items
            var fresh = RangeAllocation.Snapshot(bits: range.emptyBits, modRevision: snapshot.modRevision, rangeChanged: false)
            var report = Report()
            for service in services {
                let items = allocator.held(by: service)
                for offset in offsets(items) {
                    if fresh.isSet(offset) {
                        let name = "\(service["metadata"]?["namespace"]?.stringValue ?? "")/\(service["metadata"]?["name"]?.stringValue ?? "")"
                        logger.warning("an item of \(range.key) is held by two Services; delete or change one of them",
                                       metadata: ["offset": "\(offset)", "service": "\(name)"])
                    }
                    fresh.set(offset)
                    if snapshot.rangeChanged || !snapshot.isSet(offset) { report.marked += 1 }
                }
            }
            var seen = leaks.withLock { $0[range.key] ?? [:] }
            var stillLeaked: [Int: Int] = [:]
            if !snapshot.rangeChanged {
                for offset in 0..<range.size where snapshot.isSet(offset) && !fresh.isSet(offset) {
                    let runs = (seen[offset] ?? 0) + 1
                    if runs >= leakRuns {
                        report.freed += 1
                    } else {
                        stillLeaked[offset] = runs
                        fresh.set(offset)
                        report.leaksPending += 1
                    }
                }
            }
            seen = stillLeaked
            if fresh.bits == snapshot.bits && snapshot.modRevision != 0 && !snapshot.rangeChanged {
                leaks.withLock { $0[range.key] = seen }
                return report
            }
            do {
                if try await range.write(fresh, store) {
                    leaks.withLock { $0[range.key] = seen }
                    if report.marked > 0 || report.freed > 0 {
                        logger.info("repaired \(range.key)", metadata: ["marked": "\(report.marked)", "freed": "\(report.freed)"])
                    }
                    return report
                }
            }
            // Someone allocated meanwhile: read again.
        }
        throw APIError(.conflict, "repair of \(range.key) kept conflicting with allocations; it runs again later")
    }
}
