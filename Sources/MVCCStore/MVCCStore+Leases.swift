// The store's lease calls. Grant and revoke go through the write queue (a revoke
// deletes the lease's keys in one revision; both write or delete the lease's row in
// the group's batch); keep-alive, time-to-live and the list answer from the lessor
// at once; the lease loop revokes expired leases every `leaseCheckInterval`.

extension MVCCStore {
    public func leaseGrant(id: Int64 = 0, ttl: Int64) async throws -> (id: Int64, ttl: Int64) {
        guard case .leaseGranted(let gid, let gttl, _) = try await queue.submit(.leaseGrant(id: id, ttl: ttl)) else {
            preconditionFailure()
        }
        return (gid, gttl)
    }

    /// Revokes a lease and deletes its keys in one revision.
    public func leaseRevoke(_ id: Int64) async throws -> Int64 {
        guard case .leaseRevoked(let header) = try await queue.submit(.leaseRevoke(id)) else { preconditionFailure() }
        return header
    }

    /// Refreshes a lease; returns its TTL, or 0 when it does not exist (etcd's keep-alive answer).
    public func leaseKeepAlive(_ id: Int64) -> Int64 { lessor.keepAlive(id) }

    /// Remaining and granted TTL and the attached keys; nil when the lease does not exist.
    public func leaseTimeToLive(_ id: Int64) -> (ttl: Int64, granted: Int64, keys: [[UInt8]])? { lessor.timeToLive(id) }

    public func leases() -> [Int64] { lessor.ids() }

    /// Revokes every expired lease now (the lease loop calls this periodically).
    public func expireLeases() async {
        for id in lessor.expired() {
            _ = try? await leaseRevoke(id)
        }
    }

    func leaseLoop() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: options.leaseCheckInterval)
            if Task.isCancelled { return }
            await expireLeases()
        }
    }
}
