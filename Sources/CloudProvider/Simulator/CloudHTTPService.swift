// The simulator's HTTP JSON API (docs/cloud-api.md): routing, API-key authentication and the
// mapping of CloudError to HTTP status, all in one place at the edge.
import Foundation
import HTTPKit
import HostSystem
import NIOHTTP1

/// API keys and what they may do.
public struct APIKeys: Sendable {
    public enum Role: String, Sendable { case admin, readOnly = "read-only" }
    public private(set) var roles: [String: Role]

    public init(roles: [String: Role]) { self.roles = roles }

    /// Reads `key,role` lines (roles admin and read-only; blank lines and # comments skipped).
    public static func load(file: String) throws -> APIKeys {
        let data: Data?
        do {
            data = try SecretFiles.read(file)  // refused when group or others can read it
        } catch {
            throw CloudError.invalid("--api-keys-file", "\(error)")
        }
        guard let data else {
            throw CloudError.invalid("--api-keys-file", "cannot read \(file); give a file of key,role lines")
        }
        let text = String(decoding: data, as: UTF8.self)
        var roles: [String: Role] = [:]
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let fields = trimmed.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            guard fields.count == 2, fields[0].utf8.count >= 16, let role = Role(rawValue: fields[1]) else {
                throw CloudError.invalid("--api-keys-file", "\(file) line \(number + 1) is not \"key,role\" with a key of at least 16 characters and role admin or read-only")
            }
            roles[fields[0]] = role
        }
        guard !roles.isEmpty else { throw CloudError.invalid("--api-keys-file", "\(file) holds no keys") }
        return APIKeys(roles: roles)
    }

    /// The admin key in `stateDir/admin.key`, created on first start with mode 0600 from the
    /// start (written atomically); an existing one that group or others can read is refused.
    public static func adminKey(stateDir: String) throws -> APIKeys {
        let path = stateDir + "/admin.key"
        if let existing = try SecretFiles.readText(path), !existing.isEmpty {
            return APIKeys(roles: [existing: .admin])
        }
        var generator = SystemRandomNumberGenerator()
        let key = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
        try SecretFiles.write(path, text: key + "\n")
        return APIKeys(roles: [key: .admin])
    }

    func role(of key: String?) -> Role? {
        guard let key else { return nil }
        return roles[key]
    }
}

public struct CloudHTTPService: Sendable {
    let cloud: CloudSimulator
    let keys: APIKeys

    public init(cloud: CloudSimulator, keys: APIKeys) {
        self.cloud = cloud
        self.keys = keys
    }

    /// Refuses a request without a valid key from its head alone, before its body is read
    /// (the HTTP server's head check).
    public func checkHead(_ request: HTTPRequest) -> HTTPResponse? {
        if request.pathSegments == ["healthz"] || keys.role(of: request.bearerToken) != nil { return nil }
        return error(CloudError(.unauthorized, "missing or unknown API key: send Authorization: Bearer <key> (the admin key is in STATE_DIR/admin.key)"))
    }

    public func handle(_ request: HTTPRequest) async -> HTTPResponse {
        let segments = request.pathSegments
        if segments == ["healthz"] { return .text("ok\n") }
        guard let role = keys.role(of: request.bearerToken) else {
            return error(CloudError(.unauthorized, "missing or unknown API key: send Authorization: Bearer <key> (the admin key is in STATE_DIR/admin.key)"))
        }
        if request.method != .GET, role != .admin {
            return error(CloudError(.forbidden, "this API key is read-only; use an admin key for \(request.method.rawValue) \(request.path)"))
        }
        do {
            return try await route(request, segments)
        } catch let cloudError as CloudError {
            return error(cloudError)
        } catch let decoding as DecodingError {
            return error(CloudError.invalid("body", Self.describe(decoding)))
        } catch {
            return self.error(CloudError(.internal, "\(error)"))
        }
    }

    private func route(_ request: HTTPRequest, _ path: [String]) async throws -> HTTPResponse {
        guard path.first == "v1" else { throw CloudError(.notFound, "no such path \(request.path); the API is under /v1") }
        let query = request.query
        // The route's shape, with the id (the second segment) as a placeholder: "disks/{id}/attach".
        var shape = Array(path.dropFirst())
        var id = ""
        if shape.count >= 2 {
            id = shape[1]
            shape[1] = "{id}"
        }
        switch (request.method, shape.joined(separator: "/")) {
        case (.GET, "region"):
            let (region, zones) = try await cloud.describeRegion()
            return json(RegionResponse(region: region, zones: zones))
        case (.GET, "zones"):
            return json(Page(items: try await cloud.describeRegion().zones, nextPageToken: nil))

        case (.POST, "instances"):
            return json(try await cloud.registerInstance(try decode(RegisterInstanceRequest.self, request)), status: .created)
        case (.GET, "instances"):
            if let name = query["name"] {
                return json(Page(items: try await cloud.findInstance(name: name).map { [$0] } ?? [], nextPageToken: nil))
            }
            return json(try await cloud.listInstances(try page(query)))
        case (.GET, "instances/{id}"):
            return json(try await cloud.describeInstance(id: id))
        case (.POST, _) where shape.count == 3 && shape[0] == "instances":
            let action = shape[2]
            let states: [String: InstanceState] = ["start": .running, "stop": .stopped, "terminate": .terminated]
            guard let state = states[action] else { throw CloudError(.notFound, "no action \(action) on instances; use start, stop or terminate") }
            return json(try await cloud.setInstanceState(id: id, to: state))

        case (.POST, "disks"):
            return accepted(try await cloud.createDisk(try decode(CreateDiskRequest.self, request)))
        case (.GET, "disks"):
            let filter = DiskFilter(name: query["name"], zone: query["zone"], instanceId: query["instanceId"], tag: query["tag"])
            return json(try await cloud.listDisks(filter, try page(query)))
        case (.GET, "disks/{id}"):
            return json(try await cloud.describeDisk(id: id))
        case (.DELETE, "disks/{id}"):
            return accepted(try await cloud.deleteDisk(id: id))
        case (.POST, "disks/{id}/attach"):
            let body = try decode(AttachRequest.self, request)
            return accepted(try await cloud.attachDisk(id: id, instanceId: body.instanceId, readOnly: body.readOnly ?? false))
        case (.POST, "disks/{id}/detach"):
            let body = try decode(DetachRequest.self, request)
            return accepted(try await cloud.detachDisk(id: id, instanceId: body.instanceId, force: body.force ?? false))
        case (.POST, "disks/{id}/tags"):
            return json(try await cloud.tagDisk(id: id, tags: try decode(TagRequest.self, request).tags))
        case (.POST, "disks/{id}/resize"):
            return accepted(try await cloud.resizeDisk(id: id, sizeBytes: try decode(ResizeRequest.self, request).sizeBytes))

        case (.POST, "snapshots"):
            return accepted(try await cloud.createSnapshot(try decode(CreateSnapshotRequest.self, request)))
        case (.GET, "snapshots"):
            return json(try await cloud.listSnapshots(sourceDiskId: query["sourceDiskId"], try page(query)))
        case (.GET, "snapshots/{id}"):
            return json(try await cloud.describeSnapshot(id: id))
        case (.DELETE, "snapshots/{id}"):
            return accepted(try await cloud.deleteSnapshot(id: id))

        case (.GET, "operations/{id}"):
            guard let wait = query["wait"] else { return json(try await cloud.describeOperation(id: id)) }
            guard let seconds = Double(wait), (0...30).contains(seconds) else {
                throw CloudError.invalid("wait", "\"\(CloudValidation.printable(wait))\" is not a number of seconds from 0 to 30")
            }
            return json(try await cloud.waitForOperation(id: id, timeout: .milliseconds(Int64(seconds * 1000))))
        default:
            throw CloudError(.notFound, "no route for \(request.method.rawValue) \(request.path); see docs/cloud-api.md")
        }
    }

    /// 202 for work still running, 200 when it had nothing to do.
    private func accepted(_ operation: CloudOperation) -> HTTPResponse {
        json(operation, status: operation.isDone ? .ok : .accepted)
    }

    private func error(_ error: CloudError) -> HTTPResponse {
        json(CloudErrorEnvelope(error: error.body), status: HTTPResponseStatus(statusCode: error.httpStatus))
    }

    private func json<T: Encodable>(_ value: T, status: HTTPResponseStatus = .ok) -> HTTPResponse {
        .json(value, status: status, encoder: CloudJSON.encoder())
    }

    private func decode<T: Decodable>(_ type: T.Type, _ request: HTTPRequest) throws -> T {
        guard !request.body.isEmpty else { throw CloudError.invalid("body", "is empty; send a JSON object") }
        return try CloudJSON.decoder().decode(type, from: request.body)
    }

    private func page(_ query: [String: String]) throws -> PageRequest {
        var page = PageRequest(pageToken: query["pageToken"])
        if let text = query["limit"] {
            guard let limit = Int(text) else { throw CloudError.invalid("limit", "\"\(CloudValidation.printable(text))\" is not a number") }
            page.limit = limit
        }
        return page
    }

    /// A decoding error as a sentence naming the field.
    static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context):
            let parent = path(context)
            return "field \(parent.isEmpty ? "" : parent + ".")\(key.stringValue) is required"
        case .typeMismatch(let type, let context), .valueNotFound(let type, let context):
            return "field \(path(context)) must be a \(type)"
        case .dataCorrupted(let context):
            return context.codingPath.isEmpty ? "is not valid JSON" : "field \(path(context)) is invalid: \(context.debugDescription)"
        @unknown default:
            return "cannot be decoded"
        }
    }
}

public struct RegionResponse: Codable, Sendable {
    public var region: String
    public var zones: [Zone]
}

struct AttachRequest: Codable {
    var instanceId: String
    var readOnly: Bool?
}

struct DetachRequest: Codable {
    var instanceId: String
    var force: Bool?
}

struct ResizeRequest: Codable {
    var sizeBytes: Int64
}

/// `POST /v1/disks/{id}/tags`: tags added to (or changed on) the disk.
struct TagRequest: Codable {
    var tags: [String: String]
}
