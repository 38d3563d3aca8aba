// `CloudProvider` over the simulator's HTTP API, with retries and exponential back-off on
// retryable errors (Throttled, Internal, a refused connection).
import Foundation
import HTTPKit
import NIOHTTP1

public struct CloudClient: CloudProvider {
    public let host: String
    public let port: Int
    private let key: String
    /// Attempts per request, the first included.
    public var maxAttempts: Int
    public var initialBackoff: Duration
    /// Keep-alive connections: one pool for ordinary calls, one for long polls.
    private let http: HTTPClient
    private let longPoll: HTTPClient

    /// `url` is "http://HOST:PORT"; `key` an API key of the cloud.
    public init(url: String, key: String, maxAttempts: Int = 6, initialBackoff: Duration = .milliseconds(50)) throws {
        guard let components = URLComponents(string: url), components.scheme == "http",
              let host = components.host, !host.isEmpty else {
            throw CloudError.invalid("--cloud-url", "\"\(url)\" is not http://HOST:PORT")
        }
        self.host = host
        self.port = components.port ?? 80
        self.key = key.trimmingCharacters(in: .whitespacesAndNewlines)
        self.maxAttempts = max(1, maxAttempts)
        self.initialBackoff = initialBackoff
        self.http = HTTPClient(host: host, port: port, timeout: .seconds(30), keepAlive: true)
        self.longPoll = HTTPClient(host: host, port: port, timeout: .seconds(40), keepAlive: true)
    }

    /// Reads the key from `keyFile` (the simulator's STATE_DIR/admin.key).
    public init(url: String, keyFile: String) throws {
        let secret: String?
        do {
            secret = try SecretFiles.readText(keyFile)  // refused when group or others can read it
        } catch {
            throw CloudError.invalid("--cloud-key-file", "\(error)")
        }
        guard let key = secret, !key.isEmpty else {
            throw CloudError.invalid("--cloud-key-file", "cannot read an API key from \(keyFile); the simulator writes its admin key to STATE_DIR/admin.key")
        }
        try self.init(url: url, key: key)
    }

    public func describeRegion() async throws -> (region: String, zones: [Zone]) {
        let response: RegionResponse = try await call(.GET, "/v1/region")
        return (response.region, response.zones)
    }

    public func registerInstance(_ request: RegisterInstanceRequest) async throws -> Instance {
        try await call(.POST, "/v1/instances", body: request)
    }

    public func describeInstance(id: String) async throws -> Instance {
        try await call(.GET, "/v1/instances/\(try pathID(id, .instance))")
    }

    public func findInstance(name: String) async throws -> Instance? {
        let page: Page<Instance> = try await call(.GET, "/v1/instances", query: ["name": name])
        return page.items.first
    }

    public func listInstances(_ page: PageRequest) async throws -> Page<Instance> {
        try await call(.GET, "/v1/instances", query: query(page))
    }

    public func setInstanceState(id: String, to state: InstanceState) async throws -> Instance {
        let action = switch state { case .running: "start"; case .stopped: "stop"; case .terminated: "terminate" }
        return try await call(.POST, "/v1/instances/\(try pathID(id, .instance))/\(action)")
    }

    public func createDisk(_ request: CreateDiskRequest) async throws -> CloudOperation {
        try await call(.POST, "/v1/disks", body: request)
    }

    public func describeDisk(id: String) async throws -> Disk {
        try await call(.GET, "/v1/disks/\(try pathID(id, .disk))")
    }

    public func listDisks(_ filter: DiskFilter, _ page: PageRequest) async throws -> Page<Disk> {
        var parameters = query(page)
        parameters["name"] = filter.name
        parameters["zone"] = filter.zone
        parameters["instanceId"] = filter.instanceId
        parameters["tag"] = filter.tag
        return try await call(.GET, "/v1/disks", query: parameters)
    }

    public func deleteDisk(id: String) async throws -> CloudOperation {
        try await call(.DELETE, "/v1/disks/\(try pathID(id, .disk))")
    }

    public func tagDisk(id: String, tags: [String: String]) async throws -> Disk {
        try await call(.POST, "/v1/disks/\(try pathID(id, .disk))/tags", body: TagRequest(tags: tags))
    }

    public func resizeDisk(id: String, sizeBytes: Int64) async throws -> CloudOperation {
        try await call(.POST, "/v1/disks/\(try pathID(id, .disk))/resize", body: ResizeRequest(sizeBytes: sizeBytes))
    }

    public func attachDisk(id: String, instanceId: String, readOnly: Bool) async throws -> CloudOperation {
        try await call(.POST, "/v1/disks/\(try pathID(id, .disk))/attach", body: AttachRequest(instanceId: instanceId, readOnly: readOnly))
    }

    public func detachDisk(id: String, instanceId: String, force: Bool) async throws -> CloudOperation {
        try await call(.POST, "/v1/disks/\(try pathID(id, .disk))/detach", body: DetachRequest(instanceId: instanceId, force: force))
    }

    public func createSnapshot(_ request: CreateSnapshotRequest) async throws -> CloudOperation {
        try await call(.POST, "/v1/snapshots", body: request)
    }

    public func describeSnapshot(id: String) async throws -> Snapshot {
        try await call(.GET, "/v1/snapshots/\(try pathID(id, .snapshot))")
    }

    public func listSnapshots(sourceDiskId: String?, _ page: PageRequest) async throws -> Page<Snapshot> {
        var parameters = query(page)
        parameters["sourceDiskId"] = sourceDiskId
        return try await call(.GET, "/v1/snapshots", query: parameters)
    }

    public func deleteSnapshot(id: String) async throws -> CloudOperation {
        try await call(.DELETE, "/v1/snapshots/\(try pathID(id, .snapshot))")
    }

    public func describeOperation(id: String) async throws -> CloudOperation {
        try await call(.GET, "/v1/operations/\(try pathID(id, .operation))")
    }

    public func waitForOperation(id: String, timeout: Duration) async throws -> CloudOperation {
        let seconds = Double(min(timeout, .seconds(30)).components.seconds) + Double(min(timeout, .seconds(30)).components.attoseconds) / 1e18
        return try await send(.GET, "/v1/operations/\(try pathID(id, .operation))", query: ["wait": String(format: "%.3f", seconds)],
                              body: Data(), client: longPoll)
    }

    // MARK: - Transport

    /// Whether sending the request twice does what sending it once does. Reads are; so are this
    /// API's writes (attach, detach, resize, delete and instance changes converge on a state,
    /// registration is by name), except creates of disks and snapshots without a client token.
    static func isRepeatable(_ method: HTTPMethod, _ path: String, _ body: Data) -> Bool {
        guard method == .POST, path == "/v1/disks" || path == "/v1/snapshots" else { return true }
        return (try? JSONSerialization.jsonObject(with: body) as? [String: Any])?["clientToken"] is String
    }

    /// Ids go into paths only once they have the shape of an id.
    private func pathID(_ id: String, _ kind: ResourceKind) throws -> String {
        try CloudValidation.checkID(id, kind, parameter: "id")
        return id
    }

    private func query(_ page: PageRequest) -> [String: String] {
        var query: [String: String] = [:]
        query["limit"] = page.limit.map(String.init)
        query["pageToken"] = page.pageToken
        return query
    }

    private func call<Response: Decodable>(_ method: HTTPMethod, _ path: String, query: [String: String] = [:]) async throws -> Response {
        try await send(method, path, query: query, body: Data())
    }

    private func call<Body: Encodable, Response: Decodable>(_ method: HTTPMethod, _ path: String, body: Body) async throws -> Response {
        try await send(method, path, query: [:], body: try CloudJSON.encoder().encode(body))
    }

    private func send<Response: Decodable>(_ method: HTTPMethod, _ path: String, query: [String: String], body: Data,
                                           client: HTTPClient? = nil) async throws -> Response {
        var headers: HTTPHeaders = ["Authorization": "Bearer \(key)", "Accept": "application/json"]
        if !body.isEmpty { headers.add(name: "Content-Type", value: "application/json") }
        let request = HTTPRequest(method: method, path: path, query: query, headers: headers, body: body)
        let client = client ?? http
        var backoff = initialBackoff
        var attempt = 1
        while true {
            let failure: CloudError
            do {
                let response = try await client.send(request)
                if (200..<300).contains(response.status.code) {
                    return try CloudJSON.decoder().decode(Response.self, from: response.body)
                }
                if let envelope = try? JSONDecoder().decode(CloudErrorEnvelope.self, from: response.body) {
                    failure = CloudError(body: envelope.error)
                } else {
                    failure = CloudError(.internal, "\(method.rawValue) \(path) answered \(response.status.code) without an error body")
                }
            } catch let error as HTTPClientError {
                // Not sent (connect) — or sent and perhaps handled, retried only when doing it
                // twice is harmless: every call of this API but an untokened create.
                if case .connect = error {} else if !Self.isRepeatable(method, path, body) {
                    throw CloudError(.internal, "\(method.rawValue) \(path): \(error)")
                }
                failure = CloudError(.internal, "\(error)")
            }
            guard failure.isRetryable, attempt < maxAttempts else { throw failure }
            let jitter = Double.random(in: 0.8...1.2)
            try await Task.sleep(for: backoff * jitter)
            backoff = min(backoff * 2, .seconds(2))
            attempt += 1
        }
    }
}
