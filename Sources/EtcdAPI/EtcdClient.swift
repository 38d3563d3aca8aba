import Foundation
import Synchronization
import GRPCCore
import GRPCNIOTransportHTTP2
import MVCCStore

/// `KeyValueStore` over the etcd v3 API of any etcd cluster (or `ballast
/// store serve`): the API server's way to scale past one machine. The gRPC
/// client reconnects by itself and balances calls round robin over the
/// members whose connections are ready (a dead member is skipped);
/// watches resume after a broken stream from the revision after the last one
/// delivered, so the consumer sees no gap and no duplicate.
public final class EtcdClient: EtcdShapedStore, Sendable {
    private let grpc: GRPCClient<HTTP2ClientTransport.Posix>
    private let connections: Task<Void, any Error>
    private let kv: Etcdserverpb_KV.Client<HTTP2ClientTransport.Posix>
    private let watchService: Etcdserverpb_Watch.Client<HTTP2ClientTransport.Posix>
    private let lease: Etcdserverpb_Lease.Client<HTTP2ClientTransport.Posix>
    private let maintenance: Etcdserverpb_Maintenance.Client<HTTP2ClientTransport.Posix>
    private let callOptions: CallOptions
    private let endpoints: [String]

    /// Connects to `endpoints` ("http://127.0.0.1:2379", …). Calls time out after `timeout`.
    public init(endpoints: [String], timeout: Duration = .seconds(10)) throws {
        let parsed = try endpoints.map { e -> (String, Int) in
            guard let hostPort = parseClientURL(e) else {
                throw EtcdClientError("etcd endpoint \(e): expected http://HOST:PORT (TLS endpoints are not supported yet)")
            }
            return hostPort
        }
        guard !parsed.isEmpty else { throw EtcdClientError("no etcd endpoints given: pass at least one http://HOST:PORT") }
        let target: any ResolvableTarget
        if parsed.allSatisfy({ $0.0.split(separator: ".").count == 4 && $0.0.allSatisfy { $0.isNumber || $0 == "." } }) {
            target = ResolvableTargets.IPv4(addresses: parsed.map { SocketAddress.IPv4(host: $0.0, port: $0.1) })
        } else {
            target = ResolvableTargets.DNS(host: parsed[0].0, port: parsed[0].1)
        }
        var config = HTTP2ClientTransport.Posix.Config.defaults
        config.connection.maxIdleTime = nil
        // Round robin over the members, as etcd's clientv3 balances: a call goes to a member whose
        // connection is ready, so a dead member (the first one included) is left out until it
        // is back. (Pick-first kept calls waiting for the first address once it had connected.)
        let transport = try HTTP2ClientTransport.Posix(target: target, transportSecurity: .plaintext, config: config,
                                                       serviceConfig: ServiceConfig(loadBalancingConfig: [.roundRobin]))
        grpc = GRPCClient(transport: transport)
        let client = grpc
        connections = Task { try await client.runConnections() }
        kv = Etcdserverpb_KV.Client(wrapping: grpc)
        watchService = Etcdserverpb_Watch.Client(wrapping: grpc)
        lease = Etcdserverpb_Lease.Client(wrapping: grpc)
        maintenance = Etcdserverpb_Maintenance.Client(wrapping: grpc)
        self.endpoints = endpoints
        var options = CallOptions.defaults
        options.timeout = timeout
        // As etcd's clientv3: a call waits (up to its timeout) for a connection instead of failing at once.
        options.waitForReady = true
        // As kube-apiserver's etcd client (MaxCallRecvMsgSize math.MaxInt32): a list larger than
        // grpc-swift's 4 MiB default must arrive. (grpc-swift applies the request limit to the
        // decoder of responses too.)
        options.maxRequestMessageBytes = Int(Int32.max)
        options.maxResponseMessageBytes = Int(Int32.max)
        callOptions = options
    }

    /// Closes the connections once running calls finish.
    public func close() {
        grpc.beginGracefulShutdown()
    }

    /// Runs a call, turning etcd's errors back into the store's (matched on
    /// code and message, as etcd's own client does).
    private func call<T>(_ body: () async throws -> T) async throws -> T {
        var attempt = 0
        while true {
            do {
                return try await body()
            } catch let e as RPCError where EtcdClient.notSent(e) && attempt < 50 {
                // The connection was being re-established: nothing was sent, so retrying is safe.
                attempt += 1
                try await Task.sleep(for: .milliseconds(min(200, 5 << min(attempt, 5))))
            } catch let e as RPCError {
                throw EtcdClient.storeError(e)
            }
        }
    }

    /// Errors raised before a request left the client (no connection ready).
    /// grpc-swift's client closes a connection after many RST_STREAM frames
    /// (its denial-of-service guard: 200 in 10 s), and etcd's Go server sends
    /// one after each unary call it answers before the client half-closes;
    /// the connection is then re-established, and calls made meanwhile fail
    /// with these. See docs/store.md.
    static func notSent(_ e: RPCError) -> Bool {
        e.code == .unavailable && e.message.contains("isn't ready")
    }

    static func storeError(_ e: RPCError) -> any Error {
        let known: [MVCCError] = [.compacted, .futureRevision, .emptyKey, .keyNotFound, .duplicateKey, .tooManyOps,
                                  .requestTooLarge, .noSpace, .leaseNotFound, .leaseExists, .leaseTTLTooLarge]
        if let m = known.first(where: { $0.message == e.message }) { return m }
        return e
    }

    // MARK: etcd-shaped calls

    public func range(_ r: RangeRequest) async throws -> RangeResponse {
        try await call { try await kv.range(Etcdserverpb_RangeRequest(r), options: callOptions).model }
    }

    public func put(_ p: PutRequest) async throws -> PutResponse {
        try await call {
            let r = try await kv.put(Etcdserverpb_PutRequest(p), options: callOptions)
            return PutResponse(revision: r.header.revision, prevKV: r.hasPrevKv ? r.prevKv.model : nil)
        }
    }

    public func txn(_ t: TxnRequest) async throws -> TxnResponse {
        try await call { try await kv.txn(Etcdserverpb_TxnRequest(t), options: callOptions).model }
    }

    // MARK: KeyValueStore

    /// Asks the cluster for its status, with a 2 s timeout: unhealthy when it
    /// does not answer (the reason names the endpoints and the error) or
    /// reports errors (alarms such as NOSPACE; a Ballast store's storage failure).
    public func health() async -> StoreHealth {
        var options = callOptions
        options.timeout = .seconds(2)
        do {
            let status = try await maintenance.status(Etcdserverpb_StatusRequest(), options: options)
            if !status.errors.isEmpty {
                return .unhealthy(reason: "etcd at \(endpoints.joined(separator: ",")) reports: \(status.errors.joined(separator: "; "))")
            }
            return .healthy
        } catch {
            return .unhealthy(reason: "etcd at \(endpoints.joined(separator: ",")) does not answer: \(error)")
        }
    }

    public func compact(_ revision: Int64) async throws {
        var req = Etcdserverpb_CompactionRequest()
        req.revision = revision
        _ = try await call { try await kv.compact(req, options: callOptions) }
    }

    public func currentRevision() async throws -> Int64 {
        try await range(RangeRequest(key: [0])).revision
    }

    public func grantLease(ttl: Int64) async throws -> Int64 {
        var req = Etcdserverpb_LeaseGrantRequest()
        req.ttl = ttl
        return try await call { try await lease.leaseGrant(req, options: callOptions).id }
    }

    /// Watches `prefix` from `fromRevision` (0: now). When the stream breaks,
    /// the watch is re-created from the revision after the last delivered one.
    public func watch(prefix: [UInt8], fromRevision: Int64) async throws -> AsyncThrowingStream<WatchUpdate, any Error> {
        var start = fromRevision
        if start <= 0 {
            let now = try await currentRevision()  // from a server: Int64.max must not trap
            start = now == .max ? now : now + 1
        }
        let first = start
        let service = watchService
        // The updates wait in a mailbox of a few; while it is full the stream is not read, so HTTP/2
        // flow control holds the server back and its watcher catches up from history later: a
        // consumer that falls behind costs memory on neither side.
        let mailbox = WatchMailbox()
        let task = Task {
            final class Progress: @unchecked Sendable {  // touched by one watch call at a time
                var next: Int64 = 0
                var failures = 0
            }
            let progress = Progress()
            progress.next = first
            while !Task.isCancelled {
                do {
                    let finished = try await EtcdClient.watchOnce(service, prefix: prefix, from: progress.next) { update, lastRevision in
                        try await mailbox.put(update)
                        if let lastRevision { progress.next = lastRevision == .max ? lastRevision : lastRevision + 1 }
                        progress.failures = 0
                    }
                    if finished { break }
                } catch is CancellationError {
                    break
                } catch {
                    // A broken stream: resume after a short backoff (capped at 2 s).
                    progress.failures += 1
                    try? await Task.sleep(for: .milliseconds(min(2000, 50 << min(progress.failures, 6))))
                }
            }
            mailbox.finish()
        }
        let owner = WatchMailbox.Owner(task: task)
        return AsyncThrowingStream(unfolding: {
            withExtendedLifetime(owner) {}  // the stream owns the task: dropping it cancels the watch
            return await mailbox.take(cancelling: task)
        })
    }

    /// One Watch stream; returns true when the watch ended for good (compacted or canceled).
    private static func watchOnce(
        _ service: Etcdserverpb_Watch.Client<HTTP2ClientTransport.Posix>, prefix: [UInt8], from: Int64,
        deliver: @escaping @Sendable (WatchUpdate, Int64?) async throws -> Void
    ) async throws -> Bool {
        var create = Etcdserverpb_WatchCreateRequest()
        create.key = Data(prefix.isEmpty ? [0] : prefix)
        create.rangeEnd = Data(prefix.isEmpty ? [0] : prefixRangeEnd(prefix))
        create.startRevision = from
        create.prevKv = true
        var request = Etcdserverpb_WatchRequest()
        request.createRequest = create
        let req = request
        return try await service.watch(metadata: ["hasleader": "true"], requestProducer: { writer in
            try await writer.write(req)
            // Keep the request stream open for the life of the watch.
            while !Task.isCancelled { try await Task.sleep(for: .seconds(3600)) }
        }, onResponse: { response in
            for try await message in response.messages {
                if message.canceled {
                    if message.compactRevision > 0 { try await deliver(.compacted(message.compactRevision), nil) }
                    return true
                }
                guard !message.events.isEmpty else { continue }
                let events = message.events.map(\.model)
                try await deliver(.events(events), events.last?.kv.modRevision)
            }
            throw EtcdClientError("the watch stream ended")
        })
    }
}

/// A watch's updates between the task reading its gRPC stream and the consumer: at most
/// `capacity` wait; `put` suspends while it is full.
final class WatchMailbox: @unchecked Sendable {
    static let capacity = 16
    private struct State {
        var updates: [WatchUpdate] = []
        var finished = false
        var taker: CheckedContinuation<WatchUpdate?, Never>?
        var putter: CheckedContinuation<Void, any Error>?
    }
    private let lock = Mutex(State())

    /// Cancels the watch's task when the stream that owns it goes.
    final class Owner: Sendable {
        let task: Task<Void, Never>
        init(task: Task<Void, Never>) { self.task = task }
        deinit { task.cancel() }
    }

    func put(_ update: WatchUpdate) async throws {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                let (wake, proceed): (CheckedContinuation<WatchUpdate?, Never>?, Bool) = lock.withLock { state in
                    if state.finished { return (nil, true) }
                    if let t = state.taker {
                        state.taker = nil
                        return (t, true)
                    }
                    state.updates.append(update)
                    if state.updates.count < Self.capacity { return (nil, true) }
                    if Task.isCancelled { return (nil, true) }
                    state.putter = c
                    return (nil, false)
                }
                if let wake { wake.resume(returning: update) }
                if proceed {
                    if Task.isCancelled { c.resume(throwing: CancellationError()) } else { c.resume() }
                }
            }
        } onCancel: {
            let p: CheckedContinuation<Void, any Error>? = lock.withLock { state in
                defer { state.putter = nil }
                return state.putter
            }
            p?.resume(throwing: CancellationError())
        }
    }

    /// The next update; nil once the watch is over or the consumer's task is cancelled (which ends the watch).
    func take(cancelling task: Task<Void, Never>) async -> WatchUpdate? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<WatchUpdate?, Never>) in
                let (now, wakePutter): (WatchUpdate??, CheckedContinuation<Void, any Error>?) = lock.withLock { state in
                    if !state.updates.isEmpty {
                        let u = state.updates.removeFirst()
                        defer { state.putter = nil }
                        return (.some(u), state.putter)
                    }
                    if state.finished || Task.isCancelled { return (.some(nil), nil) }
                    state.taker = c
                    return (nil, nil)
                }
                wakePutter?.resume()
                if let now { c.resume(returning: now) }
            }
        } onCancel: {
            task.cancel()
            let t: CheckedContinuation<WatchUpdate?, Never>? = lock.withLock { state in
                state.finished = true
                defer { state.taker = nil }
                return state.taker
            }
            t?.resume(returning: nil)
        }
    }

    func finish() {
        let (t, p): (CheckedContinuation<WatchUpdate?, Never>?, CheckedContinuation<Void, any Error>?) = lock.withLock { state in
            state.finished = true
            defer { state.taker = nil; state.putter = nil }
            return (state.taker, state.putter)
        }
        t?.resume(returning: nil)
        p?.resume(throwing: CancellationError())
    }
}

public struct EtcdClientError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ d: String) { description = d }
}

/// "http://host:port[/…]" → (host, port): the URL form of etcd's client flags
/// and endpoints (only the first of a comma-separated list).
public func parseClientURL(_ s: String) -> (host: String, port: Int)? {
    let first = s.split(separator: ",").first.map(String.init) ?? s
    guard first.hasPrefix("http://") else { return nil }
    let rest = first.dropFirst("http://".count).split(separator: "/").first.map(String.init) ?? ""
    guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]), (0...65535).contains(port) else {
        return nil
    }
    return (String(rest[..<colon]), port)
}
