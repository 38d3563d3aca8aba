import ClusterAPI
import Foundation
import HTTPKit
import Logging
import NIOHTTP1

/// The REST front door: authenticates, authorizes, routes and answers every request, and
/// maps each `APIError` to a metav1 Status response (the only place that happens).
public final class APIHandler: Sendable {
    let registry: ResourceRegistry
    let store: ObjectStore
    let discovery: Discovery
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
    /// Decoded objects and encoded lines shared by the watchers of one event.
    let watchCache = WatchEventCache()

    public init(registry: ResourceRegistry = .standard, store: ObjectStore, serverAddress: String,
                authenticator: TokenAuthenticator, authorizer: Authorizer = Authorizer(), metrics: APIMetrics = APIMetrics(),
                logger: Logger, requestTimeout: Duration = .seconds(60), watchTimeoutRange: ClosedRange<Int> = 1800...3600,
                disabledAdmissionPlugins: Set<String> = []) {
        self.registry = registry
        self.store = store
        self.discovery = Discovery(registry: registry, serverAddress: serverAddress)
        self.authenticator = authenticator
        self.authorizer = authorizer
        self.metrics = metrics
        self.logger = logger
        self.leases = EventLeases(store: store)
        self.requestTimeout = requestTimeout
        self.disabledAdmissionPlugins = disabledAdmissionPlugins
        self.watchTimeoutRange = watchTimeoutRange
    }

    /// Ends the open watches (their clients see the stream close and re-watch elsewhere).
    public func stopWatches() { watchHub.shutdown() }

    /// Paths that answer without credentials, as Kubernetes' `system:public-info-viewer` allows.
    static let anonymousPaths: Set<String> = ["/healthz", "/livez", "/readyz", "/version", "/version/"]

    /// Answers one request.
    public func handle(_ request: HTTPRequest) async -> HTTPResponse {
        let started = ContinuousClock.now
        var query = parseFormQuery(request.rawQuery)
        if query.isEmpty && !request.query.isEmpty { query = request.query }
        let attributes = RequestAttributes.parse(method: request.method.rawValue, segments: request.pathSegments,
                                                 path: request.path, query: query)
        let response: HTTPResponse
        do {
            let user = try authenticate(request)
            switch authorizer.authorize(user, attributes) {
            case .allow: break
            case .deny(let reason): throw APIError.forbidden(attributes, user: user, reason: reason)
            }
            let context = RequestContext(request: request, query: query, attributes: attributes, user: user)
            if attributes.verb == "watch" || (attributes.subresource == "log" && query["follow"] == "true") {
                response = try await route(context)
            } else {
                response = try await withDeadline(timeout(query)) { try await self.route(context) }
            }
        } catch let error as APIError {
            response = Self.statusResponse(error)
        } catch {
            response = Self.statusResponse(APIError.internalError("\(error)"))
        }
        metrics.record(verb: attributes.isResourceRequest ? attributes.verb : request.method.rawValue,
                       resource: attributes.isResourceRequest ? attributes.qualifiedResource : "",
                       code: Int(response.status.code), seconds: started.duration(to: .now).seconds)
        if response.status.code >= 500 {
            logger.warning("request failed", metadata: ["method": "\(request.method.rawValue)", "path": "\(request.path)",
                                                        "code": "\(response.status.code)"])
        }
        return response
    }

    /// The request's own `timeout=` (kubectl sends `32s` on discovery), capped at the server's limit.
    private func timeout(_ query: [String: String]) -> Duration {
        guard let text = query["timeout"], let d = parseGoDuration(text), d > .zero else { return requestTimeout }
        return min(d, requestTimeout)
    }

    private func withDeadline(_ limit: Duration, _ body: @escaping @Sendable () async throws -> HTTPResponse) async throws -> HTTPResponse {
        try await withThrowingTaskGroup(of: HTTPResponse?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: limit)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let response = first else {
                throw APIError(.timeout, "Timeout: request did not complete within requested timeout - context deadline exceeded")
            }
            return response
        }
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
            if path == "/readyz" {
                do { _ = try await store.currentRevision() } catch { throw APIError(.serviceUnavailable, "[-]etcd failed: \(error.message)") }
            }
            return .init(status: .ok, headers: ["Content-Type": "text/plain; charset=utf-8"], body: Data("ok".utf8))
        case "/metrics":
            return .init(status: .ok, headers: ["Content-Type": "text/plain; version=0.0.4"], body: Data(metrics.render().utf8))
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
        if path.hasPrefix("/healthz/") || path.hasPrefix("/livez/") || path.hasPrefix("/readyz/") {
            return .init(status: .ok, headers: ["Content-Type": "text/plain; charset=utf-8"], body: Data("ok".utf8))
        }
        throw APIError.unknownPath
    }

    // MARK: Responses

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()

    static func encode(_ value: JSONValue) -> Data {
        (try? encoder.encode(value)) ?? Data("{}".utf8)
    }

    static func json(_ value: JSONValue, status: HTTPResponseStatus = .ok) -> HTTPResponse {
        var body = encode(value)
        body.append(0x0A)
        return HTTPResponse(status: status, headers: ["Content-Type": "application/json"], body: body)
    }

    /// The Status response of an error: the single mapping from `APIError` to HTTP.
    static func statusResponse(_ error: APIError) -> HTTPResponse {
        let body = (try? JSONValue(encoding: error.status)) ?? ["kind": "Status", "message": .string(error.message)]
        return json(body, status: HTTPResponseStatus(statusCode: Int(error.code.httpCode)))
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

/// Go's `time.ParseDuration` for the forms clients send (`32s`, `5m0s`, `1h`, `250ms`).
func parseGoDuration(_ text: String) -> Duration? {
    var total: Double = 0
    var number = ""
    var unit = ""
    var sawAny = false
    func flush() -> Bool {
        guard let value = Double(number) else { return false }
        let factor: Double
        switch unit {
        case "h": factor = 3600
        case "m": factor = 60
        case "s", "": factor = 1
        case "ms": factor = 0.001
        case "us", "µs": factor = 0.000001
        case "ns": factor = 0.000000001
        default: return false
        }
        total += value * factor
        number = ""
        unit = ""
        sawAny = true
        return true
    }
    for ch in text {
        if ch.isNumber || ch == "." {
            if !unit.isEmpty { guard flush() else { return nil } }
            number.append(ch)
        } else {
            unit.append(ch)
        }
    }
    if !number.isEmpty { guard flush() else { return nil } }
    guard sawAny else { return nil }
    return .milliseconds(Int64(total * 1000))
}
