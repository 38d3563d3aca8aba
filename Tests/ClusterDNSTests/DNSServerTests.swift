// The real server on 127.0.0.1, asked over real UDP and TCP sockets; and `ClusterDNSServer`
// following a real API server (in process) through its informers.
import APIClient
import APIServerTesting
import ClusterAPI
import Foundation
import Logging
import NIOCore
import Testing
@testable import ClusterDNS

@Suite struct DNSServerTests {
    static let logger = Logger(label: "dns-test")

    func withServer(limits: DNSServerLimits = DNSServerLimits(), _ body: (DNSServer, Int) async throws -> Void) async throws {
        let server = DNSServer(records: Fixtures.records, limits: limits, logger: Self.logger)
        do {
            let port = try await server.bind(host: "127.0.0.1", port: 0)
            try await body(server, port)
        } catch {
            await server.shutdown()
            throw error
        }
        await server.shutdown()
    }

    @Test func answersOverUDP() async throws {
        try await withServer { _, port in
            let response = try await DNSTestClient.udp(Fixtures.query("db-1.db.data.svc.cluster.local", .a), port: port)
            #expect(response.header.id == 0x1234 && response.header.authoritative)
            #expect(response.addresses == ["198.18.2.6"])
            let refused = try await DNSTestClient.udp(Fixtures.query("example.org", .a), port: port)
            #expect(refused.header.responseCode == .refused)
        }
    }

    @Test func answersOverTCPSeveralPerConnection() async throws {
        try await withServer { _, port in
            let queries = [Fixtures.query("web.default.svc.cluster.local", .a, id: 1), Fixtures.query("db.data.svc.cluster.local", .a, id: 2)]
            let replies = try await DNSTestClient.tcp(queries.map { $0.encoded() }, expect: 2, port: port)
            let parsed = try replies.map { try DNSMessage(parsing: $0) }
            #expect(parsed.map(\.header.id) == [1, 2])
            #expect(parsed.map(\.addresses) == [["198.19.0.20"], ["198.18.1.5", "198.18.2.6", "198.18.1.9"]])
        }
    }

    @Test func aLongAnswerIsTruncatedOverUDPAndWholeOverTCP() async throws {
        let endpoints = (1...60).map { (address: "198.18.0.\($0)", hostname: Optional("pod-\($0)"), ready: Optional(true)) }
        let records = ClusterRecords(domain: Fixtures.domain, services: [Fixtures.service("big", clusterIP: "None")],
                                     slices: [Fixtures.slice("big-1", service: "big", endpoints: endpoints, ports: [])])
        try await withServer { server, port in
            server.update(records)
            let udp = try await DNSTestClient.udp(Fixtures.query("big.default.svc.cluster.local", .a), port: port)
            #expect(udp.header.truncated && udp.answers.isEmpty)
            // A larger EDNS payload size fits them.
            let edns = try await DNSTestClient.udp(Fixtures.query("big.default.svc.cluster.local", .a, edns: 4096), port: port)
            #expect(!edns.header.truncated && edns.answers.count == 60)
            let tcp = try await DNSTestClient.tcp([Fixtures.query("big.default.svc.cluster.local", .a).encoded()], expect: 1, port: port)
            let whole = try DNSMessage(parsing: tcp[0])
            #expect(!whole.header.truncated && whole.answers.count == 60)
        }
    }

    @Test func malformedPacketsGetFORMERROrNothing() async throws {
        try await withServer { server, port in
            // A pointer loop: FORMERR with the query's id.
            let loop: [UInt8] = [0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1]
            let reply = try DNSMessage(parsing: try await DNSTestClient.udp(loop, port: port))
            #expect(reply.header.id == 0xabcd && reply.header.responseCode == .formatError)
            // Shorter than a header, or a response: dropped (checked without the network).
            #expect(server.answer([1, 2, 3], over: .udp) == nil)
            var response = Fixtures.query("web.default.svc.cluster.local", .a)
            response.header.isResponse = true
            #expect(server.answer(response.encoded(), over: .udp) == nil)
            // The server still answers.
            #expect(try await DNSTestClient.udp(Fixtures.query("web.default.svc.cluster.local", .a), port: port).addresses == ["198.19.0.20"])
        }
    }

    @Test func tcpConnectionsAreBounded() async throws {
        var limits = DNSServerLimits()
        limits.maxConnections = 1
        limits.idleTimeout = .seconds(2)
        try await withServer(limits: limits) { server, port in
            let query = Fixtures.query("web.default.svc.cluster.local", .a).encoded()
            // An idle connection holds the one place until the idle timeout closes it.
            let idle = Task { try await DNSTestClient.tcp([], expect: 1, port: port) }
            let deadline = ContinuousClock.now + .seconds(5)
            while server.connectionCount == 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            #expect(server.connectionCount == 1)
            // Meanwhile a second one is closed at once, unanswered.
            let start = ContinuousClock.now
            let refused = try await DNSTestClient.tcp([query], expect: 1, port: port)
            #expect(refused.isEmpty)
            #expect(ContinuousClock.now - start < .seconds(1))
            #expect(try await idle.value.isEmpty)
            // Once the idle one is gone, a connection is answered.
            while server.connectionCount > 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            let answered = try await DNSTestClient.tcp([query], expect: 1, port: port)
            #expect(try answered.map { try DNSMessage(parsing: $0).addresses } == [["198.19.0.20"]])
        }
    }

    @Test func followsTheAPIServer() async throws {
        try await InProcessAPIServer.with { api in
            let client = api.client()
            var configuration = ClusterDNSConfiguration()
            configuration.port = 0
            let dns = ClusterDNSServer(client: client, configuration: configuration, logger: Self.logger)
            let port = try await dns.bind()
            let running = Task { try await dns.run() }
            defer { running.cancel() }
            _ = try await client.create(Namespace(metadata: ObjectMeta(name: "data")))
            _ = try await client.create(Fixtures.service("db", namespace: "data", clusterIP: "None", ports: [("pg", "TCP", 5432)]))
            _ = try await client.create(Fixtures.slice("db-1", service: "db", namespace: "data", endpoints: [("198.18.1.5", "db-0", true)],
                                                       ports: [EndpointPort(name: "pg", protocol: "TCP", port: 5432)]))
            func resolve(_ name: String) async throws -> [String] {
                try await DNSTestClient.udp(Fixtures.query(name, .a), port: port).addresses
            }
            try await eventually { try await resolve("db-0.db.data.svc.cluster.local") == ["198.18.1.5"] }
            // The replica moves: its slice changes, the same name follows it.
            var slice = try await client.get(EndpointSlice.self, name: "db-1", namespace: "data")
            slice.endpoints = [Endpoint(addresses: ["198.18.2.9"], conditions: EndpointConditions(ready: true), hostname: "db-0")]
            _ = try await client.update(slice)
            try await eventually { try await resolve("db-0.db.data.svc.cluster.local") == ["198.18.2.9"] }
            try await client.delete(ClusterAPI.Service.self, name: "db", namespace: "data")
            try await eventually {
                try await DNSTestClient.udp(Fixtures.query("db.data.svc.cluster.local", .a), port: port).header.responseCode == .nameError
            }
            running.cancel()
            await dns.server.shutdown()
        }
    }

    /// Polls `condition` every 50 ms for up to 10 s.
    func eventually(_ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("not within 10 s")
    }
}
