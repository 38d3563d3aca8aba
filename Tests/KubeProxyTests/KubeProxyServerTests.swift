// The proxy itself (`KubeProxyServer`) against an in-process API server, programming a real
// nftables table: that a running proxy applies a change incrementally (the kernel's handles of
// the table, and of the rules of a Service that did not change, stay the same: nothing was
// rewritten but the changed chain and map elements), and that a proxy stopped and started again
// rebuilds the table once and picks up what changed while it was down. The ClusterIPs are the
// test network's own (a claimed /22 of 198.19.128.0/17), so the table's hooks catch no one
// else's traffic; nothing connects to them here. The table goes with the test.
import APIClient
import APIServerTesting
import ClusterAPI
import ClusterTesting
import Foundation
import HostSystem
@testable import KubeProxy
import Logging
import Testing
import TestSupport

@Suite("kube-proxy server on a real table", .enabled(if: TestNetwork.available), .serialized, .timeLimit(.minutes(3)))
struct KubeProxyServerTests {
    static let logger = Logger(label: "kube-proxy-test")

    /// `nft -a list table ip <table>` without quotes (nft quotes some chain names), or "" when there is none.
    static func listed(_ table: String) async -> String {
        ((try? await SystemCommand.run(["nft", "-a", "list", "table", "ip", table], timeout: .seconds(10)))?.stdout ?? "").replacingOccurrences(of: "\"", with: "")
    }

    /// The table's kernel handle (`table ip T { # handle N`): a new one means the table was replaced.
    static func tableHandle(_ listing: String) -> String? {
        guard let first = listing.split(separator: "\n").first, let range = first.range(of: "# handle ") else { return nil }
        return String(first[range.upperBound...])
    }

    /// The rule lines (with their handles) of chain `name` in a `nft -a` listing.
    static func chainRules(_ listing: String, _ name: String) -> [String] {
        var inside = false, rules: [String] = []
        for line in listing.split(separator: "\n").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            if line.hasPrefix("chain ") {
                inside = line.hasPrefix("chain \(name) ")
            } else if line == "}" {
                inside = false
            } else if inside && line.contains("# handle") {
                rules.append(line)
            }
        }
        return rules
    }

    /// Polls until `condition` holds on the table's listing (30 s at most: other suites load the machine); returns the listing.
    static func waitFor(_ table: String, _ what: String, _ condition: (String) -> Bool) async throws -> String {
        let deadline = ContinuousClock.now + .seconds(30)
        var listing = ""
        while ContinuousClock.now < deadline {
            listing = await listed(table)
            if condition(listing) { return listing }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("not within 30 s: \(what)\n\(listing)")
        throw TestFailure("table \(table): \(what)")
    }

    @Test("a change is applied incrementally; a restarted proxy rebuilds once and catches up with what changed while it was down")
    func incrementalAndRestart() async throws {
        let test = try await TestNetwork.claim()
        let configuration = KubeProxyConfiguration(nodeName: "node-1", tag: test.network.tag, clusterCIDR: test.network.clusterCIDR)
        let table = configuration.tableName
        let vip = { (n: UInt32) in test.network.serviceCIDR.address(n) }
        let pod = { (n: UInt32) in test.podCIDR(2).address(n) }
        try await withCleanup {
            try await InProcessAPIServer.with { api in
                let client = api.client()
                _ = try await client.create(Namespace(metadata: ObjectMeta(name: "ns")))
                var node = Node(metadata: ObjectMeta(name: "node-1"))
                node.spec.podCIDR = "\(test.podCIDR(1))"
                node.spec.podCIDRs = ["\(test.podCIDR(1))"]
                _ = try await client.create(node)
                _ = try await client.create(RulesetTests.service("a", clusterIP: vip(20)))
                _ = try await client.create(RulesetTests.slice("a", [(pod(5), true)]))
                _ = try await client.create(RulesetTests.service("b", clusterIP: vip(21)))
                _ = try await client.create(RulesetTests.slice("b", [(pod(6), true), (pod(7), true)]))

                let first = KubeProxyServer(client: client, configuration: configuration, logger: Self.logger)
                var running = Task { try await first.run() }
                let initial = try await Self.waitFor(table, "both Services programmed") {
                    $0.contains("\(vip(20)) . tcp . 80 : goto svc-ns/a/tcp/http") && $0.contains("\(vip(21)) . tcp . 80 : goto svc-ns/b/tcp/http")
                }
                let handle = try #require(Self.tableHandle(initial), "\(initial)")
                let bRules = Self.chainRules(initial, "svc-ns/b/tcp/http")
                #expect(bRules.count == 1 && bRules[0].contains("numgen random mod 2"), "\(bRules)")
                let syncsBefore = first.counts.syncs

                // A second endpoint for a, and a new Service c: only their chains and elements change.
                var slice = try await client.get(EndpointSlice.self, name: "a-abc", namespace: "ns")
                slice.endpoints.append(Endpoint(addresses: [pod(8)], conditions: EndpointConditions(ready: true)))
                _ = try await client.update(slice)
                _ = try await client.create(RulesetTests.service("c", clusterIP: vip(22)))
                _ = try await client.create(RulesetTests.slice("c", [(pod(9), true)]))
                let changed = try await Self.waitFor(table, "a's two endpoints and c") {
                    Self.chainRules($0, "svc-ns/a/tcp/http").first?.contains("numgen random mod 2") == true
                        && $0.contains("\(vip(22)) . tcp . 80 : goto svc-ns/c/tcp/http")
                }
                #expect(Self.tableHandle(changed) == handle, "the table was not replaced for a change")
                #expect(Self.chainRules(changed, "svc-ns/b/tcp/http") == bRules, "b's chain was not rewritten: same rule, same handle")
                let counted = ContinuousClock.now + .seconds(10)
                while first.counts.syncs == syncsBefore, ContinuousClock.now < counted { try await Task.sleep(for: .milliseconds(20)) }
                #expect(first.counts.syncs > syncsBefore && first.counts.failures == 0, "\(first.counts)")

                // b deleted: its element and chains go, the table stays.
                try await client.delete(ClusterAPI.Service.self, name: "b", namespace: "ns")
                let without = try await Self.waitFor(table, "b gone") { !$0.contains("svc-ns/b/") && !$0.contains(pod(6)) }
                #expect(Self.tableHandle(without) == handle)

                // The proxy stops (as a killed one would, its table left in place: connections keep
                // their DNAT) and things change meanwhile: a loses an endpoint, c goes, d comes.
                running.cancel()
                _ = await running.result
                #expect(Self.tableHandle(await Self.listed(table)) == handle, "a stopped proxy leaves its table")
                slice = try await client.get(EndpointSlice.self, name: "a-abc", namespace: "ns")
                slice.endpoints.removeAll { $0.addresses == [pod(5)] }
                _ = try await client.update(slice)
                try await client.delete(ClusterAPI.Service.self, name: "c", namespace: "ns")
                _ = try await client.create(RulesetTests.service("d", clusterIP: vip(23)))
                _ = try await client.create(RulesetTests.slice("d", [(pod(10), true)]))
                #expect(await Self.listed(table).contains("svc-ns/c/"), "nothing changed the table while no proxy ran")

                let second = KubeProxyServer(client: client, configuration: configuration, logger: Self.logger)
                running = Task { try await second.run() }
                let caughtUp = try await Self.waitFor(table, "the restarted proxy's table") {
                    $0.contains("\(vip(23)) . tcp . 80 : goto svc-ns/d/tcp/http") && !$0.contains("svc-ns/c/")
                        && Self.chainRules($0, "svc-ns/a/tcp/http").first?.contains("goto ep-ns/a/tcp/http__\(pod(8))/8080") == true
                }
                #expect(Self.tableHandle(caughtUp) != handle, "the first sync of a new proxy replaces the table in one transaction")
                #expect(!caughtUp.contains(pod(5)), "a's removed endpoint is gone: \(caughtUp)")
                // (The count goes up once nft has returned, a moment after the kernel shows the table.)
                let recounted = ContinuousClock.now + .seconds(10)
                while second.counts.syncs == 0, ContinuousClock.now < recounted { try await Task.sleep(for: .milliseconds(20)) }
                #expect(second.counts.syncs >= 1 && second.counts.failures == 0, "\(second.counts)")
                running.cancel()
                _ = await running.result
            }
        } cleanup: {
            await NFTables.deleteTable(table)
            #expect(await NFTables.tables(prefix: table) == [])
            await test.release()
        }
    }
}
