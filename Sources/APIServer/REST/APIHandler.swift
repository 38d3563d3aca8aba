import ClusterAPI
import Foundation
import HTTPKit
import Logging
import NIOHTTP1
import Synchronization
import Units

/// The REST front door: authenticates, authorizes, routes and answers every request, and
/// maps each `APIError` to a metav1 Status response (the only place that happens).
public final class APIHandler: Sendable {
    /// The built-in resources plus those of the CustomResourceDefinitions, replaced as they change.
    let registryBox: RegistryBox
    var registry: ResourceRegistry { registryBox.current }
    let store: ObjectStore
    let serverAddress: String
    var discovery: Discovery { Discovery(registry: registry, serverAddress: serverAddress) }
    /// Follows the CustomResourceDefinitions (started with the watch cache).
    let registrar: DefinitionRegistrar
    let registrarTask = Mutex<Task<Void, Never>?>(nil)
    let authenticator: TokenAuthenticator
    let authorizer: Authorizer
    let metrics: APIMetrics
    let logger: Logger
    let leases: EventLeases
    /// Longest a non-watch request may run.
    let requestTimeout: Duration
    /// Admission plugins turned off (kube-apiserver's `--disable-admission-plugins`).
    let disabledAdmissionPlugins: Set<String>
    /// Default watch duration range, seconds (Kubernetes picks 30–60 minutes at random).
    let watchTimeoutRange: ClosedRange<Int>
    /// Ends every open watch at shutdown.
    let watchHub = WatchShutdown()
    /// Write the watch responses of each event loop (one per loop).
    let watchFlushers = WatchFlushers(interval: APIHandler.watchWriteInterval)
    /// The deadline of every request but watches and followed logs (`timeout=`, else `requestTimeout`).
    let deadlines = RequestDeadlines()
    /// `--max-requests-inflight`, `--max-mutating-requests-inflight`, shared among priority levels.
    let inflight: InflightLimiter
    /// Every object in memory, kept current by one store watch: serves watches and lists.
    let watchCache: WatchCache
    /// How often a watch that allows bookmarks gets one.
    let bookmarkInterval: Duration
    /// How far one watch's client may fall behind before the watch is closed.
    let watchBuffer: WatchBufferLimits
    /// `/healthz`, `/livez`, `/readyz`.
    let health: HealthChecks
    /// How `pods/log` and `pods/exec` reach kubelets.
    public let kubelets = KubeletProxy()
    /// ClusterIP and NodePort allocation for Services (`--service-cluster-ip-range`,
    /// `--service-node-port-range`).
    let services: ServiceAllocator

    public init(registry: ResourceRegistry = .standard, store: ObjectStore, serverAddress: String,
                authenticator: TokenAuthenticator, authorizer: Authorizer = Authorizer(), metrics: APIMetrics = APIMetrics(),
                logger: Logger, requestTimeout: Duration = .seconds(60), watchTimeoutRange: ClosedRange<Int> = 1800...3600,
                watchBuffer: WatchBufferLimits = WatchBufferLimits(), maxRequestsInflight: Int = 400,
                maxMutatingRequestsInflight: Int = 200, inflightQueue: InflightQueueLimits = InflightQueueLimits(),
                disabledAdmissionPlugins: Set<String> = [], watchCache cacheOptions: WatchCacheOptions = WatchCacheOptions(),
                serviceNetwork: ServiceNetwork = .standard) {
        self.registryBox = RegistryBox(registry)
        self.services = ServiceAllocator(network: serviceNetwork, store: store)
        self.store = store
        self.serverAddress = serverAddress
        self.authenticator = authenticator
        self.authorizer = authorizer
        self.metrics = metrics
        self.logger = logger
        self.leases = EventLeases(store: store)
        self.requestTimeout = requestTimeout
        self.disabledAdmissionPlugins = disabledAdmissionPlugins
        self.watchTimeoutRange = watchTimeoutRange
        self.watchBuffer = watchBuffer
        self.watchCache = WatchCache(store: store, logger: logger, options: cacheOptions, registry: registry)
        self.registrar = DefinitionRegistrar(base: registry, box: registryBox, cache: watchCache, store: store, logger: logger)
        self.bookmarkInterval = cacheOptions.bookmarkInterval
        self.inflight = InflightLimiter(readOnly: maxRequestsInflight, mutating: maxMutatingRequestsInflight, queue: inflightQueue)
        let hub = watchHub
        self.health = HealthChecks(store: store, shuttingDown: { hub.isStopped })
    }

    deinit {
        deadlines.stop()
        watchCache.stop()
        registrarTask.withLock { $0?.cancel() }
    }

    /// Ends the open watches (their clients see the stream close and re-watch elsewhere) and
    /// the watch cache's store watch.
    public func stopWatches() {
        watchHub.shutdown()
        watchCache.stop()
        registrarTask.withLock { $0?.cancel() }
    }

    /// Fills the watch cache from the store, waiting at most `timeout` for it.
    public func startWatchCache(timeout: Duration = .seconds(30)) async throws {
        try await watchCache.awaitReady(timeout: timeout)
        let registrar = self.registrar
        registrarTask.withLock { task in
            if task == nil { task = Task { await registrar.run() } }
        }
    }

    /// Paths that answer without credentials, as Kubernetes' `system:public-info-viewer` allows.
    static let anonymousPaths: Set<String> = ["/healthz", "/livez", "/readyz", "/version", "/version/"]

    /// Refuses, from its head alone, a request whose credentials are missing or unknown, so
    /// that its body is never read (the HTTP server's head check). nil lets it through.
    public func checkHead(_ request: HTTPRequest) -> HTTPResponse? {
        do {
            _ = try authenticate(request)
            return nil
        } catch {
            metrics.record(verb: request.method.rawValue, resource: APIMetrics.unauthenticatedResource, code: 401, seconds: 0)
            return Self.statusResponse(error)
        }
    }

    /// Answers one request.
    public func handle(_ request: HTTPRequest) async -> HTTPResponse {
        let started = ContinuousClock.now
        var query = parseFormQuery(request.rawQuery)
        if query.isEmpty && !request.query.isEmpty { query = request.query }
        let attributes = RequestAttributes.parse(method: request.method.rawValue, segments: request.pathSegments,
                                                 path: request.path, query: query)
        let response: HTTPResponse
        var authenticated = false
        do {
            let user = try authenticate(request)
            authenticated = true
            let longRunning = attributes.verb == "watch" || (attributes.subresource == "log" && query["follow"] == "true")
            var seat: InflightLimiter.Seat?
            let level = PriorityLevel.of(user)
            if !longRunning && level != .exempt {
                let wait = try timeout(query)
                do {
                    seat = try await inflight.acquire(InflightLimiter.kind(verb: attributes.verb), level, timeout: wait)
                } catch {
                    throw APIError(.tooManyRequests, "Too many requests, please try again later.",
                                   details: StatusDetails(retryAfterSeconds: 1))
                }
            }
            defer { if let seat { inflight.release(seat) } }
            switch authorizer.authorize(user, attributes) {
            case .allow: break
            case .deny(let reason): throw APIError.forbidden(attributes, user: user, reason: reason)
            case .allowIfRelated(let node, let relation):
                guard try await NodeGraph(store: store, registry: registry).related(node: node, relation) else {
                    throw APIError.forbidden(attributes, user: user, reason: "no relationship found between node '\(node)' and this object")
                }
            }
            let context = RequestContext(request: request, query: query, attributes: attributes, user: user)
            if longRunning {
                response = try await route(context)
            } else {
                response = try await deadlines.run(limit: try timeout(query)) { try await self.route(context) }
            }
        } catch let error as APIError {
            response = Self.statusResponse(error)
        } catch {
            response = Self.statusResponse(APIError.internalError("\(error)"))
        }
        metrics.record(verb: attributes.isResourceRequest && authenticated ? attributes.verb : request.method.rawValue,
                       resource: metricResource(attributes, authenticated: authenticated),
                       code: Int(response.status.code), seconds: started.duration(to: .now).seconds)
        if response.status.code >= 500 {
            logger.warning("request failed", metadata: ["method": "\(request.method.rawValue)", "path": "\(request.path)",
                                                        "code": "\(response.status.code)"])
        }
        return response
    }

    /// The `resource` label of a request: only registered resources name themselves.
    private func metricResource(_ a: RequestAttributes, authenticated: Bool) -> String {
        guard authenticated else { return APIMetrics.unauthenticatedResource }
        guard a.isResourceRequest else { return "" }
        guard registry.lookup(group: a.group, version: a.version, resource: a.resource) != nil else { return APIMetrics.unknownResource }
        return a.qualifiedResource
    }

    /// The request's own `timeout=` (kubectl sends `32s` on discovery), clamped to the server's
    /// limit as Kubernetes' `WithRequestDeadline` does: zero, negative or longer than the limit
    /// means the limit; a malformed duration (an overflowing one included) is 400.
    func timeout(_ query: [String: String]) throws(APIError) -> Duration {
        guard let text = query["timeout"], !text.isEmpty else { return requestTimeout }
        let requested: Duration
        do {
            requested = try GoDuration.parse(text)
        } catch {
            throw APIError.badRequest("invalid timeout specified in the request URL - \(error.message)")
        }
        return requested > .zero && requested < requestTimeout ? requested : requestTimeout
    }

    func authenticate(_ request: HTTPRequest) throws(APIError) -> UserInfo {
        if let token = request.bearerToken {
            guard let user = authenticator.authenticate(token) else {
                throw APIError(.unauthorized, "Unauthorized")
            }
            return user
        }
        let path = request.path
        if Self.anonymousPaths.contains(path) || path.hasPrefix("/healthz/") || path.hasPrefix("/livez/") || path.hasPrefix("/readyz/") {
            return UserInfo(name: "system:anonymous", groups: ["system:unauthenticated"])
        }
        throw APIError(.unauthorized, "Unauthorized")
    }

    // MARK: Routing

    struct RequestContext: Sendable {
        let request: HTTPRequest
        let query: [String: String]
        var attributes: RequestAttributes
        let user: UserInfo

        /// Whether the client asked for a Table (`Accept: application/json;as=Table;…`).
        var wantsTable: Bool {
            (request.headers.first(name: "Accept") ?? "").contains("as=Table")
        }

        var include: IncludeObject { IncludeObject(rawValue: query["includeObject"] ?? "") ?? .metadata }

        var dryRun: Bool { query["dryRun"] == "All" }
    }

    func route(_ c: RequestContext) async throws -> HTTPResponse {
        let a = c.attributes
        if !a.isResourceRequest { return try await nonResource(c) }
        guard let info = registry.lookup(group: a.group, version: a.version, resource: a.resource) else {
            throw APIError.unknownPath
        }
        if !a.subresource.isEmpty && !info.subresources.contains(a.subresource) { throw APIError.unknownPath }
        if !a.subresource.isEmpty && a.name.isEmpty { throw APIError.unknownPath }
        if !info.namespaced && a.namespace != nil { throw APIError.unknownPath }
        if info.namespaced && a.namespace == nil && !["list", "watch"].contains(a.verb) { throw APIError.unknownPath }
        if let dry = c.query["dryRun"], !dry.isEmpty, dry != "All" {
            throw APIError.badRequest("Invalid dryRun value \"\(dry)\": only \"All\" is supported")
        }
        switch (a.verb, a.subresource) {
        case ("get", "log"): return try await podLog(c, info)
        case ("get", "scale"): return try await getScale(c, info)
        case ("update", "scale"), ("patch", "scale"): return try await updateScale(c, info)
        case ("get", "exec"), ("create", "exec"): return try podExecWithoutUpgrade()
        case ("get", _): return try await get(c, info)
        case ("list", _): return try await list(c, info)
        case ("watch", _): return try await watch(c, info)
        case ("create", "binding"): return try await bind(c, info)
        case ("create", ""):
            if !a.name.isEmpty { throw APIError(.methodNotAllowed, "the server does not allow this method on the requested resource") }
            return try await create(c, info)
        case ("update", "status"), ("update", ""): return try await update(c, info)
        case ("patch", "status"), ("patch", ""): return try await patch(c, info)
        case ("delete", ""): return try await delete(c, info)
        case ("deletecollection", ""): return try await deleteCollection(c, info)
        default:
            throw APIError(.methodNotAllowed, "the server does not allow this method on the requested resource")
        }
    }

    func nonResource(_ c: RequestContext) async throws -> HTTPResponse {
        let method = c.request.method
        guard method == .GET || method == .HEAD else {
            throw APIError(.methodNotAllowed, "the server does not allow this method on the requested resource")
        }
        var path = c.request.path
        if path.count > 1 && path.hasSuffix("/") { path.removeLast() }
        let segments = c.request.pathSegments
        switch path {
        case "/version": return Self.json(Discovery.version)
        case "/api": return Self.json(discovery.apiVersions)
        case "/apis": return Self.json(discovery.apiGroupList)
        case "/healthz", "/livez", "/readyz":
            return await health.respond(endpoint: String(path.dropFirst()), check: nil, query: c.query) ?? Self.statusResponse(.unknownPath)
        case "/metrics":
            return .init(status: .ok, headers: ["Content-Type": "text/plain; version=0.0.4"], body: Data((metrics.render() + inflight.metricsText() + store.engineMetrics).utf8))
        case "/openapi/v3": return Self.json(discovery.openAPIIndex)
        default: break
        }
        if segments.first == "api", segments.count == 2, let doc = discovery.resourceList(group: "", version: segments[1]) {
            return Self.json(doc)
        }
        if segments.first == "apis", segments.count == 2, let doc = discovery.apiGroup(segments[1]) { return Self.json(doc) }
        if segments.first == "apis", segments.count == 3, let doc = discovery.resourceList(group: segments[1], version: segments[2]) {
            return Self.json(doc)
        }
        if path.hasPrefix("/openapi/v3/"), let doc = discovery.openAPIDocument(path: String(path.dropFirst("/openapi/v3/".count))) {
            return Self.json(doc)
        }
        if ["healthz", "livez", "readyz"].contains(segments.first ?? ""), segments.count == 2,
           let answer = await health.respond(endpoint: segments[0], check: segments[1], query: c.query) {
            return answer
        }
        throw APIError.unknownPath
    }

    // MARK: Responses

    static func encode(_ value: JSONValue) -> Data {
        value.jsonData
    }

    static func json(_ value: JSONValue, status: HTTPResponseStatus = .ok) -> HTTPResponse {
        var body = encode(value)
        body.append(0x0A)
        return HTTPResponse(status: status, headers: ["Content-Type": "application/json"], body: body)
    }

    /// The Status response of an error: the single mapping from `APIError` to HTTP.
    static func statusResponse(_ error: APIError) -> HTTPResponse {
        let body = (try? JSONValue(encoding: error.status)) ?? ["kind": "Status", "message": .string(error.message)]
        var response = json(body, status: HTTPResponseStatus(statusCode: Int(error.code.httpCode)))
        if let retry = error.details?.retryAfterSeconds { response.headers.replaceOrAdd(name: "Retry-After", value: String(retry)) }
        return response
    }

    static func successStatus(_ message: String? = nil, code: Int32 = 200, details: StatusDetails? = nil) -> JSONValue {
        var s = Status(status: Status.success, message: message, details: details, code: code)
        s.reason = nil
        return (try? JSONValue(encoding: s)) ?? ["kind": "Status", "status": "Success"]
    }

    /// A 413 Status for bodies over the limit (HTTPServer sends it without calling the handler).
    public static func tooLargeResponse(limit: Int) -> HTTPResponse {
        statusResponse(APIError(.requestEntityTooLarge, "Request entity too large: limit is \(limit) bytes; send a smaller object"))
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
