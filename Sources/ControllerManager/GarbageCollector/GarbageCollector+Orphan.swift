// attemptToOrphan (upstream's attemptToOrphanWorker, orphanDependents): an owner deleted with
// the `orphan` finalizer. Its reference is removed from every dependent, then the finalizer,
// so the owner goes and the dependents stay.
import APIClient
import ClusterAPI
import Logging

extension GarbageCollector {
    /// The worker of the attemptToOrphan queue.
    func attemptToOrphanItem(_ uid: String) async -> SyncResult {
        guard let owner = graph.node(uid) else { return .done }
        let item = owner.identity
        do {
            let resource = try resource(item.apiVersion, item.kind)
            // Only while it still asks for it: a later delete may have changed the policy.
            guard let latest = try await live(item, resource), latest.metadata.deletionTimestamp != nil,
                  (latest.metadata.finalizers ?? []).contains(Self.orphan) else { return .done }
            let dependents = graph.dependents(of: uid)
            try await forEach(dependents, atMost: 8) { dependent in
                let dependentResource = try self.resource(dependent.identity.apiVersion, dependent.identity.kind)
                try await self.removeOwnerReferences([uid], from: dependent.identity, dependentResource)
            }
            try await removeFinalizer(Self.orphan, from: item, resource)
            logger.info("garbage collector: dependents orphaned; orphan finalizer removed", metadata: [
                "object": "\(item.kind) \(item.key)", "dependents": "\(dependents.count)"])
            return .done
        } catch {
            if Task.isCancelled { return .done }
            logger.warning("garbage collector: cannot orphan the dependents; retrying", metadata: [
                "object": "\(item.kind) \(item.key)", "error": "\(error)"])
            return .retry
        }
    }

    /// Runs `body` for every element, `limit` at a time; the first error is thrown once all
    /// that started have finished.
    private func forEach<T: Sendable>(_ elements: [T], atMost limit: Int,
                                      _ body: @escaping @Sendable (T) async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            var running = 0
            for element in elements {
                if running == limit {
                    try await group.next()
                    running -= 1
                }
                group.addTask { try await body(element) }
                running += 1
            }
            try await group.waitForAll()
        }
    }
}
