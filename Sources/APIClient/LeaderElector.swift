// Leader election on a coordination.k8s.io/v1 Lease, with client-go's semantics
// (tools/leaderelection), so that two instances of a component can run and only one acts.
//
// The Lease's spec is the election record: holderIdentity, leaseDurationSeconds, acquireTime,
// renewTime, leaseTransitions. A candidate:
//   - creates the Lease when there is none;
//   - otherwise takes it only when the holder is itself, empty, or the record has not CHANGED
//     for leaseDuration as measured on the candidate's own clock from the moment it last saw it
//     change (never by comparing the remote renewTime with the local time: clocks differ);
//   - writes with the resourceVersion it read, so of two candidates only one wins (409).
// The leader renews every retryPeriod; when it cannot renew for renewDeadline it stops leading
// (its work is cancelled) before anyone else can take the lease (renewDeadline < leaseDuration).
// On a clean stop it releases the lease (empty holder) so a successor need not wait.
import ClusterAPI
import Foundation
import Logging
import Synchronization

/// Timings and identity of a leader election (client-go's defaults).
public struct LeaderElectionConfig: Sendable {
    public var namespace: String
    public var name: String
    /// This candidate, unique among them (hostname plus a random suffix by default).
    public var identity: String
    /// How long a non-leader waits, after the last change it saw, before taking the lease.
    public var leaseDuration: Duration = .seconds(15)
    /// How long the leader keeps trying to renew before it gives up leading.
    public var renewDeadline: Duration = .seconds(10)
    /// How often candidates try to acquire and the leader renews.
    public var retryPeriod: Duration = .seconds(2)
    /// Release the lease when the work ends cleanly.
    public var releaseOnCancel = true

    public init(namespace: String = "kube-system", name: String,
                identity: String = "\(ProcessInfo.processInfo.hostName)_\(UUID().uuidString.lowercased())") {
        self.namespace = namespace
        self.name = name
        self.identity = identity
    }
}

/// Runs work only while holding the lease.
public final class LeaderElector: Sendable {
    public let config: LeaderElectionConfig
    private let client: KubeClient
    private let logger: Logger
    private let state = Mutex(Observation())

    private struct Observation {
        var record: LeaseSpec?
        var resourceVersion: String?
        var observedAt: ContinuousClock.Instant = .now
        var leading = false
    }

    public init(client: KubeClient, config: LeaderElectionConfig, logger: Logger) {
        precondition(config.renewDeadline < config.leaseDuration, "renewDeadline must be shorter than leaseDuration")
        precondition(config.retryPeriod < config.renewDeadline, "retryPeriod must be shorter than renewDeadline")
        self.client = client
        self.config = config
        self.logger = logger
    }

    /// Whether this candidate holds the lease now.
    public var isLeader: Bool { state.withLock { $0.leading } }

    /// The holder last observed ("" when none).
    public var observedHolder: String { state.withLock { $0.record?.holderIdentity ?? "" } }

    /// Acquires the lease (waiting as long as it takes), runs `work` while renewing it, and
    /// returns when the task is cancelled or the lease is lost; `work` is cancelled then.
    /// Returns true when it returned because leadership was lost.
    @discardableResult
    public func run(_ work: @escaping @Sendable () async -> Void) async -> Bool {
        guard await acquire() else { return false }
        logger.info("became leader", metadata: ["lease": "\(config.namespace)/\(config.name)", "identity": "\(config.identity)"])
        let lost = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await work()
                return false
            }
            group.addTask { await self.renewUntilLost() }
            let first = await group.next() ?? false
            group.cancelAll()
            await group.waitForAll()
            return first
        }
        state.withLock { $0.leading = false }
        if lost {
            logger.warning("leadership lost", metadata: ["lease": "\(config.namespace)/\(config.name)", "identity": "\(config.identity)"])
        } else if config.releaseOnCancel {
            // Outside this (cancelled) task: a cancelled task's requests fail at once, and the
            // lease would stay held until it expires, holding up the successor.
            await Task { await self.release() }.value
        }
        return lost
    }

    /// Tries every retryPeriod until it holds the lease; false when cancelled first.
    func acquire() async -> Bool {
        while !Task.isCancelled {
            if await tryAcquireOrRenew() { return true }
            try? await Task.sleep(for: jittered(config.retryPeriod))
        }
        return false
    }

    /// Renews every retryPeriod; returns true once a renewal has failed for renewDeadline,
    /// false when cancelled.
    private func renewUntilLost() async -> Bool {
        var lastRenewal = ContinuousClock.now
        while !Task.isCancelled {
            try? await Task.sleep(for: config.retryPeriod)
            if Task.isCancelled { return false }
            if await tryAcquireOrRenew() {
                lastRenewal = .now
            } else if ContinuousClock.now - lastRenewal >= config.renewDeadline || !isHolderSelfOrFree() {
                return true
            }
        }
        return false
    }

    private func isHolderSelfOrFree() -> Bool {
        state.withLock { ($0.record?.holderIdentity ?? "").isEmpty || $0.record?.holderIdentity == config.identity }
    }

    /// One attempt (client-go's tryAcquireOrRenew). True when this candidate holds the lease after it.
    func tryAcquireOrRenew() async -> Bool {
        let now = MicroTime.now()
        var record = LeaseSpec(holderIdentity: config.identity, leaseDurationSeconds: Int32(config.leaseDuration.components.seconds),
                               acquireTime: now, renewTime: now, leaseTransitions: 0)
        let existing: Lease
        do {
            existing = try await client.get(Lease.self, name: config.name, namespace: config.namespace)
        } catch let error as APIError where error.isNotFound {
            do {
                let created = try await client.create(Lease(metadata: ObjectMeta(name: config.name, namespace: config.namespace), spec: record))
                observe(created, leading: true)
                return true
            } catch {
                logger.debug("cannot create the lease", metadata: ["error": "\(error)"])
                return false
            }
        } catch {
            logger.debug("cannot read the lease", metadata: ["error": "\(error)"])
            return false
        }
        let (heldByOther, observedAt) = state.withLock { observation -> (Bool, ContinuousClock.Instant) in
            if observation.record != existing.spec || observation.resourceVersion == nil {
                observation.record = existing.spec
                observation.resourceVersion = existing.metadata.resourceVersion
                observation.observedAt = .now
            }
            let holder = existing.spec.holderIdentity ?? ""
            return (!holder.isEmpty && holder != config.identity, observation.observedAt)
        }
        let duration = Duration.seconds(Int64(existing.spec.leaseDurationSeconds ?? Int32(config.leaseDuration.components.seconds)))
        if heldByOther && ContinuousClock.now < observedAt + duration {
            state.withLock { $0.leading = false }
            return false
        }
        if existing.spec.holderIdentity == config.identity {
            record.acquireTime = existing.spec.acquireTime
            record.leaseTransitions = existing.spec.leaseTransitions
        } else {
            record.leaseTransitions = (existing.spec.leaseTransitions ?? 0) + 1
        }
        var updated = existing
        updated.spec = record
        do {
            let written = try await client.update(updated)
            observe(written, leading: true)
            return true
        } catch {
            logger.debug("cannot update the lease", metadata: ["error": "\(error)"])
            return false
        }
    }

    /// Gives the lease up: empty holder, so the next candidate takes it at once.
    func release() async {
        guard let current = try? await client.get(Lease.self, name: config.name, namespace: config.namespace),
              current.spec.holderIdentity == config.identity else { return }
        var released = current
        released.spec.holderIdentity = nil
        released.spec.leaseDurationSeconds = 1
        released.spec.renewTime = MicroTime.now()
        if let written = try? await client.update(released) {
            observe(written, leading: false)
            logger.info("released the lease", metadata: ["lease": "\(config.namespace)/\(config.name)"])
        }
    }

    private func observe(_ lease: Lease, leading: Bool) {
        state.withLock {
            $0.record = lease.spec
            $0.resourceVersion = lease.metadata.resourceVersion
            $0.observedAt = .now
            $0.leading = leading
        }
    }

    /// client-go waits retryPeriod * (1 + up to 1.2 at random) between attempts.
    private func jittered(_ period: Duration) -> Duration {
        period + period * Double.random(in: 0..<1.2)
    }
}
