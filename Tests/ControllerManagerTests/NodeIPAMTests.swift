import APIClient
import ClusterAPI
import Foundation
import Testing
@testable import ControllerManager

/// Node IPAM against a real API server: each node gets its own podCIDR, kept immutable by the
/// API server; a restarted manager rebuilds its map from the nodes; a full range is an event;
/// a deleted node's CIDR goes to the next node that needs one.
@Suite struct NodeIPAMTests {
    static func cidr(_ h: WorkloadHarness, _ node: String) async throws -> String? {
        let n = try await h.client.get(Node.self, name: node)
        #expect(n.spec.podCIDRs == n.spec.podCIDR.map { [$0] }, "podCIDRs mirrors podCIDR")
        return n.spec.podCIDR
    }

    @Test func nodesGetDistinctCIDRsAcrossRestartsUntilTheRangeIsFull() async throws {
        try await withWorkloads([.nodeIPAM], configure: {
            $0.allocateNodeCIDRs = true
            $0.clusterCIDR = "198.18.0.0/22"
            $0.nodeCIDRMaskSize = 24
        }) { h in
            _ = try await h.client.create(makeNode("a"))
            _ = try await h.client.create(makeNode("b"))
            await h.eventually("a and b get CIDRs") {
                let a = try await Self.cidr(h, "a"), b = try await Self.cidr(h, "b")
                return a != nil && b != nil
            }
            let a = try await Self.cidr(h, "a"), b = try await Self.cidr(h, "b")
            #expect(a != b)
            for cidr in [a, b] { #expect(["198.18.0.0/24", "198.18.1.0/24", "198.18.2.0/24", "198.18.3.0/24"].contains(cidr ?? "")) }

            // Immutable once set, in the API server's words.
            var moved = try await h.client.get(Node.self, name: "a")
            moved.spec.podCIDR = "198.18.3.0/24"
            moved.spec.podCIDRs = ["198.18.3.0/24"]
            await #expect(throws: APIError.self) { _ = try await h.client.update(moved) }
            do { _ = try await h.client.update(moved) } catch let error as APIError {
                #expect(error.description.contains(#"spec.podCIDRs: Forbidden: node updates may not change podCIDR except from "" to valid"#))
            }

            // A new manager starts from a fresh map, rebuilt from the nodes before it allocates.
            await h.restartManager()
            _ = try await h.client.create(makeNode("c"))
            _ = try await h.client.create(makeNode("d"))
            await h.eventually("c and d get CIDRs") {
                let c = try await Self.cidr(h, "c"), d = try await Self.cidr(h, "d")
                return c != nil && d != nil
            }
            let all = [a, b, try await Self.cidr(h, "c"), try await Self.cidr(h, "d")].compactMap { $0 }
            #expect(Set(all).count == 4, "\(all)")

            // Full: an event, and the node waits.
            _ = try await h.client.create(makeNode("e"))
            await h.eventually("CIDRNotAvailable on e") { await h.hasEvent("Node", "e", reason: "CIDRNotAvailable", containing: "Node e status is now: CIDRNotAvailable") }
            #expect(try await Self.cidr(h, "e") == nil)

            // b goes: its CIDR is e's.
            try await h.client.delete(Node.self, name: "b")
            await h.eventually("e gets b's CIDR") { try await Self.cidr(h, "e") == b }
        }
    }

    @Test func cidrSetArithmetic() throws {
        var set = try NodeCIDRSet(cluster: IPv4CIDR("10.244.0.0/16")!, maskSize: 24)
        #expect(set.count == 256)
        #expect(set.index(of: "10.244.7.0/24") == 7)
        #expect(set.index(of: "10.245.0.0/24") == nil && set.index(of: "10.244.7.0/25") == nil && set.index(of: "10.244.7.1/24") == nil)
        set.occupy(0)
        #expect(set.allocateNext()?.description == "10.244.1.0/24")
        #expect(throws: NodeIPAMError.self) { try NodeCIDRSet(cluster: IPv4CIDR("10.0.0.0/8")!, maskSize: 30) }
        #expect(throws: NodeIPAMError.self) { try NodeCIDRSet(cluster: IPv4CIDR("10.0.0.0/24")!, maskSize: 16) }
    }
}
