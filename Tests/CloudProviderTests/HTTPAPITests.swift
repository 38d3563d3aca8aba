// The simulator's HTTP API and CloudClient, in-process: routes, API keys, error bodies, retries.
import CloudProvider
import Foundation
import HTTPKit
import Logging
import NIOHTTP1
import Testing

private let adminKey = "admin-key-0123456789abcdef"
private let readerKey = "reader-key-0123456789abcdef"

/// Serves an in-memory simulator on 127.0.0.1 (a free port) for the duration of `body`.
private func withCloudServer(_ configuration: SimulatorConfiguration = SimulatorConfiguration(),
                             _ body: (_ port: Int, _ cloud: CloudSimulator) async throws -> Void) async throws {
    let cloud = try await CloudSimulator.inMemory(configuration)
    let service = CloudHTTPService(cloud: cloud, keys: APIKeys(roles: [adminKey: .admin, readerKey: .readOnly]))
    let server = try await HTTPServer(host: "127.0.0.1", port: 0, maxBodyBytes: 64 << 10, logger: Logger(label: "test"), handler: service.handle)
    let serving = Task { try await server.run() }
    defer {
        server.close()
        serving.cancel()
    }
    try await body(server.port, cloud)
}

private func raw(_ port: Int, _ method: HTTPMethod, _ path: String, key: String? = adminKey, body: String = "") async throws -> (Int, String) {
    var headers = HTTPHeaders()
    if let key { headers.add(name: "Authorization", value: "Bearer \(key)") }
    let response = try await HTTPClient(host: "127.0.0.1", port: port)
        .send(HTTPRequest(method: method, uri: path, headers: headers, body: Data(body.utf8)))
    return (Int(response.status.code), String(decoding: response.body, as: UTF8.self))
}

@Suite struct HTTPAPITests {
    @Test func clientRoundTrip() async throws {
        try await withCloudServer { port, _ in
            let client = try CloudClient(url: "http://127.0.0.1:\(port)", key: adminKey)
            let region = try await client.describeRegion()
            #expect(region.zones.count == 2)
            let node = try await client.registerInstance(RegisterInstanceRequest(name: "node-a", zone: "ballast-1a"))
            #expect(try await client.describeInstance(id: node.id) == node)
            #expect(try await client.findInstance(name: "node-a")?.id == node.id)
            let create = try await client.createDisk(CreateDiskRequest(name: "pvc-1", zone: "ballast-1a", sizeBytes: 10 << 20, tags: ["k": "v"]))
            try await client.wait(for: create)
            let disk = try await client.describeDisk(id: create.targetId)
            #expect(disk.sizeBytes == 10 << 20)
            #expect(disk.tags == ["k": "v"])
            try await client.wait(for: try await client.attachDisk(id: disk.id, instanceId: node.id, readOnly: false))
            let attachment = try await client.describeAttachment(diskId: disk.id, instanceId: node.id)
            #expect(attachment.state == .attached)
            try await client.wait(for: try await client.resizeDisk(id: disk.id, sizeBytes: 20 << 20))
            let snapshot = try await client.createSnapshot(CreateSnapshotRequest(diskId: disk.id, name: "s"))
            try await client.wait(for: snapshot)
            #expect(try await client.listSnapshots(sourceDiskId: nil, PageRequest()).items.map(\.id) == [snapshot.targetId])
            try await client.wait(for: try await client.detachDisk(id: disk.id, instanceId: node.id, force: false))
            try await client.wait(for: try await client.deleteSnapshot(id: snapshot.targetId))
            try await client.wait(for: try await client.deleteDisk(id: disk.id))
            #expect(try await client.allDisks().isEmpty)
            let stopped = try await client.setInstanceState(id: node.id, to: .stopped)
            #expect(stopped.state == .stopped)
            #expect(try await client.listInstances(PageRequest()).items.map(\.state) == [.stopped])
            do {
                _ = try await client.describeDisk(id: disk.id)
                Issue.record("a deleted disk was found")
            } catch let error as CloudError {
                #expect(error.code == .notFound)
            }
        }
    }

    @Test func apiKeysAreRequiredAndRolesEnforced() async throws {
        try await withCloudServer { port, _ in
            let (noKey, noKeyBody) = try await raw(port, .GET, "/v1/disks", key: nil)
            #expect(noKey == 401)
            #expect(noKeyBody.contains("\"code\" : \"Unauthorized\""))
            #expect(try await raw(port, .GET, "/v1/disks", key: "wrong-key-0123456789").0 == 401)
            #expect(try await raw(port, .GET, "/v1/disks", key: readerKey).0 == 200)
            let (forbidden, forbiddenBody) = try await raw(port, .POST, "/v1/instances", key: readerKey, body: #"{"name":"n"}"#)
            #expect(forbidden == 403)
            #expect(forbiddenBody.contains("read-only"))
            #expect(try await raw(port, .POST, "/v1/instances", body: #"{"name":"n"}"#).0 == 201)
            #expect(try await raw(port, .GET, "/healthz", key: nil).0 == 200)
        }
    }

    @Test func badRequestsGetErrorsThatNameTheProblem() async throws {
        try await withCloudServer { port, cloud in
            let cases: [(HTTPMethod, String, String, Int, String)] = [
                (.GET, "/v1/disks/..%2F..%2Fetc%2Fpasswd", "", 400, "\"parameter\" : \"id\""),
                (.GET, "/v1/disks/../../etc/passwd", "", 404, "NotFound"),
                (.DELETE, "/v1/snapshots/snap-..%2F..%2Fx", "", 400, "not a snapshot id"),
                (.POST, "/v1/disks", "not json", 400, "not valid JSON"),
                (.POST, "/v1/disks", #"{"name":"d","zone":"ballast-1a"}"#, 400, "sizeBytes is required"),
                (.POST, "/v1/disks", #"{"name":"d","zone":"ballast-1a","sizeBytes":"big"}"#, 400, "sizeBytes must be"),
                (.POST, "/v1/disks", "", 400, "is empty"),
                (.GET, "/v1/disks?limit=abc", "", 400, "\"parameter\" : \"limit\""),
                (.GET, "/v1/teleporters", "", 404, "docs/cloud-api.md"),
                (.GET, "/v2/disks", "", 404, "under /v1"),
                (.POST, "/v1/instances/i-0123456789abcdef0/explode", "", 404, "start, stop or terminate"),
                (.POST, "/v1/disks", String(repeating: "x", count: 100 << 10), 413, "smaller body"),
            ]
            for (method, path, body, status, fragment) in cases {
                let (code, text) = try await raw(port, method, path, body: body)
                #expect(code == status, "\(method) \(path): \(text)")
                #expect(text.contains(fragment), "\(method) \(path): \(text)")
            }
            #expect(try await cloud.allDisks().isEmpty, "bad requests change nothing")
        }
    }

    @Test func operationsAnswer202UntilDone() async throws {
        var configuration = SimulatorConfiguration()
        configuration.latency[.create] = .seconds(120)  // never done while the test looks
        try await withCloudServer(configuration) { port, _ in
            let (status, body) = try await raw(port, .POST, "/v1/disks", body: #"{"name":"d","zone":"ballast-1a","sizeBytes":1048576}"#)
            #expect(status == 202)
            let operation = try CloudJSON.decoder().decode(CloudOperation.self, from: Data(body.utf8))
            #expect(operation.state == .running)
            let (pollStatus, pollBody) = try await raw(port, .GET, "/v1/operations/\(operation.id)")
            #expect(pollStatus == 200)
            #expect(pollBody.contains("\"state\" : \"running\""))
            let (diskStatus, diskBody) = try await raw(port, .GET, "/v1/disks/\(operation.targetId)")
            #expect(diskStatus == 200)
            #expect(diskBody.contains("\"state\" : \"creating\""))
        }
    }

    @Test func clientRetriesInjectedFaults() async throws {
        try await withCloudServer(SimulatorConfiguration(faults: [.register: 0.5, .describe: 0.5], faultSeed: 7)) { port, _ in
            let client = try CloudClient(url: "http://127.0.0.1:\(port)", key: adminKey, maxAttempts: 20, initialBackoff: .milliseconds(1))
            for index in 0..<20 {
                let node = try await client.registerInstance(RegisterInstanceRequest(name: "node-\(index)"))
                #expect(try await client.describeInstance(id: node.id).name == "node-\(index)")
            }
            let impatient = try CloudClient(url: "http://127.0.0.1:\(port)", key: adminKey, maxAttempts: 1)
            var failures = 0
            for _ in 0..<40 {
                do { _ = try await impatient.describeRegion() } catch let error as CloudError where error.isRetryable { failures += 1 }
            }
            #expect(failures > 5, "without retries about half of the requests fail; \(failures) of 40 did")
        }
    }

    @Test func clientRefusesBadURLsAndIds() async throws {
        #expect(throws: CloudError.self) { try CloudClient(url: "ftp://x", key: "k") }
        #expect(throws: CloudError.self) { try CloudClient(url: "http://127.0.0.1:1", keyFile: "/nonexistent/admin.key") }
        let client = try CloudClient(url: "http://127.0.0.1:1", key: adminKey, maxAttempts: 1)
        await #expect(throws: CloudError.self) { _ = try await client.describeDisk(id: "../../etc/passwd") }
        do {
            _ = try await client.describeRegion()
            Issue.record("nothing listens on port 1")
        } catch let error as CloudError {
            #expect(error.message.contains("cannot connect"))
        }
    }

    @Test func apiKeyFiles() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ballast-keys-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let generated = try APIKeys.adminKey(stateDir: directory)
        let attributes = try FileManager.default.attributesOfItem(atPath: directory + "/admin.key")
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        #expect(try APIKeys.adminKey(stateDir: directory).roles == generated.roles, "the key is kept across restarts")
        try "# keys\n\(adminKey),admin\n\(readerKey), read-only\n".write(toFile: directory + "/keys", atomically: true, encoding: .utf8)
        // A key file others can read is refused, saying how to fix it (as ssh does).
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: directory + "/keys")
        #expect { try APIKeys.load(file: directory + "/keys") } throws: { "\($0)".contains("chmod 600 \(directory)/keys") }
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: directory + "/keys")
        #expect(try APIKeys.load(file: directory + "/keys").roles == [adminKey: .admin, readerKey: .readOnly])
        try "short,admin\n".write(toFile: directory + "/bad", atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: directory + "/bad")
        #expect(throws: CloudError.self) { try APIKeys.load(file: directory + "/bad") }
        #expect(throws: CloudError.self) { try APIKeys.load(file: directory + "/missing") }
    }
}

